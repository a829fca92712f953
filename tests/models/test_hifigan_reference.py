"""HiFi-GAN's generator, discriminators and losses against what HiFi-GAN's own `models.py` computed
(jik876/hifi-gan at 4769534, tests/fixtures/hifigan).

The fixture stores HiFi-GAN's parameter names and shapes (and spectral norm's power-iteration vectors); both sides
fill the parameters with `tests/fixtures/bigvgan/fill.py`'s deterministic values, and codecgan's modules receive
them through `from_hifigan_state_dict`. HiFi-GAN's mel front-end does not run on current librosa and torch; its
modern copy in BigVGAN is compared in test_bigvgan_reference.py. Tolerances: docs/fidelity.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from codecgan.losses.adversarial import discriminator_loss, generator_adversarial_loss
from codecgan.losses.vocoder import vocoder_feature_loss
from codecgan.models import (
    HIFIGAN_V1,
    HIFIGAN_V2,
    HIFIGAN_V3,
    HiFiGANGenerator,
    HiFiGANMultiPeriodDiscriminator,
    HiFiGANMultiScaleDiscriminator,
    HiFiGANPeriodDiscriminator,
    HiFiGANScaleDiscriminator,
    from_hifigan_state_dict,
)
from codecgan.models.bigvgan_discriminators import HIFIGAN_PERIOD_CHANNELS
from codecgan.models.hifigan_discriminators import average_pool

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _load_fill():
    spec = importlib.util.spec_from_file_location("vocoder_fill", FIXTURES / "bigvgan" / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fill = _load_fill()
RECORD = torch.load(FIXTURES / "hifigan" / "small.pt", weights_only=True)


def load_filled(module: torch.nn.Module, keys: list, seed: int, gain: float = 1.0, buffers: dict | None = None):
    values = fill.filled_parameters(keys, seed, gain)
    values.update(buffers or {})
    state = module.state_dict()
    renamed = from_hifigan_state_dict(values)
    assert set(renamed) <= set(state), sorted(set(renamed) - set(state))
    state.update(renamed)
    module.load_state_dict(state)
    return module.eval()


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Every element within `rtol` of the expected tensor's largest magnitude."""
    scale = expected.abs().max().clamp(min=1e-12)
    error = float((actual - expected).abs().max() / scale)
    assert error <= rtol, f"max error {error:.3g} of the scale {float(scale):.3g} exceeds {rtol}"


@pytest.mark.parametrize("name", ["resblock1", "resblock2"])
def test_generator_output_equals_hifigans(name):
    entry = RECORD["generators"][name]
    config = {**entry["config"], "resblock": int(entry["config"]["resblock"])}
    model = load_filled(HiFiGANGenerator(**config), entry["keys"], entry["seed"], entry["gain"])
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]
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


SEEDED = torch.load(FIXTURES / "hifigan" / "seeded_init.pt", weights_only=True)


@pytest.mark.parametrize("name", ["resblock1", "resblock2"])
def test_seeded_generator_starts_from_hifigans_initial_weights(name):
    """After `torch.manual_seed(seed)`, as HiFi-GAN's train.py, the build is bit-identical to HiFi-GAN's (the same
    draws in the same order, `init_weights`' included), and leaves the global RNG where HiFi-GAN's does."""
    entry = SEEDED["generators"][name]
    config = {**entry["config"], "resblock": int(entry["config"]["resblock"])}
    torch.manual_seed(entry["seed"])
    state = HiFiGANGenerator(**config).state_dict()
    next_draws = torch.randn(8)
    expected = from_hifigan_state_dict(entry["state"])
    assert set(expected) == set(state)
    assert_seeded_weights_equal(state, expected)
    assert torch.equal(next_draws, entry["next_draws"])


def fingerprint(value: torch.Tensor) -> torch.Tensor:
    """As the fixture's: sum, Σ|x|, Σx² (float64) and the first 8 elements."""
    flat = value.detach().double().flatten()
    return torch.cat([torch.stack([flat.sum(), flat.abs().sum(), flat.square().sum()]), flat[:8]])


@pytest.mark.parametrize(
    "name, build",
    [
        ("MultiPeriodDiscriminator", HiFiGANMultiPeriodDiscriminator),
        ("MultiScaleDiscriminator", HiFiGANMultiScaleDiscriminator),
    ],
)
def test_seeded_discriminator_starts_from_hifigans_initial_parameters(name, build):
    """Full size (41 M and 30 M parameters), so the fixture holds fingerprints. Spectral norm's vectors u, v are not
    compared: torch's parametrization power-iterates 15 times at build, HiFi-GAN's hook does not (the draws match)."""
    entry = SEEDED["discriminators"][name]
    torch.manual_seed(0)
    model = build()
    next_draws = torch.randn(8)
    expected = from_hifigan_state_dict(entry["parameters"])
    actual = {key: fingerprint(value) for key, value in model.named_parameters()}
    assert set(expected) == set(actual)
    exact = torch.backends.cpu.get_cpu_capability() != "DEFAULT"
    for key, value in expected.items():
        if exact:  # the same float32 elements; float64 sums of them agree to summation order
            assert torch.equal(actual[key][3:], value[3:]), key
            torch.testing.assert_close(actual[key][:3], value[:3], rtol=1e-12, atol=0.0)
        else:  # `uniform_`'s default kernel rounds differently, see `assert_seeded_weights_equal`
            assert_close_to_scale(actual[key][3:], value[3:], rtol=1e-6)
            # Σx against Σ|x| (a sum near 0 has no relative error to speak of); Σx² doubles the relative error
            # (observed: 5.6e-7 on a one-element bias, 1.1e-6 on its square)
            scale = value[[1, 1, 2]] * torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)
            assert bool(((actual[key][:3] - value[:3]).abs() <= 1e-6 * scale).all()), key
    assert torch.equal(next_draws, entry["next_draws"])


def test_released_generators_and_discriminators_have_hifigans_parameter_counts():
    released = RECORD["released_parameters"]
    for version, config in (("v1", HIFIGAN_V1), ("v2", HIFIGAN_V2), ("v3", HIFIGAN_V3)):
        assert sum(p.numel() for p in HiFiGANGenerator(**config).parameters()) == released[version]
    assert released["v1"] == 13_936_130
    # The sub-discriminators of a set share one layout whatever their period, so one period discriminator built on
    # the CPU stands for five (weight norm on the "meta" device is slower than building for real).
    period = HiFiGANMultiPeriodDiscriminator(periods=(2,)).discriminators[0]
    assert 5 * sum(p.numel() for p in period.parameters()) == released["mpd"] == 41_105_770
    # MSD: one spectral-normed scale (weight_orig per weight) and two weight-normed ones (g and v per weight).
    spectral = sum(p.numel() for p in HiFiGANScaleDiscriminator(use_spectral_norm=True).parameters())
    weight_normed = sum(p.numel() for p in HiFiGANScaleDiscriminator().parameters())
    assert spectral + 2 * weight_normed == released["msd"] == 29_618_821


def sub_discriminator(name: str, index: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """Sub-discriminator `index` of HiFi-GAN's MPD (periods 2, 3, 5, 7, 11) or MSD, with the fixture's values,
    and the real and fake audio it sees."""
    entry = RECORD[name]
    real, fake = RECORD["audio"], RECORD["generators"]["resblock1"]["output"]
    if name == "mpd":
        module = HiFiGANPeriodDiscriminator((2, 3, 5, 7, 11)[index], HIFIGAN_PERIOD_CHANNELS)
    else:
        module = HiFiGANScaleDiscriminator(use_spectral_norm=index == 0)
        for _ in range(index):
            real, fake = average_pool(real), average_pool(fake)
    buffers = entry["spectral_norm_buffers"][index]
    return load_filled(module, entry["keys"][index], entry["seed"] + index, buffers=buffers), real, fake


def assert_features_equal(outputs: list[torch.Tensor], logits: torch.Tensor, expected: dict) -> None:
    assert_close_to_scale(outputs[-1].flatten(1), logits, rtol=2e-5)
    fingerprint = fill.fingerprints(outputs)
    scale = expected["sums"][:, 1:2].clamp(min=1e-12)  # sum of |x| per map
    assert float(((fingerprint["sums"] - expected["sums"]).abs() / scale).max()) < 1e-5


@pytest.mark.parametrize("name, index", [("mpd", i) for i in range(5)] + [("msd", i) for i in range(3)])
def test_each_sub_discriminator_equals_hifigans(name, index):
    entry = RECORD[name]
    model, real_audio, fake_audio = sub_discriminator(name, index)
    with torch.no_grad():
        real, fake = model(real_audio), model(fake_audio)
    assert [list(m.shape) for m in real] == entry["feature_shapes"][index]
    assert_features_equal(real, entry["real_logits"][index], entry["real_features"][index])
    assert_features_equal(fake, entry["fake_logits"][index], entry["fake_features"][index])


@pytest.mark.slow  # the full MPD and MSD (71 M parameters) and their losses: 2 to 4 s each on a shared CPU
@pytest.mark.parametrize("name", ["mpd", "msd"])
def test_discriminator_sets_and_losses_equal_hifigans(name):
    entry = RECORD[name]
    model = HiFiGANMultiPeriodDiscriminator() if name == "mpd" else HiFiGANMultiScaleDiscriminator()
    for index, sub in enumerate(model.discriminators):
        load_filled(sub, entry["keys"][index], entry["seed"] + index, buffers=entry["spectral_norm_buffers"][index])
    real_audio, fake_audio = RECORD["audio"], RECORD["generators"]["resblock1"]["output"]
    with torch.no_grad():
        real, fake = model(real_audio), model(fake_audio)
    for index in range(len(real)):
        assert_features_equal(real[index], entry["real_logits"][index], entry["real_features"][index])
        assert_features_equal(fake[index], entry["fake_logits"][index], entry["fake_features"][index])
    torch.testing.assert_close(discriminator_loss(real, fake), entry["discriminator_loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(generator_adversarial_loss(fake), entry["generator_loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(vocoder_feature_loss(real, fake), entry["feature_loss"], rtol=1e-5, atol=0)
