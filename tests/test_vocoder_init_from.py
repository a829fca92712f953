"""A vocoder run started from the references' released files (``model.init_args.init_from``): a Vocos
``pytorch_model.bin``, a HiFi-GAN ``g_XXXXXXXX`` with its ``do_XXXXXXXX`` and a BigVGAN ``bigvgan_generator.pt`` with
its ``bigvgan_discriminator_optimizer.pt``, written here in the references' formats from the fixtures (the Vocos file
is the one Vocos's own class saved; HiFi-GAN's and BigVGAN's state dicts carry the references' key names, filled by
``tests/fixtures/bigvgan/fill.py``). Tolerances are the fixture tests': 1e-5 (Vocos), 2e-5 of the output's scale
(HiFi-GAN, BigVGAN)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.data import CodecDataModule
from codecgan.models import (
    BigVGANGenerator,
    BigVGANMultiResolutionDiscriminator,
    DiscriminatorSet,
    HiFiGANGenerator,
    HiFiGANMultiPeriodDiscriminator,
    HiFiGANMultiScaleDiscriminator,
    VocosGenerator,
    VocosMelSpectrogram,
    VocosMultiPeriodDiscriminator,
    VocosMultiResolutionDiscriminator,
)
from codecgan.models.vocos_checkpoint import from_vocos_state_dict
from codecgan.vocoder_module import VocoderGAN
from tests.models.test_bigvgan_reference import RECORD as BIGVGAN
from tests.models.test_bigvgan_reference import assert_close_to_scale, fill
from tests.models.test_hifigan_reference import RECORD as HIFIGAN
from tests.models.test_vocos_reference import FIXTURES, TOLERANCE, tiny_parts

VOCOS_FILE = FIXTURES / "pytorch_model.bin"


@pytest.fixture(scope="module")
def vocos_record() -> dict:
    return torch.load(FIXTURES / "tiny.pt", weights_only=True)


def small_discriminator() -> DiscriminatorSet:
    return DiscriminatorSet(
        [
            VocosMultiPeriodDiscriminator(periods=(2, 3), channels=(4, 4, 4, 4, 4)),
            VocosMultiResolutionDiscriminator(window_lengths=(256, 128), channels=4),
        ]
    )


def vocoder(generator, init_from: Path, discriminator=None, mel=None, sample_rate: int = 16000, **options):
    """A VocoderGAN started from ``init_from`` (its ``setup("fit")`` run, as ``fit`` runs it)."""
    if mel is None:  # a stand-in front-end: these tests feed the fixtures' mels to the generator
        bands = generator.conv_pre.parametrizations.weight.original1.shape[1]  # HiFi-GAN's and BigVGAN's num_mels
        mel = VocosMelSpectrogram(sample_rate, n_fft=1024, hop_length=generator.hop_length, n_mels=bands)
    module = VocoderGAN(
        generator, discriminator or small_discriminator(), mel, sample_rate, init_from=str(init_from), **options
    )
    module.setup("fit")
    return module


def fixture_config(entry: dict) -> dict:
    return {**entry["config"], "resblock": int(entry["config"]["resblock"])}


def built(cls, entry: dict, **overrides):
    """A HiFi-GAN or BigVGAN generator of the fixture's settings (and ``overrides``), with its ``hop_length``."""
    config = {**fixture_config(entry), **overrides}
    generator = cls(**config)
    generator.hop_length = math.prod(config["upsample_rates"])  # samples per mel frame
    return generator


def flat(network: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in network.parameters()]).clone()


# ------------------------------------------------------------------------------------------------- Vocos
def vocos_vocoder(record: dict, **options) -> VocoderGAN:
    mel, generator = tiny_parts(record, "center")
    return vocoder(generator, options.pop("init_from", VOCOS_FILE), mel=mel, sample_rate=24000, **options)


def test_a_vocos_pytorch_model_bin_starts_the_generator_and_the_discriminator_starts_fresh(vocos_record: dict):
    mel, generator = tiny_parts(vocos_record, "center")
    module = VocoderGAN(generator, small_discriminator(), mel, 24000, init_from=str(VOCOS_FILE))
    fresh = flat(module.discriminator)
    module.setup("fit")
    with torch.no_grad():
        audio = module.generator(module.mel_spectrogram(vocos_record["audio"]))
    torch.testing.assert_close(audio, vocos_record["generators"]["center"]["audio_out"], **TOLERANCE)
    assert torch.equal(flat(module.discriminator), fresh)


@pytest.mark.parametrize(
    ("generator_options", "mel_options", "sample_rate", "message"),
    [
        (
            {"dim": 16},
            {},
            24000,
            r"dim is 32 in the file and 16 in the config \(model\.init_args\.generator\.init_args\.dim\)",
        ),
        (
            {},
            {"n_fft": 512},
            24000,
            r"n_fft is 256 in the file and 512 in the config \(model\.init_args\.mel_spectrogram\.init_args\.n_fft\)",
        ),
        (
            {},
            {"sample_rate": 16000},
            16000,
            r"filterbank \(feature_extractor\.mel_spec\.mel_scale\.fb\) is that of 24000 Hz and the config's "
            r"sample rate is 16000 Hz \(data\.init_args\.sample_rate and ",
        ),
    ],
)
def test_a_vocos_file_of_other_settings_is_refused_naming_the_key_and_both_values(
    vocos_record: dict, generator_options: dict, mel_options: dict, sample_rate: int, message: str
):
    config = vocos_record["config"]
    generator_settings = {
        "n_mels": config["n_mels"],
        "dim": config["dim"],
        "intermediate_dim": config["intermediate_dim"],
        "num_layers": config["num_layers"],
        "n_fft": config["n_fft"],
        "hop_length": config["hop_length"],
    }
    mel_settings = {"sample_rate": 24000, "n_fft": 256, "hop_length": 64, "n_mels": 32}
    generator = VocosGenerator(**{**generator_settings, **generator_options})
    mel = VocosMelSpectrogram(**{**mel_settings, **mel_options})
    with pytest.raises(ConfigError, match=message):
        vocoder(generator, VOCOS_FILE, mel=mel, sample_rate=sample_rate)


# ---------------------------------------------------------------------------------------------- HiFi-GAN
def hifigan_generator_file(folder: Path, step: str = "00000100") -> tuple[Path, dict]:
    entry = HIFIGAN["generators"]["resblock1"]
    state = fill.filled_parameters(entry["keys"], entry["seed"], entry["gain"])
    path = folder / f"g_{step}"
    torch.save({"generator": state}, path)  # as HiFi-GAN's train.py saves it
    return path, entry


def hifigan_discriminator_state() -> tuple[dict, dict]:
    """HiFi-GAN's MPD layout (BigVGAN's fixture: periods 2, 3, 5 at 1/8 of the channels) and its first MSD scale
    (spectral-normed, with its power-iteration vectors), under HiFi-GAN's keys."""
    mpd_entry = BIGVGAN["mpd"]
    mpd = fill.filled_parameters(mpd_entry["keys"], mpd_entry["seed"])
    msd_entry = HIFIGAN["msd"]
    scale = fill.filled_parameters(msd_entry["keys"][0], msd_entry["seed"])
    scale.update(msd_entry["spectral_norm_buffers"][0])
    return mpd, {f"discriminators.0.{key}": value for key, value in scale.items()}


def hifigan_discriminators() -> DiscriminatorSet:
    config = BIGVGAN["discriminator_config"]
    mpd = HiFiGANMultiPeriodDiscriminator(config["mpd_reshapes"], config["discriminator_channel_mult"])
    return DiscriminatorSet([mpd, HiFiGANMultiScaleDiscriminator(scales=1)])


def test_a_hifigan_generator_file_alone_starts_the_generator(tmp_path: Path):
    path, entry = hifigan_generator_file(tmp_path)
    module = vocoder(built(HiFiGANGenerator, entry), path)
    with torch.no_grad():
        output = module.generator(HIFIGAN["mel"])
    assert_close_to_scale(output, entry["output"], rtol=2e-5)


@pytest.mark.slow  # HiFi-GAN's MSD scale has a fixed 10 M parameters: 1 to 1.7 s on a shared core
def test_a_hifigan_do_file_beside_the_generator_file_starts_mpd_and_msd(tmp_path: Path):
    path, entry = hifigan_generator_file(tmp_path)
    mpd, msd = hifigan_discriminator_state()
    optimizer = {"state": {}, "param_groups": []}
    torch.save(
        {"mpd": mpd, "msd": msd, "optim_g": optimizer, "optim_d": optimizer, "steps": 100, "epoch": 1},
        tmp_path / "do_00000100",
    )
    module = vocoder(built(HiFiGANGenerator, entry), path, discriminator=hifigan_discriminators())
    loaded_mpd, loaded_msd = module.discriminator.discriminators
    with torch.no_grad():
        mpd_real = loaded_mpd.eval()(BIGVGAN["audio"])
        msd_real = loaded_msd.eval()(HIFIGAN["audio"])
    for ours, theirs in zip(mpd_real, BIGVGAN["mpd"]["real_logits"]):
        assert_close_to_scale(ours[-1].flatten(1), theirs.flatten(1), rtol=2e-5)
    assert_close_to_scale(msd_real[0][-1].flatten(1), HIFIGAN["msd"]["real_logits"][0], rtol=2e-5)


def test_a_hifigan_do_file_needs_hifigans_discriminators_in_the_config(tmp_path: Path):
    path, entry = hifigan_generator_file(tmp_path)
    torch.save({"mpd": {}, "msd": {}}, tmp_path / "do_00000100")  # refused before its weights are read
    with pytest.raises(
        ConfigError,
        match=r"whose 'mpd' loads into a HiFiGANMultiPeriodDiscriminator; .* is "
        r"\['VocosMultiPeriodDiscriminator', 'VocosMultiResolutionDiscriminator'\]",
    ):
        vocoder(built(HiFiGANGenerator, entry), path)


def test_a_hifigan_generator_of_other_settings_is_refused_naming_both_values(tmp_path: Path):
    path, entry = hifigan_generator_file(tmp_path)
    generator = built(HiFiGANGenerator, entry, upsample_initial_channel=16)
    with pytest.raises(
        ConfigError,
        match=r"upsample_initial_channel is 32 in the file and 16 in the config "
        r"\(model\.init_args\.generator\.init_args\.upsample_initial_channel\)",
    ):
        vocoder(generator, path)


# ----------------------------------------------------------------------------------------------- BigVGAN
def bigvgan_files(folder: Path, discriminators: bool) -> tuple[Path, dict]:
    entry = BIGVGAN["generators"]["amp1_snakebeta"]
    state = fill.filled_parameters(entry["keys"], entry["seed"], entry["gain"], entry["snake_offset"])
    path = folder / "bigvgan_generator.pt"
    torch.save({"generator": state}, path)  # as BigVGAN's train.py saves it
    if discriminators:
        mpd, mrd = (fill.filled_parameters(BIGVGAN[n]["keys"], BIGVGAN[n]["seed"]) for n in ("mpd", "mrd"))
        mrd["discriminators.0.spec_fn.window"] = torch.hann_window(256)  # a buffer that codecgan computes
        torch.save(
            {"mpd": mpd, "mrd": mrd, "optim_g": {}, "optim_d": {}, "steps": 5, "epoch": 0},
            folder / "bigvgan_discriminator_optimizer.pt",
        )
    return path, entry


def bigvgan_discriminators() -> DiscriminatorSet:
    config = BIGVGAN["discriminator_config"]
    return DiscriminatorSet(
        [
            HiFiGANMultiPeriodDiscriminator(config["mpd_reshapes"], config["discriminator_channel_mult"]),
            BigVGANMultiResolutionDiscriminator(config["resolutions"], config["discriminator_channel_mult"]),
        ]
    )


def test_a_bigvgan_generator_of_v1s_options_is_refused_naming_them(tmp_path: Path):
    path, entry = bigvgan_files(tmp_path, discriminators=False)
    generator = built(BigVGANGenerator, entry, activation="snake", use_bias_at_final=True, resblock=2)
    with pytest.raises(ConfigError) as error:
        vocoder(generator, path)
    for setting, in_file, configured in (
        ("resblock", 1, 2),
        ("activation", "snakebeta", "snake"),
        ("use_bias_at_final", False, True),
    ):
        expected = f"{setting} is {in_file} in the file and {configured} in the config "
        assert expected + f"(model.init_args.generator.init_args.{setting})" in str(error.value)


@pytest.mark.parametrize("discriminators", [False, True])
def test_a_bigvgan_generator_file_starts_the_generator_and_its_discriminator_file_mpd_and_mrd(
    tmp_path: Path, discriminators: bool
):
    path, entry = bigvgan_files(tmp_path, discriminators)
    module = vocoder(built(BigVGANGenerator, entry), path, discriminator=bigvgan_discriminators())
    with torch.no_grad():
        output = module.generator.eval()(BIGVGAN["mel"])
        real = module.discriminator.eval()(BIGVGAN["audio"])
    assert_close_to_scale(output, entry["output"], rtol=2e-5)
    expected = BIGVGAN["mpd"]["real_logits"] + BIGVGAN["mrd"]["real_logits"]
    matches = [
        float((ours[-1].flatten(1) - theirs.flatten(1)).abs().max()) <= 2e-5 * float(theirs.abs().max())
        for ours, theirs in zip(real, expected)
    ]
    assert matches == [discriminators] * len(expected)  # a fresh discriminator without the file


# ---------------------------------------------------------------------------------------- other files
def test_a_file_of_another_format_is_refused_naming_what_it_holds(tmp_path: Path, vocos_record: dict):
    path, _ = hifigan_generator_file(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"holds a HiFi-GAN generator file \(g_XXXXXXXX\), which initialises a "
        r"codecgan\.models\.HiFiGANGenerator; this run's generator .* is a VocosGenerator",
    ):
        vocos_vocoder(vocos_record, init_from=path)
    torch.save({"mpd": {}, "msd": {}, "steps": 100}, tmp_path / "do_00000100")
    with pytest.raises(ConfigError, match=r"holds discriminators .*not a generator"):
        vocos_vocoder(vocos_record, init_from=tmp_path / "do_00000100")
    encodec_features = dict(torch.load(VOCOS_FILE, weights_only=True))
    for key in [key for key in encodec_features if key.startswith("feature_extractor.")]:
        encodec_features[key.replace("mel_spec", "encodec")] = encodec_features.pop(key)
    torch.save(encodec_features, tmp_path / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"without a mel front-end .* charactr/vocos-encodec-24khz"):
        vocos_vocoder(vocos_record, init_from=tmp_path / "pytorch_model.bin")
    torch.save({"model": {"weight": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"is none of the accepted files .*top-level keys are \['model'\]"):
        vocos_vocoder(vocos_record, init_from=tmp_path / "other.pt")


# ------------------------------------------------------------------------------------------ fine-tuning
class GeneratorRecorder(L.Callback):
    """The generator's and discriminator's weights after setup and after each training batch."""

    def __init__(self) -> None:
        self.generator: list[torch.Tensor] = []
        self.discriminator: list[torch.Tensor] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.on_train_batch_end(trainer, pl_module, None, None, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.generator.append(flat(pl_module.generator))
        self.discriminator.append(flat(pl_module.discriminator))


@pytest.mark.slow  # a 4-batch fit: about 3 s on one core
def test_a_fit_from_a_vocos_file_warms_up_the_discriminator_then_trains_both(tmp_path: Path, vocos_record: dict):
    mel, generator = tiny_parts(vocos_record, "center")
    module = VocoderGAN(
        generator, small_discriminator(), mel, 24000, init_from=str(VOCOS_FILE), discriminator_warmup_steps=2
    )
    data = CodecDataModule(24000, crop_seconds=0.128, batch_size=2, synthetic_items=(4, 2, 2), synthetic_seconds=0.2)
    recorder = GeneratorRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        max_steps=4,
        default_root_dir=tmp_path,
        callbacks=[recorder],
    )
    trainer.fit(module, data)
    tiny = tiny_parts(vocos_record, "center")[1]
    tiny.load_state_dict(from_vocos_state_dict(torch.load(VOCOS_FILE, weights_only=True)))
    assert torch.equal(recorder.generator[0], flat(tiny)), "after setup: the file's weights"
    changed = [
        [not torch.equal(before, after) for before, after in zip(weights, weights[1:])]
        for weights in (recorder.generator, recorder.discriminator)
    ]
    assert changed == [[False, False, True, True], [True, True, True, True]]


def test_a_discriminator_file_with_more_sub_discriminators_than_the_config_is_refused(tmp_path: Path):
    path, entry = bigvgan_files(tmp_path, discriminators=True)
    saved = torch.load(tmp_path / "bigvgan_discriminator_optimizer.pt", weights_only=True)
    saved["mpd"]["discriminators.3.conv_post.bias"] = torch.zeros(1)  # a fourth period
    torch.save(saved, tmp_path / "bigvgan_discriminator_optimizer.pt")
    with pytest.raises(
        ConfigError,
        match=r"'mpd' discriminator weights .* keys not in the config's "
        r"\['discriminators\.3\.conv_post\.bias'\]",
    ):
        vocoder(built(BigVGANGenerator, entry), path, discriminator=bigvgan_discriminators())
