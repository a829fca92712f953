"""DAC's factorized residual vector quantizer: cosine code lookup, no EMA, quantizer dropout.

Everything here runs in fp32 (float64 in a float64 model) with autocast disabled: the nearest-code
search compares cosine similarities that differ in the third decimal, which bf16 (8 bits of
mantissa) cannot resolve, and the residual of later codebooks is small next to the latent it is
subtracted from.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.conv_blocks import weight_norm_conv1d
from codecgan.models.precision import at_least_float32


class VectorQuantizerOutput(NamedTuple):
    """What one codebook returns; B batch, D latent channels, N frames."""

    z_q: Tensor  # [B, D, N] quantized latent (straight-through), after out_proj
    codes: Tensor  # [B, N] int64 codebook indices
    commitment_loss: Tensor  # [B] mse(z_e, sg(z_q)) in the codebook space, per item
    codebook_loss: Tensor  # [B] mse(z_q, sg(z_e)) in the codebook space, per item


class ResidualQuantizerOutput(NamedTuple):
    """What the residual quantizer returns; n_q is the number of codebooks that ran."""

    z_q: Tensor  # [B, D, N] sum of the active codebooks' outputs, fp32
    codes: Tensor  # [B, n_q, N] int64
    commitment_loss: Tensor  # scalar, summed over codebooks, masked mean over items
    codebook_loss: Tensor  # scalar, idem
    active_quantizers: Tensor  # [B] int64, how many codebooks each item used


def check_codebook_settings(n_codebooks: int, quantizer_dropout: float) -> None:
    """``ValueError`` unless a residual quantizer has at least one codebook and a dropout fraction in [0, 1]."""
    if not 0.0 <= quantizer_dropout <= 1.0:
        raise ValueError(f"quantizer_dropout must lie in [0, 1], got {quantizer_dropout}.")
    if n_codebooks < 1:
        raise ValueError(f"n_codebooks must be at least 1, got {n_codebooks}.")


class VectorQuantizer(nn.Module):
    """One factorized codebook: project to `codebook_dim`, look up by cosine, project back.

    Low-dimensional, l2-normalised lookup (Yu et al., "Improved VQGAN") keeps codebook usage high
    without EMA updates or dead-code restarts. The returned code vector is the raw (unnormalised)
    codebook row, so the codebook loss pulls rows towards the projected encodings.

    Args:
        input_dim: latent channels D.
        codebook_size: number of codes K.
        codebook_dim: dimension d of the lookup space.
    """

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.in_proj = weight_norm_conv1d(input_dim, codebook_dim, 1)
        self.out_proj = weight_norm_conv1d(codebook_dim, input_dim, 1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    @torch.no_grad()
    def nearest_codes(self, z_e: Tensor) -> Tensor:
        """Index of the codebook row with the highest cosine similarity; [B, d, N] -> [B, N].

        DAC takes the smallest squared distance of the normalised vectors, `|e|² - 2 e·c + |c|²`. The encoding's
        norm scales a row of similarities and does not change its order, so only the codebook is normalised:
        the same codes with fewer ops, but for ties within rounding (none on the DAC reference fixture). No
        gradient flows through a code choice, so none is recorded.
        """
        codebook = at_least_float32(self.codebook.weight)
        codebook = codebook / codebook.norm(dim=1, keepdim=True).clamp_min(1e-12)  # F.normalize's values
        return torch.bmm(codebook.expand(z_e.shape[0], -1, -1), z_e).argmax(dim=1)

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Latent vectors of given codes; [B, N] int64 -> [B, D, N] fp32."""
        with torch.autocast(device_type=codes.device.type, enabled=False):
            z_q = F.embedding(codes, at_least_float32(self.codebook.weight)).transpose(1, 2)
            return self.out_proj(z_q)

    def forward(self, z: Tensor) -> VectorQuantizerOutput:
        """Quantize `z: [B, D, N]`; gradients pass straight through the lookup to `in_proj`."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z_e = self.in_proj(at_least_float32(z))
            codes = self.nearest_codes(z_e)
            z_q = F.embedding(codes, at_least_float32(self.codebook.weight)).transpose(1, 2)
            commitment = F.mse_loss(z_e, z_q.detach(), reduction="none").mean(dim=(1, 2))
            codebook = F.mse_loss(z_q, z_e.detach(), reduction="none").mean(dim=(1, 2))
            z_q = z_e + (z_q - z_e).detach()
            return VectorQuantizerOutput(self.out_proj(z_q), codes, commitment, codebook)


class ResidualVectorQuantizer(nn.Module):
    """A cascade of codebooks, each quantizing what the previous ones left over (DAC's RVQ).

    With `quantizer_dropout = p` in training, the first `int(B * p)` items of a batch use a random
    number of codebooks in [1, n_codebooks] (the rest use all), so one model serves every bitrate.
    All codebooks still run; a per-item mask gates each codebook's output and losses. The draw uses
    torch's generator of the latents' device, which the LightningModule reseeds each step for
    reproducibility.

    Args:
        input_dim: latent channels D.
        n_codebooks: number of codebooks.
        codebook_size: codes per codebook (1024 = 10 bits).
        codebook_dim: lookup dimension of every codebook.
        quantizer_dropout: fraction of each batch trained at a random bitrate, in [0, 1].
    """

    def __init__(
        self,
        input_dim: int = 1024,
        n_codebooks: int = 9,
        codebook_size: int = 1024,
        codebook_dim: int = 8,
        quantizer_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_codebook_settings(n_codebooks, quantizer_dropout)
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.quantizers = nn.ModuleList(
            VectorQuantizer(input_dim, codebook_size, codebook_dim) for _ in range(n_codebooks)
        )

    def active_quantizers(self, batch_size: int, n_quantizers: int, device: torch.device | str = "cpu") -> Tensor:
        """How many codebooks each item uses: `[B]` int64, drawn on `device` (no copy from the host)."""
        active = torch.full((batch_size,), n_quantizers, dtype=torch.long, device=device)
        n_dropout = int(batch_size * self.quantizer_dropout) if self.training else 0
        if n_dropout > 0:
            active[:n_dropout] = torch.randint(1, n_quantizers + 1, (n_dropout,), device=device)
        return active

    def forward(self, latents: Tensor, n_quantizers: int | None = None) -> ResidualQuantizerOutput:
        """Quantize `latents: [B, D, N]` with the first `n_quantizers` codebooks (default all)."""
        n_quantizers = self.n_codebooks if n_quantizers is None else n_quantizers
        if not 1 <= n_quantizers <= self.n_codebooks:
            raise ValueError(f"n_quantizers must lie in [1, {self.n_codebooks}], got {n_quantizers}.")
        active = self.active_quantizers(latents.shape[0], n_quantizers, latents.device)
        residual = at_least_float32(latents)
        steps = []
        for quantizer in self.quantizers[:n_quantizers]:
            steps.append(quantizer(residual))
            # DAC subtracts the unmasked output: the residual chain is the same for every item.
            residual = residual - steps[-1].z_q
        # Item b uses codebook q when q < active[b]; the masked sums run once over all codebooks.
        used = (torch.arange(n_quantizers, device=latents.device) < active[:, None]).to(residual.dtype)  # [B, n_q]
        z_q = torch.einsum("qbdn,bq->bdn", torch.stack([step.z_q for step in steps]), used)
        commitment_loss = (torch.stack([step.commitment_loss for step in steps], dim=1) * used).mean(0).sum()
        codebook_loss = (torch.stack([step.codebook_loss for step in steps], dim=1) * used).mean(0).sum()
        codes = torch.stack([step.codes for step in steps], dim=1)
        return ResidualQuantizerOutput(z_q, codes, commitment_loss, codebook_loss, active)

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Latent of given codes, the sum over the codebooks present; [B, n_q, N] -> [B, D, N]."""
        if codes.shape[1] > self.n_codebooks:
            raise ValueError(f"codes hold {codes.shape[1]} codebooks but the quantizer has {self.n_codebooks}.")
        return sum(
            quantizer.decode_codes(codes[:, index]) for index, quantizer in enumerate(self.quantizers[: codes.shape[1]])
        )
