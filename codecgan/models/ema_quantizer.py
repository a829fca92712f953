"""EnCodec's residual vector quantizer: Euclidean codebooks updated by exponential moving averages (EMA), with
dead-code restarts and optional k-means initialisation (`encodec/quantization/core_vq.py`, 0.1.1).

The codebooks are not trained by the optimiser: in training mode each forward moves every code towards the mean
of the vectors assigned to it (`embed = embed_avg / cluster_size`, both EMAs with `decay`), so there is no codebook
loss (`codebook_loss` is zero); only the commitment loss trains the encoder. All state (`embed`, `cluster_size`,
`embed_avg`, `inited`) is in registered buffers, hence in the checkpoint, and a resumed run continues bit for bit.

Where this differs from encodec 0.1.1, and why:
- A dead code (EMA cluster size under `dead_code_threshold`) is restarted at a vector of the current batch, and the
  restart takes effect: `embed_avg` is set so that `embed_avg / cluster_size` is that vector. In encodec the
  restart writes `embed`, which the same step then overwrites with `embed_avg / cluster_size`, so dead codes stay
  dead (tests/fixtures/encodec/make_fixture.py measures this). Every other number equals encodec's.
- No host reads per step: encodec branches on `inited` and on `any(expired)`; here the restart is a masked write
  on the device and `inited` is read from the host only until it is first found set. The k-means initialisation
  reads once (its `bincount`). The vectors a restart may use are drawn every training step.
- Under torch.distributed, each step all-reduces (sums) the per-code counts and vector sums before the EMA update,
  so every rank applies the statistics of the global batch and the codebooks stay identical across ranks; the
  restart vectors and the k-means result are rank 0's, broadcast. encodec instead lets ranks drift and broadcasts
  rank 0's buffers at each restart.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.precision import at_least_float32
from codecgan.models.residual_vq import ResidualQuantizerOutput, ResidualVectorQuantizer, check_codebook_settings


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sample_vectors(samples: Tensor, count: int) -> Tensor:
    """`count` rows of `samples` `[n, d]`, without repeats when n >= count (encodec's draw, same random calls)."""
    if samples.shape[0] >= count:
        indices = torch.randperm(samples.shape[0], device=samples.device)[:count]
    else:
        indices = torch.randint(0, samples.shape[0], (count,), device=samples.device)
    return samples[indices]


def kmeans(samples: Tensor, clusters: int, iterations: int) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on `samples` `[n, d]` from `clusters` random samples: `(means [clusters, d], counts
    [clusters])`; an empty cluster keeps its previous mean. encodec's `kmeans` with the distances expanded (the
    sample's own norm, the same for every cluster, left out)."""
    means = sample_vectors(samples, clusters)
    counts = torch.zeros(clusters, dtype=torch.long, device=samples.device)
    for _ in range(iterations):
        # |s|^2 - 2 s.m + |m|^2, not encodec's `(s - m)^2` over an [n, K, d] tensor: that takes n K d floats
        # (2.5 GB at EnCodec's batch) and, on a later codebook's tiny residuals, subnormal squares (slow on CPUs).
        distances = 2 * samples @ means.t() - means.square().sum(1)
        buckets = distances.max(dim=-1).indices
        counts = torch.bincount(buckets, minlength=clusters)
        empty = counts == 0
        sums = samples.new_zeros(clusters, samples.shape[1])
        sums.scatter_add_(0, buckets[:, None].expand_as(samples), samples)
        means = torch.where(empty[:, None], means, sums / counts.masked_fill(empty, 1)[:, None])
    return means, counts


def _forget_known_inited(codebook: EMACodebook, incompatible_keys: object) -> None:
    """After a state dict load, read `inited` again (a module-level function, so the module pickles)."""
    codebook._known_inited = False


class EMACodebook(nn.Module):
    """One Euclidean codebook of `codebook_size` codes in `dim` dimensions, trained by EMA.

    Args:
        dim: vector dimension d.
        codebook_size: codes K.
        decay: EMA decay of the counts and sums, in [0, 1]; 1.0 never moves the codes.
        dead_code_threshold: a code whose EMA count falls under this is restarted (0: never).
        kmeans_init: start from k-means on the first training batch instead of a Kaiming-uniform draw.
        kmeans_iterations: Lloyd iterations of that k-means.
        epsilon: Laplace smoothing of the counts.

    Buffers: `embed` [K, d], `cluster_size` [K], `embed_avg` [K, d], `inited` [1] (1.0 once initialised), all in the
    state dict; `dead_code_restarts` (int64 scalar, not saved): codes restarted by the last training step.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        decay: float = 0.99,
        dead_code_threshold: float = 2.0,
        kmeans_init: bool = False,
        kmeans_iterations: int = 50,
        epsilon: float = 1e-5,
    ) -> None:
        super().__init__()
        self.codebook_size, self.decay, self.epsilon = codebook_size, decay, epsilon
        self.dead_code_threshold, self.kmeans_iterations = dead_code_threshold, kmeans_iterations
        embed = torch.zeros(codebook_size, dim)
        if not kmeans_init:
            nn.init.kaiming_uniform_(embed)
        self.register_buffer("inited", torch.tensor([float(not kmeans_init)]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("dead_code_restarts", torch.zeros((), dtype=torch.long), persistent=False)
        self._known_inited = not kmeans_init  # a host copy of `inited`, so that it is read once
        self.register_load_state_dict_post_hook(_forget_known_inited)

    @torch.no_grad()
    def nearest(self, x: Tensor) -> Tensor:
        """Index of the nearest code (Euclidean) of each row of `x` `[n, d]` -> `[n]` int64, encodec's formula."""
        embed = self.embed.t()
        distance = -(x.square().sum(1, keepdim=True) - 2 * x @ embed + embed.square().sum(0, keepdim=True))
        return distance.max(dim=-1).indices

    @torch.no_grad()
    def _initialise(self, x: Tensor) -> bool:
        """Run the k-means initialisation if the codebook has none yet; True when it ran."""
        if self._known_inited or bool(self.inited):  # one host read until set
            self._known_inited = True
            return False
        embed, counts = kmeans(x, self.codebook_size, self.kmeans_iterations)
        self.embed.copy_(embed)
        self.embed_avg.copy_(embed)
        self.cluster_size.copy_(counts)
        self.inited.fill_(1.0)
        if _distributed():
            for buffer in (self.embed, self.embed_avg, self.cluster_size, self.inited):
                dist.broadcast(buffer, 0)
        self._known_inited = True
        return True

    @torch.no_grad()
    def _update(self, x: Tensor, codes: Tensor, initialised_now: bool) -> None:
        """One EMA step from `x` `[n, d]` and its codes `[n]`, then the dead-code restarts.

        The restart candidates are drawn every step, except in the step that ran k-means when no code is dead:
        there encodec draws nothing, and the next codebooks' k-means draws stay encodec's (a host read that
        step only, which reads anyway)."""
        expired = self.cluster_size < self.dead_code_threshold  # before this step's update, as encodec
        if initialised_now and not bool(expired.any()):
            candidates = self.embed.clone()  # unused: no code is restarted
        else:
            candidates = sample_vectors(x, self.codebook_size)
        onehot = F.one_hot(codes, self.codebook_size).to(x.dtype)
        counts, sums = onehot.sum(0), x.t() @ onehot
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
            dist.broadcast(candidates, 0)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums.t(), alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        embed = self.embed_avg / smoothed[:, None]
        self.embed.copy_(torch.where(expired[:, None], candidates, embed))
        self.embed_avg.copy_(torch.where(expired[:, None], candidates * smoothed[:, None], self.embed_avg))
        self.dead_code_restarts.copy_(expired.sum())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Quantize `x` `[n, d]`: `(code vectors [n, d], codes [n])`; in training mode, update the codebook
        after the lookup (the returned vectors are the codes before this step's update, as encodec)."""
        initialised_now = self._initialise(x) if self.training else False
        codes = self.nearest(x)
        quantized = F.embedding(codes, self.embed)
        if self.training:
            self._update(x, codes, initialised_now)
        return quantized, codes

    def decode(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.embed)


class EMAResidualVectorQuantizer(nn.Module):
    """A cascade of `EMACodebook`s on the latent itself (no projection, as EnCodec), each quantizing what the
    previous ones left, with the interface of `ResidualVectorQuantizer` (`forward`, `decode_codes`,
    `active_quantizers`, `n_codebooks`, `codebook_size`, `quantizer_dropout`).

    Quantizer dropout is DAC's per-item scheme (`ResidualVectorQuantizer.active_quantizers`): every codebook runs
    and updates its EMA on every item; the mask gates outputs and losses. `commitment_loss` is summed over the
    codebooks (EnCodec reports the mean: divide its weight by n_codebooks to match); `codebook_loss` is zero.

    Args:
        input_dim: latent channels D (the codebooks' dimension).
        n_codebooks, codebook_size, quantizer_dropout: as `ResidualVectorQuantizer`.
        decay, dead_code_threshold, kmeans_init, kmeans_iterations: as `EMACodebook`.

    Attributes:
        dead_code_restarts: `[n_codebooks]` int64 device tensor, codes each codebook restarted in the last
            training step.
    """

    def __init__(
        self,
        input_dim: int = 128,
        n_codebooks: int = 8,
        codebook_size: int = 1024,
        quantizer_dropout: float = 0.0,
        decay: float = 0.99,
        dead_code_threshold: float = 2.0,
        kmeans_init: bool = True,
        kmeans_iterations: int = 50,
    ) -> None:
        super().__init__()
        check_codebook_settings(n_codebooks, quantizer_dropout)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}.")
        self.n_codebooks, self.codebook_size, self.quantizer_dropout = n_codebooks, codebook_size, quantizer_dropout
        self.codebooks = nn.ModuleList(
            EMACodebook(input_dim, codebook_size, decay, dead_code_threshold, kmeans_init, kmeans_iterations)
            for _ in range(n_codebooks)
        )

    active_quantizers = ResidualVectorQuantizer.active_quantizers

    @property
    def dead_code_restarts(self) -> Tensor:
        return torch.stack([codebook.dead_code_restarts for codebook in self.codebooks])

    def forward(self, latents: Tensor, n_quantizers: int | None = None) -> ResidualQuantizerOutput:
        """Quantize `latents: [B, D, N]` with the first `n_quantizers` codebooks (default all); fp32."""
        n_quantizers = self.n_codebooks if n_quantizers is None else n_quantizers
        if not 1 <= n_quantizers <= self.n_codebooks:
            raise ValueError(f"n_quantizers must lie in [1, {self.n_codebooks}], got {n_quantizers}.")
        with torch.autocast(device_type=latents.device.type, enabled=False):
            active = self.active_quantizers(latents.shape[0], n_quantizers, latents.device)
            residual = at_least_float32(latents).transpose(1, 2)  # [B, N, D]
            outputs, codes, commitments = [], [], []
            for codebook in self.codebooks[:n_quantizers]:
                quantized, indices = codebook(residual.reshape(-1, residual.shape[-1]))
                quantized = quantized.view_as(residual)
                commitments.append(F.mse_loss(residual, quantized.detach(), reduction="none").mean(dim=(1, 2)))
                quantized = residual + (quantized - residual).detach()
                residual = residual - quantized
                outputs.append(quantized)
                codes.append(indices.view(residual.shape[:2]))
            used = (torch.arange(n_quantizers, device=latents.device) < active[:, None]).to(residual.dtype)
            z_q = torch.einsum("qbnd,bq->bdn", torch.stack(outputs), used)
            commitment_loss = (torch.stack(commitments, dim=1) * used).mean(0).sum()
            return ResidualQuantizerOutput(
                z_q, torch.stack(codes, dim=1), commitment_loss, commitment_loss.new_zeros(()), active
            )

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Latent of given codes, the sum over the codebooks present; [B, n_q, N] -> [B, D, N]."""
        if codes.shape[1] > self.n_codebooks:
            raise ValueError(f"codes hold {codes.shape[1]} codebooks but the quantizer has {self.n_codebooks}.")
        vectors = [codebook.decode(codes[:, index]) for index, codebook in enumerate(self.codebooks[: codes.shape[1]])]
        return sum(vectors).transpose(1, 2)
