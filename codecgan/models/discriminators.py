"""DAC's discriminator, layer for layer: multi-period (MPD) and multi-band complex-STFT (MRD) sets.

Every discriminator returns `list[list[Tensor]]`: one inner list per sub-discriminator holding its
feature maps in order, the last one being the logits (see docs/interfaces.md). With the defaults,
`DACDiscriminator` has 42,519,760 parameters: MPD 41,105,770 (5 x 8,221,154) and MRD 1,413,990
(3 x 471,330), weight norm's gains included.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.conv_blocks import weight_norm_conv2d
from codecgan.models.precision import at_least_float32

LEAKY_RELU_SLOPE = 0.1  # DAC and HiFi-GAN
DAC_BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


def remove_dc_and_normalize_peak(audio: Tensor, peak: float = 0.8) -> Tensor:
    """DAC's discriminator input: subtract each item's mean, then scale its peak to `peak`.

    The discriminator then cannot tell real from fake by loudness or DC offset alone.
    Shapes: `[B, 1, T] -> [B, 1, T]`.
    """
    audio = audio - audio.mean(dim=-1, keepdim=True)
    return peak * audio / (audio.abs().amax(dim=-1, keepdim=True) + 1e-9)


class PeriodDiscriminator(nn.Module):
    """Sees every `period`-th sample: the waveform folded into a [T / period, period] image.

    Args:
        period: folding period in samples.
        channels: output channels of the (5, 1) convs; all but the last stride 3 along time.

    Shapes: `[B, 1, T] -> [fmap_1, ..., fmap_n, logits [B, 1, ~T / (period * 3**(n-1)), period]]`.
    """

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024, 1024)) -> None:
        super().__init__()
        self.period = period
        in_channels = [1, *channels[:-1]]
        strides = [3] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            weight_norm_conv2d(c_in, c_out, (5, 1), stride=(stride, 1), padding=(2, 0))
            for c_in, c_out, stride in zip(in_channels, channels, strides)
        )
        self.conv_post = weight_norm_conv2d(channels[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, audio: Tensor) -> list[Tensor]:
        # DAC pads a whole period even when T is already a multiple (HiFi-GAN pads only if needed).
        x = F.pad(audio, (0, self.period - audio.shape[-1] % self.period), mode="reflect")
        x = x.view(x.shape[0], x.shape[1], -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            features.append(x)
        features.append(self.conv_post(x))
        return features


class STFTBandDiscriminator(nn.Module):
    """Sees one STFT resolution's [Re, Im] planes, split into frequency bands with separate convs.

    The STFT is DAC's: periodic Hann window, hop `window_length * hop_factor`, reflect-padded so
    that it yields exactly `ceil(T / hop)` frames ("match_stride"), unnormalised, computed in fp32 (float64 in a
    float64 model).

    Args:
        window_length: STFT window and FFT size in samples.
        channels: channels of every conv in the band stacks.
        bands: band edges as fractions of the `window_length // 2 + 1` bins.
        hop_factor: hop as a fraction of the window (DAC: 0.25).

    Shapes: `[B, 1, T] -> [5 fmaps per band, logits [B, 1, ceil(T / hop), Σ_band ceil(bins / 8)]]`.
    """

    def __init__(
        self,
        window_length: int,
        channels: int = 32,
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        hop_factor: float = 0.25,
    ) -> None:
        super().__init__()
        self.window_length = window_length
        self.hop_length = int(window_length * hop_factor)
        n_bins = window_length // 2 + 1
        self.band_bins = [(int(low * n_bins), int(high * n_bins)) for low, high in bands]
        # Computed in float64 and rounded once, as scipy's window in DAC: torch's float32 Hann differs by an ulp.
        window = torch.hann_window(window_length, dtype=torch.float64).float()
        self.register_buffer("window", window, persistent=False)
        self.band_stacks = nn.ModuleList(self._band_stack(channels) for _ in self.band_bins)
        self.conv_post = weight_norm_conv2d(channels, 1, (3, 3), padding=(1, 1))

    @staticmethod
    def _band_stack(channels: int) -> nn.ModuleList:
        # Layout (time, freq): kernels are (3, 9) and only frequency is downsampled.
        return nn.ModuleList(
            [
                weight_norm_conv2d(2, channels, (3, 9), padding=(1, 4)),
                *(weight_norm_conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)) for _ in range(3)),
                weight_norm_conv2d(channels, channels, (3, 3), padding=(1, 1)),
            ]
        )

    def complex_spectrogram(self, audio: Tensor) -> Tensor:
        """`[B, 1, T] -> [B, 2 (Re, Im), ceil(T / hop) frames, window_length // 2 + 1 bins]`."""
        length = audio.shape[-1]
        frames = -(-length // self.hop_length)
        side = (self.window_length - self.hop_length) // 2
        with torch.autocast(device_type=audio.device.type, enabled=False):
            padded = F.pad(at_least_float32(audio), (side, side + frames * self.hop_length - length), mode="reflect")
            spectrum = torch.stft(
                padded.squeeze(1),
                n_fft=self.window_length,
                hop_length=self.hop_length,
                window=at_least_float32(self.window),
                center=True,
                return_complex=True,
            )
            # The padding adds frames at both ends (2 each for hop = window / 4); drop them.
            start = (spectrum.shape[-1] - frames) // 2
            spectrum = torch.view_as_real(spectrum[..., start : start + frames])
        return spectrum.permute(0, 3, 2, 1)

    def bands_of(self, spectrum: Tensor) -> list[Tensor]:
        """The spectrum's frequency bands. Adjacent bands (DAC's) come from one split, whose backward is one
        concatenation; separate slices would each build a full-size gradient and add them up."""
        edges = [low for low, _ in self.band_bins] + [self.band_bins[-1][1]]
        if all(high == low for (_, high), (low, _) in zip(self.band_bins, self.band_bins[1:])):
            covered = (
                spectrum if (edges[0], edges[-1]) == (0, spectrum.shape[-1]) else spectrum[..., edges[0] : edges[-1]]
            )
            return list(covered.split([high - low for low, high in self.band_bins], dim=-1))
        return [spectrum[..., low:high] for low, high in self.band_bins]

    def forward(self, audio: Tensor) -> list[Tensor]:
        spectrum = self.complex_spectrogram(audio)
        features, band_outputs = [], []
        for x, stack in zip(self.bands_of(spectrum), self.band_stacks):
            for conv in stack:
                x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
                features.append(x)
            band_outputs.append(x)
        features.append(self.conv_post(torch.cat(band_outputs, dim=-1)))
        return features


class MultiPeriodDiscriminator(nn.Module):
    """One `PeriodDiscriminator` per period (HiFi-GAN's MPD, as configured in DAC).

    Args:
        periods: folding periods in samples (primes, so that the views overlap little).
        channels: conv channels of every period discriminator.
        normalize_input: apply `remove_dc_and_normalize_peak` first (DAC's behaviour).
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        normalize_input: bool = True,
    ) -> None:
        super().__init__()
        self.normalize_input = normalize_input
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per period."""
        if self.normalize_input:
            audio = remove_dc_and_normalize_peak(audio)
        return [discriminator(audio) for discriminator in self.discriminators]


class MultiResolutionSTFTDiscriminator(nn.Module):
    """One `STFTBandDiscriminator` per window length (DAC's MRD).

    Args:
        window_lengths: STFT sizes in samples; T must exceed `0.75 * max(window_lengths)`.
        channels: conv channels of every band stack.
        bands: band edges as fractions of the bins.
        hop_factor: hop as a fraction of the window.
        normalize_input: apply `remove_dc_and_normalize_peak` first (DAC's behaviour).
    """

    def __init__(
        self,
        window_lengths: Sequence[int] = (2048, 1024, 512),
        channels: int = 32,
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        hop_factor: float = 0.25,
        normalize_input: bool = True,
    ) -> None:
        super().__init__()
        self.normalize_input = normalize_input
        self.discriminators = nn.ModuleList(
            STFTBandDiscriminator(w, channels, bands, hop_factor) for w in window_lengths
        )

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per window length."""
        if self.normalize_input:
            audio = remove_dc_and_normalize_peak(audio)
        return [discriminator(audio) for discriminator in self.discriminators]


class DACDiscriminator(nn.Module):
    """DAC's discriminator: MPD then MRD (8 sub-discriminators by default), one normalisation.

    Args:
        periods: MPD periods.
        window_lengths: MRD STFT sizes.
        mpd_channels: MPD conv channels.
        mrd_channels: MRD conv channels.
        bands: MRD band edges.
        sample_rate: Hz; kept for the config's record, as DAC's discriminator is rate-agnostic
            once its MSD (unused in DAC's published configs) is left out.
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        window_lengths: Sequence[int] = (2048, 1024, 512),
        mpd_channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        mrd_channels: int = 32,
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        sample_rate: int = 44100,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.mpd = MultiPeriodDiscriminator(periods, mpd_channels, normalize_input=False)
        self.mrd = MultiResolutionSTFTDiscriminator(window_lengths, mrd_channels, bands, normalize_input=False)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> `len(periods) + len(window_lengths)` feature lists."""
        audio = remove_dc_and_normalize_peak(audio)
        return self.mpd(audio) + self.mrd(audio)
