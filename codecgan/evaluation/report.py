"""The `codecgan test` report: a table of mean scores per system, `metrics.json` and a per-utterance `metrics.csv`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from codecgan.atomic_file import written_atomically

# How each measure is headed in the table; others are headed by their names.
HEADINGS = {
    "pesq_wb": "PESQ wb",
    "pesq_nb": "PESQ nb",
    "csig": "CSIG",
    "cbak": "CBAK",
    "covl": "COVL",
    "ssnr_db": "SSNR",
    "stoi": "STOI",
    "si_sdr_db": "SI-SDR",
    "bitrate_kbps": "kbps",
    "mel_distance": "mel dist.",
    "stft_distance": "STFT dist.",
    "snr_db": "SNR",
    "visqol_audio": "ViSQOL audio",
    "visqol_speech": "ViSQOL speech",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "mcd_db": "MCD",
    "pitch_rmse_cents": "pitch RMSE (cents)",
    "periodicity_rmse": "periodicity RMSE",
    "vuv_f1": "V/UV F1",
}


class EvaluationReport(L.Callback):
    """Collects the per-utterance scores that a module's ``test_step`` returns (``outputs["scores"]``: one dict per
    utterance and system, with ``utterance`` (its index in the test set), ``system`` (``enhanced``, ``noisy input``,
    ``reconstruction``, ...) and one float per measure, NaN where it could not be computed; or an object whose
    ``result()`` gives those rows, waited for only at the end of the test, so scoring in worker processes overlaps
    the next batches) and, at the end of the test, writes into the run folder (the logger's ``log_dir``, else
    ``default_root_dir``):

    - ``metrics.csv``: one row per utterance and system, with the utterance's file where the data has one;
    - ``metrics.json``: per system and measure the mean over the utterances that have a value, how many have one,
      and the files of those that do not (a failed PESQ is listed, never averaged in as a zero), and which weights
      were tested (``weights``: ``ema``, the generator's average, with ``model.init_args.ema_decay``, else ``raw``),
      and ``not_scored``: the measures the module could not score at all and why (its ``test_measures_not_scored``:
      ``"no reference"`` for each intrusive measure of a test set without clean references), left out of the rows;

    each written whole or not at all (``codecgan.atomic_file``), and logs the table of means. Under DDP every rank's
    rows are gathered (each utterance is tested once).
    """

    def __init__(self) -> None:
        self.batches: list[Any] = []  # each test batch's rows, or their pending form
        self.rows: list[dict[str, Any]] = []  # this rank's rows, once the test has ended

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches, self.rows = [], []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if isinstance(outputs, dict) and "scores" in outputs:
            self.batches.append(outputs["scores"])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches, self.batches = self.batches, []
        self.rows = [row for scores in batches for row in (scores.result() if hasattr(scores, "result") else scores)]
        rows = self.rows
        if trainer.world_size > 1:
            gathered: list[list[dict]] = [[] for _ in range(trainer.world_size)]
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for rank_rows in gathered for row in rank_rows]
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast under DDP: every rank asks
        if not trainer.is_global_zero or not rows:
            return
        names = utterance_names(trainer)
        rows = sorted(rows, key=lambda row: (row["utterance"], row["system"]))
        for row in rows:
            row["file"] = names.get(row["utterance"], "")
        folder.mkdir(parents=True, exist_ok=True)
        summary = {"weights": getattr(pl_module, "evaluated_weights", "raw"), **summarise(rows)}
        not_scored = getattr(pl_module, "test_measures_not_scored", {})
        if not_scored:
            summary["not_scored"] = not_scored
        write_csv(rows, folder / "metrics.csv")
        with written_atomically(folder / "metrics.json") as temporary:
            temporary.write_text(json.dumps(summary, indent=1, allow_nan=False))
        weights = "the generator's EMA weights" if summary["weights"] == "ema" else "the generator's weights"
        rank_zero_info(
            format_table(summary) + f"\nScores of {weights}. Per-utterance scores: {folder / 'metrics.csv'}; means: "
            f"{folder / 'metrics.json'}"
        )


def measures_of(rows: list[dict[str, Any]]) -> list[str]:
    """The measures in the order the test step scored them."""
    return [key for key in rows[0] if key not in ("utterance", "system", "file")]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means per system and measure over the utterances that have a value; the others listed by file."""
    measures = measures_of(rows)
    systems: dict[str, Any] = {}
    for system in dict.fromkeys(row["system"] for row in rows):
        mine = [row for row in rows if row["system"] == system]
        per_measure = {}
        for measure in measures:
            values = [row[measure] for row in mine if math.isfinite(row[measure])]
            missing = [row["file"] or f"#{row['utterance']}" for row in mine if not math.isfinite(row[measure])]
            per_measure[measure] = {
                "mean": sum(values) / len(values) if values else None,
                "scored": len(values),
                "failed": missing,
            }
        systems[system] = {"utterances": len(mine), "measures": per_measure}
    return {"measures": measures, "systems": systems}


def format_table(summary: dict[str, Any]) -> str:
    """The means as a Markdown table, one row per system; a measure some utterances lack says how many it has."""
    measures = summary["measures"]
    header = "| system | utterances | " + " | ".join(HEADINGS.get(m, m) for m in measures) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(measures)]
    for system, result in summary["systems"].items():
        cells = []
        for measure in measures:
            entry = result["measures"][measure]
            cell = "—" if entry["mean"] is None else f"{entry['mean']:.3f}"
            if entry["failed"]:
                cell += f" ({entry['scored']} scored)"
            cells.append(cell)
        lines.append(f"| {system} | {result['utterances']} | " + " | ".join(cells) + " |")
    reasons: dict[str, list[str]] = {}
    for measure, reason in summary.get("not_scored", {}).items():
        reasons.setdefault(reason, []).append(HEADINGS.get(measure, measure))
    lines += [f"Not scored ({reason}): {', '.join(headings)}." for reason, headings in reasons.items()]
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the per-utterance scores to ``path``, whole or not at all (``codecgan.atomic_file``)."""
    measures = measures_of(rows)
    with written_atomically(path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["utterance", "file", "system", *measures])
        for row in rows:
            writer.writerow(
                [
                    row["utterance"],
                    row["file"],
                    row["system"],
                    *("" if not math.isfinite(row[m]) else f"{row[m]:.6g}" for m in measures),
                ]
            )


def utterance_names(trainer: L.Trainer) -> dict[int, str]:
    """Index -> file (relative path) of the test set's utterances, where it is a folder; empty otherwise."""
    datamodule = trainer.datamodule
    dataset = getattr(datamodule, "datasets", {}).get("test") if datamodule is not None else None
    while dataset is not None and not hasattr(dataset, "names") and not hasattr(dataset, "files"):
        dataset = getattr(dataset, "base", None)
    if dataset is None:
        return {}
    if hasattr(dataset, "names"):
        return dict(enumerate(dataset.names))
    return {
        index: Path(path).name if not hasattr(dataset, "root") else str(Path(path).relative_to(dataset.root))
        for index, path in enumerate(dataset.files)
    }
