"""HiFi-GAN's and BigVGAN's mel front-end (`meldataset.mel_spectrogram` in jik876/hifi-gan and NVIDIA/BigVGAN).

The filter bank is librosa's Slaney mel (`models.slaney_mel.slaney_mel_filters`: computed in float64 and rounded to float32
as librosa rounds it, so equal to the references' filters; torchaudio's `melscale_fbanks(norm="slaney",
mel_scale="slaney")` computes the same filters in float32 and differs by up to 4e-6 of the largest filter value).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.precision import at_least_float32
from codecgan.models.slaney_mel import slaney_mel_filters

MAGNITUDE_EPS = 1e-9  # inside the square root: sqrt(re² + im² + 1e-9)
LOG_CLAMP = 1e-5  # log(clamp(mel, 1e-5)), about -11.5


class HiFiGANLogMel(nn.Module):
    """HiFi-GAN's and BigVGAN's `mel_spectrogram`: natural log of a Slaney mel of the STFT magnitude.

    The waveform is reflect-padded by `(n_fft - hop) // 2` on both sides and framed uncentred, so a clip of
    T samples (a multiple of the hop, with `n_fft - hop` even) gives T / hop frames. Magnitude
    `sqrt(re² + im² + 1e-9)`, periodic Hann window of `win_length`, librosa's Slaney filters,
    `log(clamp(mel, 1e-5))`. Computed in fp32 with autocast off.

    Args:
        sample_rate: Hz.
        n_fft, hop_length, win_length: STFT sizes in samples (1024, 256, 1024 in HiFi-GAN V1).
        n_mels: mel bands (80 in HiFi-GAN, 100 or 128 in BigVGAN-v2).
        f_min, f_max: filter-bank edges in Hz; `None` is Nyquist (HiFi-GAN's `fmax_for_loss`, BigVGAN-v2's `fmax`).

    Shapes: `[B, 1, T]` or `[B, T] -> [B, n_mels, frames]`.
    """

    # Frames per excerpt as Vocos's "same" padding: T / hop, no extra frame (VocoderDataModule's mel_padding).
    padding = "same"

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = 8000.0,
    ) -> None:
        super().__init__()
        self.sample_rate, self.n_mels, self.f_min, self.f_max = sample_rate, n_mels, f_min, f_max
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer(
            "filters", slaney_mel_filters(sample_rate, n_fft, n_mels, f_min, f_max).T, persistent=False
        )
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        audio = audio.squeeze(1) if audio.dim() == 3 else audio
        padding = (self.n_fft - self.hop_length) // 2
        with torch.autocast(device_type=audio.device.type, enabled=False):
            x = F.pad(at_least_float32(audio).unsqueeze(1), (padding, padding), mode="reflect").squeeze(1)
            spectrum = torch.stft(
                x,
                self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window.to(x.dtype),
                center=False,
                return_complex=True,
            )
            magnitude = torch.sqrt(torch.view_as_real(spectrum).pow(2).sum(-1) + MAGNITUDE_EPS)
            mel = torch.matmul(self.filters.to(x.dtype), magnitude)
            return torch.log(torch.clamp(mel, min=LOG_CLAMP))
