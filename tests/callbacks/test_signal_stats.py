"""SignalStats on synthetic validation outputs with known SNR, level and lengths."""

from __future__ import annotations

import math

import pytest
import torch

from callbacks import SignalStats
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, validation_round


def sine(batch: int = 2, samples: int = 1600) -> torch.Tensor:
    t = torch.arange(samples) / 16000
    return 0.5 * torch.sin(2 * math.pi * 440 * t).repeat(batch, 1, 1)


def outputs(estimate: torch.Tensor, reference: torch.Tensor, length: list[int] | None = None) -> dict:
    length = torch.tensor(length or [reference.shape[-1]] * reference.shape[0])
    return {
        "estimate": estimate,
        "reference": reference,
        "input": reference,
        "length": length,
        "index": torch.arange(len(length)),
    }


def run_round(*batches: dict) -> FakeModule:
    callback, trainer, module = SignalStats(), FakeTrainer(), FakeModule()
    validation_round(callback, trainer, module, list(batches))
    return module


def test_half_amplitude_estimate_is_minus_6_db_with_6_db_snr() -> None:
    reference = sine()
    module = run_round(outputs(0.5 * reference, reference))
    assert module.last("val/amplitude_ratio") == pytest.approx(0.5, rel=1e-6)
    assert module.last("val/snr_db") == pytest.approx(20 * math.log10(2), rel=1e-6)  # error = half the reference
    assert module.last("val/si_sdr") == pytest.approx(100.0)  # a pure gain is free for SI-SDR (capped)
    assert module.last("diag/length_mismatch") == 0


def test_a_dc_offset_is_measured_against_the_reference_rms_and_named_in_the_level_finding() -> None:
    # A sine of peak 0.5 has RMS 0.5 / sqrt(2); an offset of 0.5 is sqrt(2) of it. The level moves +4.8 dB.
    reference = sine()
    rounds = [outputs(reference + 0.5, reference)] * 2
    callback, trainer, module = SignalStats(), FakeTrainer(), FakeModule()
    with pytest.warns(UserWarning, match=r"AMPLITUDE_UNSTABLE.*val/dc_offset\) was 1.41 times the reference's RMS"):
        for batch in rounds:
            validation_round(callback, trainer, module, [batch])
    assert module.last("val/dc_offset") == pytest.approx(math.sqrt(2), rel=1e-3)
    assert run_round(outputs(reference, reference)).last("val/dc_offset") == pytest.approx(0.0, abs=1e-6)


def test_statistics_use_only_the_true_length() -> None:
    reference = sine()
    estimate = reference.clone()
    estimate[..., 800:] = 0.0  # garbage past the true length of 800 samples must not count
    module = run_round(outputs(estimate, reference, length=[800, 800]))
    assert module.last("val/amplitude_ratio") == pytest.approx(1.0)
    assert module.last("diag/length_mismatch") == 0


def test_length_mismatch_and_clipping_are_counted() -> None:
    reference = sine()
    with pytest.warns(UserWarning, match="LENGTH_MISMATCH: diag/length_mismatch counted 2 validation clips"):
        module = run_round(outputs(reference[..., :1500].clamp(-0.3, 0.3) * (1 / 0.3), reference))
    assert module.last("diag/length_mismatch") == 2
    assert module.last("val/clipped_fraction") > 0.2


def test_silent_references_are_counted_not_scored() -> None:
    reference = sine(batch=2)
    reference[1] = 0.0
    module = run_round(outputs(reference * 2, reference))
    assert module.last("diag/silent_reference_clips") == 1
    assert module.last("val/amplitude_ratio") == pytest.approx(2.0)


def test_one_quiet_reference_barely_moves_the_amplitude_ratio() -> None:
    """A ratio of summed energies: a reference at -70 dBFS whose estimate is 10 times too loud (+20 dB) moves the
    ratio of 8 exact clips by under 0.01 (a mean of per-clip ratios would read 2.1, +6.5 dB)."""
    reference = sine(batch=9)
    reference[8] *= 10 ** (-70 / 20) / (0.5 / math.sqrt(2))
    estimate = reference.clone()
    estimate[8] *= 10
    module = run_round(outputs(estimate, reference))
    assert module.last("diag/silent_reference_clips") == 0
    assert module.last("val/amplitude_ratio") == pytest.approx(1.0, abs=0.01)


def test_snr_and_si_sdr_are_the_textbook_definitions() -> None:
    """torchmetrics' SNR and SI-SDR, as SignalStats uses them, equal 10 log10 of the energy ratios written out."""
    from callbacks.signal_stats import clip_statistics

    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(3, 1, 4000, generator=generator, dtype=torch.float64)
    estimate = 0.7 * reference + 0.2 * torch.randn(3, 1, 4000, generator=generator, dtype=torch.float64)
    statistics = clip_statistics(estimate, reference, torch.full((3,), 4000), clip_level=0.999)
    ref, est = reference[:, 0], estimate[:, 0]
    snr = 10 * torch.log10((ref**2).sum(-1) / ((ref - est) ** 2).sum(-1))
    target = ((est * ref).sum(-1) / (ref**2).sum(-1))[:, None] * ref
    si_sdr = 10 * torch.log10((target**2).sum(-1) / ((est - target) ** 2).sum(-1))
    assert float(statistics["snr_db"]) == pytest.approx(float(snr.sum()), rel=1e-9)
    assert float(statistics["si_sdr"]) == pytest.approx(float(si_sdr.sum()), rel=1e-9)


class RecordingLogger:
    def __init__(self) -> None:
        self.written: list[tuple[dict, int]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.written.append((dict(metrics), step))


def test_negative_snr_two_rounds_in_a_row_raises_the_alarm() -> None:
    logger = RecordingLogger()
    callback, trainer, module = SignalStats(), FakeTrainer(loggers=[logger]), FakeModule()
    reference = sine()
    with pytest.warns(UserWarning, match="NEGATIVE_SNR"):
        for _ in range(2):
            validation_round(callback, trainer, module, [outputs(-reference, reference)])
            trainer.current_epoch += 1
    assert "NEGATIVE_SNR" in callback.alarms.active
    # The rules run in on_validation_end, where Lightning allows no self.log: the alarm's first 1 goes to the logger.
    assert logger.written == [({"diag/alarm/NEGATIVE_SNR": 1.0}, 0)]
    validation_round(callback, trainer, module, [outputs(-reference, reference)])
    assert module.last("diag/alarm/NEGATIVE_SNR") == 1.0  # and every later round holds it at 1


def test_sanity_check_rounds_are_ignored() -> None:
    callback, trainer, module = SignalStats(), FakeTrainer(sanity_checking=True), FakeModule()
    validation_round(callback, trainer, module, [outputs(sine(), sine())])
    assert module.logged == [] and callback.history.tags() == []
