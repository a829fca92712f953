"""The callbacks' rules on live tiny CPU runs of the real modules (issue 4, acceptance 2 and 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from callbacks import EvalDeterminism, PesqHealth, SignalStats
from codecgan.diagnosis.cli import diagnose_main
from codecgan.diagnosis.history import load_histories
from codecgan.lightning_cli import build_cli
from tests.callbacks.callback_fakes import same
from tests.callbacks.ddp_counts_script import run as run_scripted_counts
from tests.conftest import EXPERIMENTS, ROOT, run_codecgan, tiny_trainer_overlay, write_overlay


def fit(base: str, overlay: dict, directory: Path) -> L.Trainer:
    config = write_overlay(directory, "overlay.yaml", overlay)
    return build_cli(["fit", "--config", str(EXPERIMENTS / base), "--config", str(config)]).trainer


def find(trainer: L.Trainer, kind: type) -> object:
    # By name: the CLI imports this file as tests.callbacks.test_live_runs, pytest as test_live_runs.
    return next(callback for callback in trainer.callbacks if type(callback).__name__ == kind.__name__)


@pytest.mark.slow
def test_random_validation_crops_raise_eval_nondeterministic(tmp_path: Path, capsys) -> None:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=12, val_every=6, checkpoint_every=100)
    overlay["trainer"]["callbacks"].append({"class_path": "callbacks.EvalDeterminism"})
    overlay["data"]["init_args"]["val_crop"] = "random"  # 8 batches per epoch: the two rounds are in epochs 0 and 1
    with pytest.warns(UserWarning, match="EVAL_NONDETERMINISTIC: 6 validation items"):
        trainer = fit("codec_tiny.yaml", overlay, tmp_path)
    callback = find(trainer, EvalDeterminism)
    assert "EVAL_NONDETERMINISTIC" in callback.alarms.active
    # The state Lightning writes into a checkpoint loads with weights_only=True and restores exactly.
    trainer.save_checkpoint(tmp_path / "end.ckpt")
    saved = torch.load(tmp_path / "end.ckpt", weights_only=True)["callbacks"][callback.state_key]
    restored = EvalDeterminism()
    restored.load_state_dict(saved)
    assert same(restored.state_dict(), callback.state_dict())
    capsys.readouterr()
    assert diagnose_main([str(tmp_path / "run"), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert "EVAL_NONDETERMINISTIC" in {f["code"] for f in findings}


def test_signal_stats_reads_each_rounds_val_loss_mel_so_live_and_offline_rules_agree(tmp_path: Path) -> None:
    # The level rule's warm-up test reads the codec's val/loss_mel, which Lightning computes after the epoch-end hooks:
    # SignalStats must see this round's value (the one TensorBoard gets), not the previous round's.
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=8, val_every=2, checkpoint_every=100)
    overlay["trainer"]["callbacks"].append({"class_path": "callbacks.SignalStats"})
    trainer = fit("codec_tiny.yaml", overlay, tmp_path)
    live = [(p.step, p.value) for p in find(trainer, SignalStats).history.series("val/loss_mel")]
    [(_, offline)] = load_histories(str(tmp_path / "run"))
    logged = [(p.step, p.value) for p in offline.series("val/loss_mel")]
    assert len(live) == 4 and [step for step, _ in live] == [step for step, _ in logged]
    assert [value for _, value in live] == pytest.approx([value for _, value in logged], rel=1e-6)
    assert len({value for _, value in live}) == 4  # a new value each round


class SilentClipRecorder(L.Callback):
    """For the test only: whether each training batch held a clip whose clean crop is all zeros."""

    def __init__(self) -> None:
        self.had_silent_clip: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if "pesq_dropped_batch" in outputs:
            self.had_silent_clip.append(bool((batch["clean"].abs().amax(dim=(1, 2)) == 0).any()))


@pytest.mark.slow
def test_pesq_none_rate_is_the_fraction_of_batches_with_a_silent_clip(tmp_path: Path) -> None:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=8, val_every=100, checkpoint_every=100)
    overlay["trainer"].update(limit_val_batches=0, log_every_n_steps=4)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "callbacks.PesqHealth"},
        {"class_path": "tests.callbacks.test_live_runs.SilentClipRecorder"},
    ]
    overlay["model"] = {"init_args": {"pesq_failure_policy": "drop_batch", "pesq_lag": 0, "pesq_workers": 0}}
    # Whole 1 s items as crops: every non-silent item then holds speech PESQ can find (a short crop may not).
    overlay["data"]["init_args"] = {
        "crop_seconds": 1.0,
        "synthetic_seconds": 1.0,
        "batch_size": 2,
        "synthetic_items": [32, 4, 4],
        "silent_item_fraction": 0.2,
    }
    with pytest.warns(UserWarning, match="PESQ_NONE_HIGH"):
        trainer = fit("enhance_tiny.yaml", overlay, tmp_path)
    recorder, health = find(trainer, SilentClipRecorder), find(trainer, PesqHealth)
    assert len(recorder.had_silent_clip) == 8 and 0 < sum(recorder.had_silent_clip) < 8
    assert health.total_counts["batches"] == 8
    assert health.none_rate == sum(recorder.had_silent_clip) / 8


@pytest.mark.slow
def test_two_process_ddp_counts_equal_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = ROOT / "tests" / "callbacks" / "ddp_counts_script.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ddp.json"), "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((tmp_path / "ddp.json").read_text())
    with pytest.warns(UserWarning, match="PESQ_NONE_HIGH"):
        one = run_scripted_counts(devices=1)
    one.pop("rank")
    assert (
        two["counts"]
        == one["counts"]
        == {"batches": 12.0, "dropped_batches": 10.0, "clips": 48.0, "failed_clips": 10.0}
    )
    assert (
        two["failure_counts"]
        == one["failure_counts"]
        == {
            "no_utterances": 2.0,
            "too_short": 1.0,
            "nonfinite": 1.0,
            "other": 2.0,
            "worker_died": 1.0,
            "silent_estimate": 1.0,
            "too_long": 2.0,
            "timeout": 0.0,
        }
    )
    assert two["none_rate"] == one["none_rate"]
    assert two["mae"] == pytest.approx(one["mae"], abs=1e-12) and two["corr"] == pytest.approx(one["corr"], abs=1e-12)


ALL_CALLBACKS = [
    {"class_path": "callbacks.DiagnosticsDashboard"},
    {"class_path": "callbacks.SignalStats"},
    {"class_path": "callbacks.DiscriminatorHealth"},
    {"class_path": "callbacks.GradientBalance", "init_args": {"every_n_steps": 2}},
    {"class_path": "callbacks.EvalDeterminism"},
    {"class_path": "callbacks.RankConsistency", "init_args": {"every_n_steps": 2}},
    {"class_path": "callbacks.DivergenceMonitor", "init_args": {"metric": "val/snr_db", "action": "stop"}},
    {"class_path": "callbacks.CodebookUsage", "init_args": {"window_steps": 2}},
    {"class_path": "callbacks.AudioSamples", "init_args": {"sample_rate": 16000, "n_items": 1}},
    {"class_path": "callbacks.PesqHealth"},
    {"class_path": "callbacks.MetricDiscriminatorMonitor"},
]


@pytest.mark.slow
def test_full_callback_set_under_two_process_ddp(tmp_path: Path, capsys) -> None:
    """Every callback's collectives line up across ranks (a mismatch hangs), and replicas stay identical."""
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=6, val_every=3, checkpoint_every=100)
    overlay["trainer"].update(devices=2, strategy="gan_ddp")
    overlay["trainer"]["callbacks"] += ALL_CALLBACKS
    run_codecgan("fit", "codec_tiny.yaml", tmp_path, "ddp", overlay)
    assert diagnose_main([str(tmp_path / "run"), "--json"]) == 0
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)}
    assert "RANK_DIVERGENCE" not in codes and "EVAL_NONDETERMINISTIC" not in codes
    [(_, history)] = load_histories(str(tmp_path / "run"))
    assert [p.value for p in history.series("diag/rank_param_spread/generator")] == [0.0, 0.0, 0.0]
    assert [p.value for p in history.series("diag/eval_input_changed")] == [0.0]
