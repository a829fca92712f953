"""What a training batch asks of the host, counted exactly on the CPU (bench/dispatch_counts.py):

- a batch that does not log reads nothing back from the device (`aten._local_scalar_dense`, what `.item()`,
  `bool()` and `float()` of a tensor dispatch), for both families as shipped, with their callbacks and progress
  bar (the CMGAN-size config runs the same code as the tiny enhancer; `bench/host_overhead.py` counts it too), and
  for the tiny Vocos-size vocoder with its fused AdamW (slow);
- the DAC-size codec (batch 1, fp32) dispatches a bounded number of ATen ops outside and inside the optimizers;
- the comparison with DAC's own training step (`bench/dac_own_step.py`, in DAC's environment, which CI lacks) is
  skipped without that environment, and its sentences carry the counts; so is Vocos's (`bench/vocos_own_step.py`).
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from bench.dac_own_step import parse_args
from bench.host_overhead import (
    count_dac_own_step,
    count_one_batch,
    count_vocos_own_step,
    dac_comparison,
    vocos_comparison,
)
from bench.op_counting import DispatchCounts
from bench.vocos_own_step import parse_args as parse_vocos_args
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


@pytest.mark.slow  # ~1.8 s on one core: over the default suite's 1 s per test
def test_the_tiny_vocoder_batch_that_does_not_log_never_reads_from_the_device(tmp_path: Path) -> None:
    counts = count_one_batch(EXPERIMENTS / "vocoder_vocos_tiny.yaml", tmp_path, keep_stacks=True)
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)


@pytest.mark.slow
def test_the_dac_size_codec_dispatches_few_ops_and_reads_nothing_back(tmp_path: Path) -> None:
    counts = count_one_batch(EXPERIMENTS / "codec_dac.yaml", tmp_path, keep_stacks=True)
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)
    assert counts.ops_outside <= DAC_OPS_OUTSIDE_OPTIMIZERS, counts.outside.most_common(20)
    assert counts.ops_inside <= DAC_OPS_INSIDE_OPTIMIZERS, counts.inside.most_common(20)


def test_dacs_own_step_is_skipped_without_its_environment_and_compared_with_codecgans(tmp_path: Path) -> None:
    assert count_dac_own_step(tmp_path / "no-such-venv") is None
    dac = {
        "ops_outside": 10_000,
        "ops_inside": 6_250,
        "host_reads_outside": 22,
        "host_reads_inside": 625,
        "transform_ops": 200,
        "transform_host_reads": 8,
        "logged_tensors": 11,
        "batch_size": 1,
        "excerpt_seconds": 0.38,
        "torch": "2.11.0",
    }
    codecgan = DispatchCounts(outside=collections.Counter({"aten.add.Tensor": 4_000}))
    text = dac_comparison(dac, codecgan)
    assert "10,000 ops outside the optimizers (200 of them in its data transform" in text
    assert "22 host reads outside the optimizers, 19 of which wait for the device on a GPU" in text
    assert "and 3 read tensors the tracker makes from Python numbers" in text
    assert "2.50x the ops (2.45x without DAC's data transform" in text
    assert "22 against 0 host reads" in text
    assert "codec_dac" not in dac_comparison(dac, None)


def test_dacs_own_step_refuses_an_empty_batch() -> None:
    assert (parse_args([]).batch_size, parse_args([]).seconds) == (1, 0.38)
    with pytest.raises(SystemExit):
        parse_args(["--batch-size", "0"])


def test_vocos_own_step_is_skipped_without_its_environment_and_compared_with_codecgans(tmp_path: Path) -> None:
    assert count_vocos_own_step(tmp_path / "no-such-venv") is None
    vocos = {
        "ops_outside": 5_451,
        "ops_inside": 4_040,
        "host_reads_outside": 0,
        "host_reads_inside": 404,
        "logged_tensors": 9,
        "progress_bar_reads": 2,
        "batch_size": 1,
        "samples": 16_384,
        "vocos": "0.1.0",
        "torch": "2.11.0",
    }
    codecgan = DispatchCounts(
        outside=collections.Counter({"aten.add.Tensor": 2_725}), inside=collections.Counter({"aten.add.Tensor": 6})
    )
    text = vocos_comparison(vocos, codecgan)
    assert "5,451 ops outside the optimizers and 4,040 inside; 0 host reads outside" in text
    assert "Lightning 1.x adds 2 for its progress bar on every batch, of the 9 tensors the step logs" in text
    assert "2,725 ops outside the optimizers and 6 inside, 0 host reads. Vocos / codecgan: 2.00x" in text
    assert "vocoder_vocos_24k" not in vocos_comparison(vocos, None)


def test_vocos_own_step_refuses_an_empty_batch() -> None:
    assert (parse_vocos_args([]).batch_size, parse_vocos_args([]).samples) == (1, 16_384)
    with pytest.raises(SystemExit):
        parse_vocos_args(["--samples", "0"])
