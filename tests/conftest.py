"""Shared fixtures: tiny configs that train in seconds on CPU, and synthetic audio."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"

# Tests use a single intra-op thread: the suite runs several processes on 2 cores in CI.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A diagnostic callback's exception ends the run in tests (callbacks/guard.py disables the callback otherwise), so
# a bug in a callback fails its test; the guard's own tests turn this off.
os.environ["CODECGAN_CALLBACK_ERRORS"] = "raise"


def write_overlay(directory: Path, name: str, overlay: dict) -> Path:
    """Write a YAML config overlay (applied after the base config with a second --config)."""
    path = directory / name
    path.write_text(yaml.safe_dump(overlay))
    return path


def run_codecgan(command: str, base: str, tmp_path: Path, name: str, overlay: dict) -> subprocess.CompletedProcess[str]:
    """``codecgan <command>`` in a subprocess on ``experiments/<base>`` plus ``overlay`` (written to
    ``tmp_path/<name>.yaml``), one intra-op thread per process; fails the test with the end of its stderr, else
    returns the finished process (its output captured)."""
    config = write_overlay(tmp_path, f"{name}.yaml", overlay)
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1"}
    arguments = ["--config", str(EXPERIMENTS / base), "--config", str(config)]
    result = subprocess.run(
        [sys.executable, "-m", "codecgan", command, *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def tiny_trainer_overlay(run_dir: Path, max_steps: int = 12, val_every: int = 6, checkpoint_every: int = 6) -> dict:
    """Trainer settings for a seconds-long CPU fit writing everything under ``run_dir``."""
    return {
        "trainer": {
            "max_steps": max_steps,
            "val_check_interval": val_every,
            "log_every_n_steps": 2,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(run_dir),
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(run_dir), "name": "tb", "version": "", "default_hp_metric": False},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(run_dir / "checkpoints"),
                        "filename": "step{step}",
                        "auto_insert_metric_name": False,
                        "every_n_train_steps": checkpoint_every,
                        "save_top_k": -1,
                        "save_last": True,
                    },
                }
            ],
        },
        "data": {"init_args": {"crop_seconds": 0.2, "batch_size": 4, "synthetic_items": [32, 6, 6]}},
    }


@pytest.fixture
def codec_tiny_args(tmp_path: Path):
    """CLI args for a 12-step tiny codec fit in ``tmp_path``; call with overrides of the overlay."""

    def make(**trainer_kwargs) -> list[str]:
        overlay = write_overlay(tmp_path, "overlay.yaml", tiny_trainer_overlay(tmp_path / "run", **trainer_kwargs))
        return ["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(overlay)]

    return make
