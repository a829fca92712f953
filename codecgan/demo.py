"""``make demo``: train the tiny codec on synthetic speech for about two minutes on a CPU.

Writes TensorBoard logs and checkpoints under ``runs/demo``, then prints the validation SNR at
the first and last validation, the amplitude ratio and the command that opens TensorBoard.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from codecgan.diagnosis.history import MetricHistory
from codecgan.lightning_cli import build_cli

RUN_DIR = Path("runs/demo")
CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "codec_tiny.yaml"


def scalar_series(history: MetricHistory, tag: str) -> list[tuple[int, float]]:
    return [(point.step, point.value) for point in history.series(tag)]


def main() -> int:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    cli = build_cli(
        [
            "--config",
            str(CONFIG),
            "--trainer.default_root_dir",
            str(RUN_DIR),
            "--trainer.logger.init_args.save_dir",
            "runs",
            "--trainer.logger.init_args.name",
            "demo",
        ],
        run=False,
    )
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
