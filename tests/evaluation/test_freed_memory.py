"""Freed memory kept in the process (`codecgan test`) saves the page faults of a whole utterance's attention and
changes no value: the enhanced audio and the test report are bit for bit those of the default allocator."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

from codecgan.evaluation.freed_memory import keep_freed_memory, release_freed_memory
from codecgan.evaluation.report import EvaluationReport
from codecgan.lightning_cli import build_cli
from codecgan.models import CMGANGenerator
from tests.conftest import EXPERIMENTS, ROOT
from tests.test_enhance_module import make_module

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
# In a fresh process: the minor page faults of writing a new 64 MiB tensor twice (the first freed before the second;
# above glibc's largest dynamic mmap threshold, 32 MiB), by default, then with freed memory kept. The least of a few
# tries: small allocations between blocks split the freed ones at first, and the heap grows a few times more.
PAGE_FAULTS = """
import resource, torch
from codecgan.evaluation.freed_memory import keep_freed_memory

def two_blocks():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        torch.empty(16 << 20).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = min(two_blocks() for _ in range(2))
assert keep_freed_memory()
print(default, min(two_blocks() for _ in range(10)))
"""


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's; elsewhere both calls are no-ops")
@pytest.mark.slow  # a fresh process (about 2 s)
def test_a_freed_block_is_reused_while_kept():
    pages = (64 << 20) // resource.getpagesize()
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's codecgan
    result = subprocess.run(
        [sys.executable, "-c", PAGE_FAULTS], capture_output=True, text=True, check=True, cwd=ROOT, env=environment
    )
    default, kept = map(int, result.stdout.split())
    assert default >= 2 * pages * 0.9
    assert kept < pages // 10


def test_the_enhanced_utterance_is_the_same_with_freed_memory_kept():
    torch.manual_seed(0)
    generator = CMGANGenerator(channels=4, num_blocks=1, attention_heads=2, dense_depth=1).eval()
    noisy = 0.1 * torch.randn(1, 1, 16000)
    with torch.inference_mode():
        default = generator(noisy).audio
        try:
            keep_freed_memory()
            kept = [generator(noisy).audio for _ in range(2)]
        finally:
            release_freed_memory()
        after = generator(noisy).audio
    assert all(torch.equal(default, audio) for audio in (*kept, after))


def tiny_enhancer_report(folder: Path) -> dict:
    cli = build_cli(
        [
            "--config",
            str(EXPERIMENTS / "enhance_tiny.yaml"),
            "--trainer.logger=false",
            "--trainer.callbacks=[]",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={folder}",
            "--model.init_args.pesq_workers=0",
            "--data.init_args.synthetic_items=[8, 2, 3]",
            "--data.init_args.synthetic_seconds=2.0",
            "--data.init_args.silent_item_fraction=0.0",
            "--data.init_args.val_batch_size=2",
        ],
        run=False,
    )
    cli.trainer.callbacks.append(EvaluationReport())
    cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_codecgan_test_reports_the_same_values_with_freed_memory_kept(tmp_path):
    kept = tiny_enhancer_report(tmp_path / "kept")
    with mock.patch("codecgan.enhance_module.keep_freed_memory", lambda: False):
        default = tiny_enhancer_report(tmp_path / "default")
    assert kept == default
    assert kept["systems"]["enhanced"]["measures"]["pesq_wb"]["scored"] == 3


def test_a_failed_test_stops_the_measure_thread_and_gives_freed_memory_back():
    module = make_module(pesq_workers=0)
    with (
        mock.patch("codecgan.enhance_module.keep_freed_memory") as keep,
        mock.patch("codecgan.enhance_module.release_freed_memory") as release,
    ):
        module.on_test_epoch_start()
        thread = module._measure_thread
        assert thread is not None and keep.call_count == 1
        for callback in module.configure_callbacks():
            callback.on_exception(mock.Mock(testing=True), module, RuntimeError("a batch failed"))
    assert module._measure_thread is None and thread._shutdown
    release.assert_called_once_with()
