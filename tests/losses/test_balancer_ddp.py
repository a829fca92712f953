"""Under DDP every rank's LossBalancer holds the same statistics: the batch-size-weighted mean of the ranks' norms,
all-reduced once per step (tests/losses/balancer_ddp_script.py runs two gloo processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.losses.balancer_ddp_script import BATCH_SIZES


@pytest.mark.slow  # two processes: 10 s alone, 25 s on a loaded 2-core machine
def test_two_ranks_hold_identical_balancer_statistics(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = ROOT / "tests" / "losses" / "balancer_ddp_script.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    assert not torch.equal(ranks[0]["own_norms"], ranks[1]["own_norms"])  # the ranks' own statistics differ
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert torch.equal(ranks[0]["factors"], ranks[1]["factors"])
    # The shared average is that of the batch-size-weighted mean of the ranks' norms at each step.
    sizes = torch.tensor(BATCH_SIZES, dtype=torch.float64)
    mean_norms = (ranks[0]["own_norms"] * sizes[0] + ranks[1]["own_norms"] * sizes[1]) / sizes.sum()
    norm_sum, weight_sum = torch.zeros(mean_norms.shape[1], dtype=torch.float64), 0.0
    for norms in mean_norms:
        norm_sum, weight_sum = norm_sum * 0.999 + norms, weight_sum * 0.999 + 1
    torch.testing.assert_close(ranks[0]["state"]["ema_norm_sum"], norm_sum, rtol=1e-6, atol=0)
    # Each rank's balanced gradient is its own gradients scaled by the shared factors, so it differs per rank.
    assert ranks[0]["gradients"][0].shape[0] == BATCH_SIZES[0] and ranks[1]["gradients"][0].shape[0] == BATCH_SIZES[1]
