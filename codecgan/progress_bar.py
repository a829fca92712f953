"""A TQDM progress bar that reads the logged values back from the device only on logging steps."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar

from codecgan.cadence import is_logging_step


class LoggingStepProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, except that its metrics (``train/loss_g``, ...) refresh only on logging steps.

    Showing a logged tensor means reading it back from the device; Lightning's bar does that at every refresh,
    which stops the host at every batch. This bar still counts batches at every ``refresh_rate`` batches (no
    device read) and shows the values of the latest logging step.
    """

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self.train_progress_bar
        n = batch_idx + 1
        if bar is None or bar.disable or not self._should_update(n, bar.total):
            return
        bar.n = n
        if is_logging_step(trainer):
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()
