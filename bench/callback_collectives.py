"""The collectives the diagnostic callbacks cost under DDP, per batch that logs, per batch that does not, and per
validation, counted in 2 CPU (gloo) processes.

    python bench/callback_collectives.py                      # this checkout
    python bench/callback_collectives.py --root /tmp/other    # another checkout of codecgan (e.g. `git archive`)

Runs each tiny config with a full callback set for 40 batches, logging every 10 and validating every 20 on 2
batches: codec_tiny with its own callbacks, and enhance_tiny with enhance_cmgan's. RankConsistency's, CodebookUsage's
and GradientBalance's intervals are set to 20, so that their windows close at logging steps (19, 39) and
GradientBalance measures at batches 0 and 20. Every collective called from Python (`torch.distributed.all_reduce`,
`all_gather`, `broadcast`, `barrier`, ... and what `broadcast_object_list` / `all_gather_object` call) is counted
with the bytes each rank sends and its origin: a vote of the callbacks' guard, a callback's own collective,
Lightning's epoch-end sync of logged values, or another of Lightning's (its per-batch SIGTERM broadcast). DDP's
gradient buckets (all-reduced in C++) are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
import yaml
from torch.distributed import distributed_c10d

ROOT = Path(__file__).resolve().parents[1]
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "broadcast", "barrier", "reduce", "gather",
               "scatter", "reduce_scatter", "reduce_scatter_tensor", "all_to_all", "all_to_all_single")  # fmt: skip
BATCHES, LOG_EVERY, VALIDATE_EVERY, INTERVAL = 40, 10, 20, 20


def _origin(stack: list[traceback.FrameSummary]) -> str:
    files = [(Path(frame.filename), frame.name) for frame in stack]
    if any(path.name == "sync_moments.py" and name == "vote" for path, name in files):
        return "vote"
    if any(path.parent.name == "callbacks" and "site-packages" not in str(path) for path, _ in files):
        return "callback"
    if any("logger_connector" in str(path) for path, _ in files):
        return "epoch-end log sync"
    return "lightning other"


def _bytes(name: str, args: tuple) -> int:
    """The bytes this rank sends: the first tensor argument (all_gather's input is its second argument)."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    sent = tensors[-1] if name == "all_gather_into_tensor" and tensors else (tensors[0] if tensors else None)
    return 0 if sent is None else sent.numel() * sent.element_size()


class CollectiveCounter(L.Callback):
    """Counts every collective of this process by (phase, logged step, origin); writes `<directory>/rank<k>.json`."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer
        for name in COLLECTIVES:
            original = getattr(distributed_c10d, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                self._count(_name, args)
                return _original(*args, **kwargs)

            setattr(distributed_c10d, name, counted)
            setattr(dist, name, counted)

    def _count(self, name: str, args: tuple) -> None:
        trainer = self.trainer
        stage = str(trainer.state.stage.value) if trainer.state.stage else "none"
        step = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "_batches_that_stepped", -1)
        origin = _origin(traceback.extract_stack()[:-2])
        counts = self.counts[f"{stage}|{step}|{origin}"]
        counts[0] += 1
        counts[1] += _bytes(name, args)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.counts))


def overlay(base: dict, cmgan_callbacks: list | None, scratch: Path) -> dict:
    callbacks = [
        c for c in (cmgan_callbacks or base["trainer"]["callbacks"]) if c["class_path"].startswith("callbacks.")
    ]
    for callback in callbacks:
        name = callback["class_path"].split(".")[-1]
        key = {"RankConsistency": "every_n_steps", "GradientBalance": "every_n_steps", "CodebookUsage": "window_steps"}
        if name in key:
            callback["init_args"] = {**callback.get("init_args", {}), key[name]: INTERVAL}
    callbacks.append({"class_path": "callback_collectives.CollectiveCounter", "init_args": {"directory": str(scratch)}})
    return {
        "trainer": {
            "accelerator": "cpu",
            "devices": 2,
            "strategy": "gan_ddp",
            "max_steps": BATCHES,
            "log_every_n_steps": LOG_EVERY,
            "val_check_interval": VALIDATE_EVERY,
            "limit_val_batches": 2,
            "num_sanity_val_steps": 0,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(scratch),
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(scratch), "name": "tb", "version": ""},
            },  # fmt: skip
            "callbacks": callbacks,
        },
        "data": {"init_args": {"batch_size": 2, "synthetic_items": [160, 4, 4]}},  # the config's own crops
    }


def measure(root: Path, config: str, cmgan_callbacks: list | None, scratch: Path) -> dict[str, list[float]]:
    base = yaml.safe_load((root / "experiments" / f"{config}.yaml").read_text())
    path = scratch / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay(base, cmgan_callbacks, scratch)))
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{ROOT / 'bench'}", "OMP_NUM_THREADS": "1"}
    env.pop("CODECGAN_CALLBACK_ERRORS", None)
    command = [sys.executable, "-m", "codecgan", "fit", "--config", f"experiments/{config}.yaml", "--config", str(path)]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{result.stderr[-3000:]}")
    counts = json.loads((scratch / "rank0.json").read_text())
    return summarise(counts)


def summarise(counts: dict[str, list[int]]) -> dict[str, list[float]]:
    """{moment: [collectives, bytes] by origin} averaged over the moments of each kind."""
    moments: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for key, (number, size) in counts.items():
        stage, step, origin = key.split("|")
        step = int(step)
        if stage == "validate":
            moment = f"validation {step}"
        elif stage == "train":
            logs, window = (step + 1) % LOG_EVERY == 0, (step + 1) % INTERVAL == 0
            moment = f"batch {step}" + (" logs" if logs else "") + (" closes windows" if window else "")
        else:
            moment = stage
        moments[moment][origin][0] += number
        moments[moment][origin][1] += size
    return {moment: dict(origins) for moment, origins in sorted(moments.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the codecgan checkout to measure")
    arguments = parser.parse_args()
    cmgan = yaml.safe_load((arguments.root / "experiments" / "enhance_cmgan.yaml").read_text())["trainer"]["callbacks"]
    results = {}
    for config, callbacks in (("codec_tiny", None), ("enhance_tiny", cmgan)):
        with tempfile.TemporaryDirectory() as scratch:
            results[config] = measure(arguments.root.resolve(), config, callbacks, Path(scratch))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
