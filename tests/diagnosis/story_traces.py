"""The metric trajectories of issue 4's two stories and of healthy runs, as CSV rows for `codecgan diagnose`."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = sorted({key for row in rows for key in row}, key=lambda c: (c not in ("step", "epoch"), c))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def enhancement_divergence() -> list[dict]:
    """val/pesq 2.45 rising to 2.64 at epoch 6, then falling steadily to 2.07 at epoch 14; train/loss_g falls."""
    pesq = [2.45, 2.50, 2.54, 2.57, 2.60, 2.62, 2.64] + [2.64 - 0.57 * k / 8 for k in range(1, 9)]
    return [
        {
            "epoch": epoch,
            "step": 250 * (epoch + 1),
            "val/pesq": round(value, 4),
            "train/loss_g": round(1.2 * 0.97**epoch, 4),
        }
        for epoch, value in enumerate(pesq)
    ]


def codec_stuck_discriminator() -> list[dict]:
    """loss_d at its chance value 2.0 for 10 epochs, feature matching 0.0130 -> 0.0118, negative SNR, unstable level."""
    loss_d = [2.0000, 1.9990, 1.9974, 1.9945, 1.9893, 1.9901, 1.9910, 1.9915, 1.9920, 1.9925]
    rows = []
    for i, value in enumerate(loss_d):
        epoch = i + 1
        row = {
            "epoch": epoch,
            "train/loss_d": value,
            "diag/d_loss_chance": 2.0,
            "train/loss_fm": round(0.0130 - 0.0012 * i / 9, 5),
        }
        if epoch == 5:
            row.update({"val/snr_db": -2.44, "val/amplitude_ratio": 0.849})
        if epoch == 10:
            row.update({"val/snr_db": -3.69, "val/amplitude_ratio": 1.136})
        rows.append(row)
    return rows


def _jitter(epoch: int, amplitude: float) -> float:
    """Deterministic, uncorrelated noise in [-amplitude, amplitude] (the fractional part of a scaled sine)."""
    value = math.sin(12.9898 * epoch + 78.233) * 43758.5453
    return amplitude * (2 * (value - math.floor(value)) - 1)


def healthy_enhancement(noise: float = 0.04) -> list[dict]:
    """val/pesq rises 2.40 -> 3.00 over 8 epochs, then sits on a noisy plateau; loss_g falls; PESQ-None is rare."""
    rows = []
    for epoch in range(30):
        pesq = 2.40 + 0.6 * min(epoch, 8) / 8 + (_jitter(epoch, noise) if epoch >= 8 else 0.0)
        rows.append(
            {
                "epoch": epoch,
                "step": 100 * (epoch + 1),
                "val/pesq": round(pesq, 4),
                "train/loss_g": round(1.0 * 0.96**epoch, 4),
                "diag/pesq_none_rate": 0.01,
                "diag/pesq_clip_fail_rate": 0.002,
                "diag/metric_d_corr": min(0.2 + 0.1 * epoch, 0.85),
                "diag/metric_d_mae": 0.08,
            }
        )
    return rows


def healthy_codec() -> list[dict]:
    """D loss well below chance, feature matching rising, SNR positive, level within ±0.5 dB, codebooks in use."""
    rows = []
    for epoch in range(12):
        row = {
            "epoch": epoch,
            "step": 500 * (epoch + 1),
            "train/loss_d": round(1.25 - 0.02 * epoch, 4),
            "diag/d_loss_chance": 2.0,
            "train/loss_fm": round(0.8 + 0.05 * epoch, 4),
            "train/loss_g": round(25 - epoch, 2),
            "val/snr_db": round(2.0 + 0.5 * epoch, 2),
            "val/si_sdr": round(2.5 + 0.5 * epoch, 2),
            "val/amplitude_ratio": round(1.0 + _jitter(epoch, 0.03), 4),
            "diag/length_mismatch": 0,
            "diag/grad_share/loss_adv": 0.08,
            "diag/grad_share/loss_mel": 0.7,
            "diag/codebook_entropy_fraction/0": 0.9,
            "diag/eval_input_changed": 0,
        }
        rows.append(row)
    return rows
