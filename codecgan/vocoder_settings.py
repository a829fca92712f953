"""The start-up checks of a vocoder's settings (``VocoderGAN``, ``VocoderDataModule``): the loss recipe, the mel
front-end against the data and the generator (rate, hop, bands, upsampling), the discriminators' rates and weights,
and excerpts of whole hops. Each failure is a ``ConfigError`` naming the keys and a consistent value."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from codecgan.config_error import ConfigError
from codecgan.models.discriminator_set import DiscriminatorSet
from codecgan.models.hifigan_mel import HiFiGANLogMel

LOSS_RECIPES = ("vocos", "hifigan", "bigvgan")
MODEL = "model.init_args"


def check_loss_recipe(loss_recipe: str) -> None:
    """Raise a ``ConfigError`` naming ``model.init_args.loss_recipe`` unless the recipe exists."""
    if loss_recipe not in LOSS_RECIPES:
        raise ConfigError(f"{MODEL}.loss_recipe must be one of {list(LOSS_RECIPES)}, got {loss_recipe!r}.")


def hifigan_loss_mel_settings(mel_spectrogram: nn.Module) -> dict[str, Any]:
    """HiFi-GAN's loss mel: the front-end's sample rate, STFT sizes, bands and ``f_min``, with ``f_max`` None
    (``fmax_for_loss``); a front-end without a ``win_length`` gets ``n_fft``."""
    settings = {name: front_end_setting(mel_spectrogram, name) for name in ("sample_rate", "n_fft", "hop_length")}
    settings["n_mels"] = front_end_setting(mel_spectrogram, "n_mels")
    window = getattr(mel_spectrogram, "win_length", None)
    settings["win_length"] = window if isinstance(window, int) else settings["n_fft"]
    settings["f_min"] = float(getattr(mel_spectrogram, "f_min", 0.0) or 0.0)
    return settings


def front_end_setting(mel_spectrogram: nn.Module, name: str) -> int:
    """A mel front-end's ``name`` (``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels``): its own attribute, or
    that of its torchaudio transform (``mel_spec``, as ``VocosMelSpectrogram``)."""
    for part in (mel_spectrogram, getattr(mel_spectrogram, "mel_spec", None)):
        value = getattr(part, name, None)
        if isinstance(value, int):
            return value
    raise ConfigError(
        f"{MODEL}.mel_spectrogram ({type(mel_spectrogram).__name__}) has no {name}: give a mel front-end such as "
        "codecgan.models.VocosMelSpectrogram."
    )


def generator_mel_bands(generator: nn.Module) -> tuple[str, int | None]:
    """The mel bands a generator takes and its argument's name: its ``n_mels``, its Vocos backbone's
    ``input_channels``, or the input channels of a HiFi-GAN-style first conv (``num_mels``); None if none."""
    bands = getattr(generator, "n_mels", None)
    if bands is None:
        bands = getattr(getattr(generator, "backbone", None), "input_channels", None)
    if bands is None:
        return "num_mels", getattr(getattr(generator, "conv_pre", None), "in_channels", None)
    return "n_mels", bands


def check_mel_settings(generator: nn.Module, mel_spectrogram: nn.Module, sample_rate: int) -> int:
    """The hop in samples, after checking that the data, the mel front-end and the generator agree on the sample
    rate, the hop and the mel bands; a ``ConfigError`` naming both keys and the consistent value otherwise."""
    front_end = f"{MODEL}.mel_spectrogram.init_args"
    rate = front_end_setting(mel_spectrogram, "sample_rate")
    if rate != sample_rate:
        raise ConfigError(
            f"{front_end}.sample_rate is {rate} Hz but data.init_args.sample_rate is {sample_rate} Hz: the mel "
            f"front-end must read the data's rate. Set {front_end}.sample_rate: {sample_rate}."
        )
    hop = front_end_setting(mel_spectrogram, "hop_length")
    if isinstance(mel_spectrogram, HiFiGANLogMel):
        check_hifigan_front_end(mel_spectrogram)
    generator_hop = getattr(generator, "hop_length", None)
    rates = upsample_rates(generator)
    if generator_hop is None and rates is None:
        raise ConfigError(
            f"{MODEL}.generator ({type(generator).__name__}) has no hop_length (samples per mel frame) and no "
            "transposed-conv upsamplers (`ups`) to count it from."
        )
    if generator_hop is None and math.prod(rates) != hop:
        raise ConfigError(
            f"{MODEL}.generator.init_args.upsample_rates {rates} multiply to {math.prod(rates)} samples per mel "
            f"frame but {front_end}.hop_length is {hop}: the generator must make one hop of audio per frame. "
            f"Use upsample rates whose product is {hop} (with upsample_kernel_sizes to match), or set "
            f"{front_end}.hop_length: {math.prod(rates)}."
        )
    if generator_hop is not None and generator_hop != hop:
        raise ConfigError(
            f"{MODEL}.generator.init_args.hop_length is {generator_hop} samples but {front_end}.hop_length is {hop}: "
            f"the generator must make one hop of audio per mel frame. Set both to {hop}."
        )
    bands = front_end_setting(mel_spectrogram, "n_mels")
    bands_key, generator_bands = generator_mel_bands(generator)
    if generator_bands is not None and generator_bands != bands:
        raise ConfigError(
            f"{MODEL}.generator.init_args.{bands_key} is {generator_bands} but {front_end}.n_mels is {bands}: the "
            f"generator takes the front-end's mel bands. Set both to {bands}."
        )
    return hop


def upsample_rates(generator: nn.Module) -> list[int] | None:
    """The strides of a HiFi-GAN-style generator's transposed-conv upsamplers (``ups``), or None without them."""
    upsamplers = getattr(generator, "ups", None)
    if upsamplers is None:
        return None
    return [int(layer.stride[0]) for layer in upsamplers]


def check_hifigan_front_end(mel_spectrogram: HiFiGANLogMel) -> None:
    """The STFT sizes for which HiFi-GAN's padding gives one frame per hop: ``win_length`` within ``n_fft``, and
    ``n_fft - hop_length`` even (its ``(n_fft - hop) / 2`` padding on each side), else one frame short."""
    front_end = f"{MODEL}.mel_spectrogram.init_args"
    n_fft, hop, window = mel_spectrogram.n_fft, mel_spectrogram.hop_length, mel_spectrogram.win_length
    if window > n_fft:
        raise ConfigError(
            f"{front_end}.win_length {window} exceeds {front_end}.n_fft {n_fft}; set win_length: {n_fft}."
        )
    if hop > n_fft or (n_fft - hop) % 2:
        raise ConfigError(
            f"{front_end}.n_fft {n_fft} minus {front_end}.hop_length {hop} must be even and not negative: HiFi-GAN's "
            f"front-end pads (n_fft - hop) / 2 samples on each side to give one frame per hop. Set n_fft: "
            f"{max(n_fft + (n_fft - hop) % 2, hop)}."
        )
    if mel_spectrogram.f_max is not None and mel_spectrogram.f_max > mel_spectrogram.sample_rate / 2:
        raise ConfigError(
            f"{front_end}.f_max {mel_spectrogram.f_max} Hz is above the Nyquist frequency of "
            f"{front_end}.sample_rate {mel_spectrogram.sample_rate} Hz; set f_max: {mel_spectrogram.sample_rate // 2} "
            "or null."
        )


def check_discriminator_sample_rates(discriminator: nn.Module, sample_rate: int) -> None:
    """A discriminator that is told the sample rate (BigVGAN's CQT discriminator) must be told the data's."""
    for index, member in enumerate(members(discriminator)):
        rates = {waveform_rate(sub) for sub in getattr(member, "discriminators", [member])}
        rates.discard(None)
        if rates and rates != {sample_rate}:
            key = f"{MODEL}.discriminator" + (
                f".init_args.discriminators[{index}]" if isinstance(discriminator, DiscriminatorSet) else ""
            )
            raise ConfigError(
                f"{key}.init_args.sample_rate is {sorted(rates)[0]} Hz but data.init_args.sample_rate is "
                f"{sample_rate} Hz: the discriminator's constant-Q bins would sit at the wrong frequencies. "
                f"Set it to {sample_rate}."
            )


def waveform_rate(discriminator: nn.Module) -> int | None:
    """The sample rate a discriminator was built for: its ``sample_rate``, or the input rate of its resampler (a
    ``CQTDiscriminator`` resamples to twice the rate); None if it has neither."""
    rate = getattr(discriminator, "sample_rate", None)
    if rate is None:
        rate = getattr(getattr(discriminator, "resample", None), "orig_freq", None)
    return rate


def check_whole_hops(key: str, samples: int, hop: int, sample_rate: int) -> None:
    """Raise a ``ConfigError`` naming ``key`` when ``samples`` is not a whole number of ``hop``-sample frames, with
    the nearest durations that are."""
    if samples % hop == 0:
        return
    shorter, longer = (samples // hop) * hop, (samples // hop + 1) * hop
    options = [f"{seconds_for(n, sample_rate)} ({n} samples)" for n in (shorter, longer) if n > 0]
    raise ConfigError(
        f"{key} gives {samples} samples at {sample_rate} Hz, not a whole number of hops of {hop} samples "
        f"({MODEL}.generator.init_args.hop_length): the generated audio would not cover the excerpt. "
        f"Use {' or '.join(options)}."
    )


def seconds_for(samples: int, sample_rate: int) -> str:
    """The shortest decimal number of seconds that the data module rounds back to ``samples``."""
    for digits in range(3, 12):
        text = f"{samples / sample_rate:.{digits}f}".rstrip("0").rstrip(".")
        if round(float(text) * sample_rate) == samples:
            return text
    return repr(samples / sample_rate)


def members(discriminator: nn.Module) -> list[nn.Module]:
    """The discriminators of a ``DiscriminatorSet``, or the one discriminator."""
    return list(discriminator.discriminators) if isinstance(discriminator, DiscriminatorSet) else [discriminator]


def discriminator_group_sizes(discriminator: nn.Module) -> list[int]:
    """The number of sub-discriminators of each discriminator of the set (one for a single discriminator)."""
    sizes = []
    for member in members(discriminator):
        subs = getattr(member, "discriminators", None)
        if subs is None:
            raise ConfigError(
                f"{MODEL}.discriminator: {type(member).__name__} has no `discriminators` list, so its share of the "
                "outputs cannot be weighted; use multi-discriminators such as VocosMultiPeriodDiscriminator."
            )
        sizes.append(len(subs))
    return sizes


def check_discriminator_weights(weights: list[float] | None, count: int) -> list[float]:
    """One finite, non-negative weight per discriminator of the set (1 each when ``weights`` is None)."""
    if weights is None:
        return [1.0] * count
    if len(weights) != count or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ConfigError(
            f"{MODEL}.discriminator_weights must hold {count} non-negative numbers, one per discriminator of "
            f"{MODEL}.discriminator (Vocos: [1.0, 0.1] for MPD and MRD), got {list(weights)}."
        )
    return [float(w) for w in weights]
