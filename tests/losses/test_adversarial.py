"""Adversarial losses on small, hand-computed discriminator outputs (two sub-discriminators)."""

import pytest
import torch

from codecgan.losses import (
    discriminator_loss,
    discriminator_loss_at_chance,
    feature_matching_loss,
    generator_adversarial_loss,
    real_fake_means,
)


def outputs(first_logits: list[float], second_logits: list[float]) -> list[list[torch.Tensor]]:
    """Two sub-discriminators with one feature map each and the given logits."""
    return [
        [torch.zeros(1, 2), torch.tensor([first_logits])],
        [torch.zeros(1, 3), torch.tensor([second_logits])],
    ]


REAL = outputs([1.0, 0.5], [2.0])
FAKE = outputs([0.0, -1.0], [0.5])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # (0 + 0.25) / 2 + (0 + 1) / 2 + (2 - 1)^2 + 0.5^2
        ("least_squares", 0.125 + 0.5 + 1.0 + 0.25),
        # relu(1 - real): (0 + 0.5) / 2, 0;  relu(1 + fake): (1 + 0) / 2, 1.5
        ("hinge", 0.25 + 0.0 + 0.5 + 1.5),
    ],
)
def test_discriminator_loss(kind, expected):
    assert discriminator_loss(REAL, FAKE, kind).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("least_squares", (1.0 + 4.0) / 2 + 0.25), ("hinge", (1.0 + 2.0) / 2 + 0.5)],
)
def test_generator_adversarial_loss(kind, expected):
    assert generator_adversarial_loss(FAKE, kind).item() == pytest.approx(expected)


@pytest.mark.parametrize(("kind", "per_sub_discriminator"), [("least_squares", 0.5), ("hinge", 2.0)])
def test_loss_at_chance_is_the_loss_of_the_best_constant_output(kind, per_sub_discriminator):
    # Two sub-discriminators here, six below: least squares 0.5 and hinge 2 per sub-discriminator.
    assert discriminator_loss_at_chance(REAL, kind) == pytest.approx(2 * per_sub_discriminator)
    assert discriminator_loss_at_chance(REAL + REAL + REAL, kind) == pytest.approx(6 * per_sub_discriminator)
    constants = torch.linspace(-2.0, 2.0, 401)  # step 0.01: holds 0.5 (least squares) and [-1, 1] (hinge)
    losses = [discriminator_loss(constant_outputs(c), constant_outputs(c), kind).item() for c in constants]
    assert min(losses) == pytest.approx(discriminator_loss_at_chance(REAL, kind), abs=1e-6)
    if kind == "least_squares":  # all-zero logits (c = 0) score twice the best constant (c = 0.5)
        assert losses[200] == pytest.approx(2 * min(losses))


def constant_outputs(value: float) -> list[list[torch.Tensor]]:
    """REAL's shapes with every logit equal to `value`."""
    return outputs([value, value], [value])


def test_feature_matching_excludes_logits_and_detaches_real():
    real = [
        [torch.tensor([1.0, 2.0]), torch.tensor([100.0])],
        [torch.zeros(3), torch.tensor([1.0]), torch.tensor([-50.0])],
    ]
    real[0][0].requires_grad_()
    fake = [
        [torch.tensor([2.0, 0.0], requires_grad=True), torch.tensor([0.0])],
        [torch.tensor([3.0, 0.0, 0.0]), torch.tensor([1.0]), torch.tensor([50.0])],
    ]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx((1.0 + 2.0) / 2 + 1.0 + 0.0)
    loss.backward()
    assert real[0][0].grad is None
    torch.testing.assert_close(fake[0][0].grad, torch.tensor([0.5, -0.5]))


def test_real_fake_means_average_per_discriminator():
    real_mean, fake_mean = real_fake_means(REAL, FAKE)
    assert real_mean.item() == pytest.approx((0.75 + 2.0) / 2)
    assert fake_mean.item() == pytest.approx((-0.5 + 0.5) / 2)


def test_bf16_outputs_give_fp32_losses():
    real = [[torch.tensor([0.3], dtype=torch.bfloat16)]]
    fake = [[torch.tensor([0.1], dtype=torch.bfloat16)]]
    assert discriminator_loss(real, fake).dtype == torch.float32
    assert generator_adversarial_loss(fake, "hinge").dtype == torch.float32


def test_invalid_kind_and_mismatched_outputs_are_rejected():
    with pytest.raises(ValueError, match="'least_squares', 'hinge'; got 'wasserstein'"):
        discriminator_loss(REAL, FAKE, "wasserstein")
    with pytest.raises(ValueError, match="same, non-zero number"):
        discriminator_loss(REAL, FAKE[:1], "hinge")
