"""AudioSamples: listen to and look at a few fixed validation items every round."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks.base import require
from callbacks.guard import GuardedCallback
from codecgan.cadence import logged_step

ROLES = ("reference", "input", "estimate")


def spectrogram_image(waves: dict[str, torch.Tensor], sample_rate: int, n_fft: int = 512) -> np.ndarray:
    """An `[H, W, 3]` uint8 picture of the log-magnitude spectrograms of `waves` (1-D, same rate) side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * len(waves), 3), dpi=80)
    FigureCanvasAgg(figure)
    window = torch.hann_window(n_fft)
    for column, (role, wave) in enumerate(waves.items(), start=1):
        spectrum = torch.stft(wave.float().cpu(), n_fft, n_fft // 4, window=window, return_complex=True).abs()
        axis = figure.add_subplot(1, len(waves), column)
        extent = (0, wave.shape[-1] / sample_rate, 0, sample_rate / 2000)
        decibels = 20 * torch.log10(spectrum + 1e-5).numpy()
        axis.imshow(decibels, origin="lower", aspect="auto", vmin=-100, vmax=20, extent=extent)
        axis.set_title(role)
        axis.set_xlabel("time (s)")
        axis.set_ylabel("frequency (kHz)" if column == 1 else "")
    figure.tight_layout()
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


class AudioSamples(GuardedCallback):
    """Writes, each validation round, the reference, input and estimate audio of a few fixed validation items to
    TensorBoard (`audio/item<index>/<role>`), with their spectrograms side by side (`spectrogram/item<index>`).

    Items are `indices` if given, else the first `n_items` items rank 0 validates in the first round, kept from then
    on (and in `state_dict`). Why: some failures (buzz, metallic phase, level pumping) are heard long before any
    metric names them. Writes from rank 0 only and does no collectives. Guarded: an error disables it, not the run.
    """

    def __init__(self, sample_rate: int = 16000, n_items: int = 3, indices: list[int] | None = None) -> None:
        require(
            isinstance(sample_rate, int) and sample_rate > 0,
            f"AudioSamples sample_rate must be a positive integer (Hz), got {sample_rate!r}.",
        )
        require(
            isinstance(n_items, int) and n_items >= 1,
            f"AudioSamples n_items must be a positive integer, got {n_items!r}.",
        )
        require(
            indices is None or all(isinstance(i, int) and i >= 0 for i in indices),
            f"AudioSamples indices must be None or a list of dataset indices (non-negative integers), got {indices!r}.",
        )
        self.sample_rate, self.n_items = sample_rate, n_items
        self.choose_indices = indices is None  # pick the first items of the first round
        self.indices: list[int] = list(indices) if indices is not None else []
        self.rounds_written = 0
        self._written_this_round: set[int] = set()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._written_this_round = set()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not isinstance(outputs, Mapping) or "index" not in outputs:
            return
        writers = [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not writers:
            return
        for row, index in enumerate(outputs["index"].tolist()):
            if self.choose_indices and self.rounds_written == 0 and len(self.indices) < self.n_items:
                self.indices.append(index)
            if index not in self.indices or index in self._written_this_round:
                continue
            self._written_this_round.add(index)
            length = int(outputs["length"][row])
            waves = {role: outputs[role][row, 0, :length].detach().float().cpu() for role in ROLES if role in outputs}
            image = spectrogram_image(waves, self.sample_rate)
            step = logged_step(trainer)
            for writer in writers:
                for role, wave in waves.items():
                    writer.add_audio(f"audio/item{index}/{role}", wave.clamp(-1, 1)[None], step, self.sample_rate)
                writer.add_image(f"spectrogram/item{index}", image, step, dataformats="HWC")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and self._written_this_round:
            self.rounds_written += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "indices": list(self.indices),
            "rounds_written": self.rounds_written,
            "choose_indices": self.choose_indices,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.indices, self.rounds_written = list(state_dict["indices"]), state_dict["rounds_written"]
        self.choose_indices = state_dict["choose_indices"]
