"""A complex constant-Q transform computed octave by octave (nnAudio 0.3's `CQT2010v2`, as BigVGAN-v2's CQT
discriminator uses it): one octave of time-domain CQT kernels, applied to the signal halved in rate once per octave.

The kernels and filters are computed in float64 with numpy as nnAudio computes them (Hann-windowed complex
exponentials, L1-normalised, rounded to complex64; low-pass FIR filters by frequency sampling with a Hamming window,
scipy's `firwin2`), and kept as buffers under nnAudio's names, so a BigVGAN discriminator checkpoint loads as is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lowpass_fir(band_center: float, taps: int = 256, transition: float = 0.03) -> np.ndarray:
    """A linear-phase low-pass FIR: gain 1 up to `band_center / (1 + transition)`, 0 from
    `band_center * (1 + transition)` (frequencies as fractions of Nyquist). Frequency sampling on
    `1 + 2**ceil(log2(taps))` points and a symmetric Hamming window (scipy's `firwin2` defaults). float32."""
    corners = [0.0, band_center / (1 + transition), band_center * (1 + transition), 1.0]
    points = 1 + 2 ** math.ceil(math.log2(taps))
    grid = np.linspace(0.0, 1.0, points)
    response = np.interp(grid, corners, [1.0, 1.0, 0.0, 0.0]) * np.exp(-(taps - 1) / 2.0 * 1j * np.pi * grid)
    window = 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(taps) / (taps - 1))
    return (np.fft.irfft(response)[:taps] * window).astype(np.float32)


def cqt_kernels(q: float, sample_rate: float, f_min: float, bins: int, bins_per_octave: int) -> tuple[np.ndarray, int]:
    """Time-domain CQT kernels of `bins` bins from `f_min` Hz, each a periodic-Hann-windowed complex exponential
    of `ceil(q * sample_rate / f)` samples, L1-normalised and centred in `fft_length` (the next power of 2).

    Returns `(kernels [bins, fft_length] complex64, fft_length)`.
    """
    frequencies = f_min * 2.0 ** (np.arange(bins) / float(bins_per_octave))
    lengths = np.ceil(q * sample_rate / frequencies)
    fft_length = int(2 ** np.ceil(np.log2(int(max(lengths)))))
    kernels = np.zeros((bins, fft_length), dtype=np.complex64)
    for k, (frequency, length) in enumerate(zip(frequencies, lengths)):
        start = int(np.ceil(fft_length / 2.0 - length / 2.0)) - (1 if length % 2 == 1 else 0)
        n = int(length)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        signal = (
            window * np.exp(np.arange(-length // 2, length // 2) * 1j * 2 * np.pi * frequency / sample_rate) / length
        )
        kernels[k, start : start + n] = signal / np.linalg.norm(signal, 1)
    return kernels, fft_length


class ConstantQTransform(nn.Module):
    """Complex CQT `[B, 1, T] -> [B, bins, frames, 2 (re, im)]`, librosa's normalisation (x sqrt(kernel length)).

    The top octave's kernels run on the signal; each lower octave's on the signal low-passed and halved once more
    (hop halved too, so every octave has the same frames). When the hop and the top frequency allow, the signal is
    first low-passed and decimated by a power of 2 ("early downsampling"), as in librosa. Zero-padded by half the
    kernel length on both sides (BigVGAN's `pad_mode="constant"`).

    Args:
        sample_rate: Hz.
        hop_length: samples between frames; a multiple of `2 ** (octaves - 1)`.
        bins: number of bins; `ceil(bins / bins_per_octave)` octaves.
        bins_per_octave: bins in each octave.
        f_min: the lowest bin's frequency in Hz (nnAudio's default, C1 = 32.70 Hz).
    """

    def __init__(
        self, sample_rate: float, hop_length: int, bins: int, bins_per_octave: int, f_min: float = 32.70
    ) -> None:
        super().__init__()
        q = 1.0 / (2 ** (1 / bins_per_octave) - 1)
        self.bins = bins
        self.octaves = int(np.ceil(float(bins) / bins_per_octave))
        remainder = bins % bins_per_octave
        top_min = f_min * 2 ** (self.octaves - 1)
        top_max = top_min * 2 ** (((bins_per_octave if remainder == 0 else remainder) - 1) / bins_per_octave)
        top_min = top_max / 2 ** (1 - 1 / bins_per_octave)
        if top_max > sample_rate / 2:
            raise ValueError(
                f"The top CQT bin, {top_max:.1f} Hz, exceeds the Nyquist frequency {sample_rate / 2:.1f} Hz; "
                "use fewer bins or octaves."
            )
        self.register_buffer("lowpass_filter", torch.tensor(lowpass_fir(0.5, 256, 0.001))[None, None, :])
        cutoff = top_max * (1 + 0.5 * 1.5 / q)  # 1.5: the Hann window's bandwidth in bins
        by_band = max(0, int(np.ceil(np.log2(0.85 * (sample_rate // 2) / cutoff)) - 1) - 1)
        by_hop = max(0, int(np.ceil(np.log2(hop_length))) - self.octaves + 1)
        self.downsample_factor = 2 ** min(by_band, by_hop)
        self.hop_length = hop_length // self.downsample_factor
        sample_rate = sample_rate / float(self.downsample_factor)
        if self.downsample_factor != 1:
            early = lowpass_fir(1 / self.downsample_factor, 256, 0.03)
            self.register_buffer("early_downsample_filter", torch.tensor(early)[None, None, :])
        kernels, self.fft_length = cqt_kernels(q, sample_rate, top_min, min(bins_per_octave, bins), bins_per_octave)
        lengths = np.ceil(q * sample_rate / (f_min * 2.0 ** (np.arange(bins) / np.double(bins_per_octave))))
        self.register_buffer("lenghts", torch.tensor(lengths).float())  # nnAudio's spelling
        self.register_buffer("cqt_kernels_real", torch.tensor(kernels.real).unsqueeze(1))
        self.register_buffer("cqt_kernels_imag", torch.tensor(kernels.imag).unsqueeze(1))

    def _octave(self, x: Tensor, hop: int) -> Tensor:
        x = F.pad(x, (self.fft_length // 2, self.fft_length // 2))
        real = F.conv1d(x, self.cqt_kernels_real, stride=hop)
        imag = -F.conv1d(x, self.cqt_kernels_imag, stride=hop)
        return torch.stack((real, imag), -1)

    def forward(self, audio: Tensor) -> Tensor:
        x = audio
        if self.downsample_factor != 1:
            x = F.conv1d(x, self.early_downsample_filter, stride=self.downsample_factor, padding=127)
        hop = self.hop_length
        octaves = [self._octave(x, hop)]
        for _ in range(self.octaves - 1):
            hop //= 2
            x = F.conv1d(x, self.lowpass_filter, stride=2, padding=127)
            octaves.insert(0, self._octave(x, hop))
        spectrum = torch.cat(octaves, 1)[:, -self.bins :, :]
        spectrum = spectrum * self.downsample_factor
        return spectrum * torch.sqrt(self.lenghts.view(-1, 1, 1))
