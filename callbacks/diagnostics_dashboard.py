"""DiagnosticsDashboard: registers the "codecgan diagnostics" custom-scalars layout in TensorBoard."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks.guard import GuardedCallback
from callbacks.run_config import model_family
from codecgan.diagnosis.dashboard import diagnostics_layout


class DiagnosticsDashboard(GuardedCallback):
    """Writes the TensorBoard custom-scalars layout "codecgan diagnostics" once per fit (rank 0 only): training loss
    next to validation quality, the metric discriminator next to the true PESQ, the PESQ-None rate, the D loss next
    to its chance value and feature matching, SNR and amplitude ratio, gradient shares and alarms; a vocoder's layout
    puts its mel distance first (`codecgan.diagnosis.dashboard`, by the model family). Why: a user opens
    TensorBoard's Custom Scalars tab and sees a divergence without writing a query. Keeps no state. Guarded: an error
    disables it, not the run.
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_custom_scalars(diagnostics_layout(model_family(pl_module)))
