"""The vocoder papers' measures of one resynthesised utterance against its recording (issue 26): mel distance,
multi-resolution STFT distance, PESQ wb, mel-cepstral distortion and the F0 measures.

- mel distance: the vocoder's validation measure, the L1 of the log-mels (``VocosMelLoss`` unweighted), so the
  test's number is the one ``val/mel_distance`` tracked.
- STFT distance: DAC's multi-resolution STFT distance (``codecgan.metrics.stft_distance``).
- PESQ wb: ITU-T P.862.2 at 16 kHz in the pool's worker processes (``PesqPool``); both signals are resampled to
  16 kHz first when the model's rate differs. A clip PESQ cannot score is NaN, counted by the report, never 0.
- MCD (dB) and the F0 measures (pitch RMSE in cents, periodicity RMSE, V/UV F1) from WORLD (``pyworld``, no
  download): ``codecgan.metrics.mel_cepstral_distortion`` and ``pitch_measures``, in worker processes when an
  executor is given, so the model goes on with the next utterance; a worker that fails gives NaN, counted.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future

import numpy as np
import torch
import torchaudio.functional as audio_functional
from torch import Tensor, nn

from codecgan.metrics import PesqHandle, PesqPool, mel_cepstral_distortion, pitch_measures
from codecgan.metrics.stft_distance import multiscale_stft_distance

VOCODER_MEASURES = (
    "mel_distance",
    "stft_distance",
    "pesq_wb",
    "mcd_db",
    "pitch_rmse_cents",
    "periodicity_rmse",
    "vuv_f1",
)
PESQ_SAMPLE_RATE = 16000
WORLD_MEASURES = ("mcd_db", "pitch_rmse_cents", "periodicity_rmse", "vuv_f1")


def world_measures(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, tracker: str) -> dict[str, float]:
    """MCD and the F0 measures of ``[T]`` signals at ``sample_rate`` Hz; NaN where WORLD cannot analyse them."""
    pitch = pitch_measures(reference, estimate, sample_rate, tracker=tracker)
    return {
        "mcd_db": mel_cepstral_distortion(reference, estimate, sample_rate, tracker=tracker),
        "pitch_rmse_cents": pitch.pitch_rmse_cents,
        "periodicity_rmse": pitch.periodicity_rmse,
        "vuv_f1": pitch.vuv_f1,
    }


class PendingVocoderRow:
    """One utterance's row on its way: ``result()`` waits for its PESQ and its WORLD measures."""

    def __init__(self, row: dict[str, float | int | str], pesq: PesqHandle, world: Future) -> None:
        self._row, self._pesq, self._world = row, pesq, world

    def result(self) -> dict[str, float | int | str]:
        """``{"utterance", "system", <VOCODER_MEASURES>...}``; the WORLD measures are NaN (counted by the report)
        if their worker failed."""
        try:
            world = self._world.result()
        except Exception:  # a worker process that died (BrokenProcessPool) or a WORLD error: no values, no crash
            world = dict.fromkeys(WORLD_MEASURES, math.nan)
        measures = {**self._row, "pesq_wb": float(self._pesq.result().scores[0]), **world}
        return {key: measures[key] for key in ("utterance", "system", *VOCODER_MEASURES)}


class PendingVocoderRows:
    """A batch's rows on their way (``EvaluationReport`` waits for them at the end of the test)."""

    def __init__(self, rows: list[PendingVocoderRow]) -> None:
        self.rows = rows
        self._result: list[dict[str, float | int | str]] | None = None

    def result(self) -> list[dict[str, float | int | str]]:
        if self._result is None:
            self._result, self.rows = [row.result() for row in self.rows], []
        return self._result


class VocoderScores:
    """Scores resynthesised utterances against their recordings (``VOCODER_MEASURES``).

    Args:
        sample_rate: the model's rate (Hz).
        mel_distance: ``(estimate [B, 1, T], reference [B, 1, T]) -> scalar``, the vocoder's ``mel_loss``.
        pesq_wb: a pool scoring wide-band PESQ at 16 kHz (it may be inline: ``PesqPool(0)``).
        world_executor: an executor for the WORLD measures (a ``ProcessPoolExecutor`` of a few spawned processes, or
            a ``ThreadPoolExecutor``); ``None`` computes them in ``submit``. The values are the same either way.
        f0_tracker: WORLD's ``harvest`` (robust, about 0.5 s of CPU per second of audio and signal) or ``dio``.
    """

    def __init__(
        self,
        sample_rate: int,
        mel_distance: nn.Module,
        pesq_wb: PesqPool,
        world_executor: Executor | None = None,
        f0_tracker: str = "harvest",
    ) -> None:
        if (pesq_wb.sample_rate, pesq_wb.mode) != (PESQ_SAMPLE_RATE, "wb"):
            raise ValueError(
                f"pesq_wb must score mode 'wb' at 16000 Hz, got {pesq_wb.mode!r} at {pesq_wb.sample_rate}."
            )
        self.sample_rate, self.mel_distance, self.pesq_wb = sample_rate, mel_distance, pesq_wb
        self.world_executor, self.f0_tracker = world_executor, f0_tracker

    @torch.no_grad()
    def submit(self, reference: Tensor, estimate: Tensor, utterance: int, system: str = "vocoder") -> PendingVocoderRow:
        """Score ``estimate`` against ``reference`` (``[T]`` each, the same length, on any device): the distances
        now, PESQ and the WORLD measures on their way."""
        if reference.shape != estimate.shape or reference.dim() != 1:
            raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} must be [T].")
        reference, estimate = reference.float(), estimate.float()
        row: dict[str, float | int | str] = {
            "utterance": utterance,
            "system": system,
            "mel_distance": float(self.mel_distance(estimate[None, None], reference[None, None])),
            "stft_distance": float(multiscale_stft_distance(estimate, reference)),
        }
        reference_cpu, estimate_cpu = reference.cpu(), estimate.cpu()
        pair = torch.stack([reference_cpu, estimate_cpu])
        if self.sample_rate != PESQ_SAMPLE_RATE:
            pair = audio_functional.resample(pair, orig_freq=self.sample_rate, new_freq=PESQ_SAMPLE_RATE)
        pesq = self.pesq_wb.submit(pair[0][None, None], pair[1][None, None])
        # NumPy arrays: plain pickles for a process pool.
        arguments = (reference_cpu.double().numpy(), estimate_cpu.double().numpy(), self.sample_rate, self.f0_tracker)
        if self.world_executor is not None:
            world = self.world_executor.submit(world_measures, *arguments)
        else:
            world = Future()
            world.set_result(world_measures(*arguments))
        return PendingVocoderRow(row, pesq, world)

    def __call__(self, reference: Tensor, estimate: Tensor, utterance: int = 0) -> dict[str, float | int | str]:
        """``submit(...).result()``."""
        return self.submit(reference, estimate, utterance).result()
