"""EnCodec's multi-scale complex STFT discriminator (MS-STFT-D, `encodec/msstftd.py`, audiocraft's `msstftd.py`).

Each scale looks at the real and imaginary parts of one complex STFT (2 channels for mono audio), laid out as
`[B, 2, frames, freq]`, through five 2-D convs: a plain first conv, three weight-normed convs that halve the
frequency axis and dilate the time axis by 1, 2, 4, and a (3, 3) conv, each followed by a LeakyReLU, then a
weight-normed (3, 3) conv to one channel of logits. Phase is visible to it, unlike a magnitude discriminator.

`load_encodec_state_dict` reads the `encodec` package's state dict (its old-style `weight_g`/`weight_v` keys);
tests/models/test_encodec_reference.py checks the logits and feature maps against encodec 0.1.1.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from codecgan.models.conv_blocks import weight_norm_conv2d


class STFTScaleDiscriminator(nn.Module):
    """One scale of the MS-STFT discriminator.

    Args:
        n_fft: FFT size; the window (Hann) and its length are `win_length`.
        hop_length: STFT hop in samples.
        win_length: window length in samples.
        filters: channels of every conv but the last.
        negative_slope: LeakyReLU slope (audiocraft trains EnCodec with 0.3; encodec's class default is 0.2).

    Shapes:
        audio: [B, 1, T] with T >= win_length -> 5 feature maps [B, filters, frames, freq'] then logits
        [B, 1, frames, freq'], where frames = 1 + (T - n_fft) // hop (no centring, as EnCodec).
    """

    def __init__(
        self, n_fft: int, hop_length: int, win_length: int, filters: int = 32, negative_slope: float = 0.3
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        kernel, padding = (3, 9), (1, 4)
        layers = [nn.Conv2d(2, filters, kernel, padding=padding)]  # EnCodec leaves the first conv unnormalised
        for dilation in (1, 2, 4):
            layers.append(
                weight_norm_conv2d(
                    filters, filters, kernel, stride=(1, 2), dilation=(dilation, 1), padding=(dilation, 4)
                )
            )
        layers.append(weight_norm_conv2d(filters, filters, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm_conv2d(filters, 1, (3, 3), padding=(1, 1))
        self.activation = nn.LeakyReLU(negative_slope)

    def spectrum(self, audio: Tensor) -> Tensor:
        """`[B, 1, T]` -> `[B, 2, frames, freq]`: real and imaginary parts, divided by the window's L2 norm
        (torchaudio's `Spectrogram(normalized=True)`, which EnCodec uses)."""
        window = self.window.to(audio.dtype)
        spectrum = torch.stft(
            audio.reshape(-1, audio.shape[-1]),
            self.n_fft,
            self.hop_length,
            self.win_length,
            window=window,
            center=False,
            return_complex=True,
        )
        spectrum = spectrum / window.square().sum().sqrt()
        spectrum = spectrum.reshape(audio.shape[0], -1, *spectrum.shape[-2:])
        return torch.cat([spectrum.real, spectrum.imag], dim=1).transpose(-1, -2)

    def forward(self, audio: Tensor) -> list[Tensor]:
        x = self.spectrum(audio)
        features = []
        for conv in self.convs:
            x = self.activation(conv(x))
            features.append(x)
        features.append(self.conv_post(x))
        return features


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFT discriminator: one `STFTScaleDiscriminator` per FFT size.

    Defaults are audiocraft's EnCodec training config (`config/solver/compression/default.yaml`): filters 32,
    n_ffts (1024, 2048, 512, 256, 128), hops n_fft / 4, windows n_fft, LeakyReLU slope 0.3; about 472k parameters.

    Args:
        n_ffts: FFT size of each scale.
        hop_lengths: hop of each scale (default n_fft // 4).
        win_lengths: window length of each scale (default n_fft).
        filters: conv channels.
        negative_slope: LeakyReLU slope.

    Shapes:
        audio: [B, 1, T] -> list over scales of [5 feature maps..., logits [B, 1, frames, freq']]; T must be at
        least the largest window (2048 samples by default).
    """

    def __init__(
        self,
        n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128),
        hop_lengths: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        filters: int = 32,
        negative_slope: float = 0.3,
    ) -> None:
        super().__init__()
        hop_lengths = [n // 4 for n in n_ffts] if hop_lengths is None else list(hop_lengths)
        win_lengths = list(n_ffts) if win_lengths is None else list(win_lengths)
        if not len(n_ffts) == len(hop_lengths) == len(win_lengths):
            raise ValueError(
                f"n_ffts {list(n_ffts)}, hop_lengths {hop_lengths} and win_lengths {win_lengths} must have one "
                "entry per scale."
            )
        self.discriminators = nn.ModuleList(
            STFTScaleDiscriminator(n_fft, hop, win, filters, negative_slope)
            for n_fft, hop, win in zip(n_ffts, hop_lengths, win_lengths)
        )

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        return [discriminator(audio) for discriminator in self.discriminators]

    def load_encodec_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load the weights of an `encodec.msstftd.MultiScaleSTFTDiscriminator` with the same settings."""
        self.load_state_dict(encodec_discriminator_state_dict(state_dict))


def encodec_discriminator_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """encodec's MS-STFT-D keys to this module's: `NormConv2d`'s `conv.` level goes, old weight norm's
    `weight_g`/`weight_v` become the parametrization's `original0`/`original1`, the STFT window (a constant the
    module rebuilds) is dropped."""
    renamed = {}
    for key, value in state_dict.items():
        if key.endswith("spec_transform.window"):
            continue
        key = key.replace(".conv.", ".")
        key = key.replace(".weight_g", ".parametrizations.weight.original0")
        key = key.replace(".weight_v", ".parametrizations.weight.original1")
        renamed[key] = value
    return renamed
