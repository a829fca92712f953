"""How fast `codecgan test` scores, and where its time goes: each family's tiny config on held-out synthetic
utterances (default 24 of 3 s, the issue's case), on one PyTorch thread as the tiny configs run.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.test_command_speed              # ~5 min on 2 idle CPU cores
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.test_command_speed --utterances 8 --seconds 2 --families enhance

For each family (``enhance``: enhance_tiny.yaml, CMGAN; ``mpsenet``: enhance_mpsenet_tiny.yaml; ``codec``:
codec_tiny.yaml), in this process and one after the other:

1. the work of each part, serially on this process's thread, on the same utterances, in CPU seconds (user +
   system: what a loaded machine does not inflate) and wall seconds: reading the test set, the model on each
   utterance (``enhance_utterances``, or the codec at each bitrate), and each measure applied directly to each
   pair (``pesq.pesq`` wb and nb, ``stoi_scores``, ``composite_measures``, ``si_sdr_db``; ``CodecScores``);
2. ``trainer.test`` with ``EvaluationReport``, timed from the test's first batch to the written report, in wall
   seconds and in the CPU seconds of the main thread, of the whole process and of the PESQ workers, with the
   bound these give on idle cores; for the enhancers also a baseline in the same process, without freed memory
   kept (``codecgan.evaluation.freed_memory``) and with STOI and the composite measures on the main thread, the
   two reports compared value for value;
3. the ``codecgan test`` command itself in a child process, start to exit (``--command``; with the time to import
   ``codecgan.lightning_cli`` alone, the start-up's largest part).

It prints the parts, their sum (what the test costs one part after another on one core), the test loop's time,
the ratio sum / loop (above 1: the PESQ workers score while the model runs) and utterances per second. The model
is the config's untrained generator: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

import lightning as L
import torch
from pesq import pesq

from codecgan.evaluation.enhancement_scores import si_sdr_db
from codecgan.evaluation.report import EvaluationReport
from codecgan.lightning_cli import build_cli
from codecgan.metrics import stoi_scores
from codecgan.metrics.composite import composite_measures

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"enhance": "enhance_tiny.yaml", "mpsenet": "enhance_mpsenet_tiny.yaml", "codec": "codec_tiny.yaml"}


def worker_cpu_seconds(module: L.LightningModule) -> float:
    """CPU seconds (user + system) the module's PESQ worker processes have used so far (Linux ``/proc``)."""
    pools = [getattr(module, name, None) for name in ("_pesq_pool", "_pesq_nb_pool")]
    total = 0.0
    for pid in [pid for pool in pools if pool is not None and not pool.closed for pid in pool.worker_pids]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class TestClock(L.Callback):
    """From the start of the test epoch to the end of the test: wall seconds, and CPU seconds of the main thread
    (the model: the critical path when the other work has cores to run on), of this process (the main thread and
    the measure thread) and of the PESQ workers."""

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.start_thread, self.start_process = time.perf_counter(), time.thread_time(), time.process_time()
        self.start_workers = worker_cpu_seconds(pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start
        self.thread_seconds = time.thread_time() - self.start_thread
        self.process_seconds = time.process_time() - self.start_process
        self.worker_seconds = worker_cpu_seconds(pl_module) - self.start_workers

    def summary(self, utterances: int, seconds: float, cores: int) -> str:
        work = self.process_seconds + self.worker_seconds
        bound = max(self.thread_seconds, work / cores)
        return (
            f"{self.seconds:.2f} s = {utterances / self.seconds:.2f} utterances/s "
            f"({utterances * seconds / self.seconds:.1f} s of audio per s); CPU s: main thread {self.thread_seconds:.2f}, "
            f"process {self.process_seconds:.2f}, PESQ workers {self.worker_seconds:.2f}, all {work:.2f}; "
            f"on {cores} idle cores at least {bound:.2f} s = at most {utterances / bound:.2f} utterances/s"
        )


def data_arguments(family: str, utterances: int, seconds: float) -> list[str]:
    arguments = [
        f"--data.init_args.synthetic_items=[8, 2, {utterances}]",
        f"--data.init_args.synthetic_seconds={seconds}",
        "--data.init_args.val_batch_size=2",
    ]
    if family != "codec":
        arguments.append("--data.init_args.silent_item_fraction=0.0")
    return arguments


def build(family: str, utterances: int, seconds: float, folder: Path):
    """The family's tiny module and data module, with ``utterances`` test items of ``seconds`` each."""
    cli = build_cli(
        [
            "--config",
            str(ROOT / "experiments" / CONFIGS[family]),
            "--trainer.logger",
            "false",
            "--trainer.callbacks",
            "[]",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            f"--trainer.default_root_dir={folder}",
            *data_arguments(family, utterances, seconds),
        ],
        run=False,
    )
    return cli.trainer, cli.model, cli.datamodule


def timed(parts: dict[str, list[float]], name: str, function, *args):
    """``function(*args)``, adding its CPU and wall seconds to ``parts[name]``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    cpu, wall = parts.setdefault(name, [0.0, 0.0])
    parts[name] = [cpu + time.process_time() - start_cpu, wall + time.perf_counter() - start]
    return result


def serial_parts(family: str, model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, list[float]]:
    """CPU and wall seconds of each part of the test, one after another on this process's thread."""
    parts: dict[str, list[float]] = {}
    datamodule.setup("test")
    loader = iter(datamodule.test_dataloader())
    model.eval()
    with torch.inference_mode():
        while (batch := timed(parts, "read the test set", next, loader, None)) is not None:
            if family == "codec":
                for row, samples in enumerate(batch["length"].tolist()):
                    audio = batch["audio"][row : row + 1, :, :samples]
                    for count in model.test_codebook_counts:
                        estimate = timed(parts, "model", lambda: model.generator(audio, n_quantizers=count).audio)
                        timed(parts, "CodecScores", model.codec_scores, audio[0].mean(0), estimate[0].mean(0), 1.0)
                continue
            estimate, _, _ = timed(parts, "model (with metric-D prediction)", model.enhance_utterances, batch)
            for row, samples in enumerate(batch["length"].tolist()):
                noisy = batch["noisy"][row : row + 1, :, :samples]
                timed(
                    parts,
                    "of which metric D",
                    model.discriminator,
                    *[model.generator.compressed_spectrum(noisy).magnitude] * 2,
                )
                clean = batch["clean"][row, 0, :samples]
                for system in (estimate[row, 0, :samples], batch["noisy"][row, 0, :samples]):
                    reference, degraded = clean.numpy(), system.float().numpy()
                    wide = timed(parts, "PESQ wb", pesq, 16000, reference, degraded, "wb")
                    timed(parts, "PESQ nb", pesq, 16000, reference, degraded, "nb")
                    timed(parts, "STOI", stoi_scores, clean[None, None], system[None, None].float())
                    timed(parts, "composite", composite_measures, clean, system.float(), wide)
                    timed(parts, "SI-SDR", si_sdr_db, clean, system.float())
    return parts


def test_loop(family: str, utterances: int, seconds: float, folder: Path) -> tuple[TestClock, dict]:
    """``trainer.test`` with the report; the clock and ``metrics.json``."""
    trainer, model, datamodule = build(family, utterances, seconds, folder)
    clock = TestClock()
    trainer.callbacks += [clock, EvaluationReport()]
    trainer.test(model, datamodule, verbose=False)  # the clock reads the workers' CPU before teardown stops them
    if hasattr(model, "close_pesq_pool"):
        model.close_pesq_pool()
    return clock, json.loads((folder / "metrics.json").read_text())


def command_seconds(family: str, utterances: int, seconds: float, folder: Path) -> tuple[float, float]:
    """Wall seconds of ``codecgan test`` in a child process, start to exit, and of importing its CLI alone."""
    # This checkout's codecgan, whichever one the environment has installed.
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import codecgan.lightning_cli"], check=True, env=environment, cwd=ROOT)
    imports = time.perf_counter() - start
    command = [sys.executable, "-c", "import sys; from codecgan.cli import main; sys.exit(main())", "test"]
    command += ["--config", str(ROOT / "experiments" / CONFIGS[family])]
    command += ["--trainer.logger", "false", f"--trainer.default_root_dir={folder}"]
    start = time.perf_counter()
    subprocess.run(
        command + data_arguments(family, utterances, seconds),
        check=True,
        env=environment,
        cwd=ROOT,
        capture_output=True,
    )
    return time.perf_counter() - start, imports


def measure(family: str, utterances: int, seconds: float, folder: Path, command: bool) -> None:
    trainer, model, datamodule = build(family, utterances, seconds, folder / family)
    parts = serial_parts(family, model, datamodule)
    print(f"\n{family}: {utterances} utterances of {seconds:g} s, {torch.get_num_threads()} PyTorch thread(s)")
    print("| part (serial) | CPU s | CPU s per utterance | wall s |\n|---|---:|---:|---:|")
    for name, (cpu, wall) in parts.items():
        print(f"| {name} | {cpu:.2f} | {cpu / utterances:.3f} | {wall:.2f} |")
    serial = sum(cpu for name, (cpu, _) in parts.items() if not name.startswith("of which"))
    print(f"| sum | {serial:.2f} | {serial / utterances:.3f} | |")
    cores = len(os.sched_getaffinity(0))
    clock, report = test_loop(family, utterances, seconds, folder / family / "test")
    print(
        f"test loop: {clock.summary(utterances, seconds, cores)}; serial CPU sum / loop = {serial / clock.seconds:.2f}"
    )
    if family != "codec":
        # The same test as it ran without freed memory kept and with the other measures on the main thread.
        with mock.patch.multiple(
            "codecgan.enhance_module", keep_freed_memory=lambda: False, ThreadPoolExecutor=lambda *_, **__: None
        ):
            baseline, baseline_report = test_loop(family, utterances, seconds, folder / family / "baseline")
        print(
            "baseline test loop (freed memory unmapped, measures on the main thread): "
            + baseline.summary(utterances, seconds, cores)
        )
        print(
            f"baseline / test: wall {baseline.seconds / clock.seconds:.2f}, main-thread CPU "
            f"{baseline.thread_seconds / clock.thread_seconds:.2f}, all CPU "
            f"{(baseline.process_seconds + baseline.worker_seconds) / (clock.process_seconds + clock.worker_seconds):.2f}; "
            f"reports identical: {report == baseline_report}"
        )
    if command:
        total, imports = command_seconds(family, utterances, seconds, folder / family / "command")
        print(
            f"`codecgan test` command: {total:.2f} s start to exit = {utterances / total:.2f} utterances/s "
            f"(importing codecgan.lightning_cli alone: {imports:.2f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--folder", type=Path, default=Path("runs/bench_test_command_speed"))
    parser.add_argument("--no-command", dest="command", action="store_false", help="skip the child `codecgan test`")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    for family in args.families:
        measure(family, args.utterances, args.seconds, args.folder, args.command)


if __name__ == "__main__":
    main()
