"""Conformer blocks and CMGAN's two-stage (time, then frequency) conformer.

Layout of the two-stage block: ``[B, C, T, F]`` (channels, frames, frequency bins). Attention uses
``scaled_dot_product_attention`` (flash or memory-efficient kernels on GPU: CMGAN's time attention
runs over 321 frames for 101 x batch sequences). CMGAN adds learned relative-position embeddings to
the attention; here position comes only from the depthwise convolution of each conformer's
convolution module and from the encoder's convolutions, which keeps the fast attention kernels.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FeedForward(nn.Sequential):
    """LayerNorm, expand ``mult`` x, SiLU, project back: ``[N, L, C] -> [N, L, C]``."""

    def __init__(self, channels: int, mult: int = 4, dropout: float = 0.2) -> None:
        super().__init__(
            nn.LayerNorm(channels),
            nn.Linear(channels, channels * mult),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(channels * mult, channels),
            nn.Dropout(dropout),
        )


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention: ``[N, L, C] -> [N, L, C]`` (no residual)."""

    def __init__(self, channels: int, heads: int = 4, dropout: float = 0.2) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by attention heads ({heads}).")
        self.heads = heads
        self.dropout = dropout
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Sequential(nn.Linear(channels, channels), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        batch, length, channels = x.shape
        qkv = self.qkv(self.norm(x)).view(batch, length, 3, self.heads, channels // self.heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, channels))


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv, LayerNorm, SiLU, pointwise projection:
    ``[N, L, C] -> [N, L, C]``.

    The depthwise kernel spans ``kernel_size`` steps (31 frames = 0.19 s in time at hop 100, or
    31 bins in frequency) and gives the block its sense of position. CMGAN normalizes here with
    BatchNorm; a per-position LayerNorm (same parameter count) keeps no running statistics, so
    evaluation behaves as training does and DDP replicas cannot drift apart in buffers that each
    rank updates from its own batch (BatchNorm's running means differed between ranks after a
    2-process fit).
    """

    def __init__(self, channels: int, kernel_size: int = 31, expansion: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd to keep the length, got {kernel_size}.")
        inner = channels * expansion
        self.norm = nn.LayerNorm(channels)
        self.temporal = nn.Sequential(
            nn.Conv1d(channels, 2 * inner, 1),
            nn.GLU(dim=1),
            nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner),
        )
        self.pointwise = nn.Sequential(
            nn.LayerNorm(inner), nn.SiLU(), nn.Linear(inner, channels), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.temporal(self.norm(x).transpose(1, 2)).transpose(1, 2))


class ConformerBlock(nn.Module):
    """Half-step feed-forward, self-attention, convolution, half-step feed-forward, LayerNorm.

    Each sub-module is residual. Shapes: ``[N, L, C] -> [N, L, C]``.
    """

    def __init__(
        self, channels: int, heads: int = 4, conv_kernel_size: int = 31, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.feed_forward_in = FeedForward(channels, dropout=dropout)
        self.attention = SelfAttention(channels, heads, dropout)
        self.convolution = ConvolutionModule(channels, conv_kernel_size, dropout=dropout)
        self.feed_forward_out = FeedForward(channels, dropout=dropout)
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
    """

    def __init__(
        self, channels: int, heads: int = 4, conv_kernel_size: int = 31, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.time = ConformerBlock(channels, heads, conv_kernel_size, dropout)
        self.frequency = ConformerBlock(channels, heads, conv_kernel_size, dropout)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, frames, bins = x.shape
        x = x.permute(0, 3, 2, 1).reshape(batch * bins, frames, channels)
        x = self.time(x) + x
        x = x.view(batch, bins, frames, channels).transpose(1, 2).reshape(batch * frames, bins, channels)
        x = self.frequency(x) + x
        return x.view(batch, frames, bins, channels).permute(0, 3, 1, 2)
