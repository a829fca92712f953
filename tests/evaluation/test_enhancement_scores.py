"""EnhancementScores gives, row by row, exactly what the scoring functions give when applied directly, whether PESQ
is scored in worker processes (the rows waited for later) or inline, and the other measures here or in a thread."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from pesq import pesq

from codecgan.data.synthetic_speech import synthesize_speech
from codecgan.evaluation.enhancement_scores import ENHANCEMENT_MEASURES, EnhancementScores, si_sdr_db
from codecgan.metrics import PesqPool, stoi_scores
from codecgan.metrics.composite import composite_measures


def direct_row(reference: torch.Tensor, estimate: torch.Tensor) -> dict[str, float]:
    """Every measure of one utterance from the scoring functions themselves (``[T]`` each)."""
    pesq_wb = pesq(16000, reference.numpy(), estimate.numpy(), "wb")
    composite = composite_measures(reference, estimate, pesq_wb)
    return {
        "pesq_wb": pesq_wb,
        "pesq_nb": pesq(16000, reference.numpy(), estimate.numpy(), "nb"),
        "csig": composite.csig,
        "cbak": composite.cbak,
        "covl": composite.covl,
        "ssnr_db": composite.ssnr_db,
        "stoi": float(stoi_scores(reference[None, None], estimate[None, None])[0]),
        "si_sdr_db": si_sdr_db(reference, estimate),
    }


@pytest.mark.parametrize(("processes", "measure_thread"), [(0, False), (2, False), (2, True)])
def test_rows_equal_the_scoring_functions_applied_directly(processes, measure_thread):
    clean = torch.stack([synthesize_speech(16000, 16000, seed) for seed in (1, 2)])[:, None]  # [2, 1, T], 1 s
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    enhanced = 0.5 * (clean + noisy)
    length = torch.tensor([clean.shape[-1], clean.shape[-1] - 3000])
    thread = ThreadPoolExecutor(1) if measure_thread else None
    with PesqPool(processes, 16000, "wb") as wide, PesqPool(processes, 16000, "nb") as narrow:
        pending = EnhancementScores(wide, narrow, thread).submit(
            clean, {"enhanced": enhanced, "noisy input": noisy}, length, torch.tensor([7, 3])
        )
        rows = pending.result()
    if thread is not None:
        thread.shutdown()
    assert [(row["utterance"], row["system"]) for row in rows] == [
        (7, "enhanced"),
        (7, "noisy input"),
        (3, "enhanced"),
        (3, "noisy input"),
    ]
    assert pending.result() is rows  # waited for once
    for row in rows:
        position = 0 if row["utterance"] == 7 else 1
        samples = int(length[position])
        estimate = {"enhanced": enhanced, "noisy input": noisy}[row["system"]][position, 0, :samples]
        expected = direct_row(clean[position, 0, :samples], estimate)
        assert list(row) == ["utterance", "system", *ENHANCEMENT_MEASURES]
        assert all(math.isfinite(row[name]) for name in ENHANCEMENT_MEASURES)
        assert {name: row[name] for name in ENHANCEMENT_MEASURES} == expected
