"""DataLeakCheck: at the start of fit, validation or test files that are training files, or a validation set that is
the test set."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks.base import DiagnosticCallback, require
from codecgan.cadence import is_logging_step, logged_step
from codecgan.data.leaks import DataLeakReport, find_data_leaks
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import data_leak

DATA_LEAK_TEXT_TAG = "diag/data_leak"


class DataLeakCheck(DiagnosticCallback):
    """Compares the datamodule's folders (`data.train_dir`, `val_dir`, `test_dir`; for splits mixed on the fly
    their clean, noise and room-response folders, the datamodule's `source_folders`) when fit starts: validation and
    test files that are training files (the same file through any path, or the same content under another name; see
    `codecgan.data.leaks`), and validation files that are test files.

    Logs `diag/data_leak_files` and `diag/val_test_shared_files` at the starting step and a text entry
    `diag/data_leak` naming up to `max_examples` files. Why: scores on training files measure memorisation, and a best
    checkpoint chosen on the test set has seen it. Catches DATA_LEAK (checked again at every start, a resume included:
    folders cleaned since clear the alarm). With synthetic data, or a single folder, there is nothing to compare and
    nothing is logged. Every rank checks the same folders, so all decide alike; only rank 0 writes.
    """

    codes = ("DATA_LEAK",)

    def __init__(self, max_examples: int = 5) -> None:
        super().__init__()
        require(
            isinstance(max_examples, int) and max_examples >= 1,
            f"DataLeakCheck max_examples must be a positive integer, got {max_examples!r}.",
        )
        self.max_examples = max_examples
        self.report: DataLeakReport | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule = trainer.datamodule
        dirs = getattr(datamodule, "source_folders", None) or getattr(datamodule, "dirs", None) or {}
        self.report = find_data_leaks(dirs)
        if self.report is None:
            return
        values = {
            tags.DATA_LEAK_FILES: float(self.report.leaked_count),
            tags.VAL_TEST_SHARED_FILES: float(len(self.report.val_test_files)),
        }
        self._record(trainer, None, values, log=False)  # self.log is not allowed in on_fit_start
        step = logged_step(trainer)
        examples = self.report.examples(self.max_examples)
        for logger in trainer.loggers:  # loggers write on rank 0 only
            logger.log_metrics(values, step=step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(DATA_LEAK_TEXT_TAG, self._summary(dirs, examples), step)
        self._raise(trainer, {"DATA_LEAK": data_leak(self.history, examples)})

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if is_logging_step(trainer):
            self.alarms.log_active(pl_module)

    def _summary(self, dirs: dict[str, str | list[str] | None], examples: list[str]) -> str:
        report = self.report
        folders = ", ".join(
            f"{split}: `{directory if isinstance(directory, str) else '`, `'.join(directory)}`"
            for split, directory in dirs.items()
            if directory
        )
        lines = [
            f"Checked {report.files_checked} files in {folders}.",
            f"{report.leaked_count} validation/test files are training files; "
            f"{len(report.val_test_files)} validation files are test files"
            + (" (the validation folder is the test folder)." if report.same_val_test_folder else "."),
        ]
        lines += [f"- {example}" for example in examples]
        return "\n\n".join(lines[:2]) + ("\n\n" + "\n".join(lines[2:]) if examples else "")
