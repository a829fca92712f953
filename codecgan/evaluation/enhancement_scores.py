"""The speech-enhancement papers' measures of one utterance (VoiceBank-DEMAND tables): PESQ wb and nb, CSIG, CBAK,
COVL, SSNR, STOI and SI-SDR.

- PESQ: ITU-T P.862.2 wide-band and P.862 narrow-band MOS-LQO from the ``pesq`` package (``PesqPool``), at 16 kHz.
- CSIG, CBAK, COVL, SSNR: Hu & Loizou's definitions (``codecgan.metrics.composite``) in CMGAN's convention, so
  numbers compare with CMGAN's and MP-SENet's tables.
- STOI: ``pystoi``, as torchmetrics uses it (``stoi_scores``).
- SI-SDR: torchmetrics' ``scale_invariant_signal_distortion_ratio`` with the means removed (Le Roux et al.).

A measure that cannot be computed for an utterance (a PESQ failure, STOI of a reference with too little speech)
is NaN, never a placeholder: the report counts and lists it. An all-zero reference has no SSNR, STOI or SI-SDR.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future

import torch
from torch import Tensor
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from codecgan.metrics import PesqHandle, PesqPool, stoi_scores
from codecgan.metrics.composite import CompositeMeasures, composite_measures, composite_ratings

ENHANCEMENT_MEASURES = ("pesq_wb", "pesq_nb", "csig", "cbak", "covl", "ssnr_db", "stoi", "si_sdr_db")
SAMPLE_RATE = 16000


def si_sdr_db(reference: Tensor, estimate: Tensor) -> float:
    """SI-SDR in dB of ``estimate`` against ``reference`` (``[T]`` each), means removed; NaN for a silent reference."""
    if not bool(reference.any()):
        return math.nan
    return float(scale_invariant_signal_distortion_ratio(estimate.double(), reference.double(), zero_mean=True))


class PendingRows:
    """One batch's rows on their way: PESQ is scored in the pools' worker processes, the other measures here or in
    a thread (``EnhancementScores``), and ``result()`` waits for both, then completes the composite ratings, which
    need PESQ wb.

    ``local`` gives ``(rows, sources)`` (a ``Future``): ``rows`` hold ``utterance``, ``system``, ``ssnr_db``,
    ``stoi`` and ``si_sdr_db``; ``sources[i]`` is row ``i``'s position in its batch and its LLR, WSS and SSNR
    (``CompositeMeasures``). ``pesq`` maps ``(system, measure)`` to the batch's ``PesqHandle``."""

    def __init__(self, local: Future, pesq: dict[tuple[str, str], PesqHandle]) -> None:
        self._local, self._pesq = local, pesq
        self._result: list[dict[str, float | int | str]] | None = None

    def result(self) -> list[dict[str, float | int | str]]:
        """One row per utterance and system, ``{"utterance", "system", <ENHANCEMENT_MEASURES>...}``."""
        if self._result is None:
            rows, sources = self._local.result()
            scores = {key: handle.result().scores for key, handle in self._pesq.items()}
            self._result = []
            for row, (position, composite) in zip(rows, sources):
                pesq_wb = float(scores[row["system"], "pesq_wb"][position])
                csig, cbak, covl = composite_ratings(pesq_wb, composite.llr, composite.wss, composite.ssnr_db)
                measures = {
                    **row,
                    "pesq_wb": pesq_wb,
                    "pesq_nb": float(scores[row["system"], "pesq_nb"][position]),
                    "csig": csig,
                    "cbak": cbak,
                    "covl": covl,
                }
                self._result.append({key: measures[key] for key in ("utterance", "system", *ENHANCEMENT_MEASURES)})
            self._local, self._pesq = None, {}  # the audio the handles held can go
        return self._result


class EnhancementScores:
    """Scores several systems' outputs against the clean references, utterance by utterance.

    ``submit`` returns once PESQ is on its way to the pools' worker processes and the other measures are computed
    (here) or on their way (in ``measure_thread``), so the workers score a batch while the caller runs the model on
    the next one (``PendingRows.result()`` waits); calling the object waits at once.

    Args:
        pesq_wb, pesq_nb: pools scoring wide-band and narrow-band PESQ at 16 kHz (each may be inline).
        measure_thread: an executor (one thread: ``ThreadPoolExecutor(1)``) that computes STOI, the composite
            measures and SI-SDR while the caller's thread goes on; ``None`` computes them in ``submit``. The values
            are the same either way.
    """

    def __init__(self, pesq_wb: PesqPool, pesq_nb: PesqPool, measure_thread: Executor | None = None) -> None:
        for pool, mode in ((pesq_wb, "wb"), (pesq_nb, "nb")):
            if (pool.sample_rate, pool.mode) != (SAMPLE_RATE, mode):
                raise ValueError(
                    f"pesq_{mode} must score mode {mode!r} at 16000 Hz, got {pool.mode!r} at {pool.sample_rate}."
                )
        self.pools = {"pesq_wb": pesq_wb, "pesq_nb": pesq_nb}
        self.measure_thread = measure_thread

    def __call__(
        self, clean: Tensor, systems: dict[str, Tensor], length: Tensor, utterance: Tensor
    ) -> list[dict[str, float | int | str]]:
        """``submit(...).result()``."""
        return self.submit(clean, systems, length, utterance).result()

    @torch.no_grad()
    def submit(self, clean: Tensor, systems: dict[str, Tensor], length: Tensor, utterance: Tensor) -> PendingRows:
        """One row per utterance and system, on their way (``PendingRows``).

        ``clean`` and each system's output are ``[B, 1, T]`` at 16 kHz; utterance ``i`` is its first ``length[i]``
        samples; ``utterance`` (``[B]``) holds the utterances' indices in the test set."""
        clean = clean.detach().float().cpu()
        systems = {name: audio.detach().float().cpu() for name, audio in systems.items()}
        length, utterance = length.cpu(), utterance.cpu()
        # Every PESQ is submitted first, so the worker processes score while the other measures run.
        handles = {
            (name, measure): pool.submit(clean, audio, length)
            for name, audio in systems.items()
            for measure, pool in self.pools.items()
        }
        if self.measure_thread is not None:
            return PendingRows(self.measure_thread.submit(local_measures, clean, systems, length, utterance), handles)
        local: Future = Future()
        local.set_result(local_measures(clean, systems, length, utterance))
        return PendingRows(local, handles)


@torch.no_grad()
def local_measures(
    clean: Tensor, systems: dict[str, Tensor], length: Tensor, utterance: Tensor
) -> tuple[list[dict[str, float | int | str]], list[tuple[int, CompositeMeasures]]]:
    """Every measure but PESQ and the composite ratings (``PendingRows``' ``rows`` and ``sources``) of CPU fp32
    ``[B, 1, T]`` audio, cut to ``length`` (``[B]``)."""
    stoi = {name: stoi_scores(clean, audio, length, SAMPLE_RATE) for name, audio in systems.items()}
    rows, sources = [], []
    for row, samples in enumerate(length.tolist()):
        reference = clean[row, 0, :samples]
        silent_reference = not bool(reference.any())
        for name, audio in systems.items():
            estimate = audio[row, 0, :samples]
            # The ratings wait for PESQ wb (PendingRows.result); LLR, WSS and SSNR do not need it.
            composite = composite_measures(reference, estimate, math.nan)
            sources.append((row, composite))
            # Every frame of a digitally silent reference scores the -10 dB floor whatever the estimate.
            ssnr_db = math.nan if silent_reference else composite.ssnr_db
            rows.append(
                {
                    "utterance": int(utterance[row]),
                    "system": name,
                    "ssnr_db": ssnr_db,
                    "stoi": float(stoi[name][row]),
                    "si_sdr_db": si_sdr_db(reference, estimate),
                }
            )
    return rows, sources
