"""Running the arms: `codecgan fit` subprocesses, one after another or several at once on separate devices, each
re-used when it finished earlier with the same settings and resumed when it did not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Callable

import yaml

from codecgan.confirm.arms import ARM_CONFIG, SETTINGS_NAME, Arm, ConfirmError

LOG_NAME = "fit.log"


def is_finished(arm: Arm) -> bool:
    """True when the arm's folder holds a finished run with the same settings."""
    path = arm.folder / SETTINGS_NAME
    if not path.is_file():
        return False
    saved = json.loads(path.read_text())
    return saved.get("settings") == arm.settings_hash and saved.get("finished", False)


def prepare(arm: Arm) -> bool:
    """Write the arm's config; returns whether an unfinished run with the same settings is resumed. An arm folder
    of other settings (another --steps, another experiment definition) is replaced."""
    path = arm.folder / SETTINGS_NAME
    resume = False
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == arm.settings_hash:
            resume = True
        else:
            shutil.rmtree(arm.folder)  # a folder `confirm` made itself (it holds confirm.json)
    arm.folder.mkdir(parents=True, exist_ok=True)
    (arm.folder / ARM_CONFIG).write_text(yaml.safe_dump(arm.config, sort_keys=False))
    path.write_text(json.dumps({"settings": arm.settings_hash, "finished": False}))
    return resume


def command(arm: Arm) -> list[str]:
    # `auto` resumes the arm's own last checkpoint when one exists (an interrupted confirm) and starts fresh otherwise.
    return [sys.executable, "-m", "codecgan", "fit", "--config", str(arm.folder / ARM_CONFIG), "--ckpt_path", "auto"]


def run_arms(arms: list[Arm], slots: int, report: Callable[[str], None]) -> None:
    """Run the arms that are not finished, at most `slots` devices busy at once (an arm of a DDP run takes one
    device per rank). Raises `ConfirmError` naming the log of an arm that failed."""
    pending = [arm for arm in arms if not is_finished(arm)]
    for arm in arms:
        if arm not in pending:
            report(f"re-using {arm.folder} (finished earlier with the same settings)")
    if any(arm.devices > slots for arm in pending):
        raise ConfirmError(
            f"An arm needs {max(a.devices for a in pending)} devices (the run's trainer.devices); "
            f"give --devices at least that."
        )
    free = list(range(slots))
    running: list[tuple[Arm, subprocess.Popen, list[int], float]] = []
    threads = max(1, (os.cpu_count() or 1) // slots)
    failed: list[Arm] = []
    while pending or running:
        while pending and len(free) >= pending[0].devices:
            arm = pending.pop(0)
            resumed = prepare(arm)
            devices, free = free[: arm.devices], free[arm.devices :]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            if slots > 1:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
            log = (arm.folder / "fit.log").open("a")
            process = subprocess.Popen(command(arm), stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((arm, process, devices, time.monotonic()))
            report(f"{'resuming' if resumed else 'running'} {arm.folder} ({arm.config['trainer']['max_steps']} steps)")
        time.sleep(0.2)
        for entry in list(running):
            arm, process, devices, started = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            free = sorted(free + devices)
            if process.returncode == 0:
                (arm.folder / SETTINGS_NAME).write_text(json.dumps({"settings": arm.settings_hash, "finished": True}))
                report(f"finished {arm.folder} in {time.monotonic() - started:.0f} s")
            else:
                failed.append(arm)
                report(f"FAILED {arm.folder} (exit {process.returncode}); see {arm.folder / LOG_NAME}")
    if failed:
        raise ConfirmError(
            "An arm's `codecgan fit` failed: " + ", ".join(str(arm.folder / LOG_NAME) for arm in failed) + ". "
            "Fix the cause and run confirm again: finished arms are re-used and the others resume."
        )
