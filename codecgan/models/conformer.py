"""Conformer blocks and CMGAN's two-stage (time, then frequency) conformer, built as CMGAN builds them.

A block is: half-step feed-forward, self-attention with learned relative positions, convolution module
(with BatchNorm), half-step feed-forward, each pre-normed and residual, then a LayerNorm.
Layout of the two-stage block: ``[B, C, T, F]`` (channels, frames, frequency bins).

Dropout sits where CMGAN puts it: after both linear layers of each feed-forward module (0.2), on the
attention's output projection only (0.2: no dropout on the attention weights), and after the
convolution module (0 in CMGAN).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

# CMGAN's (and lucidrains' conformer's) table size: distances beyond it share the table's end rows.
MAX_RELATIVE_POSITION = 512


class FeedForward(nn.Sequential):
    """LayerNorm, expand ``mult`` x, SiLU, dropout, project back, dropout: ``[N, L, C] -> [N, L, C]``."""

    def __init__(self, channels: int, mult: int = 4, dropout: float = 0.2) -> None:
        super().__init__(
            nn.LayerNorm(channels),
            nn.Linear(channels, channels * mult),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(channels * mult, channels),
            nn.Dropout(dropout),
        )


class RelativePositionSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with Shaw et al.'s learned relative positions:
    ``[N, L, C] -> [N, L, C]`` (no residual).

    The logit of query ``i`` for key ``j`` in a head is ``(q_i . k_j + q_i . E[i - j]) / sqrt(d)``, with
    ``d = C / heads`` and ``E`` a learned ``[2 M + 1, d]`` table shared by the heads (``M =
    max_relative_position``; ``i - j`` is clamped to ``[-M, M]``). The positional term is passed to
    ``scaled_dot_product_attention`` as an additive mask, so memory grows as ``N x heads x L x L``
    (CMGAN materializes the same logits). Dropout only on the output projection, as in CMGAN.
    """

    def __init__(
        self, channels: int, heads: int = 4, dropout: float = 0.2, max_relative_position: int = MAX_RELATIVE_POSITION
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by attention heads ({heads}).")
        if max_relative_position < 1:
            raise ValueError(f"max_relative_position must be >= 1, got {max_relative_position}.")
        self.heads, self.max_relative_position = heads, max_relative_position
        self.norm = nn.LayerNorm(channels)
        self.query = nn.Linear(channels, channels, bias=False)
        self.key_value = nn.Linear(channels, 2 * channels, bias=False)
        self.relative_position = nn.Embedding(2 * max_relative_position + 1, channels // heads)
        self.out = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def relative_position_logits(self, query: Tensor) -> Tensor:
        """``q_i . E[i - j] / sqrt(d)`` for queries ``[N, heads, L, d]``: ``[N, heads, L, L]``."""
        positions = torch.arange(query.shape[-2], device=query.device)
        distance = (positions[:, None] - positions[None, :]).clamp(
            -self.max_relative_position, self.max_relative_position
        )
        table = self.relative_position(distance + self.max_relative_position).to(query.dtype)  # [L, L, d]
        # Scaling the queries, not the [N, heads, L, L] logits, saves a pass over the largest tensor of the block
        # (a quarter of a 3 s utterance's forward on a CPU); for d = 4, 16 or 64 the scale is a power of two, so the
        # logits are bit-identical either way.
        return torch.einsum("nhid,ijd->nhij", query * query.shape[-1] ** -0.5, table)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, channels = x.shape
        head_channels = channels // self.heads
        x = self.norm(x)
        query = self.query(x).view(batch, length, self.heads, head_channels).transpose(1, 2)
        key, value = self.key_value(x).view(batch, length, 2, self.heads, head_channels).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=self.relative_position_logits(query))
        return self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, channels)))


def across_ranks() -> bool:
    """Whether this process is one of several in an initialized process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class RankConsistentBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose running statistics stay identical on every DDP rank: ``[N, C, L] -> [N, C, L]``.

    In training each rank normalizes with its own batch's statistics, as CMGAN's plain BatchNorm under
    DDP does. Plain BatchNorm would also update the running statistics from that batch alone, so after
    a training step every rank holds different ones (DDP's buffer broadcast copies rank 0's only at the
    next training forward): validation, which runs on each rank with the running statistics, and the
    ranks' final weights would differ. Here the running statistics are updated from the statistics of
    all ranks' batches together (gathered once per layer and training forward), so every rank holds
    the same and evaluation issues no collective. In one process this is ``nn.BatchNorm1d`` exactly.
    Lightning's ``sync_batchnorm: true`` (CUDA only) replaces it by ``SyncBatchNorm``, which also
    normalizes with the statistics of all ranks.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.track_running_stats and across_ranks()):
            return super().forward(x)
        self._update_running_stats_across_ranks(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)

    @torch.no_grad()
    def _update_running_stats_across_ranks(self, x: Tensor) -> None:
        variance, mean = torch.var_mean(x.float(), dim=(0, 2), correction=0)
        local = torch.stack([torch.full_like(mean, x.numel() // x.shape[1]), mean, variance])  # [3, C]
        gathered = local.new_empty(dist.get_world_size() * 3, local.shape[1])
        dist.all_gather_into_tensor(gathered, local)  # gloo takes the concatenated form only
        counts, means, variances = gathered.view(-1, 3, local.shape[1]).unbind(1)  # each [ranks, C]
        # Chan et al.'s pooled variance, in the same rank order on every rank: no E[x^2] - E[x]^2 cancellation.
        total = counts.sum(0)
        pooled_mean = (counts * means).sum(0) / total
        pooled_variance = (counts * (variances + (means - pooled_mean).square())).sum(0) / (total - 1).clamp_min(1)
        self.num_batches_tracked.add_(1)
        weight = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
        self.running_mean.lerp_(pooled_mean.to(self.running_mean.dtype), weight)
        self.running_var.lerp_(pooled_variance.to(self.running_var.dtype), weight)


class ConvolutionModule(nn.Module):
    """LayerNorm, pointwise conv + GLU, depthwise conv, BatchNorm, SiLU, pointwise conv, dropout:
    ``[N, L, C] -> [N, L, C]``.

    The depthwise kernel spans ``kernel_size`` steps (31 frames = 0.19 s in time at hop 100, or 31
    bins in frequency), zero-padded by ``kernel_size // 2`` on each side.
    """

    def __init__(self, channels: int, kernel_size: int = 31, expansion: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd to keep the length, got {kernel_size}.")
        inner = channels * expansion
        self.norm = nn.LayerNorm(channels)
        self.layers = nn.Sequential(
            nn.Conv1d(channels, 2 * inner, 1),
            nn.GLU(dim=1),
            nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner),
            RankConsistentBatchNorm1d(inner),
            nn.SiLU(),
            nn.Conv1d(inner, channels, 1),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.layers(self.norm(x).transpose(1, 2)).transpose(1, 2))


class ConformerBlock(nn.Module):
    """Half-step feed-forward, self-attention, convolution, half-step feed-forward, LayerNorm.

    Each sub-module is residual. Shapes: ``[N, L, C] -> [N, L, C]``.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 4,
        conv_kernel_size: int = 31,
        feed_forward_dropout: float = 0.2,
        attention_dropout: float = 0.2,
        conv_dropout: float = 0.0,
        max_relative_position: int = MAX_RELATIVE_POSITION,
    ) -> None:
        super().__init__()
        self.feed_forward_in = FeedForward(channels, dropout=feed_forward_dropout)
        self.attention = RelativePositionSelfAttention(channels, heads, attention_dropout, max_relative_position)
        self.convolution = ConvolutionModule(channels, conv_kernel_size, dropout=conv_dropout)
        self.feed_forward_out = FeedForward(channels, dropout=feed_forward_dropout)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        x = x + 0.5 * self.feed_forward_in(x)
        x = x + self.attention(x)
        x = x + self.convolution(x)
        x = x + 0.5 * self.feed_forward_out(x)
        return self.norm(x)


class TwoStageConformer(nn.Module):
    """A conformer across time (each frequency bin's sequence of frames), then one across frequency
    (each frame's sequence of bins), each with a residual around it: ``[B, C, T, F] -> [B, C, T, F]``.

    The arguments are ``ConformerBlock``'s, for both blocks.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 4,
        conv_kernel_size: int = 31,
        feed_forward_dropout: float = 0.2,
        attention_dropout: float = 0.2,
        conv_dropout: float = 0.0,
        max_relative_position: int = MAX_RELATIVE_POSITION,
    ) -> None:
        super().__init__()
        options = dict(
            feed_forward_dropout=feed_forward_dropout,
            attention_dropout=attention_dropout,
            conv_dropout=conv_dropout,
            max_relative_position=max_relative_position,
        )
        self.time = ConformerBlock(channels, heads, conv_kernel_size, **options)
        self.frequency = ConformerBlock(channels, heads, conv_kernel_size, **options)

    def forward(self, x: Tensor) -> Tensor:
        return time_then_frequency(x, self.time, self.frequency)


def time_then_frequency(x: Tensor, time: nn.Module, frequency: nn.Module) -> Tensor:
    """``time`` across each bin's frames, then ``frequency`` across each frame's bins, each with a residual around
    it; both map ``[N, L, C]`` sequences to their own shape. ``x: [B, C, T, F] -> [B, C, T, F]``."""
    batch, channels, frames, bins = x.shape
    x = x.permute(0, 3, 2, 1).reshape(batch * bins, frames, channels)
    x = time(x) + x
    x = x.view(batch, bins, frames, channels).transpose(1, 2).reshape(batch * frames, bins, channels)
    x = frequency(x) + x
    return x.view(batch, frames, bins, channels).permute(0, 3, 1, 2)
