"""BigVGAN's generator, discriminators and losses against what `bigvgan` 2.4.1 computed (tests/fixtures/bigvgan).

The fixture stores BigVGAN's parameter names and shapes; both sides fill them with `fill.py`'s deterministic
values, and codecgan's modules receive them through `from_bigvgan_state_dict`. Tolerances were measured under
AVX-512, AVX2 and the default (scalar) ATen kernels; the largest error of each comparison is in docs/fidelity.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from codecgan.losses.adversarial import discriminator_loss, generator_adversarial_loss
from codecgan.losses.mel import MultiScaleMelLoss
from codecgan.losses.vocoder import HiFiGANLogMel, HiFiGANMelLoss, vocoder_feature_loss
from codecgan.models import (
    BigVGANGenerator,
    BigVGANMultiBandDiscriminator,
    BigVGANMultiResolutionDiscriminator,
    HiFiGANMultiPeriodDiscriminator,
    MultiScaleSubbandCQTDiscriminator,
    from_bigvgan_state_dict,
    weight_norm_conv1d,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bigvgan"


def _load_fill():
    spec = importlib.util.spec_from_file_location("bigvgan_fill", FIXTURES / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fill = _load_fill()
RECORD = torch.load(FIXTURES / "small.pt", weights_only=True)


def load_filled(module: torch.nn.Module, entry: dict, gain: float = 1.0, snake_offset: float = 1.0):
    values = fill.filled_parameters(entry["keys"], entry["seed"], gain, snake_offset)
    state = module.state_dict()
    renamed = from_bigvgan_state_dict(values)
    assert set(renamed) <= set(state), sorted(set(renamed) - set(state))
    assert sum(v.numel() for v in renamed.values()) == sum(p.numel() for p in module.parameters())
    state.update(renamed)
    module.load_state_dict(state)
    return module.eval()


def generator(name: str) -> BigVGANGenerator:
    entry = RECORD["generators"][name]
    config = {**entry["config"], "resblock": int(entry["config"]["resblock"])}
    return load_filled(BigVGANGenerator(**config), entry, entry["gain"], entry["snake_offset"])


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Every element within `rtol` of the expected tensor's largest magnitude."""
    scale = expected.abs().max().clamp(min=1e-12)
    error = float((actual - expected).abs().max() / scale)
    assert error <= rtol, f"max error {error:.3g} of the scale {float(scale):.3g} exceeds {rtol}"


@pytest.mark.parametrize("name", ["amp1_snakebeta", "amp2_snake"])
def test_generator_output_equals_bigvgans(name):
    entry = RECORD["generators"][name]
    model = generator(name)
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]
    block = model.resblocks[0].activations[0]
    assert torch.equal(block.upsample.filter, entry["upsample_filter"])
    assert torch.equal(block.downsample.lowpass.filter, entry["downsample_filter"])
    with torch.no_grad():
        output = model(RECORD["mel"])
    assert output.shape == entry["output"].shape
    assert_close_to_scale(output, entry["output"], rtol=2e-5)


def assert_seeded_weights_equal(state: dict, expected: dict) -> None:
    """Bit-identical with vectorised kernels (the fixture's AVX-512, and AVX2); with ATEN_CPU_CAPABILITY=default,
    `uniform_` rounds the same draws differently, up to 2e-7 of a tensor's largest magnitude (a mis-ordered draw
    differs by O(1) of it)."""
    exact = torch.backends.cpu.get_cpu_capability() != "DEFAULT"
    for key, value in expected.items():
        if exact:
            assert torch.equal(state[key], value), key
        else:
            assert_close_to_scale(state[key], value, rtol=1e-6)


SEEDED = torch.load(FIXTURES / "seeded_init.pt", weights_only=True)


@pytest.mark.parametrize("name", ["amp1_snakebeta", "amp2_snake"])
def test_seeded_generator_starts_from_bigvgans_initial_weights(name):
    """After `torch.manual_seed(seed)`, as BigVGAN's train.py, the build is bit-identical to BigVGAN's (the same
    draws in the same order, `init_weights`' included), and leaves the global RNG where BigVGAN's does."""
    entry = SEEDED["generators"][name]
    config = {**entry["config"], "resblock": int(entry["config"]["resblock"])}
    torch.manual_seed(entry["seed"])
    model = BigVGANGenerator(**config)
    next_draws = torch.randn(8)
    state = model.state_dict()
    expected = from_bigvgan_state_dict(entry["state"])
    assert set(expected) <= set(state), sorted(set(expected) - set(state))
    assert {key for key, _ in model.named_parameters()} <= set(expected)
    assert_seeded_weights_equal(state, expected)
    assert torch.equal(next_draws, entry["next_draws"])


@pytest.mark.slow  # builds the 112 M-parameter generator: 2.5 s alone, more on a shared CPU
def test_released_v2_generators_have_bigvgans_parameter_counts():
    released = RECORD["released_parameters"]
    model = BigVGANGenerator()  # bigvgan_v2_24khz_100band_256x (CPU: weight norm on "meta" is slower)
    total = sum(p.numel() for p in model.parameters())
    assert total == released["bigvgan_v2_24khz_100band_256x"] == 112_446_289
    # The 22 kHz config differs only in the mel bands, which only the first conv sees.
    first_conv = sum(p.numel() for p in model.conv_pre.parameters())
    conv_80_bands = sum(p.numel() for p in weight_norm_conv1d(80, 1536, 7, padding=3).parameters())
    assert total - first_conv + conv_80_bands == released["bigvgan_v2_22khz_80band_256x"] == 112_231_249
    with torch.device("meta"):
        mpd, mbd = HiFiGANMultiPeriodDiscriminator(), BigVGANMultiBandDiscriminator()
    assert sum(p.numel() for p in mpd.parameters()) == released["bigvgan_v2_24khz_100band_256x/mpd"] == 41_105_770
    assert sum(p.numel() for p in mbd.parameters()) == released["bigvgan_v2_24khz_100band_256x/mbd"] == 1_413_990


def discriminators() -> dict[str, torch.nn.Module]:
    config = RECORD["discriminator_config"]
    return {
        "mpd": HiFiGANMultiPeriodDiscriminator(config["mpd_reshapes"], config["discriminator_channel_mult"]),
        "mbd": BigVGANMultiBandDiscriminator(config["mbd_fft_sizes"]),
        "mrd": BigVGANMultiResolutionDiscriminator(config["resolutions"], config["discriminator_channel_mult"]),
    }


@pytest.mark.parametrize("name", ["mpd", "mbd", "mrd"])
def test_discriminator_features_and_losses_equal_bigvgans(name):
    entry = RECORD[name]
    model = load_filled(discriminators()[name], entry)
    real_audio, fake_audio = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    with torch.no_grad():
        real, fake = model(real_audio), model(fake_audio)
    assert [[list(m.shape) for m in maps] for maps in real] == entry["feature_shapes"]
    for ours, theirs in zip(real, entry["real_logits"]):
        assert_close_to_scale(ours[-1].flatten(1), theirs.flatten(1), rtol=2e-5)
    for ours, theirs in zip(fake, entry["fake_logits"]):
        assert_close_to_scale(ours[-1].flatten(1), theirs.flatten(1), rtol=2e-5)
    for outputs, label in ((real, "real"), (fake, "fake")):
        ours = fill.fingerprints([m for maps in outputs for m in maps])
        expected = entry[f"{label}_features"]
        scale = expected["sums"][:, 1:2].clamp(min=1e-12)  # sum of |x| per map
        assert float(((ours["sums"] - expected["sums"]).abs() / scale).max()) < 1e-5
    torch.testing.assert_close(discriminator_loss(real, fake), entry["discriminator_loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(generator_adversarial_loss(fake), entry["generator_loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(vocoder_feature_loss(real, fake), entry["feature_loss"], rtol=1e-5, atol=0)


def test_cqt_discriminator_features_and_losses_equal_bigvgans():
    entry, config = RECORD["cqtd"], RECORD["cqtd_config"]
    model = MultiScaleSubbandCQTDiscriminator(
        config["sampling_rate"],
        config["cqtd_hop_lengths"],
        config["cqtd_n_octaves"],
        config["cqtd_bins_per_octaves"],
        config["cqtd_filters"],
        config["cqtd_max_filters"],
        config["cqtd_filters_scale"],
        config["cqtd_dilations"],
    )
    load_filled(model, entry)
    # The CQT kernels, low-pass filters and resampling kernels, computed by codecgan as nnAudio computes them.
    state = model.state_dict()
    buffers = fill.fingerprints([state[name] for name in entry["buffer_names"]])
    scale = entry["buffers"]["sums"][:, 1:2].clamp(min=1e-12)
    assert float(((buffers["sums"] - entry["buffers"]["sums"]).abs() / scale).max()) < 1e-6
    real_audio, fake_audio = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    with torch.no_grad():
        real, fake = model(real_audio), model(fake_audio)
    assert [[list(m.shape) for m in maps[:-1]] for maps in real] == entry["feature_shapes"]
    for outputs, label in ((real, "real"), (fake, "fake")):
        for ours, theirs in zip(outputs, entry[f"{label}_logits"]):
            assert_close_to_scale(ours[-1], theirs, rtol=2e-5)
        fingerprint = fill.fingerprints([m for maps in outputs for m in maps[:-1]])
        expected = entry[f"{label}_features"]
        assert float(((fingerprint["sums"] - expected["sums"]).abs() / expected["sums"][:, 1:2]).max()) < 1e-5
    torch.testing.assert_close(discriminator_loss(real, fake), entry["discriminator_loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(generator_adversarial_loss(fake), entry["generator_loss"], rtol=1e-5, atol=0)
    ours = vocoder_feature_loss(real, fake, include_logits=False)
    torch.testing.assert_close(ours, entry["feature_loss"], rtol=1e-5, atol=0)


def test_mel_losses_equal_bigvgans():
    config = RECORD["mel_config"]
    audio, fake = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    log_mel = HiFiGANLogMel(**config, f_max=None)
    assert_close_to_scale(log_mel(audio), RECORD["mel"], rtol=1e-6)
    torch.testing.assert_close(HiFiGANMelLoss(**config)(fake, audio), RECORD["mel_l1_loss"], rtol=1e-5, atol=0)
    multiscale = MultiScaleMelLoss(config["sample_rate"])
    torch.testing.assert_close(multiscale(fake, audio), RECORD["multiscale_mel_loss"], rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"upsample_rates": (4, 4), "upsample_kernel_sizes": (8,)}, "upsample_kernel_sizes"),
        ({"resblock_kernel_sizes": (3, 7), "resblock_dilation_sizes": ((1, 3, 5),)}, "resblock_dilation_sizes"),
        ({"resblock": 3}, "resblock must be 1 or 2"),
        ({"activation": "relu"}, "activation must be one of 'snake', 'snakebeta'"),
    ],
)
def test_inconsistent_generator_settings_are_named(kwargs, message):
    small = {"num_mels": 4, "upsample_initial_channel": 8, "upsample_rates": (2,), "upsample_kernel_sizes": (4,)}
    with pytest.raises(ValueError, match=message):
        BigVGANGenerator(**{**small, **kwargs})


def test_checkpoint_file_layout_is_unwrapped_and_renamed():
    state = {"generator": {"ups.0.0.weight_g": torch.ones(1), "mbd.band_convs.0.0.bias": torch.zeros(1)}}
    assert list(from_bigvgan_state_dict(state)) == [
        "ups.0.parametrizations.weight.original0",
        "mbd.band_stacks.0.0.bias",
    ]


def test_released_cqt_discriminator_has_bigvgans_parameter_count():
    released = RECORD["released_parameters"]["bigvgan_v2_24khz_100band_256x/cqtd"]
    assert sum(p.numel() for p in MultiScaleSubbandCQTDiscriminator(24000).parameters()) == released == 4_454_304
