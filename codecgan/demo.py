"""``make demo``: train the tiny codec on synthetic speech for about four minutes on a CPU, then diagnose the run.

Trains ``experiments/codec_tiny.yaml`` with the demo's overlay ``experiments/demo/codebook_dim_4.yaml`` (codes looked
up in 4 dimensions, not 8: the tiny codec then uses its codebooks, see the overlay) for 400 steps. Writes TensorBoard
logs and checkpoints under ``runs/demo``, prints the validation SNR at the first and last validation, the mel
distance, the amplitude ratio and the command that opens TensorBoard, and ends with what
``codecgan diagnose runs/demo`` prints for the run.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.report import diagnose_path, render_text
from codecgan.lightning_cli import build_cli

RUN_DIR = Path("runs/demo")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CONFIGS = (EXPERIMENTS / "codec_tiny.yaml", EXPERIMENTS / "demo" / "codebook_dim_4.yaml")


def scalar_series(history: MetricHistory, tag: str) -> list[tuple[int, float]]:
    return [(point.step, point.value) for point in history.series(tag)]


def cli_arguments() -> list[str]:
    """The demo's `codecgan fit` arguments: the configs, and every output under `RUN_DIR`."""
    configs = [argument for config in CONFIGS for argument in ("--config", str(config))]
    return configs + [
        "--trainer.default_root_dir",
        str(RUN_DIR),
        "--trainer.logger.init_args.save_dir",
        str(RUN_DIR.parent),
        "--trainer.logger.init_args.name",
        RUN_DIR.name,
    ]


def main() -> int:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    cli = build_cli(cli_arguments(), run=False)
    # A validation before the first step, so the first validation shows the untrained model.
    cli.trainer.validate(cli.model, cli.datamodule, verbose=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    history = MetricHistory.from_tensorboard_run(str(RUN_DIR))
    snr = scalar_series(history, "val/snr_db")
    ratio = scalar_series(history, "val/amplitude_ratio")
    mel = scalar_series(history, "val/loss_mel")
    if not snr:
        print("The demo finished but logged no val/snr_db; see the TensorBoard logs.", file=sys.stderr)
        return 1
    (first_step, first), (last_step, last) = snr[0], snr[-1]
    print()
    print(f"validation SNR: {first:+.2f} dB at step {first_step} -> {last:+.2f} dB at step {last_step}")
    if mel:
        print(f"validation mel distance: {mel[0][1]:.2f} -> {mel[-1][1]:.2f}")
    if ratio:
        print(f"amplitude ratio (RMS estimate / RMS reference): {ratio[-1][1]:.3f}")
    print(f"checkpoints: {RUN_DIR / 'checkpoints'}")
    print(f"open the dashboard: make tensorboard   (or: tensorboard --logdir {RUN_DIR})")
    print()
    # The diagnosis of this run, exactly as `codecgan diagnose runs/demo` prints it.
    findings, runs = diagnose_path(str(RUN_DIR))
    print(render_text(findings, str(RUN_DIR), runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
