"""codecgan's MetricGAN+ against what SpeechBrain 1.1.2's own modules computed
(``tests/fixtures/metricgan_plus/``): same weights, same features, masks, audio, scores and losses.

Tolerances hold in float32 on any x86 CPU. Largest differences measured with AVX-512, AVX2
(``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``) and the default kernels (``ATEN_CPU_CAPABILITY=default``):
features 2.4e-7, mask 1.8e-7 (SpeechBrain packs the sequences, codecgan does not), enhanced log features 3.6e-7,
enhanced audio 3.0e-8, its features 7.2e-7, discriminator outputs 1.9e-9, losses 0; each tolerance is 5-50× that.
"""

from pathlib import Path

import pytest
import torch

from codecgan.losses.metricgan_plus import metricgan_plus_discriminator_loss, metricgan_plus_generator_loss
from codecgan.models.metricgan_plus import (
    MetricGANPlusDiscriminator,
    MetricGANPlusGenerator,
    from_speechbrain_state_dict,
)
from codecgan.models.metricgan_plus_features import enhance, metricgan_plus_features

FIXTURE = Path(__file__).parents[1] / "fixtures" / "metricgan_plus" / "metricgan_plus.pt"


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def seeded_generator_state(generator: MetricGANPlusGenerator) -> dict[str, torch.Tensor]:
    """The fixture's generator weights under SpeechBrain's keys, drawn as ``make_fixture.py`` draws them."""
    keys = {"blstm.rnn." + k: v.shape for k, v in generator.blstm.state_dict().items()} | {
        "linear1.weight": (300, 400),
        "linear1.bias": (300,),
        "linear2.weight": (257, 300),
        "linear2.bias": (257,),
        "Learnable_sigmoid.slope": (257,),
    }
    draw = torch.Generator().manual_seed(25)
    state = {}
    for name, shape in sorted(keys.items()):
        values = torch.rand(shape, generator=draw, dtype=torch.float32)
        state[name] = values * 1.5 + 0.5 if name.endswith("slope") else values * 0.2 - 0.1
    return state


@pytest.fixture(scope="module")
def models(reference: dict) -> tuple[MetricGANPlusGenerator, MetricGANPlusDiscriminator]:
    generator = MetricGANPlusGenerator().eval()
    state = seeded_generator_state(generator)
    assert {k: v.double().sum().item() for k, v in state.items()} == reference["generator_sums"]
    generator.load_state_dict(from_speechbrain_state_dict(state))
    discriminator = MetricGANPlusDiscriminator().eval()
    discriminator.load_state_dict(from_speechbrain_state_dict(reference["discriminator_state"]))
    return generator, discriminator


def test_parameter_counts_equal_speechbrains(reference: dict) -> None:
    counts = reference["parameter_counts"]
    assert sum(p.numel() for p in MetricGANPlusGenerator().parameters()) == counts["generator"] == 1_895_514
    assert sum(p.numel() for p in MetricGANPlusDiscriminator().parameters()) == counts["discriminator"] == 19_010


def test_seeded_initialisation_equals_speechbrains(reference: dict) -> None:
    """Same seed, same weights: xavier input-to-hidden, orthogonal hidden-to-hidden, zero biases, and
    spectral norm's u and v drawn in SpeechBrain's order. Bit-equal with AVX-512 and AVX2 kernels; the
    default kernels draw slightly other uniforms (measured: generator sums 1.0e-4 apart, sums of up to
    160,000 weights; discriminator weights 1.3e-7 apart)."""
    torch.manual_seed(0)
    generator = MetricGANPlusGenerator()
    torch.manual_seed(0)
    discriminator = MetricGANPlusDiscriminator()
    expected_generator = from_speechbrain_state_dict(reference["initial_generator_sums"])
    sums = {k: v.double().sum().item() for k, v in generator.state_dict().items()}
    assert sums.keys() == expected_generator.keys()
    for key, value in sums.items():
        assert value == pytest.approx(expected_generator[key], rel=0, abs=1e-3), key
    expected_discriminator = from_speechbrain_state_dict(reference["initial_discriminator_state"])
    assert discriminator.state_dict().keys() == expected_discriminator.keys()
    for key, value in discriminator.state_dict().items():
        torch.testing.assert_close(value, expected_discriminator[key], rtol=0, atol=1e-6, msg=key)


def test_features_equal_speechbrains(reference: dict) -> None:
    torch.testing.assert_close(metricgan_plus_features(reference["noisy"]), reference["noisy_feats"], rtol=0, atol=2e-6)
    torch.testing.assert_close(metricgan_plus_features(reference["clean"]), reference["clean_feats"], rtol=0, atol=2e-6)


def test_mask_and_enhanced_audio_equal_speechbrains(reference: dict, models) -> None:
    generator, _ = models
    with torch.no_grad():
        mask = generator(reference["noisy_feats"])
        enhanced_features, enhanced_wav = enhance(generator, reference["noisy"])
        enhanced_wav_features = metricgan_plus_features(enhanced_wav)
    torch.testing.assert_close(mask, reference["mask"], rtol=0, atol=2e-6)
    torch.testing.assert_close(enhanced_features, reference["enhanced_feats"], rtol=0, atol=4e-6)
    torch.testing.assert_close(enhanced_wav, reference["enhanced_wav"], rtol=0, atol=1e-6)
    torch.testing.assert_close(enhanced_wav_features, reference["enhanced_wav_feats"], rtol=0, atol=1e-5)


def test_discriminator_outputs_and_losses_equal_speechbrains(reference: dict, models) -> None:
    _, discriminator = models
    clean = reference["clean_feats"]
    with torch.no_grad():
        d_enh = discriminator(reference["enhanced_wav_feats"], clean)
        d_clean = discriminator(clean, clean)
        d_noisy = discriminator(reference["noisy_feats"], clean)
    for name, value in (("d_enh", d_enh), ("d_clean", d_clean), ("d_noisy", d_noisy)):
        torch.testing.assert_close(value, reference[name], rtol=0, atol=1e-7, msg=name)
    losses = {
        "loss_g": metricgan_plus_generator_loss(d_enh),
        "loss_d_clean": metricgan_plus_discriminator_loss(d_clean, 1.0),
        "loss_d_enh": metricgan_plus_discriminator_loss(d_enh, reference["q_enh"]),
        "loss_d_noisy": metricgan_plus_discriminator_loss(d_noisy, reference["q_noisy"]),
    }
    for name, value in losses.items():
        torch.testing.assert_close(value, reference[name], rtol=0, atol=1e-6, msg=name)


def test_discriminator_train_mode_equals_speechbrains(reference: dict) -> None:
    """Batch statistics and one spectral-norm power iteration, as in every step of the recipe."""
    discriminator = MetricGANPlusDiscriminator().train()
    discriminator.load_state_dict(from_speechbrain_state_dict(reference["discriminator_state"]))
    with torch.no_grad():
        d_enh = discriminator(reference["enhanced_wav_feats"], reference["clean_feats"])
    torch.testing.assert_close(d_enh, reference["d_enh_train"], rtol=0, atol=1e-7)


def test_gradients_equal_speechbrains(reference: dict) -> None:
    """One generator step's and one discriminator step's gradients, both models in train mode as the
    recipe's ``fit_batch`` leaves them. Largest gradients 5.1e-5 (slopes), 1.1e-3 (output bias), 2.9e-3
    (first convolution); differences measured on the three kernel sets 1.5e-11, 1.2e-10, 1.8e-9."""
    generator = MetricGANPlusGenerator().train()
    generator.load_state_dict(from_speechbrain_state_dict(seeded_generator_state(generator)))
    discriminator = MetricGANPlusDiscriminator().train()
    discriminator.load_state_dict(from_speechbrain_state_dict(reference["discriminator_state"]))
    _, enhanced_wav = enhance(generator, reference["noisy"])
    metricgan_plus_generator_loss(
        discriminator(metricgan_plus_features(enhanced_wav), reference["clean_feats"])
    ).backward()
    torch.testing.assert_close(generator.mask_activation.slope.grad, reference["grad_g_slope"], rtol=0, atol=1e-9)
    torch.testing.assert_close(generator.output.bias.grad, reference["grad_g_output_bias"], rtol=0, atol=1e-9)

    discriminator.load_state_dict(from_speechbrain_state_dict(reference["discriminator_state"]))
    discriminator.zero_grad()
    d_noisy = discriminator(reference["noisy_feats"], reference["clean_feats"])
    metricgan_plus_discriminator_loss(d_noisy, reference["q_noisy"]).backward()
    torch.testing.assert_close(discriminator.convs[0].weight_orig.grad, reference["grad_d_conv1"], rtol=0, atol=2e-8)
