"""codecgan's Vocos parts against the `vocos` package (0.1.0), from the fixture its own code wrote
(tests/fixtures/vocos/make_fixture.py): mel front-end, generator (both ISTFT paddings), seeded initialisation, a
`pytorch_model.bin` in the released layout, MPD, MRD, the losses, and one discriminator and one generator step with
their gradients.

Tolerances: the fixture was written on a CPU with AVX-512, where the mel features, generator outputs (both paddings),
feature maps and logits are bit for bit Vocos's; the summed losses differ by up to 5.7e-6 on 8.8 (codecgan sums
the feature-matching terms in another order). Under `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` the largest
differences are 2.4e-7 (generator output, O(1)) and 1.8e-7 (MPD feature maps); under `default` 1.3e-7 (generator)
and 3.8e-6 (MRD feature maps, up to 30). The float checks use `rtol=1e-5, atol=1e-5`; gradients, within 4.5e-6 of
each tensor's largest on every kernel set, `rtol=1e-4` and 1e-5 of that largest. docs/vocoders.md has the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.losses.adversarial import discriminator_loss, generator_adversarial_loss
from codecgan.losses.vocos_losses import VocosMelLoss, feature_matching_loss_with_logits, per_discriminator
from codecgan.models.vocos_checkpoint import (
    MPD_PREFIX,
    from_vocos_discriminator_state_dict,
    from_vocos_state_dict,
    vocos_mel_state_dict,
)
from codecgan.models.vocos_generator import VocosGenerator
from codecgan.models.vocos_istft import overlap_add_istft
from codecgan.models.vocos_mel import VocosMelSpectrogram
from codecgan.models.vocos_mpd import VocosMultiPeriodDiscriminator
from codecgan.models.vocos_mrd import VocosMultiResolutionDiscriminator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vocos"
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
PADDINGS = ("center", "same")
MEL_WEIGHT, MRD_WEIGHT = 45.0, 0.1  # Vocos's configs/vocos.yaml


@pytest.fixture(scope="module")
def record() -> dict:
    return torch.load(FIXTURES / "tiny.pt", weights_only=True)


def tiny_parts(record: dict, padding: str) -> tuple[VocosMelSpectrogram, VocosGenerator]:
    config = record["config"]
    mel = VocosMelSpectrogram(
        config["sample_rate"], config["n_fft"], config["hop_length"], config["n_mels"], padding=padding
    )
    generator = VocosGenerator(
        config["n_mels"],
        config["dim"],
        config["intermediate_dim"],
        config["num_layers"],
        config["n_fft"],
        config["hop_length"],
        padding,
    )
    return mel, generator


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_parameter_counts_equal_vocos_at_the_released_size(record: dict) -> None:
    # Built on the CPU (about 1.5 s): the meta device's first use costs more here.
    generator = VocosGenerator()
    mpd, mrd = VocosMultiPeriodDiscriminator(), VocosMultiResolutionDiscriminator()
    counts = {
        "backbone": count(generator.backbone),
        "head": count(generator.head),
        "mpd": count(mpd),
        "mrd": count(mrd),
    }
    assert counts == record["release_parameters"]
    assert counts == {"backbone": 13_005_312, "head": 526_338, "mpd": 41_105_770, "mrd": 1_413_990}


@pytest.mark.parametrize("padding", PADDINGS)
def test_mel_and_generator_equal_vocos(record: dict, padding: str) -> None:
    reference = record["generators"][padding]
    mel, generator = tiny_parts(record, padding)
    mel.load_state_dict(vocos_mel_state_dict(reference["state_dict"]))
    generator.load_state_dict(from_vocos_state_dict(reference["state_dict"]))
    with torch.no_grad():
        features = mel(record["audio"])
        torch.testing.assert_close(features, reference["mel"], **TOLERANCE)
        audio = generator(reference["mel"])
    assert audio.shape == record["audio"].shape
    torch.testing.assert_close(audio, reference["audio_out"], **TOLERANCE)


def test_seeded_initialisation_equals_vocos(record: dict) -> None:
    """Equal draws from the same seed; under `ATEN_CPU_CAPABILITY=default` the head's uniform draws (Linear's default
    init) round differently by up to 1.5e-8 (an ulp of the bound scaling), so the check allows 3e-8."""
    for padding in PADDINGS:
        torch.manual_seed(0)
        _, generator = tiny_parts(record, padding)
        initial = record["generators"][padding]["init_state"]
        assert generator.state_dict().keys() == initial.keys()
        for key, value in generator.state_dict().items():
            torch.testing.assert_close(value, initial[key], rtol=0, atol=3e-8, msg=key)


def test_a_pytorch_model_bin_loads_strictly_and_vocodes(record: dict) -> None:
    state = torch.load(FIXTURES / "pytorch_model.bin", weights_only=True)
    mel, generator = tiny_parts(record, "center")
    mel.load_state_dict(vocos_mel_state_dict(state))
    generator.load_state_dict(from_vocos_state_dict(state))
    with torch.no_grad():
        audio = generator(mel(record["audio"]))
    torch.testing.assert_close(audio, record["generators"]["center"]["audio_out"], **TOLERANCE)
    with pytest.raises(KeyError, match="backbone"):
        from_vocos_state_dict(vocos_mel_state_dict(state))


def test_overlap_add_equals_torch_istft_where_both_apply() -> None:
    """With the centred trim, `overlap_add_istft` is `torch.istft(center=True)`: the "same" path differs only in
    where it trims."""
    spectrum = torch.randn(2, 65, 9, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    window = torch.hann_window(128)
    ours = overlap_add_istft(spectrum, 128, 32, window, trim=64)
    torch.testing.assert_close(ours, torch.istft(spectrum, 128, 32, 128, window, center=True), rtol=1e-5, atol=1e-6)


def check_outputs(outputs: list[list[torch.Tensor]], reference: dict, side: str) -> None:
    assert len(outputs) == len(reference[f"{side}_logits"])
    for features, logits, maps in zip(outputs, reference[f"{side}_logits"], reference[f"{side}_maps"]):
        torch.testing.assert_close(features[-1].reshape(logits.shape), logits, **TOLERANCE)
        assert len(features) == len(maps)
        for feature, fingerprint in zip(features, maps):
            assert list(feature.shape) == fingerprint["shape"].tolist()
            torch.testing.assert_close(feature.reshape(-1)[::31], fingerprint["strided"], **TOLERANCE)
            torch.testing.assert_close(feature.double().sum(), fingerprint["sum"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["mpd", "mrd"])
def test_discriminators_and_their_losses_equal_vocos(record: dict, name: str) -> None:
    reference = record[name]
    config = record["config"]
    if name == "mpd":
        discriminator = VocosMultiPeriodDiscriminator(channels=config["mpd_channels"])
        # A training checkpoint's layout: the same entries under the experiment's attribute name.
        state = {MPD_PREFIX + key: value for key, value in reference["state_dict"].items()}
        discriminator.load_state_dict(from_vocos_discriminator_state_dict(state, MPD_PREFIX))
    else:
        discriminator = VocosMultiResolutionDiscriminator(channels=config["mrd_channels"])
        discriminator.load_state_dict(from_vocos_discriminator_state_dict(reference["state_dict"]))
    with torch.no_grad():
        real = discriminator(record["audio"])
        fake = discriminator(record["generators"]["center"]["audio_out"])
    check_outputs(real, reference, "real")
    check_outputs(fake, reference, "fake")
    losses = {
        "discriminator_loss": discriminator_loss(real, fake, kind="hinge"),
        "generator_loss": generator_adversarial_loss(fake, kind="hinge"),
        "feature_matching_loss": feature_matching_loss_with_logits(real, fake),
    }
    for key, value in losses.items():
        torch.testing.assert_close(value, reference[key], **TOLERANCE)
    assert per_discriminator(losses["generator_loss"], fake) == losses["generator_loss"] / len(fake)


def loaded_discriminators(record: dict) -> tuple[VocosMultiPeriodDiscriminator, VocosMultiResolutionDiscriminator]:
    mpd = VocosMultiPeriodDiscriminator(channels=record["config"]["mpd_channels"])
    mrd = VocosMultiResolutionDiscriminator(channels=record["config"]["mrd_channels"])
    mpd.load_state_dict(from_vocos_discriminator_state_dict(record["mpd"]["state_dict"]))
    mrd.load_state_dict(from_vocos_discriminator_state_dict(record["mrd"]["state_dict"]))
    return mpd, mrd


def check_gradient_fingerprints(module: torch.nn.Module, reference: dict) -> None:
    """`reference` holds Vocos's parameter names; they are mapped to codecgan's by the checkpoint key map."""
    position = from_vocos_discriminator_state_dict({name: i for i, name in enumerate(reference["names"])})
    grads = dict(module.named_parameters())
    assert position.keys() == grads.keys()
    order = sorted(position, key=position.get)
    flat = [grads[name].grad.reshape(-1) for name in order]
    scale = max(grad.abs().max().item() for grad in flat)
    sums = torch.stack([grad.double().sum() for grad in flat])
    torch.testing.assert_close(sums, reference["sums"], rtol=1e-4, atol=1e-4 * scale)
    torch.testing.assert_close(
        torch.cat([grad[::31] for grad in flat]), reference["strided"], rtol=1e-4, atol=1e-5 * scale
    )


def test_a_discriminator_step_and_a_generator_step_equal_vocos(record: dict) -> None:
    """VocosExp's two steps on one batch: the losses as it combines them (each set's sums over its sub-discriminators,
    MRD weight 0.1, mel weight 45) and every gradient."""
    reference = record["steps"]
    mel, generator = tiny_parts(record, "center")
    state = record["generators"]["center"]["state_dict"]
    mel.load_state_dict(vocos_mel_state_dict(state))
    generator.load_state_dict(from_vocos_state_dict(state))
    mpd, mrd = loaded_discriminators(record)
    real = record["audio"]

    with torch.no_grad():
        fake = generator(mel(real))
    d_loss = torch.zeros(())
    for weight, d in ((1.0, mpd), (MRD_WEIGHT, mrd)):
        real_outputs = d(real)
        d_loss = d_loss + weight * per_discriminator(
            discriminator_loss(real_outputs, d(fake), kind="hinge"), real_outputs
        )
    d_loss.backward()
    torch.testing.assert_close(d_loss, reference["discriminator_loss"], **TOLERANCE)
    check_gradient_fingerprints(mpd, reference["discriminator_gradients"]["mpd"])
    check_gradient_fingerprints(mrd, reference["discriminator_gradients"]["mrd"])

    fake = generator(mel(real))
    g_loss = MEL_WEIGHT * VocosMelLoss()(fake, real)
    for weight, d in ((1.0, mpd), (MRD_WEIGHT, mrd)):
        real_outputs, fake_outputs = d(real), d(fake)
        adversarial = generator_adversarial_loss(fake_outputs, kind="hinge")
        matching = feature_matching_loss_with_logits(real_outputs, fake_outputs)
        g_loss = g_loss + weight * per_discriminator(adversarial + matching, fake_outputs)
    g_loss.backward()
    torch.testing.assert_close(g_loss, reference["generator_loss"], **TOLERANCE)
    for name, parameter in generator.named_parameters():
        expected = reference["generator_gradients"][name]
        torch.testing.assert_close(
            parameter.grad, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item(), msg=name
        )


def test_mel_loss_equals_vocos(record: dict) -> None:
    config = record["config"]
    estimate, target = record["generators"]["center"]["audio_out"], record["audio"]
    tiny = VocosMelLoss(config["sample_rate"], config["n_fft"], config["hop_length"], config["n_mels"])
    torch.testing.assert_close(tiny(estimate, target), record["mel_loss"]["tiny"], **TOLERANCE)
    torch.testing.assert_close(VocosMelLoss()(estimate, target), record["mel_loss"]["release"], **TOLERANCE)


def test_a_wrong_padding_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"generator\.init_args\.padding must be \"center\".*'valid'"):
        VocosGenerator(padding="valid")
