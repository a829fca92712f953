"""How fast `codecgan test` scores, and where its time goes: the tiny enhancer and the tiny codec on held-out
synthetic utterances (default 24 of 3 s, the issue's case), on one PyTorch thread as the tiny configs run.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.test_command_speed              # ~2 min on 2 idle CPU cores
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.test_command_speed --utterances 8 --seconds 2 --families enhance

For each family, in this process and one after the other (so a loaded machine slows all alike):

1. the serial cost of each part on the same utterances: reading the test set, the model on each utterance
   (``enhance_utterances``, or the codec at each bitrate), and each measure applied directly to each pair
   (``pesq.pesq`` wb and nb, ``stoi_scores``, ``composite_measures``, ``si_sdr_db``; ``CodecScores``);
2. ``trainer.test`` with ``EvaluationReport``, timed from the test's first batch to the written report.

It prints the parts, their sum (what scoring one part after another on one core costs), the test loop's time,
the ratio sum / loop (above 1: the PESQ workers score while the model runs) and utterances per second. The model
is the config's untrained generator: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from pesq import pesq

from codecgan.evaluation.enhancement_scores import si_sdr_db
from codecgan.evaluation.report import EvaluationReport
from codecgan.lightning_cli import build_cli
from codecgan.metrics import stoi_scores
from codecgan.metrics.composite import composite_measures

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"enhance": "enhance_tiny.yaml", "codec": "codec_tiny.yaml"}


class TestClock(L.Callback):
    """Seconds from the start of the test epoch to the end of the test (the report written)."""

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def build(family: str, utterances: int, seconds: float, folder: Path):
    """The family's tiny module and data module, with ``utterances`` test items of ``seconds`` each."""
    data = [
        f"--data.init_args.synthetic_items=[8, 2, {utterances}]",
        f"--data.init_args.synthetic_seconds={seconds}",
        "--data.init_args.val_batch_size=2",
    ]
    if family == "enhance":
        data.append("--data.init_args.silent_item_fraction=0.0")
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
            *data,
        ],
        run=False,
    )
    return cli.trainer, cli.model, cli.datamodule


def timed(parts: dict[str, float], name: str, function, *args):
    start = time.perf_counter()
    result = function(*args)
    parts[name] = parts.get(name, 0.0) + time.perf_counter() - start
    return result


def serial_parts(family: str, model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """Seconds of each part of the test, one after another on this process's thread."""
    parts: dict[str, float] = {}
    datamodule.setup("test")
    loader = iter(datamodule.test_dataloader())
    model.eval()
    with torch.no_grad():
        while (batch := timed(parts, "read the test set", next, loader, None)) is not None:
            if family == "codec":
                for row, samples in enumerate(batch["length"].tolist()):
                    audio = batch["audio"][row : row + 1, :, :samples]
                    for count in model.test_codebook_counts:
                        estimate = timed(parts, "model", lambda: model.generator(audio, n_quantizers=count).audio)
                        timed(parts, "CodecScores", model.codec_scores, audio[0].mean(0), estimate[0].mean(0), 1.0)
                continue
            estimate, _, _ = timed(parts, "model", model.enhance_utterances, batch)
            for row, samples in enumerate(batch["length"].tolist()):
                clean = batch["clean"][row, 0, :samples]
                for system in (estimate[row, 0, :samples], batch["noisy"][row, 0, :samples]):
                    reference, degraded = clean.numpy(), system.float().numpy()
                    wide = timed(parts, "PESQ wb", pesq, 16000, reference, degraded, "wb")
                    timed(parts, "PESQ nb", pesq, 16000, reference, degraded, "nb")
                    timed(parts, "STOI", stoi_scores, clean[None, None], system[None, None].float())
                    timed(parts, "composite", composite_measures, clean, system.float(), wide)
                    timed(parts, "SI-SDR", si_sdr_db, clean, system.float())
    return parts


def measure(family: str, utterances: int, seconds: float, folder: Path) -> None:
    trainer, model, datamodule = build(family, utterances, seconds, folder / family)
    parts = serial_parts(family, model, datamodule)
    trainer, model, datamodule = build(family, utterances, seconds, folder / family)
    clock = TestClock()
    trainer.callbacks += [clock, EvaluationReport()]
    trainer.test(model, datamodule, verbose=False)
    serial = sum(parts.values())
    print(f"\n{family}_tiny: {utterances} utterances of {seconds:g} s, {torch.get_num_threads()} PyTorch thread(s)")
    print("| part (serial) | s | s per utterance |\n|---|---:|---:|")
    for name, value in parts.items():
        print(f"| {name} | {value:.2f} | {value / utterances:.3f} |")
    print(f"| sum | {serial:.2f} | {serial / utterances:.3f} |")
    print(
        f"codecgan test loop: {clock.seconds:.2f} s = {utterances / clock.seconds:.2f} utterances/s "
        f"({utterances * seconds / clock.seconds:.1f} s of audio per s); serial sum / loop = {serial / clock.seconds:.2f}"
    )
    if hasattr(model, "close_pesq_pool"):
        model.close_pesq_pool()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--folder", type=Path, default=Path("runs/bench_test_command_speed"))
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    for family in args.families:
        measure(family, args.utterances, args.seconds, args.folder)


if __name__ == "__main__":
    main()
