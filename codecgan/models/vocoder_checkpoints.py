"""Released vocoder checkpoints as ``model.init_args.init_from`` files: their formats, told apart by their keys.

- Vocos: ``pytorch_model.bin``, keys ``feature_extractor.*``, ``backbone.*``, ``head.*``; no discriminator released.
- HiFi-GAN: ``g_XXXXXXXX``, key ``generator`` (no Snake ``alpha``); beside it ``do_XXXXXXXX``, keys ``mpd``, ``msd``,
  ``optim_g``, ``optim_d``, ``steps``, ``epoch``.
- BigVGAN: ``bigvgan_generator.pt``, key ``generator`` (with ``activation_post.*``); beside it
  ``bigvgan_discriminator_optimizer.pt``, keys ``mpd``, ``mrd`` (its MRD, MBD or CQT-D, as configured), optimizers.

The format is read from the keys, never from the file name: the name only locates the discriminator file beside a
generator file, whose keys are then checked in turn. Optimizer states and step counters are not loaded (``init_from``
starts a fresh run). The configured networks must be the file's: their settings are read from the tensors' shapes on
both sides and every difference is one ``ConfigError`` naming the config key and both values; a Vocos file's mel
filterbank is compared with the configured front-end's, which catches another sample rate, FFT size or band count.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torchaudio.functional import melscale_fbanks

from codecgan.config_error import ConfigError
from codecgan.models.bigvgan_discriminators import (
    BigVGANMultiBandDiscriminator,
    BigVGANMultiResolutionDiscriminator,
    HiFiGANMultiPeriodDiscriminator,
)
from codecgan.models.bigvgan_generator import BigVGANGenerator, from_bigvgan_state_dict
from codecgan.models.cqt_discriminator import MultiScaleSubbandCQTDiscriminator
from codecgan.models.discriminator_set import DiscriminatorSet
from codecgan.models.hifigan_discriminators import HiFiGANMultiScaleDiscriminator
from codecgan.models.hifigan_generator import HiFiGANGenerator, from_hifigan_state_dict
from codecgan.models.vocos_checkpoint import from_vocos_state_dict, vocos_mel_state_dict
from codecgan.models.vocos_generator import VocosGenerator

CONFIG_KEY = "model.init_args.init_from"
GENERATOR_KEY = "model.init_args.generator.init_args"
FRONT_END_KEY = "model.init_args.mel_spectrogram.init_args"
DIRECTION = ".parametrizations.weight.original1"  # weight norm's direction tensor: [out, in, kernel] ([in, out, k])
FILTERBANK = "mel_spec.mel_scale.fb"
COMMON_SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
# The last names of parameters in codecgan's layout (weight norm's and spectral norm's included); other keys are buffers.
PARAMETER_NAMES = ("weight", "bias", "original0", "original1", "original", "alpha", "beta", "gamma")

GENERATOR_FORMATS = {
    "vocos": ("a Vocos pytorch_model.bin", VocosGenerator),
    "hifigan": ("a HiFi-GAN generator file (g_XXXXXXXX)", HiFiGANGenerator),
    "bigvgan": ("a BigVGAN generator file (bigvgan_generator.pt)", BigVGANGenerator),
}
# Per reference: the discriminator file's entries, the codecgan classes each loads into, and the key map.
DISCRIMINATOR_FORMATS = {
    "hifigan": (
        "a HiFi-GAN discriminator file (do_XXXXXXXX)",
        {"mpd": (HiFiGANMultiPeriodDiscriminator,), "msd": (HiFiGANMultiScaleDiscriminator,)},
        from_hifigan_state_dict,
    ),
    "bigvgan": (
        "a BigVGAN discriminator file (bigvgan_discriminator_optimizer.pt)",
        {
            "mpd": (HiFiGANMultiPeriodDiscriminator,),
            "mrd": (
                BigVGANMultiResolutionDiscriminator,
                BigVGANMultiBandDiscriminator,
                MultiScaleSubbandCQTDiscriminator,
            ),
        },
        from_bigvgan_state_dict,
    ),
}
ACCEPTED = (
    "a codecgan fit checkpoint, a DAC weights.pth, a Vocos pytorch_model.bin, a HiFi-GAN g_XXXXXXXX or a BigVGAN "
    "bigvgan_generator.pt"
)


def vocoder_checkpoint_format(loaded: Mapping[str, Any]) -> str | None:
    """``vocos``, ``hifigan`` or ``bigvgan`` for a released generator file, ``hifigan-discriminators`` or
    ``bigvgan-discriminators`` for a discriminator file, from the keys alone; ``None`` for anything else."""
    if any(key.startswith("backbone.") for key in loaded) and any(key.startswith("head.") for key in loaded):
        return "vocos"
    generator = loaded.get("generator")
    if isinstance(generator, Mapping) and "conv_pre.weight_v" in generator:
        return "bigvgan" if any(key.startswith("activation_post.") for key in generator) else "hifigan"
    if isinstance(loaded.get("mpd"), Mapping):
        if isinstance(loaded.get("msd"), Mapping):
            return "hifigan-discriminators"
        if isinstance(loaded.get("mrd"), Mapping):
            return "bigvgan-discriminators"
    return None


def unrecognised_file(path: str, loaded: Mapping[str, Any]) -> ConfigError:
    return ConfigError(
        f"{CONFIG_KEY}: {path} is none of the accepted files ({ACCEPTED}); its top-level keys are "
        f"{sorted(map(str, loaded))[:8]}."
    )


def load_vocoder_checkpoint(
    networks: dict[str, nn.Module],
    loaded: Mapping[str, Any],
    file_format: str,
    path: str,
    sample_rate: int | None,
    mel_spectrogram: nn.Module | None,
) -> str:
    """Load the generator of the released file ``loaded`` (read from ``path``, of ``file_format``), and the
    discriminators from the reference's discriminator file when one sits beside it. Returns a sentence saying what
    was loaded and what starts fresh."""
    if file_format.endswith("-discriminators"):
        reference = file_format.split("-")[0]
        raise ConfigError(
            f"{CONFIG_KEY}: {path} holds discriminators ({DISCRIMINATOR_FORMATS[reference][0]}: keys "
            f"{sorted(loaded)}), not a generator. Set {CONFIG_KEY} to the generator file beside it; the "
            "discriminator file is then loaded with it."
        )
    description, generator_class = GENERATOR_FORMATS[file_format]
    generator = networks["generator"]
    if not isinstance(generator, generator_class):
        raise ConfigError(
            f"{CONFIG_KEY}: {path} holds {description}, which initialises a codecgan.models.{generator_class.__name__}; "
            f"this run's generator (model.init_args.generator) is a {type(generator).__name__}."
        )
    if file_format == "vocos":
        state, settings = from_vocos_state_dict(dict(loaded)), vocos_settings
    elif file_format == "hifigan":
        state, settings = from_hifigan_state_dict(loaded["generator"]), upsampler_settings
    else:
        state, settings = from_bigvgan_state_dict(loaded["generator"]), bigvgan_settings
    differences = setting_differences(settings(state), settings(generator.state_dict()), GENERATOR_KEY)
    if file_format == "vocos":
        file_mel = vocos_mel_state_dict(dict(loaded))
        differences += vocos_front_end_differences(path, file_mel, mel_spectrogram, sample_rate)
    if differences:
        raise ConfigError(
            f"{CONFIG_KEY}: {path} holds {description} that is not this run's: {'; '.join(differences)}. "
            "Set these keys to the file's values."
        )
    load_mapped(generator, state, path, "generator")
    summary = f"the generator starts from {description} {path}"
    beside = discriminator_file_beside(path, file_format)
    if beside is None or not os.path.isfile(beside):
        return (
            summary + "; the discriminator starts fresh (model.init_args.discriminator_warmup_steps trains it alone)."
        )
    load_discriminators(networks["discriminator"], beside, file_format)
    return summary + f", the discriminators from {beside} (its optimizer states are not loaded)."


def discriminator_file_beside(path: str, file_format: str) -> str | None:
    """Where the reference saves the discriminators that go with the generator file ``path``."""
    folder, name = os.path.split(path)
    if file_format == "hifigan" and name.startswith("g_"):
        return os.path.join(folder, "do_" + name[2:])
    if file_format == "bigvgan":
        return os.path.join(folder, "bigvgan_discriminator_optimizer.pt")
    return None


def load_discriminators(discriminator: nn.Module, path: str, reference: str) -> None:
    """Load each entry of the reference's discriminator file ``path`` into the configured discriminator of its kind."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    description, entries, mapping = DISCRIMINATOR_FORMATS[reference]
    if vocoder_checkpoint_format(loaded) != f"{reference}-discriminators":
        raise ConfigError(
            f"{CONFIG_KEY}: {path}, beside the generator file, is not {description}: its keys are "
            f"{sorted(map(str, loaded))[:8]}, not {sorted(entries)}. Move it away to start the discriminator fresh."
        )
    members = list(discriminator.discriminators) if isinstance(discriminator, DiscriminatorSet) else [discriminator]
    wanted = " and ".join("/".join(kind.__name__ for kind in kinds) for kinds in entries.values())
    if len(members) != len(entries):
        raise ConfigError(
            f"{CONFIG_KEY}: {path} holds {description} with {sorted(entries)}; this run's model.init_args.discriminator "
            f"is {[type(m).__name__ for m in members]}. Configure a DiscriminatorSet of {wanted}, or move the file "
            "away to start the discriminator fresh."
        )
    for name, kinds in entries.items():
        member = next((m for m in members if isinstance(m, kinds)), None)
        if member is None:
            raise ConfigError(
                f"{CONFIG_KEY}: {path} holds {description}, whose '{name}' loads into a "
                f"{'/'.join(kind.__name__ for kind in kinds)}; this run's model.init_args.discriminator is "
                f"{[type(m).__name__ for m in members]}. Configure a DiscriminatorSet of {wanted}."
            )
        load_mapped(member, mapping(loaded[name]), path, f"'{name}' discriminator")


def load_mapped(module: nn.Module, state: dict[str, Tensor], path: str, what: str) -> None:
    """Load ``state`` (codecgan keys) into ``module``: every parameter must be in it, and every parameter of it known.
    Buffers: the module's own where the file has none; a buffer the reference keeps and codecgan computes (an STFT
    window, CQT kernels) is left out."""
    own = module.state_dict()
    state = {key: value for key, value in state.items() if key in own or key.rsplit(".", 1)[-1] in PARAMETER_NAMES}
    unknown = sorted(set(state) - set(own))
    missing = sorted(name for name, _ in module.named_parameters() if name not in state)
    if unknown or missing:
        raise ConfigError(
            f"{CONFIG_KEY}: the {what} weights in {path} do not fit this run's {type(module).__name__} (another "
            f"architecture in the config?): keys not in the config's {unknown[:3]}, parameters missing from the "
            f"file {missing[:3]}."
        )
    try:
        module.load_state_dict({**own, **state})
    except RuntimeError as error:
        raise ConfigError(
            f"{CONFIG_KEY}: the {what} weights in {path} do not fit this run's {type(module).__name__}: "
            f"{str(error).splitlines()[-1].strip()}"
        ) from None


def vocos_settings(state: Mapping[str, Tensor]) -> dict[str, int]:
    """A ``VocosGenerator``'s settings, read from its state dict's shapes."""
    embed = state["backbone.embed.weight"]  # [dim, n_mels, 7]
    layers = {key.split(".")[2] for key in state if key.startswith("backbone.convnext.")}
    return {
        "n_mels": embed.shape[1],
        "dim": embed.shape[0],
        "intermediate_dim": state["backbone.convnext.0.pwconv1.weight"].shape[0],
        "num_layers": len(layers),
        "n_fft": state["head.out.weight"].shape[0] - 2,  # n_fft / 2 + 1 magnitudes and as many phases
    }


def upsampler_settings(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """A ``HiFiGANGenerator``'s or ``BigVGANGenerator``'s settings that its state dict's shapes show."""
    pre = state["conv_pre" + DIRECTION]  # [upsample_initial_channel, num_mels, 7]
    stages = len({key.split(".")[1] for key in state if key.startswith("ups.")})
    blocks = sorted({int(key.split(".")[1]) for key in state if key.startswith("resblocks.")})
    kernels = []  # of the first stage's blocks: every stage has one block per kernel size
    for block in blocks[: len(blocks) // max(stages, 1)]:
        first = next(key for key in state if key.startswith(f"resblocks.{block}.") and key.endswith(DIRECTION))
        kernels.append(state[first].shape[-1])
    return {
        "num_mels": pre.shape[1],
        "upsample_initial_channel": pre.shape[0],
        "upsample_kernel_sizes": [state[f"ups.{i}{DIRECTION}"].shape[-1] for i in range(stages)],
        "resblock_kernel_sizes": kernels,
        "resblock": 1 if any(".convs2." in key for key in state) else 2,  # block 1 has two convs per dilation
    }


def bigvgan_settings(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """A ``BigVGANGenerator``'s settings that its state dict shows: ``upsampler_settings``'s, the activation (SnakeBeta
    learns a ``beta``) and whether the last conv has a bias."""
    return {
        **upsampler_settings(state),
        "activation": "snakebeta" if any(key.endswith(".act.beta") for key in state) else "snake",
        "use_bias_at_final": "conv_post.bias" in state,
    }


def setting_differences(in_file: Mapping[str, Any], configured: Mapping[str, Any], key: str) -> list[str]:
    """A phrase for each setting that differs between the file and the config, with both values and the key."""
    return [
        f"{name} is {in_file[name]} in the file and {configured.get(name)} in the config ({key}.{name})"
        for name in in_file
        if in_file[name] != configured.get(name)
    ]


def vocos_front_end_differences(
    path: str, file_mel: Mapping[str, Tensor], mel_spectrogram: nn.Module | None, sample_rate: int | None
) -> list[str]:
    """Compare a Vocos file's mel filterbank ``[n_fft / 2 + 1, n_mels]`` with the configured front-end's: its shape
    gives the file's ``n_fft`` and ``n_mels``, its values (torchaudio's HTK filters, as Vocos builds them) the sample
    rate it was built for, found among the common ones."""
    if FILTERBANK not in file_mel:
        raise ConfigError(
            f"{CONFIG_KEY}: {path} is a Vocos pytorch_model.bin without a mel front-end (no feature_extractor."
            f"{FILTERBANK}): an EnCodec-feature model such as charactr/vocos-encodec-24khz, which codecgan does not "
            "train; use a mel model such as charactr/vocos-mel-24khz."
        )
    filterbank = file_mel[FILTERBANK].float()
    bins, bands = filterbank.shape
    differences = []
    if mel_spectrogram is not None:
        configured_bank = mel_spectrogram.state_dict().get(FILTERBANK)
        if configured_bank is None:
            raise ConfigError(
                f"{CONFIG_KEY}: {path} is a Vocos pytorch_model.bin, whose mel front-end is "
                f"codecgan.models.VocosMelSpectrogram; this run's model.init_args.mel_spectrogram is a "
                f"{type(mel_spectrogram).__name__}."
            )
        in_file = {"n_fft": 2 * (bins - 1), "n_mels": bands}
        configured = {"n_fft": 2 * (configured_bank.shape[0] - 1), "n_mels": configured_bank.shape[1]}
        differences += setting_differences(in_file, configured, FRONT_END_KEY)

    def built_for(rate: int) -> bool:
        expected = melscale_fbanks(bins, 0.0, rate / 2, bands, rate)
        return torch.allclose(filterbank, expected, rtol=1e-4, atol=1e-6)

    if sample_rate is not None and not built_for(sample_rate):
        found = next((f"{rate} Hz" for rate in COMMON_SAMPLE_RATES if built_for(rate)), None)
        found = found or "none of " + ", ".join(map(str, COMMON_SAMPLE_RATES)) + " Hz"
        differences.append(
            f"its mel filterbank (feature_extractor.{FILTERBANK}) is that of {found} and the config's sample rate is "
            f"{sample_rate} Hz (data.init_args.sample_rate and {FRONT_END_KEY}.sample_rate)"
        )
    return differences
