"""What a training batch asks of the host, counted exactly on the CPU (bench/dispatch_counts.py):

- a batch that does not log reads nothing back from the device (`aten._local_scalar_dense`, what `.item()`,
  `bool()` and `float()` of a tensor dispatch), for both families as shipped, with their callbacks and progress
  bar (the CMGAN-size config runs the same code as the tiny enhancer; `bench/host_overhead.py` counts it too);
- the DAC-size codec (batch 1, fp32) dispatches a bounded number of ATen ops outside and inside the optimizers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.host_overhead import count_one_batch
from tests.conftest import EXPERIMENTS

# DAC-size codec, batch 1, fp32, one batch that does not log, on one device: the targets. Measured: 3,982
# outside the optimizers (8,219 with per-call weight norm, two discriminator calls in its step, per-map losses and
# autograd's per-parameter gradient accumulation), 6 inside (fused AdamW; 1,270 for foreach AdamW).
DAC_OPS_OUTSIDE_OPTIMIZERS = 4_000
DAC_OPS_INSIDE_OPTIMIZERS = 100


@pytest.mark.parametrize("config", ["codec_tiny", "enhance_tiny"])  # the DAC-size codec below
def test_a_batch_that_does_not_log_never_reads_from_the_device(config: str, tmp_path: Path) -> None:
    counts = count_one_batch(EXPERIMENTS / f"{config}.yaml", tmp_path, keep_stacks=True)
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)


@pytest.mark.slow
def test_the_dac_size_codec_dispatches_few_ops_and_reads_nothing_back(tmp_path: Path) -> None:
    counts = count_one_batch(EXPERIMENTS / "codec_dac.yaml", tmp_path, keep_stacks=True)
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)
    assert counts.ops_outside <= DAC_OPS_OUTSIDE_OPTIMIZERS, counts.outside.most_common(20)
    assert counts.ops_inside <= DAC_OPS_INSIDE_OPTIMIZERS, counts.inside.most_common(20)
