"""RunningSums' checkpoint state across versions that keep different sums."""

from __future__ import annotations

import pytest
import torch

from callbacks.running_sums import RunningSums


def test_zero_sums_saved_under_other_names_load_as_zeros_and_others_are_refused() -> None:
    old = RunningSums(("clips", "amplitude_ratio"))
    new = RunningSums(("clips", "estimate_energy", "reference_energy"))
    new.load_state_dict(old.state_dict())  # between two flushes: nothing to lose
    assert new.state_dict()["host"] == [0.0, 0.0, 0.0]
    old.add("clips", torch.tensor(3.0))
    with pytest.raises(ValueError, match=r"named \['clips', 'amplitude_ratio'\].*written mid-interval"):
        new.load_state_dict(old.state_dict())
