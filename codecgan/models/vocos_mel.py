"""Vocos's mel front-end: a torchaudio magnitude mel spectrogram and its clamped natural log.

Vocos (0.1.0, `vocos.feature_extractors.MelSpectrogramFeatures`) feeds its generator, and computes its mel loss on,
`ln(max(mel, 1e-7))` of a magnitude (power 1) mel spectrogram with torchaudio's defaults: periodic Hann window of
`n_fft` samples, HTK mel scale without area normalisation, 0 Hz to Nyquist. This is not HiFi-GAN's librosa-Slaney
log-mel (`codecgan.models.slaney_mel.slaney_mel_filters`): a vocoder trained on one cannot be fed the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

from codecgan.config_error import ConfigError
from codecgan.models.precision import at_least_float32

VOCOS_PADDINGS = ("center", "same")
VOCOS_LOG_FLOOR = 1e-7  # Vocos's `safe_log` clip: -140 dB re 1


def check_padding(padding: str, key: str) -> None:
    """Raise a `ConfigError` naming `key` unless `padding` is one of `VOCOS_PADDINGS`."""
    if padding not in VOCOS_PADDINGS:
        raise ConfigError(f'{key} must be "center" (the released vocos-mel-24khz model\'s) or "same", got {padding!r}.')


def clamped_log(x: Tensor, floor: float = VOCOS_LOG_FLOOR) -> Tensor:
    """`ln(max(x, floor))`: Vocos's log of a mel magnitude; the floor keeps silence finite."""
    return torch.log(torch.clamp(x, min=floor))


class VocosMelSpectrogram(nn.Module):
    """The log-mel spectrogram Vocos's mel models take as input.

    Args:
        sample_rate: Hz.
        n_fft: FFT and window size in samples.
        hop_length: samples per frame.
        n_mels: mel bands.
        padding: "center" (torchaudio's centred reflect padding: `T // hop + 1` frames; the released 24 kHz model's)
            or "same" (reflect padding of `(n_fft - hop) // 2` each side, no centring: `T // hop` frames, which an
            ISTFT head with "same" padding turns back into exactly `frames * hop` samples).

    The submodule is named `mel_spec`, as Vocos's, so a released `pytorch_model.bin`'s `feature_extractor.*` buffers
    load into it unchanged. Computed in fp32 (float64 in a float64 model) with autocast off.

    Shapes: `audio: [B, 1, T]` (or `[B, T]`) -> `[B, n_mels, frames]`.
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 100,
        padding: str = "center",
    ) -> None:
        super().__init__()
        check_padding(padding, "padding of VocosMelSpectrogram")
        self.padding = padding
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.mel_spec = MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            center=padding == "center",
            power=1,
        )

    def frames(self, samples: int) -> int:
        """Number of mel frames for `samples` input samples."""
        return samples // self.hop_length + (1 if self.padding == "center" else 0)

    def forward(self, audio: Tensor) -> Tensor:
        if audio.dim() == 3:
            audio = audio.squeeze(1)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            audio = at_least_float32(audio)
            if self.padding == "same":
                side = (self.n_fft - self.hop_length) // 2
                audio = F.pad(audio, (side, side), mode="reflect")
            return clamped_log(self.mel_spec(audio))
