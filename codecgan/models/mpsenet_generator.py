"""MP-SENet's enhancer (Lu, Ai and Ling, 2023): magnitude and phase denoised in parallel, at 16 kHz.

Built from yxlu-0102/MP-SENet at commit 89932cf (``models/model.py``, ``models/transformer.py``,
``config.json``). The noisy STFT (n_fft 400, hop 100, Hann window) is split into a compressed
magnitude ``|X|**0.3`` and a phase; the two are stacked as input channels. A dense encoder halves
the bins, four two-stage transformer blocks (attention, then a bidirectional GRU as the
feed-forward part; time, then frequency) model the features, and two decoders run in parallel:

- the magnitude decoder predicts a mask in ``(0, 2)`` (learnable sigmoid, beta 2) on the noisy
  compressed magnitude;
- the phase decoder predicts a real and an imaginary part from two parallel convolutions and takes
  their ``atan2``, so the phase is wrapped by construction and never regressed directly.

At the defaults the parameter count is that of the reference's ``MPNet``: 2,263,372 (a test keeps it).
One layout differs on purpose: attention and GRU run with the batch first (``batch_first=True``).
The reference as published builds both with PyTorch's default (sequence first) on ``[batch x bins,
frames, C]`` tensors, so its "time" stage attends and recurs along batch x bins and mixes the items of
a batch; its README calls this a bug and recommends ``batch_first=True`` for the attention when
retraining. The parameter count is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.cmgan_generator import (
    CompressedSpectrum,
    DenseBlock,
    EnhancementOutput,
    SubPixelUpsample,
    compressed_spectrum,
    decompressed_audio,
)
from codecgan.models.conformer import time_then_frequency
from codecgan.models.learnable_sigmoid import LearnableSigmoid


@dataclass
class MagnitudePhaseOutput(EnhancementOutput):
    """``EnhancementOutput`` plus the estimated phase ``[B, 1, F, T']`` in radians, in ``(-pi, pi]``.

    ``magnitude`` is the decoder's compressed magnitude; ``real``/``imag`` are ``magnitude`` times the
    cosine/sine of ``phase``.
    """

    phase: Tensor


def spectrum_phase(spectrum: CompressedSpectrum) -> Tensor:
    """The phase ``[B, 1, F, T']`` of a compressed spectrum (compression keeps the phase)."""
    return torch.atan2(spectrum.imag, spectrum.real)


def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.PReLU(channels)]


class GRUFeedForward(nn.Module):
    """MP-SENet's feed-forward part: a bidirectional GRU (hidden ``2 C``), leaky ReLU, a linear layer
    back to ``C``: ``[N, L, C] -> [N, L, C]``. The GRU gives each position a sense of order that the
    attention (no positional encoding) lacks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gru = nn.GRU(channels, 2 * channels, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(4 * channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(F.leaky_relu(self.gru(x)[0]))


class TransformerBlock(nn.Module):
    """Pre-norm attention and GRU feed-forward, each residual, then a LayerNorm: ``[N, L, C] -> [N, L, C]``."""

    def __init__(self, channels: int, attention_heads: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, attention_heads, batch_first=True)
        self.feed_forward_norm = nn.LayerNorm(channels)
        self.feed_forward = GRUFeedForward(channels)
        self.output_norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        normed = self.attention_norm(x)
        x = x + self.attention(normed, normed, normed, need_weights=False)[0]
        x = x + self.feed_forward(self.feed_forward_norm(x))
        return self.output_norm(x)


class TwoStageTransformer(nn.Module):
    """Along time for every bin, then along frequency for every frame, each with an outer residual:
    ``[B, C, T', F'] -> [B, C, T', F']``."""

    def __init__(self, channels: int, attention_heads: int) -> None:
        super().__init__()
        self.time = TransformerBlock(channels, attention_heads)
        self.frequency = TransformerBlock(channels, attention_heads)

    def forward(self, x: Tensor) -> Tensor:
        return time_then_frequency(x, self.time, self.frequency)


class DenseEncoder(nn.Sequential):
    """(magnitude, phase) to features at half the bins: ``[B, 2, T', F] -> [B, C, T', (F + 1) // 2]``."""

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__(
            nn.Conv2d(2, channels, 1),
            *_norm_act(channels),
            DenseBlock(channels, depth),
            nn.Conv2d(channels, channels, (1, 3), stride=(1, 2), padding=(0, 1)),
            *_norm_act(channels),
        )


class MagnitudeDecoder(nn.Module):
    """Features to a magnitude mask in ``(0, mask_max)``: ``[B, C, T', F'] -> [B, 1, F, T']``, ``F = 2 F' - 1``.

    The learnable sigmoid (one slope per bin) bounds the mask, so a bin is at most amplified
    ``mask_max`` times (MP-SENet: 2)."""

    def __init__(self, channels: int, bins: int, depth: int = 4, mask_max: float = 2.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            DenseBlock(channels, depth),
            SubPixelUpsample(channels),
            *_norm_act(channels),
            nn.Conv2d(channels, 1, (1, 2)),
        )
        self.activation = LearnableSigmoid(bins, beta=mask_max)

    def forward(self, x: Tensor) -> Tensor:
        per_bin = self.body(x).squeeze(1).transpose(1, 2)  # [B, F, T']
        return self.activation(per_bin).unsqueeze(1)


class PhaseDecoder(nn.Module):
    """Features to a phase in ``(-pi, pi]``: ``[B, C, T', F'] -> [B, 1, F, T']``.

    Two parallel (1, 2) convolutions give a pseudo real and imaginary part; their ``atan2`` is the
    phase, which keeps it wrapped without a bounded activation."""

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(DenseBlock(channels, depth), SubPixelUpsample(channels), *_norm_act(channels))
        self.real = nn.Conv2d(channels, 1, (1, 2))
        self.imag = nn.Conv2d(channels, 1, (1, 2))

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.body(x)
        return torch.atan2(self.imag(hidden), self.real(hidden)).transpose(2, 3)


class MPSENetGenerator(nn.Module):
    """MP-SENet's enhancer: ``forward(noisy: [B, 1, T]) -> MagnitudePhaseOutput`` with ``audio: [B, 1, T]``.

    The defaults are MP-SENet's ``MPNet`` with its ``config.json``: 2,263,372 parameters.

    Args:
        channels: feature channels (MP-SENet's ``dense_channel``: 64).
        num_blocks: two-stage transformer blocks (4).
        attention_heads: heads per attention (4).
        dense_depth: convolutions per dense block (4).
        n_fft, hop_length: STFT size and hop in samples (400 and 100 at 16 kHz; Hann window of n_fft).
        compress_exponent: power-law compression of the magnitude (0.3).
        mask_max: upper bound of the magnitude mask (MP-SENet's ``beta``: 2).
    """

    def __init__(
        self,
        channels: int = 64,
        num_blocks: int = 4,
        attention_heads: int = 4,
        dense_depth: int = 4,
        n_fft: int = 400,
        hop_length: int = 100,
        compress_exponent: float = 0.3,
        mask_max: float = 2.0,
    ) -> None:
        super().__init__()
        if channels < 1 or num_blocks < 0 or dense_depth < 1 or channels % attention_heads:
            raise ValueError(
                "channels and dense_depth must be >= 1, num_blocks >= 0 and channels a multiple of attention_heads, "
                f"got channels={channels}, num_blocks={num_blocks}, dense_depth={dense_depth}, "
                f"attention_heads={attention_heads}."
            )
        if not 0 < compress_exponent <= 1:
            raise ValueError(f"compress_exponent must be in (0, 1], got {compress_exponent}.")
        if n_fft % 2 or not 0 < hop_length <= n_fft // 2:
            raise ValueError(f"n_fft must be even and 0 < hop_length <= n_fft / 2, got {n_fft} and {hop_length}.")
        self.n_fft, self.hop_length, self.compress_exponent = n_fft, hop_length, compress_exponent
        self.encoder = DenseEncoder(channels, dense_depth)
        self.transformers = nn.Sequential(*(TwoStageTransformer(channels, attention_heads) for _ in range(num_blocks)))
        self.magnitude_decoder = MagnitudeDecoder(channels, n_fft // 2 + 1, dense_depth, mask_max)
        self.phase_decoder = PhaseDecoder(channels, dense_depth)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def compressed_spectrum(self, audio: Tensor) -> CompressedSpectrum:
        """This generator's compressed spectrum of ``audio`` ``[B, 1, T]`` (targets, and the re-analysis of an
        estimate for the consistency loss)."""
        return compressed_spectrum(audio, self.n_fft, self.hop_length, self.compress_exponent, self.window)

    def enhance_spectrum(self, magnitude: Tensor, phase: Tensor) -> tuple[Tensor, Tensor]:
        """MP-SENet's network proper: the noisy compressed magnitude and phase ``[B, 1, F, T']`` to the
        estimate's compressed magnitude and phase, same shapes."""
        features = torch.cat([magnitude, phase], dim=1).transpose(2, 3)  # [B, 2, T', F]
        hidden = self.transformers(self.encoder(features))
        return magnitude * self.magnitude_decoder(hidden).float(), self.phase_decoder(hidden).float()

    def forward(self, noisy: Tensor) -> MagnitudePhaseOutput:
        length = noisy.shape[-1]
        if length <= self.n_fft // 2:
            raise ValueError(f"The input has {length} samples; the STFT needs more than n_fft / 2 = {self.n_fft // 2}.")
        # Unit-RMS input, as MP-SENet's dataset normalises noisy and clean by the noisy RMS.
        normalization = noisy.float().square().mean(dim=-1, keepdim=True).clamp_min(1e-10).rsqrt()
        spectrum = self.compressed_spectrum(noisy * normalization)
        magnitude, phase = self.enhance_spectrum(spectrum.magnitude, spectrum_phase(spectrum))
        real, imag = magnitude * torch.cos(phase), magnitude * torch.sin(phase)
        audio = decompressed_audio(real, imag, length, self.n_fft, self.hop_length, self.compress_exponent, self.window)
        return MagnitudePhaseOutput(audio / normalization, real, imag, magnitude, normalization, phase)
