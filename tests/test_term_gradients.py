"""term_gradient_norms: each loss term's gradient norm at the generator's output, by hand."""

from __future__ import annotations

import pytest
import torch

from codecgan.term_gradients import term_gradient_norms


def test_each_terms_gradient_norm_at_the_probe() -> None:
    weights = torch.nn.Parameter(torch.tensor([1.0, -2.0, 2.0]))
    real, imag = weights * 1.0, weights * 2.0  # the probe: two outputs of the generator
    elsewhere = torch.nn.Parameter(torch.tensor(3.0))
    terms = {
        "loss_sum": 2.0 * real.sum(),  # ∂/∂real = 2 each: norm 2·√3
        "loss_square": (imag**2).sum(),  # ∂/∂imag = 2·imag = [4, -8, 8]: norm 12
        "loss_both": real.sum() + imag.sum(),  # 1 everywhere in both: norm √6
        "loss_elsewhere": elsewhere * 5.0,  # does not depend on the probe
        "loss_constant": torch.tensor(1.0),  # no graph: not measured
    }
    norms = term_gradient_norms(terms, (real, imag))
    assert set(norms) == {"loss_sum", "loss_square", "loss_both", "loss_elsewhere"}
    assert norms["loss_sum"].item() == pytest.approx(2 * 3**0.5, rel=1e-6)
    assert norms["loss_square"].item() == pytest.approx(12.0, rel=1e-6)
    assert norms["loss_both"].item() == pytest.approx(6**0.5, rel=1e-6)
    assert norms["loss_elsewhere"].item() == 0.0
    assert all(norm.dtype == torch.float32 and norm.dim() == 0 for norm in norms.values())
    sum(terms.values()).backward()  # the graph is kept for the generator's own backward
    assert weights.grad is not None
