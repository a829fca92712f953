"""PesqHealth and MetricDiscriminatorMonitor on scripted enhancement outputs."""

from __future__ import annotations

import math

import pytest
import torch

from callbacks import MetricDiscriminatorMonitor, PesqHealth
from codecgan.metrics import FAILURE_KINDS
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, train_steps, validation_round


def pesq_outputs(failed_per_batch: list[int], clips: int = 4) -> list[dict]:
    return [
        {"pesq_dropped_batch": int(failed > 0), "pesq_clips": clips, "pesq_failed_clips": failed}
        for failed in failed_per_batch
    ]


def test_pesq_none_rate_is_the_fraction_of_dropped_batches_per_interval_and_epoch() -> None:
    callback, trainer, module = PesqHealth(), FakeTrainer(log_every_n_steps=4), FakeModule()
    train_steps(callback, trainer, module, pesq_outputs([0, 1, 0, 2, 0, 0, 0, 0]))
    rates = [value for name, value, _ in module.logged if name == "diag/pesq_none_rate"]
    assert rates == [0.5, 0.0]
    assert [v for n, v, _ in module.logged if n == "diag/pesq_clip_fail_rate"] == [3 / 16, 0.0]
    callback.on_train_epoch_end(trainer, module)
    assert module.last("diag/pesq_none_rate_epoch") == 0.25
    assert callback.none_rate == 0.25


def kind_outputs(failures: dict[str, int], clips: int = 4) -> dict:
    """A batch's outputs with its failed clips by kind, as MetricGANEnhancer reports them (every kind present)."""
    failed = sum(failures.values())
    return {
        "pesq_dropped_batch": int(failed > 0),
        "pesq_clips": clips,
        "pesq_failed_clips": failed,
        "pesq_failures": {**dict.fromkeys(FAILURE_KINDS, 0), **failures},
    }


def test_failed_clips_are_logged_by_kind_from_the_first_interval_that_has_one() -> None:
    callback, trainer, module = PesqHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    steps = [{}, {}, {"timeout": 1}, {"too_long": 2, "nonfinite": 1}, {}, {"nonfinite": 1}]
    with pytest.warns(UserWarning, match="PESQ_NONE_HIGH"):  # half the batches had a failed clip
        train_steps(callback, trainer, module, [kind_outputs(failures) for failures in steps])
    logged = {}
    for name, value, _ in module.logged:
        if name.startswith("diag/pesq_failed_clips/"):
            logged.setdefault(name.removeprefix("diag/pesq_failed_clips/"), []).append(value)
    assert logged == {"timeout": [1.0, 0.0], "too_long": [2.0, 0.0], "nonfinite": [1.0, 1.0]}
    assert module.last("diag/pesq_clip_fail_rate") == 1 / 8
    expected = {**dict.fromkeys(FAILURE_KINDS, 0.0), "timeout": 1.0, "too_long": 2.0, "nonfinite": 2.0}
    assert callback.failure_counts == expected

    resumed, module = PesqHealth(), FakeModule()
    resumed.load_state_dict(callback.state_dict())
    assert resumed.failure_counts == expected
    train_steps(resumed, trainer, module, [kind_outputs({"worker_died": 1}), kind_outputs({})])
    assert {name for name, _, _ in module.logged if name.startswith("diag/pesq_failed_clips/")} == {
        f"diag/pesq_failed_clips/{kind}" for kind in ("timeout", "too_long", "nonfinite", "worker_died")
    }


def test_pesq_none_high_alarm_starts_once_and_clears_when_the_rate_falls() -> None:
    callback, trainer, module = PesqHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    with pytest.warns(UserWarning, match="PESQ_NONE_HIGH: diag/pesq_none_rate was 0.50"):
        train_steps(callback, trainer, module, pesq_outputs([1, 0, 1, 0, 1, 0]))
    assert list(callback.alarms.active) == ["PESQ_NONE_HIGH"]
    train_steps(callback, trainer, module, pesq_outputs([0, 0, 0, 0]))  # the rate falls to 0: the finding settles
    assert callback.alarms.active == {} and callback.alarms.cleared["PESQ_NONE_HIGH"]["step"] == 7
    assert [v for n, v, _ in module.logged if n == "diag/alarm/PESQ_NONE_HIGH"] == [1.0, 1.0, 0.0, 0.0]


def test_codec_outputs_are_ignored() -> None:
    callback, trainer, module = PesqHealth(), FakeTrainer(), FakeModule()
    train_steps(callback, trainer, module, [{"loss": torch.tensor(1.0)}] * 3)
    callback.on_train_epoch_end(trainer, module)
    assert module.logged == [] and callback.total_counts["batches"] == 0


def reference_mae_corr(prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    keep = target.isfinite()
    p, t = prediction[keep].double(), target[keep].double()
    return float((p - t).abs().mean()), float(torch.corrcoef(torch.stack([p, t]))[0, 1])


def test_metric_discriminator_error_and_correlation_skip_clips_without_a_target() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(4, 8, generator=generator)
    target[1, 3] = math.nan
    prediction = 0.7 * target.nan_to_num(0.5) + 0.1 * torch.rand(4, 8, generator=generator)
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(log_every_n_steps=4), FakeModule()
    train_steps(
        callback, trainer, module, [{"metric_d_prediction": p, "pesq_target": t} for p, t in zip(prediction, target)]
    )
    mae, corr = reference_mae_corr(prediction.reshape(-1), target.reshape(-1))
    assert module.last("diag/metric_d_mae") == pytest.approx(mae, abs=1e-9)
    assert module.last("diag/metric_d_corr") == pytest.approx(corr, abs=1e-9)
    assert callback.train_mae_and_correlation == pytest.approx((mae, corr), abs=1e-9)


def test_validation_pesq_is_normalised_before_comparing() -> None:
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(), FakeModule()
    pesq = torch.tensor([1.0, 2.75, 4.5, math.nan])
    validation_round(
        callback, trainer, module, [{"metric_d_prediction": torch.tensor([0.1, 0.5, 0.9, 0.3]), "pesq": pesq}]
    )
    assert module.last("diag/metric_d_mae_val") == pytest.approx(0.1 / 3 * 2, abs=1e-6)
    assert module.last("diag/metric_d_corr_val") == pytest.approx(1.0)


def test_metric_discriminator_that_predicts_a_constant_is_not_learning() -> None:
    target = torch.linspace(0.1, 0.9, 8)
    outputs = [{"metric_d_prediction": torch.full((8,), 0.5), "pesq_target": target}] * 7
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(log_every_n_steps=1), FakeModule()
    with pytest.warns(UserWarning, match="METRIC_D_NOT_LEARNING"):
        train_steps(callback, trainer, module, outputs)
    assert "METRIC_D_NOT_LEARNING" in callback.alarms.active
