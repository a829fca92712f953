"""MP-SENet's losses, each against its definition written out element by element on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from codecgan.losses.mpsenet import anti_wrapping, complex_loss, consistency_loss, phase_losses

TWO_PI = 2 * math.pi


def wrapped_distance(x: float) -> float:
    """|x - 2 pi k| for the integer k nearest x / 2 pi (the paper's anti-wrapping function)."""
    return abs(x - TWO_PI * round(x / TWO_PI))


@pytest.mark.parametrize(
    ("x", "expected"),
    [(0.0, 0.0), (1.0, 1.0), (-1.0, 1.0), (TWO_PI, 0.0), (TWO_PI + 0.5, 0.5), (-TWO_PI - 0.5, 0.5), (3.0, 3.0),
     (4.0, TWO_PI - 4.0), (3 * TWO_PI - 0.25, 0.25)],
)  # fmt: skip
def test_anti_wrapping_is_the_distance_to_the_nearest_multiple_of_two_pi(x, expected):
    assert anti_wrapping(torch.tensor(x, dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-12)


def test_phase_losses_match_their_written_out_definitions():
    torch.manual_seed(0)
    estimate = (torch.rand(2, 1, 3, 4, dtype=torch.float64) - 0.5) * 4 * math.pi
    clean = (torch.rand(2, 1, 3, 4, dtype=torch.float64) - 0.5) * 4 * math.pi
    e, c = estimate[:, 0].tolist(), clean[:, 0].tolist()
    batch, bins, frames = 2, 3, 4
    ip = sum(
        wrapped_distance(c[b][f][t] - e[b][f][t]) for b in range(batch) for f in range(bins) for t in range(frames)
    )
    gd = sum(
        wrapped_distance((c[b][f + 1][t] - c[b][f][t]) - (e[b][f + 1][t] - e[b][f][t]))
        for b in range(batch)
        for f in range(bins - 1)
        for t in range(frames)
    )
    iaf = sum(
        wrapped_distance((c[b][f][t + 1] - c[b][f][t]) - (e[b][f][t + 1] - e[b][f][t]))
        for b in range(batch)
        for f in range(bins)
        for t in range(frames - 1)
    )
    expected = (ip / (batch * bins * frames), gd / (batch * (bins - 1) * frames), iaf / (batch * bins * (frames - 1)))
    got = phase_losses(estimate, clean)
    for value, want in zip(got, expected, strict=True):
        assert value.item() == pytest.approx(want, rel=1e-6)  # computed in fp32


def test_phase_losses_ignore_whole_turns_and_a_constant_offset_costs_only_the_instantaneous_term():
    clean = torch.tensor([[[[0.1, 0.2], [0.3, -3.0]]]])
    ip, gd, iaf = phase_losses(clean + TWO_PI, clean)
    assert max(ip.item(), gd.item(), iaf.item()) < 1e-5
    ip, gd, iaf = phase_losses(clean + 0.5, clean)
    assert ip.item() == pytest.approx(0.5, abs=1e-6) and gd.item() < 1e-6 and iaf.item() < 1e-6


def test_complex_and_consistency_losses_are_the_sum_of_the_real_and_imaginary_mses():
    estimate_real = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]]]])
    estimate_imag = torch.tensor([[[[0.5, 0.0], [1.0, 1.0]]]])
    clean_real = torch.tensor([[[[0.0, 2.0], [1.0, 1.0]]]])
    clean_imag = torch.tensor([[[[0.5, 1.0], [-1.0, 1.0]]]])
    # MP-SENet: 2 * mean over the 8 stacked (real, imag) differences = (sum of squares) / 4.
    squares = (1 + 0 + 1 + 4) + (0 + 1 + 4 + 0)
    expected = 2 * squares / 8
    assert complex_loss(estimate_real, estimate_imag, clean_real, clean_imag).item() == pytest.approx(expected)
    assert consistency_loss(estimate_real, estimate_imag, clean_real, clean_imag).item() == pytest.approx(expected)
