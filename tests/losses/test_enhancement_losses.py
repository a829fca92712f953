"""Enhancement losses on small, hand-computed tensors."""

import math

import pytest
import torch

from codecgan.losses.enhancement import (
    magnitude_loss,
    metric_discriminator_loss,
    metric_discriminator_loss_at_chance,
    metric_generator_loss,
    pesq_to_target,
    pesq_weights,
    ri_loss,
    time_loss,
)

NAN = math.nan


def test_ri_magnitude_and_time_losses():
    real, imag = torch.tensor([1.0, 2.0]), torch.tensor([0.0, -1.0])
    clean_real, clean_imag = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
    # real: (1 + 0) / 2; imag: (1 + 4) / 2
    assert ri_loss(real, imag, clean_real, clean_imag).item() == pytest.approx(0.5 + 2.5)
    assert magnitude_loss(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 1.0])).item() == pytest.approx(2.0)
    assert time_loss(torch.tensor([[[0.5, -0.5, 0.0]]]), torch.tensor([[[0.0, 0.0, 0.2]]])).item() == pytest.approx(0.4)


def test_generator_metric_loss_asks_for_the_top_score():
    assert metric_generator_loss(torch.tensor([1.0, 0.5, 0.0])).item() == pytest.approx((0 + 0.25 + 1) / 3)


@pytest.mark.parametrize(
    ("pesq", "target", "clamped"),
    [(1.0, 0.0, 0.0), (4.5, 1.0, 1.0), (2.75, 0.5, 0.5), (4.64, 1.04, 1.0), (0.5, -1 / 7, 0.0), (NAN, NAN, NAN)],
)
def test_pesq_to_target_is_cmgans_unless_clamped(pesq, target, clamped):
    for value, expected in (
        (pesq_to_target(torch.tensor([pesq])).item(), target),
        (pesq_to_target(torch.tensor([pesq]), clamp=True).item(), clamped),
    ):
        assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected)


def test_weights_mask_failed_clips_or_drop_the_batch():
    target = torch.tensor([0.5, NAN, 0.2, NAN])
    assert pesq_weights(target, "mask").tolist() == [1.0, 0.0, 1.0, 0.0]
    assert pesq_weights(target, "drop_batch").tolist() == [0.0] * 4
    assert pesq_weights(torch.tensor([0.5, 0.2]), "drop_batch").tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="'skip'"):
        pesq_weights(target, "skip")


def test_discriminator_loss_averages_the_metric_term_over_weighted_clips_and_ignores_nan_targets():
    clean_prediction = torch.tensor([0.9, 0.8, 1.0, 0.7])
    estimate_prediction = torch.tensor([0.6, 0.3, 0.1, 0.9], requires_grad=True)
    target = torch.tensor([0.5, NAN, 0.2, NAN])
    # clean term: (0.01 + 0.04 + 0 + 0.09) / 4; metric term: (0.01 + 0.01) / 2
    loss = metric_discriminator_loss(clean_prediction, estimate_prediction, target, pesq_weights(target, "mask"))
    assert loss.item() == pytest.approx(0.035 + 0.01)
    loss.backward()
    assert estimate_prediction.grad.tolist() == pytest.approx([0.1, 0.0, -0.1, 0.0])


def test_a_dropped_metric_term_is_zero_but_still_in_the_graph():
    estimate_prediction = torch.tensor([0.6, 0.3], requires_grad=True)
    target = torch.tensor([NAN, 0.4])
    loss = metric_discriminator_loss(torch.ones(2), estimate_prediction, target, pesq_weights(target, "drop_batch"))
    assert loss.item() == 0.0
    loss.backward()  # every rank can run the backward: DDP needs it
    assert estimate_prediction.grad.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("policy", ["mask", "drop_batch"])
@pytest.mark.parametrize(
    "target", [[0.5, NAN, 0.2, NAN], [0.3, 0.35, 0.1, 0.6], [NAN, NAN, NAN, NAN], [1.04, 1.04, 0.9, 1.0]]
)
def test_metric_discriminator_chance_is_the_best_constant_output(target, policy):
    target = torch.tensor(target)
    weight = pesq_weights(target, policy)
    chance = metric_discriminator_loss_at_chance(target, weight).item()
    constants = torch.linspace(0.0, 1.2, 1201)  # step 0.001
    losses = [metric_discriminator_loss(c.expand(4), c.expand(4), target, weight).item() for c in constants]
    assert chance == pytest.approx(min(losses), abs=1e-6)
    scored = target[weight > 0]
    if len(scored):  # twice the variance of the pooled targets: var(t) + (1 - mean(t))² / 2
        expected = scored.var(unbiased=False).item() + (1 - scored.mean().item()) ** 2 / 2
        assert chance == pytest.approx(expected, abs=1e-6)
    else:  # no clip scored: a constant 1 fits D(clean, clean) -> 1 exactly
        assert chance == 0.0
