"""MetricGAN+'s spectral features and resynthesis, as SpeechBrain's VoiceBank recipe computes them
(``compute_feats``, ``compute_forward`` and ``resynthesize`` with ``normalize_wavs: False``).

At 16 kHz: n_fft 512, a 32 ms periodic hamming window, a 16 ms hop, centred frames with zero padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

N_FFT = 512
HOP_LENGTH = 256
MAGNITUDE_EPS = 1e-14  # speechbrain's spectral_magnitude: keeps sqrt's gradient finite on silent bins


def _stft(wav: Tensor) -> Tensor:
    window = torch.hamming_window(N_FFT, device=wav.device, dtype=wav.dtype)
    return torch.stft(wav, N_FFT, HOP_LENGTH, N_FFT, window, center=True, pad_mode="constant", return_complex=True)


def metricgan_plus_features(wav: Tensor) -> Tensor:
    """``[B, T]`` waveform at 16 kHz → ``[B, frames, 257]`` ``log1p(sqrt(|STFT|² + 1e-14))``."""
    spectrum = torch.view_as_real(_stft(wav)).transpose(1, 2)
    return torch.log1p((spectrum.pow(2).sum(-1) + MAGNITUDE_EPS).pow(0.5))


def resynthesize_with_noisy_phase(enhanced_magnitude: Tensor, noisy_wav: Tensor) -> Tensor:
    """``[B, frames, 257]`` linear magnitude + ``[B, T]`` noisy waveform → ``[B, T]`` waveform with the
    noisy phase, not peak-normalized."""
    noisy = torch.view_as_real(_stft(noisy_wav)).transpose(1, 2)
    phase = torch.atan2(noisy[..., 1], noisy[..., 0])
    spectrum = torch.complex(enhanced_magnitude * torch.cos(phase), enhanced_magnitude * torch.sin(phase))
    window = torch.hamming_window(N_FFT, device=noisy_wav.device, dtype=noisy_wav.dtype)
    return torch.istft(
        spectrum.transpose(1, 2), N_FFT, HOP_LENGTH, N_FFT, window, center=True, length=noisy_wav.shape[-1]
    )


def enhance(generator: nn.Module, noisy_wav: Tensor, min_mask: float = 0.05) -> tuple[Tensor, Tensor]:
    """The recipe's forward pass: ``(enhanced_features [B, frames, 257], enhanced_wav [B, T])``.

    The mask multiplies the *log* features, clamped below at ``min_mask`` (so no bin is removed entirely);
    ``expm1`` returns to linear magnitude for resynthesis with the noisy phase."""
    noisy_features = metricgan_plus_features(noisy_wav)
    enhanced_features = generator(noisy_features).clamp(min=min_mask) * noisy_features
    return enhanced_features, resynthesize_with_noisy_phase(torch.expm1(enhanced_features), noisy_wav)
