"""CMGAN's time-frequency speech enhancer (Cao, Abdulatif and Yang, 2022) at 16 kHz.

The noisy STFT (n_fft 400, hop 100, Hamming window: 201 bins, 100 frames/s) is power-law compressed
(``|X|**0.3`` with the phase kept) and stacked as (magnitude, real, imaginary). A dense encoder halves
the frequency axis, two-stage conformers model time then frequency, and two decoders predict a
magnitude mask (applied with the noisy phase) and a complex residual that is added to it. The result
is decompressed and inverted with ``length=`` the input length, so the estimate always has exactly
the input's number of samples. At CMGAN's size (64 channels, 4 two-stage blocks) the layers and the
parameter count (1,834,833) are those of CMGAN's ``TSCNet``; MP-SENet's bounded mask is an option.

STFT and ISTFT run in fp32 with autocast off: under bf16 the compression's power and the overlap-add
would lose the low-level bins that the magnitude loss weighs most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from codecgan.models.conformer import TwoStageConformer
from codecgan.models.learnable_sigmoid import LearnableSigmoid

# Keeps sqrt and negative powers finite (and differentiable) at exactly zero bins.
POWER_FLOOR = 1e-12


@dataclass
class CompressedSpectrum:
    """Power-law compressed STFT; each ``[B, 1, F, T']`` (F = n_fft / 2 + 1 bins, T' = 1 + T // hop)."""

    real: Tensor
    imag: Tensor
    magnitude: Tensor


@dataclass
class EnhancementOutput:
    """What the enhancer returns.

    audio: ``[B, 1, T]``, the estimate at the input's level and length.
    real, imag, magnitude: ``[B, 1, F, T']``, the estimate's compressed spectrum at unit input RMS.
    normalization: ``[B, 1, 1]``, the gain that brought the noisy input to unit RMS. Targets for the
        spectral losses are ``compressed_spectrum(clean * normalization)``.
    """

    audio: Tensor
    real: Tensor
    imag: Tensor
    magnitude: Tensor
    normalization: Tensor


def compressed_magnitude(real: Tensor, imag: Tensor) -> Tensor:
    """``sqrt(real**2 + imag**2)``, floored so its gradient stays finite at zero."""
    return (real.square() + imag.square() + POWER_FLOOR).sqrt()


def compressed_spectrum(
    audio: Tensor, n_fft: int = 400, hop_length: int = 100, exponent: float = 0.3, window: Tensor | None = None
) -> CompressedSpectrum:
    """The compressed spectrum ``X * |X|**(exponent - 1)`` of ``audio`` (``[B, 1, T]`` or ``[B, T]``).

    ``window`` defaults to a (periodic) Hamming window of ``n_fft`` samples, CMGAN's.
    """
    with torch.autocast(audio.device.type, enabled=False):
        samples = audio.float().reshape(-1, audio.shape[-1])
        if window is None:
            window = torch.hamming_window(n_fft, device=audio.device)
        spectrum = torch.stft(samples, n_fft, hop_length, window=window, return_complex=True)
        power = spectrum.real.square() + spectrum.imag.square()
        compressed = spectrum * power.clamp_min(POWER_FLOOR).pow((exponent - 1) / 2)
        real, imag = compressed.real.unsqueeze(1), compressed.imag.unsqueeze(1)
        return CompressedSpectrum(real, imag, compressed_magnitude(real, imag))


def decompressed_audio(
    real: Tensor,
    imag: Tensor,
    length: int | None,
    n_fft: int = 400,
    hop_length: int = 100,
    exponent: float = 0.3,
    window: Tensor | None = None,
) -> Tensor:
    """Undo ``compressed_spectrum``: ``[B, 1, F, T']`` real and imaginary parts -> ``[B, 1, length]``.

    ``length=None`` returns what the ISTFT gives by itself, ``hop_length * (T' - 1)`` samples.
    """
    with torch.autocast(real.device.type, enabled=False):
        real, imag = real.float().squeeze(1), imag.float().squeeze(1)
        if window is None:
            window = torch.hamming_window(n_fft, device=real.device)
        scale = (real.square() + imag.square()).clamp_min(POWER_FLOOR).pow((1 / exponent - 1) / 2)
        spectrum = torch.complex(real * scale, imag * scale)
        return torch.istft(spectrum, n_fft, hop_length, window=window, length=length).unsqueeze(1)


class DenseBlock(nn.Module):
    """``depth`` dilated convs (kernel 2 frames x 3 bins, dilation 1, 2, 4, ... in time), each fed
    every earlier output: ``[B, C, T', F] -> [B, C, T', F]``. Time padding is on the past side only,
    as in CMGAN."""

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.ConstantPad2d((1, 1, 2**i, 0), 0.0),
                nn.Conv2d(channels * (i + 1), channels, kernel_size=(2, 3), dilation=(2**i, 1)),
                nn.InstanceNorm2d(channels, affine=True),
                nn.PReLU(channels),
            )
            for i in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = x
        for layer in self.layers:
            x = layer(features)
            features = torch.cat([x, features], dim=1)
        return x


def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.PReLU(channels)]


class DenseEncoder(nn.Sequential):
    """(magnitude, real, imag) to features at half the bins: ``[B, 3, T', F] -> [B, C, T', (F + 1) // 2]``."""

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__(
            nn.Conv2d(3, channels, 1),
            *_norm_act(channels),
            DenseBlock(channels, depth),
            nn.Conv2d(channels, channels, (1, 3), stride=(1, 2), padding=(0, 1)),
            *_norm_act(channels),
        )


class SubPixelUpsample(nn.Module):
    """Doubles the bins by predicting two interleaved sets of channels: ``[B, C, T', F] -> [B, C, T', 2F]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, (1, 3), padding=(0, 1))

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, frames, bins = x.shape
        pairs = self.conv(x).view(batch, 2, channels, frames, bins)
        return pairs.permute(0, 2, 3, 4, 1).reshape(batch, channels, frames, 2 * bins)


MaskActivation = Literal["prelu", "learnable_sigmoid"]


class MaskDecoder(nn.Module):
    """Features to a magnitude mask: ``[B, C, T', F'] -> [B, 1, F, T']``.

    ``F = 2 F' - 1`` (the (1, 2) convolution removes the extra bin of the upsampling). A per-bin
    activation ends it:

    - ``"prelu"`` (CMGAN): a PReLU with one slope per bin, starting at -0.25, so that the mask starts
      non-negative and unbounded (a bin may be amplified as much as the losses ask);
    - ``"learnable_sigmoid"`` (MP-SENet): ``mask_max * sigmoid(slope_f * x)``, a mask in
      ``(0, mask_max)`` (MP-SENet: 2).
    """

    def __init__(
        self, channels: int, bins: int, depth: int = 4, activation: MaskActivation = "prelu", mask_max: float = 2.0
    ) -> None:
        super().__init__()
        if activation not in get_args(MaskActivation):
            raise ValueError(
                f"mask_activation must be 'prelu' (CMGAN) or 'learnable_sigmoid' (MP-SENet), got {activation!r}."
            )
        self.body = nn.Sequential(
            DenseBlock(channels, depth),
            SubPixelUpsample(channels),
            nn.Conv2d(channels, 1, (1, 2)),
            *_norm_act(1),
            nn.Conv2d(1, 1, 1),
        )
        if activation == "prelu":
            self.activation: nn.Module = nn.PReLU(bins, init=-0.25)
        else:
            self.activation = LearnableSigmoid(bins, beta=mask_max)

    def forward(self, x: Tensor) -> Tensor:
        per_bin = self.body(x).squeeze(1).transpose(1, 2)  # [B, F, T']
        return self.activation(per_bin).unsqueeze(1)


class ComplexDecoder(nn.Sequential):
    """Features to a complex residual (real, imag): ``[B, C, T', F'] -> [B, 2, T', 2 F' - 1]``."""

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__(
            DenseBlock(channels, depth),
            SubPixelUpsample(channels),
            *_norm_act(channels),
            nn.Conv2d(channels, 2, (1, 2)),
        )


class CMGANGenerator(nn.Module):
    """CMGAN's enhancer: ``forward(noisy: [B, 1, T]) -> EnhancementOutput`` with ``audio: [B, 1, T]``.

    The defaults are CMGAN's ``TSCNet(num_channel=64, num_features=201)``: 1,834,833 parameters.

    Args:
        channels: feature channels (CMGAN: 64).
        num_blocks: two-stage conformer blocks (CMGAN: 4).
        attention_heads: heads per attention, each ``channels / attention_heads`` wide (CMGAN: 4).
        conv_kernel_size: depthwise kernel of the conformers' convolution modules (CMGAN: 31).
        dropout: shorthand: when given, the one rate of all three dropouts below (``0.0`` turns dropout
            off, as the tiny configs do).
        dense_depth: convolutions per dense block (CMGAN: 4).
        n_fft, hop_length: STFT size and hop in samples (CMGAN: 400 and 100 at 16 kHz).
        compress_exponent: power-law compression of the magnitude (CMGAN: 0.3).
        mask_max: upper bound of the ``"learnable_sigmoid"`` mask (MP-SENet: 2); unused by ``"prelu"``.
        match_length: a fault switch, for the failure zoo only: ``False`` skips cutting/padding the ISTFT
            output to the input length, so an input whose length is not a multiple of ``hop_length`` yields
            a shorter estimate (the bug LENGTH_MISMATCH catches). Keep ``True``.
        feed_forward_dropout: after both linear layers of each conformer feed-forward module (CMGAN: 0.2).
        attention_dropout: on each attention's output projection; the attention weights have none
            (CMGAN: 0.2).
        conv_dropout: after each conformer convolution module (CMGAN: 0).
        mask_activation: ``"prelu"`` (CMGAN's per-bin PReLU, unbounded) or ``"learnable_sigmoid"``
            (MP-SENet's mask in ``(0, mask_max)``); see ``MaskDecoder``.
    """

    def __init__(
        self,
        channels: int = 64,
        num_blocks: int = 4,
        attention_heads: int = 4,
        conv_kernel_size: int = 31,
        dropout: float | None = None,
        dense_depth: int = 4,
        n_fft: int = 400,
        hop_length: int = 100,
        compress_exponent: float = 0.3,
        mask_max: float = 2.0,
        match_length: bool = True,
        feed_forward_dropout: float = 0.2,
        attention_dropout: float = 0.2,
        conv_dropout: float = 0.0,
        mask_activation: MaskActivation = "prelu",
    ) -> None:
        super().__init__()
        if dropout is not None:
            feed_forward_dropout = attention_dropout = conv_dropout = dropout
        rates = dict(
            feed_forward_dropout=feed_forward_dropout, attention_dropout=attention_dropout, conv_dropout=conv_dropout
        )
        if not all(0 <= rate < 1 for rate in rates.values()):
            raise ValueError(f"Dropout rates must lie in [0, 1), got {rates}.")
        if channels < 1 or num_blocks < 0 or dense_depth < 1:
            raise ValueError(
                f"channels and dense_depth must be >= 1 and num_blocks >= 0, got channels={channels}, "
                f"num_blocks={num_blocks}, dense_depth={dense_depth}."
            )
        if not 0 < compress_exponent <= 1:
            raise ValueError(f"compress_exponent must be in (0, 1], got {compress_exponent}.")
        if n_fft % 2 or not 0 < hop_length <= n_fft // 2:
            raise ValueError(f"n_fft must be even and 0 < hop_length <= n_fft / 2, got {n_fft} and {hop_length}.")
        self.n_fft, self.hop_length, self.compress_exponent = n_fft, hop_length, compress_exponent
        self.match_length = match_length
        self.encoder = DenseEncoder(channels, dense_depth)
        self.conformers = nn.Sequential(
            *(TwoStageConformer(channels, attention_heads, conv_kernel_size, **rates) for _ in range(num_blocks))
        )
        self.mask_decoder = MaskDecoder(channels, n_fft // 2 + 1, dense_depth, mask_activation, mask_max)
        self.complex_decoder = ComplexDecoder(channels, dense_depth)
        self.register_buffer("window", torch.hamming_window(n_fft), persistent=False)

    def compressed_spectrum(self, audio: Tensor) -> CompressedSpectrum:
        """This generator's compressed spectrum of ``audio`` ``[B, 1, T]`` (for the clean targets)."""
        return compressed_spectrum(audio, self.n_fft, self.hop_length, self.compress_exponent, self.window)

    def forward(self, noisy: Tensor) -> EnhancementOutput:
        length = noisy.shape[-1]
        if length <= self.n_fft // 2:
            raise ValueError(f"The input has {length} samples; the STFT needs more than n_fft / 2 = {self.n_fft // 2}.")
        # Unit-RMS input (CMGAN's normalisation): the compressed spectra then sit in one range
        # whatever the recording level, so the network need not learn level invariance and the
        # spectral losses weigh quiet and loud utterances alike. The floor keeps silence finite.
        normalization = noisy.float().square().mean(dim=-1, keepdim=True).clamp_min(1e-10).rsqrt()
        spectrum = self.compressed_spectrum(noisy * normalization)
        features = torch.cat([spectrum.magnitude, spectrum.real, spectrum.imag], dim=1).transpose(2, 3)
        hidden = self.conformers(self.encoder(features))
        mask = self.mask_decoder(hidden).float()
        residual = self.complex_decoder(hidden).float().transpose(2, 3)  # [B, 2, F, T']
        # mask * |X| with the noisy phase is mask * (real, imag) of X.
        real = mask * spectrum.real + residual[:, :1]
        imag = mask * spectrum.imag + residual[:, 1:]
        target_length = length if self.match_length else None
        audio = decompressed_audio(
            real, imag, target_length, self.n_fft, self.hop_length, self.compress_exponent, self.window
        )
        return EnhancementOutput(audio / normalization, real, imag, compressed_magnitude(real, imag), normalization)
