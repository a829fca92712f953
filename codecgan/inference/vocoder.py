"""A vocoder checkpoint as ``codecgan.load`` returns it: the generator with the mel front-end it was trained on.

A vocoder's generator alone cannot resynthesise a recording: it needs the log-mel it was trained on, computed by
the run's ``model.init_args.mel_spectrogram``. ``Vocoder`` holds both, so a mel rendered elsewhere can be checked
against the front-end's bands and a recording turned into its mel and back. It does not import Lightning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def front_end_value(mel_spectrogram: nn.Module, name: str) -> int:
    """The front-end's ``name`` (``sample_rate``, ``hop_length``, ``n_mels``): its own, or its torchaudio
    transform's (``mel_spec``)."""
    for part in (mel_spectrogram, getattr(mel_spectrogram, "mel_spec", None)):
        value = getattr(part, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"The mel front-end {type(mel_spectrogram).__name__} has no {name}.")


class Vocoder(nn.Module):
    """A trained vocoder: ``generator`` (log-mel ``[B, n_mels, frames]`` -> audio ``[B, 1, samples]``, a hop per
    frame; with centred frames, as the Vocos configs', ``(frames - 1) * hop_length``)
    and its ``mel_spectrogram`` front-end (audio ``[B, 1, T]`` -> log-mel).

    Attributes: ``sample_rate`` (Hz), ``hop_length`` (samples per mel frame), ``n_mels`` (mel bands).
    ``vocode(mel)`` (also ``forward``) renders a log-mel; ``mel(audio)`` computes one; ``resynthesise(audio)`` is
    the two in a row, cut to the input's length.
    """

    def __init__(self, generator: nn.Module, mel_spectrogram: nn.Module, sample_rate: int) -> None:
        super().__init__()
        self.generator, self.mel_spectrogram, self.sample_rate = generator, mel_spectrogram, sample_rate
        self.hop_length = front_end_value(mel_spectrogram, "hop_length")
        self.n_mels = front_end_value(mel_spectrogram, "n_mels")

    @torch.no_grad()
    def mel(self, audio: Tensor) -> Tensor:
        """``audio`` ``[B, 1, T]`` at ``sample_rate``, zero-padded to whole hops -> log-mel ``[B, n_mels, frames]``."""
        missing = -audio.shape[-1] % self.hop_length
        return self.mel_spectrogram(F.pad(audio, (0, missing)) if missing else audio)

    @torch.no_grad()
    def vocode(self, mel: Tensor) -> Tensor:
        """Log-mel ``[B, n_mels, frames]`` (the front-end's) -> audio ``[B, 1, samples]`` at ``sample_rate``
        (``samples``: see the class docstring)."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"mel {tuple(mel.shape)} must be [B, {self.n_mels}, frames] (the front-end's n_mels).")
        return self.generator(mel)

    forward = vocode

    @torch.no_grad()
    def resynthesise(self, audio: Tensor) -> Tensor:
        """``audio`` ``[B, 1, T]`` -> its log-mel -> the generator's audio ``[B, 1, T]``."""
        return self.vocode(self.mel(audio))[..., : audio.shape[-1]]
