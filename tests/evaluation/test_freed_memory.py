"""Freed memory kept in the process (`codecgan test`) saves the page faults of a whole utterance's attention and
changes no value: the enhanced audio and the test report are bit for bit those of the default allocator."""

from __future__ import annotations

import json
import platform
import resource
from pathlib import Path
from unittest import mock

import pytest
import torch

from codecgan.evaluation.freed_memory import keep_freed_memory, release_freed_memory
from codecgan.evaluation.report import EvaluationReport
from codecgan.lightning_cli import build_cli
from codecgan.models import CMGANGenerator
from tests.conftest import EXPERIMENTS

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
BLOCK_BYTES = 64 << 20  # above glibc's largest dynamic mmap threshold (32 MiB): always mapped afresh by default


def page_faults_of_two_blocks() -> int:
    """Minor page faults of writing a new 64 MiB tensor twice, the first freed before the second."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        torch.empty(BLOCK_BYTES // 4).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's; elsewhere both calls are no-ops")
def test_a_freed_block_is_reused_while_kept_and_mapped_afresh_after_release():
    pages = BLOCK_BYTES // resource.getpagesize()
    try:
        assert keep_freed_memory()
        page_faults_of_two_blocks()  # the heap grows to hold the block once
        kept = page_faults_of_two_blocks()
    finally:
        release_freed_memory()
    released = page_faults_of_two_blocks()
    assert kept < pages // 10
    assert released >= 2 * pages * 0.9


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
