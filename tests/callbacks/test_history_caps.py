"""A long run's diagnostic histories stay bounded by its rounds (or by the times a rule's condition changes), and their
rules answer as on every point: each compacted history gives the findings that the full record (what the logs hold,
and `codecgan diagnose` reads) gives, at every epoch of a scripted run longer than the points kept as logged."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch

from callbacks import (
    CodebookUsage,
    DiscriminatorHealth,
    DivergenceMonitor,
    GradientBalance,
    LearningRateHealth,
    MetricDiscriminatorMonitor,
)
from callbacks.discriminator_health import RECENT_POINTS as D_RECENT
from callbacks.history_compaction import RECENT_POINTS
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.rules import (
    codebook_collapse,
    discriminator_at_chance,
    discriminator_frozen,
    discriminator_overpowering,
    feature_matching_vanished,
    gan_term_negligible,
    loss_metric_divergence,
    lr_vanished,
    metric_d_not_learning,
    nonfinite_loss,
)
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer

LOG_EVERY, VAL_EVERY, STEPS = 1, 50, 2000  # 2,000 logging points, 40 rounds


def record_everything(callback) -> MetricHistory:
    """Every point the callback records, also kept in a history that is never compacted: the run's full record."""
    full, add = MetricHistory(), callback.history.add

    def both(tag, value, step=None, epoch=None) -> None:
        full.add(tag, value, step, epoch)
        add(tag, value, step, epoch)

    callback.history.add = both
    return full


def quality(round_: int) -> float:
    """PESQ that peaks at round 4 (step 200) and then falls slowly, by 0.1 only after 25 rounds: the divergence is
    found more than 512 logging points after the best."""
    return 3.0 + 0.02 * min(round_, 4) - 0.004 * max(round_ - 4, 0)


def run(callback, trainer: FakeTrainer, output, on_round=None) -> None:
    module = FakeModule()
    for step in range(STEPS):
        callback.on_train_batch_end(trainer, module, output(step), None, step)
        trainer.advance()
        if (step + 1) % VAL_EVERY == 0:
            round_ = (step + 1) // VAL_EVERY
            trainer.callback_metrics = {"val/pesq": torch.tensor(quality(round_))}
            callback.on_validation_end(trainer, module)
            if on_round:
                on_round(callback)


def state_bytes(callback) -> int:
    buffer = io.BytesIO()
    torch.save(callback.state_dict(), buffer)
    return buffer.tell()


def test_divergence_after_a_plateau_longer_than_the_kept_points_is_found_as_on_the_full_record() -> None:
    callback = DivergenceMonitor(metric="val/pesq", mode="max")
    full = record_everything(callback)
    noise = torch.Generator().manual_seed(0)
    losses = (10.0 - 0.002 * torch.arange(STEPS) + 0.05 * torch.randn(STEPS, generator=noise)).tolist()
    losses[7] = math.nan  # a non-finite loss long before the kept points

    def output(step: int) -> dict:
        return {"losses": {"loss_g": torch.tensor(losses[step])}}

    sizes: list[int] = []
    with pytest.warns(UserWarning):
        run(callback, FakeTrainer(log_every_n_steps=LOG_EVERY), output, lambda c: sizes.append(state_bytes(c)))
    settings = callback.rule_settings()["LOSS_METRIC_DIVERGENCE"]
    live, offline = loss_metric_divergence(callback.history, **settings), loss_metric_divergence(full, **settings)
    assert live is not None and live == offline
    assert live.values["best_at"]["step"] == 200 and live.first_step > 200 + RECENT_POINTS
    assert nonfinite_loss(callback.history) == nonfinite_loss(full) is not None
    assert "LOSS_METRIC_DIVERGENCE" in callback.alarms.active and "NONFINITE_LOSS" in callback.alarms.active

    rounds = len(full.series("val/pesq"))
    assert len(full.series("train/loss_g")) == STEPS // LOG_EVERY
    # The points kept as logged, one per closed interval before them (and the non-finite one), and the raw points of
    # the interval the oldest kept point falls in.
    interval = VAL_EVERY // LOG_EVERY
    assert len(callback.history.series("train/loss_g")) <= RECENT_POINTS + rounds + 1 + interval
    assert len(callback.history.series("diag/nonfinite_loss_steps")) <= RECENT_POINTS + 1
    # Past the kept points the state grows by about one round's points a round, not by its logging steps.
    per_round = (sizes[-1] - sizes[-11]) / 10
    assert per_round < 3 * 25 < VAL_EVERY / LOG_EVERY * 25  # torch.save takes about 25 bytes a point


def test_a_learning_rate_that_vanished_long_ago_is_found_as_on_the_full_record() -> None:
    callback = LearningRateHealth()
    full = record_everything(callback)
    optimizers = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3) for _ in range(2)]
    trainer = FakeTrainer(log_every_n_steps=LOG_EVERY, optimizers=optimizers)

    def output(step: int) -> dict:
        for optimizer in optimizers:  # decays at every batch: a new point at every logging step
            optimizer.param_groups[0]["lr"] *= 0.99
        return {}

    with pytest.warns(UserWarning, match="LR_VANISHED"):
        run(callback, trainer, output)
    live, offline = lr_vanished(callback.history), lr_vanished(full)
    assert live is not None and live == offline
    assert math.isclose(live.values["peak"], 1e-3 * 0.99)  # the first value, long compacted
    rounds = len(full.series("val/pesq"))
    assert len(full.series("train/lr_g")) == STEPS // LOG_EVERY
    assert len(callback.history.series("train/lr_g")) <= RECENT_POINTS + 2 * rounds + VAL_EVERY // LOG_EVERY


def test_a_history_shorter_than_the_kept_points_is_kept_as_logged() -> None:
    callback = DivergenceMonitor(metric="val/pesq", mode="max")
    full = record_everything(callback)
    trainer, module = FakeTrainer(log_every_n_steps=1), FakeModule()
    for step in range(RECENT_POINTS):
        callback.on_train_batch_end(trainer, module, {"losses": {"loss_g": torch.tensor(1.0 + step)}}, None, step)
        trainer.advance()
        if (step + 1) % VAL_EVERY == 0:
            trainer.callback_metrics = {"val/pesq": torch.tensor(3.0)}
            callback.on_validation_end(trainer, module)
    for tag in full.tags():
        assert callback.history.series(tag) == full.series(tag), tag


def drive(callback, output, steps: int, epoch_steps: int, val_every: int = 0, quality=None, check=None, check_every=1):
    """The hooks of `steps` batches, logging every batch: validation every `val_every` (quality(round) as val/pesq),
    an epoch end every `epoch_steps`; `check()` after every `check_every`-th epoch end and at the end."""
    trainer, module = FakeTrainer(log_every_n_steps=1), FakeModule()
    for step in range(steps):
        callback.on_train_batch_end(trainer, module, output(step), None, step % epoch_steps)
        trainer.advance()
        if val_every and (step + 1) % val_every == 0:
            trainer.callback_metrics = {"val/pesq": torch.tensor(quality((step + 1) // val_every))}
            callback.on_validation_end(trainer, module)
        if (step + 1) % epoch_steps == 0:
            callback.on_train_epoch_end(trainer, module)
            trainer.current_epoch += 1
            if (step + 1) % (epoch_steps * check_every) == 0:
                check()
    check()


def same_findings(rules, live: MetricHistory, full: MetricHistory) -> list:
    """Each rule's finding on the kept history, asserted to be the finding on the full record (repr: NaN-safe)."""
    findings = [rule(live) for rule in rules]
    assert [repr(f) for f in findings] == [repr(rule(full)) for rule in rules]
    return findings


def live_findings(
    callback, full: MetricHistory, rules, output, steps: int, epoch_steps: int, val_every=0, quality=None, check_every=1
) -> list:
    """`drive` the callback, asserting at each check that every rule finds on its kept history what it finds on the
    full record (`same_findings`); the rules' findings at the end. The callbacks' alarms are silenced."""
    found: list = []

    def check() -> None:
        found.append(same_findings(rules, callback.history, full))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drive(callback, output, steps, epoch_steps, val_every, quality, check, check_every)
    return found[-1]


def series_lengths(history: MetricHistory) -> dict[str, int]:
    return {tag: len(history.series(tag)) for tag in history.tags()}


def test_discriminator_health_keeps_epoch_and_round_medians_and_finds_as_on_the_full_record() -> None:
    epoch_steps, val_every, steps = 50, 25, 1600  # 32 epochs of 2 validation intervals, 1,600 logging points
    callback = DiscriminatorHealth()
    full = record_everything(callback)
    noise = torch.Generator().manual_seed(1)
    wiggle = torch.randn(steps, 6, generator=noise).tolist()

    def output(step: int) -> dict:
        epoch, w = step // epoch_steps, wiggle[step]
        # At chance in epochs 3-6, learning after, overpowering from epoch 16 while the adversarial term rises and,
        # from round 40, the quality falls.
        ratio = 0.99 + 0.01 * w[0] if 3 <= epoch <= 6 else (0.05 if epoch >= 16 else 0.6) * (1 + 0.2 * w[0])
        frozen = 40 <= step % 700 < 60 or 1200 <= step < 1230  # the update ratio under 1e-6 in a few stretches
        stepped = step % 7 != 3
        return {
            "losses": {
                "loss_d": torch.tensor(2.0 * ratio),
                "loss_fm": torch.tensor(max(0.001, 2.0 - 0.1 * epoch) * (1 + 0.1 * w[1])),
                "loss_g": torch.tensor(20.0 * (1 + 0.1 * w[2])),
                "loss_adv": torch.tensor((1.0 + 0.05 * max(epoch - 15, 0)) * (1 + 0.05 * w[3])),
            },
            "d_stepped": stepped,
            "d_real": torch.tensor(0.5 + 0.1 * w[4]),
            "d_fake": torch.tensor(-0.5),
            "d_loss_chance": 2.0,
            "grad_norm_d": torch.tensor(1.0),
            "d_update_ratio": (1e-8 if frozen else 1e-3 * (1 + 0.5 * abs(w[5]))) if stepped else None,
        }

    def quality(round_: int) -> float:
        return 3.0 + 0.01 * min(round_, 40) - 0.02 * max(round_ - 40, 0)

    rules = (discriminator_at_chance, feature_matching_vanished, discriminator_frozen, discriminator_overpowering)
    at_chance, vanished, frozen, overpowering = live_findings(
        callback, full, rules, output, steps, epoch_steps, val_every, quality, check_every=2
    )
    assert at_chance is not None and at_chance.first_epoch == 5 and at_chance.severity == "info"  # held, then cleared
    assert vanished is not None and frozen is not None and overpowering is not None
    assert frozen.values["first"]["step"] == 42  # its first stretch, long thinned around
    assert "diag/fm_to_early" not in callback.history.tags() and "diag/grad_norm_d" not in callback.history.tags()
    kept, logged = series_lengths(callback.history), series_lengths(full)
    assert logged["train/loss_d"] > steps - 10
    epochs, rounds = steps // epoch_steps, steps // val_every
    for tag in ("train/loss_d", "diag/d_loss_chance", "diag/d_loss_to_chance"):  # epoch and round medians
        assert kept[tag] <= D_RECENT + epoch_steps + 4 * rounds, tag
    for tag in ("train/loss_fm", "train/loss_g", "diag/d_margin", "train/loss_adv"):  # epoch or round medians
        assert kept[tag] <= D_RECENT + epoch_steps + 2 * rounds, tag
    # The update ratio also keeps the ends of its frozen stretches.
    assert kept["diag/d_update_ratio"] <= D_RECENT + epoch_steps + 2 * epochs + 4 * 4


def test_gradient_shares_keep_the_windows_the_rule_flags_and_find_as_on_the_full_record() -> None:
    callback = GradientBalance(every_n_steps=1)
    full = record_everything(callback)
    noise = torch.Generator().manual_seed(2)
    healthy = (0.05 + 0.25 * torch.rand(1000, generator=noise)).tolist()
    near_floor = (0.002 + 0.028 * torch.rand(1000, generator=noise)).tolist()

    def share(step: int) -> float:  # negligible at steps 100-109, around the floor at 300-399
        return 0.005 if 100 <= step < 110 else near_floor[step] if 300 <= step < 400 else healthy[step]

    def output(step: int) -> dict:
        return {"term_grad_norms": {"loss_adv": torch.tensor(share(step)), "loss_mel": torch.tensor(1 - share(step))}}

    [finding] = live_findings(callback, full, [gan_term_negligible], output, 1000, 100)
    assert finding is not None and finding.severity == "info"  # negligible long ago, not now
    assert 100 < finding.values["terms"][0]["at"]["step"] < 110
    last_held = finding.values["reported_as_info"]["last_held"]["step"]
    assert 300 <= last_held < 400 < 1000 - RECENT_POINTS  # in the thinned part
    assert "diag/grad_norm_term/loss_adv" not in callback.history.tags()
    kept = series_lengths(callback.history)
    assert kept["diag/grad_share/loss_mel"] <= RECENT_POINTS + 2 * 4
    # The adversarial share keeps its points near the floor (the stretch at 300-399) and 4 + 4 around them.
    assert kept["diag/grad_share/loss_adv"] <= RECENT_POINTS + 100 + 10 + 4 * 8


def codes_using(*rows: list[int]) -> dict:
    """A batch whose quantizer q uses the codes rows[q] (16 frames each) of a 16-code codebook."""
    return {"codes": torch.tensor([rows]), "codebook_size": 16}


def test_codebook_usage_keeps_collapses_and_the_lowest_point_and_finds_as_on_the_full_record() -> None:
    callback = CodebookUsage(window_steps=1)
    full = record_everything(callback)
    spread, half, low = list(range(16)), [i % 8 for i in range(16)], [i % 2 for i in range(16)]
    lower, three = [0] * 12 + [1] * 4, [i % 3 for i in range(16)]  # fractions 1, 0.75, 0.25, 0.20, 0.40

    def output(step: int) -> dict:
        # Quantizer 0: collapsed at 50-59, unused at 60-69 (its lowest point), dips of one window, collapsed from
        # 900 and rising in its last windows; quantizer 1: collapsed at 300-305.
        if 50 <= step < 70:
            q0 = low if step < 60 else [0] * 16
        elif step >= 900:
            q0 = {997: lower, 998: low, 999: three}.get(step, low)
        else:
            q0 = low if step % 37 == 0 else half if step % 2 else spread
        return codes_using(q0, low if 300 <= step < 306 else spread)

    [finding] = live_findings(callback, full, [codebook_collapse], output, 1000, 100)
    assert finding is not None and finding.first_step == 51
    recovering = finding.values["reported_as_info"]["quantizers"][0]
    assert recovering["low"] == 0.0 and recovering["low_at"]["step"] == 69  # long thinned around
    kept = series_lengths(callback.history)
    assert kept["diag/codebook_entropy/0"] == kept["diag/dead_codes/1"] == RECENT_POINTS
    # Of the old part: a point for each clear run, 2 + 1 for each collapse or dip, and the lowest point.
    assert kept["diag/codebook_entropy_fraction/0"] <= RECENT_POINTS + 3 * (500 // 37 + 3) + 1
    assert kept["diag/codebook_entropy_fraction/1"] <= RECENT_POINTS + 1 + 3 + 1


def test_metric_discriminator_keeps_the_runs_it_flags_and_finds_as_on_the_full_record() -> None:
    callback = MetricDiscriminatorMonitor()
    full = record_everything(callback)
    target = torch.tensor([0.2, 0.4, 0.6, 0.8])

    def output(step: int) -> dict:
        # Not tracking PESQ at 0-20 (after the warm-up) and 500-510, for two intervals every 50 steps.
        lost = step <= 20 or 500 <= step <= 510 or step % 50 < 2
        prediction = target.flip(0) if lost else target + 0.01 * math.sin(step)
        return {"metric_d_prediction": prediction, "pesq_target": target}

    [finding] = live_findings(callback, full, [metric_d_not_learning], output, 1100, 100)
    assert finding is not None and finding.first_step == 5 and finding.severity == "info"
    assert finding.values["reported_as_info"]["last_held"]["step"] == 510 < 1100 - RECENT_POINTS
    kept = series_lengths(callback.history)
    assert kept["diag/metric_d_mae"] == RECENT_POINTS
    assert kept["diag/metric_d_corr"] <= RECENT_POINTS + 3 + 3 * (600 // 50) + 2 * 4  # a dip: 2 + 1 after it
