"""Vocos's ISTFT head: a linear layer predicts each frame's log-magnitude and phase, an inverse STFT makes audio.

Two paddings, as Vocos's (0.1.0, `vocos.heads.ISTFTHead` and `vocos.spectral_ops.ISTFT`):
- "center" is `torch.istft(center=True)`: `(frames - 1) * hop` samples, the inverse of a centred STFT. The
  released `vocos-mel-24khz` model uses it.
- "same" trims `(n_fft - hop) // 2` samples at each end of the overlap-add instead of `n_fft // 2`, so `frames`
  frames give exactly `frames * hop` samples, as a "same"-padded convolution would. `torch.istft` cannot do this:
  with `center=False` it requires the summed squared window to be non-zero at every output sample (NOLA), which a
  Hann window breaks at the first and last sample (pytorch/pytorch#62323). `overlap_add_istft` computes the
  overlap-add itself and divides by the window envelope only where the output is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.config_error import ConfigError
from codecgan.models.precision import at_least_float32
from codecgan.models.vocos_mel import check_padding

MAX_MAGNITUDE = 1e2  # Vocos's clip on exp(log-magnitude): keeps an early, untrained head from producing inf


def overlap_add_istft(spectrum: Tensor, n_fft: int, hop_length: int, window: Tensor, trim: int) -> Tensor:
    """Inverse STFT by windowed overlap-add, normalised by the squared-window envelope, `trim` samples cut at each end.

    Shapes: `spectrum: [B, n_fft // 2 + 1, frames]` complex -> `[B, (frames - 1) * hop + n_fft - 2 * trim]`.
    """
    frames = spectrum.shape[-1]
    segments = torch.fft.irfft(spectrum, n_fft, dim=1) * window[:, None]
    length = (frames - 1) * hop_length + n_fft
    fold = {"output_size": (1, length), "kernel_size": (1, n_fft), "stride": (1, hop_length)}
    audio = F.fold(segments, **fold)[:, 0, 0, trim : length - trim]
    envelope = F.fold(window.square()[None, :, None].expand(1, n_fft, frames), **fold)[0, 0, 0, trim : length - trim]
    return audio / envelope


class ISTFTHead(nn.Module):
    """Backbone features to a waveform through a predicted complex spectrogram.

    `out` maps each frame to `n_fft // 2 + 1` log-magnitudes then as many phases; the spectrum is
    `min(exp(log-magnitude), 100) * (cos(phase) + i sin(phase))`, so the phase needs no wrapping.

    Args:
        dim: backbone features per frame.
        n_fft: FFT and (Hann) window size in samples.
        hop_length: samples per frame, the mel front-end's.
        padding: "center" or "same" (see the module docstring).

    Shapes: `features: [B, frames, dim]` -> `[B, 1, (frames - 1) * hop]` ("center") or `[B, 1, frames * hop]`.
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same") -> None:
        super().__init__()
        check_padding(padding, "padding of ISTFTHead")
        if not 0 < hop_length < n_fft:
            raise ConfigError(
                f"hop_length ({hop_length}) must lie in 1..n_fft - 1 ({n_fft - 1}): from n_fft on, the Hann windows' "
                "overlap-add is zero where two windows meet and the inverse STFT divides by it."
            )
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.padding = padding
        self.out = nn.Linear(dim, n_fft + 2)
        # A submodule named `istft` holding only the window keeps Vocos's `head.istft.window` key.
        self.istft = nn.Module()
        self.istft.register_buffer("window", torch.hann_window(n_fft))

    def spectrum(self, features: Tensor) -> Tensor:
        """`[B, frames, dim]` -> complex `[B, n_fft // 2 + 1, frames]`, complex64 (complex128 in a float64 model).

        Computed in fp32 even under autocast: bf16 rounds a phase near pi by up to 0.008 rad and a log-magnitude
        in [2, 4) by up to 0.008 (0.8% of the magnitude), noise that the inverse STFT spreads over every sample.
        """
        with torch.autocast(device_type=features.device.type, enabled=False):
            weight, bias = at_least_float32(self.out.weight), at_least_float32(self.out.bias)
            projected = F.linear(at_least_float32(features), weight, bias)
            log_magnitude, phase = projected.transpose(1, 2).chunk(2, dim=1)
            magnitude = torch.clip(torch.exp(log_magnitude), max=MAX_MAGNITUDE)
            return magnitude * (torch.cos(phase) + 1j * torch.sin(phase))

    def forward(self, features: Tensor) -> Tensor:
        spectrum = self.spectrum(features)
        window = self.istft.window
        if self.padding == "center":
            audio = torch.istft(spectrum, self.n_fft, self.hop_length, self.n_fft, window, center=True)
        else:
            audio = overlap_add_istft(
                spectrum, self.n_fft, self.hop_length, window, (self.n_fft - self.hop_length) // 2
            )
        return audio.unsqueeze(1)
