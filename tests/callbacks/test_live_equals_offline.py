"""Live = offline (issue 15, item 8): the alarms active at the end of a real tiny fit are the findings above info of
`codecgan diagnose` on that run's logs, an alarm that clears is logged back to 0, the rule settings of the run's
callbacks reach `diagnose` through `diag/config`, and a rule gives one answer on a 30k-step history live and
offline."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import callbacks
from callbacks import DiscriminatorHealth, DivergenceMonitor, GradientBalance
from callbacks.base import DiagnosticCallback
from codecgan.cadence import logged_step
from codecgan.diagnosis import MetricHistory, diagnose_path, load_histories
from codecgan.diagnosis.cli import diagnose_main
from codecgan.diagnosis.registry import RULES
from codecgan.diagnosis.report import alarms_at_end
from codecgan.diagnosis.rules import feature_matching_vanished, loss_metric_divergence
from codecgan.lightning_cli import build_cli
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

# Batches whose (scripted) PESQ failed and dropped the metric discriminator's term: the first three logging intervals
# (log_every_n_steps=2), so PESQ_NONE_HIGH starts at step 3 and clears at step 7, when the rate has fallen to 0.
DROPPED_BATCHES = 6


class ScriptedPesqFailures(L.Callback):
    """For the test only: adds PESQ-failure counts to the codec's training outputs, as the enhancement family reports
    them, so that PesqHealth (after this callback in the list) measures a rate that rises and falls."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        failed = int(logged_step(trainer) < DROPPED_BATCHES)
        outputs.update(pesq_dropped_batch=failed, pesq_clips=4, pesq_failed_clips=failed)


CALLBACKS = [
    {"class_path": "callbacks.DiagnosticsDashboard"},
    {"class_path": "callbacks.SignalStats"},
    {"class_path": "callbacks.DiscriminatorHealth"},
    {
        "class_path": "callbacks.GradientBalance",
        "init_args": {"every_n_steps": 2, "gan_terms": ["loss_adv", "loss_fm"]},
    },
    {"class_path": "callbacks.EvalDeterminism"},
    {"class_path": "callbacks.DivergenceMonitor", "init_args": {"metric": "val/snr_db", "mode": "max"}},
    {"class_path": "callbacks.CodebookUsage", "init_args": {"window_steps": 4}},
    {"class_path": "callbacks.LossSpikes"},
    {"class_path": "callbacks.LearningRateHealth"},
    {"class_path": "tests.callbacks.test_live_equals_offline.ScriptedPesqFailures"},
    {"class_path": "callbacks.PesqHealth"},
]


@pytest.mark.slow
def test_live_alarms_at_the_end_of_a_fit_equal_diagnose_of_its_logs(tmp_path: Path, capsys) -> None:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=16, val_every=4, checkpoint_every=100)
    overlay["trainer"]["callbacks"] += CALLBACKS
    # The discriminator steps on batches 0, 3, 6, ...: on logging batches 5, 7, 11 and 13 it does not, and Lightning
    # writes the epoch's last logged train/loss_d again.
    overlay["model"] = {"init_args": {"discriminator_update_period": 3}}
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    with pytest.warns(UserWarning, match="critical PESQ_NONE_HIGH"):
        trainer = build_cli(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)]).trainer
    diagnostic = [c for c in trainer.callbacks if isinstance(c, DiagnosticCallback)]
    live = {code: record["severity"] for c in diagnostic for code, record in c.alarms.active.items()}
    capsys.readouterr()
    assert diagnose_main([str(tmp_path / "run"), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert live == {f["code"]: f["severity"] for f in findings if f["severity"] != "info"}

    # The alarm that cleared: its scalar went back to 0, the logs say which alarms were active at the end.
    [(_, history)] = load_histories(str(tmp_path / "run"))
    alarm = {p.step: p.value for p in history.series("diag/alarm/PESQ_NONE_HIGH")}  # the last value at each step
    assert alarm == {3: 1.0, 5: 1.0, **{step: 0.0 for step in range(7, 16, 2)}}
    assert "PESQ_NONE_HIGH" in {f["code"] for f in findings if f["severity"] == "info"}
    assert sorted(alarms_at_end(history)) == sorted(live)

    # The rules' inputs themselves: the module's logged values, as the callbacks kept them and as the logs hold them.
    by_class = {type(c).__name__: c for c in diagnostic}
    discriminator_tags = ["train/loss_d", "train/loss_fm", "train/loss_g", "diag/d_loss_chance", "diag/d_margin"]
    kept = {
        "DiscriminatorHealth": discriminator_tags + ["diag/d_update_ratio"],
        "DivergenceMonitor": ["train/loss_g", "val/snr_db"],
        "SignalStats": ["val/snr_db", "val/amplitude_ratio", "val/loss_mel"],
        "PesqHealth": ["diag/pesq_none_rate"],
    }
    for name, tags in kept.items():
        for tag in tags:
            live_points = [(p.step, p.epoch) for p in by_class[name].history.series(tag)]
            assert live_points == [(p.step, p.epoch) for p in history.series(tag)], (name, tag)
            live_values = [p.value for p in by_class[name].history.series(tag)]
            assert live_values == pytest.approx([p.value for p in history.series(tag)], rel=1e-6), (name, tag)
    assert [p.step for p in history.series("train/loss_d")] == [3, 5, 7, 9, 11, 13, 15]

    # The settings the callbacks ran their rules with, as diagnose read them.
    assert history.run_config["family"] == "codec"
    assert history.run_config["rules"]["LOSS_METRIC_DIVERGENCE"]["metric"] == "val/snr_db"
    gan_term_rule = history.run_config["rules"]["GAN_TERM_NEGLIGIBLE"]
    assert gan_term_rule["gan_terms"] == ["loss_adv", "loss_fm"] and gan_term_rule["family"] == "codec"
    assert gan_term_rule["term_weights"]["loss_adv"] == {
        "key": "model.init_args.loss_weights.adversarial",
        "published": 1.0,
        "weight": 1.0,
    }
    assert gan_term_rule["term_weights"] == history.run_config["rules"]["LOSS_TERM_DISABLED"]["term_weights"]
    assert [c["class"] for c in history.run_config["callbacks"]] == [type(c).__name__ for c in diagnostic]


def test_diagnose_runs_the_rules_with_the_settings_the_run_recorded(tmp_path: Path) -> None:
    # A codec whose SNR falls while its mel distance improves: diverging on val/snr_db, the metric its
    # DivergenceMonitor watched, but not on val/loss_mel, the codec family's default.
    history = MetricHistory()
    for round_index, (snr, mel) in enumerate(zip([5.0, 6.0, 5.0, 4.0, 3.0], [3.0, 2.75, 2.5, 2.25, 2.0])):
        step = 10 * (round_index + 1)
        for offset in range(10):
            # Steps of 1/8 are exact in float32, the precision TensorBoard stores, so the numbers match exactly.
            history.add("train/loss_g", 10.0 - 0.125 * (step - 10 + offset), step - 9 + offset, round_index)
        history.add("val/snr_db", snr, step, round_index)
        history.add("val/loss_mel", mel, step, round_index)
    settings = {"metric": "val/snr_db", "loss": "train/loss_g", "mode": "max", "min_drop": None, "patience": 2}
    assert loss_metric_divergence(history) is None
    live = loss_metric_divergence(history, **settings)
    assert live is not None and live.first_step == 40

    logger = TensorBoardLogger(str(tmp_path), name="run", version="")
    for tag in history.tags():
        for point in history.series(tag):
            logger.experiment.add_scalar(tag, point.value, point.step)
            logger.experiment.add_scalar("epoch", point.epoch, point.step)
    config = {"family": "codec", "rules": {"LOSS_METRIC_DIVERGENCE": settings}, "callbacks": []}
    logger.experiment.add_text("diag/config", "    " + json.dumps(config), 0)
    logger.experiment.flush()
    findings, _ = diagnose_path(str(tmp_path / "run"))
    assert [f for f in findings if f.code == "LOSS_METRIC_DIVERGENCE"] == [live]


@pytest.mark.parametrize(
    "kind",
    [c for c in map(callbacks.__dict__.get, callbacks.__all__) if issubclass(c, DiagnosticCallback)],
    ids=lambda kind: kind.__name__,
)
def test_each_callbacks_codes_and_rule_settings_are_what_diagnose_runs(kind: type) -> None:
    callback = kind()
    assert callback.codes and set(callback.codes) <= set(RULES)
    for code, settings in callback.rule_settings().items():
        assert code in callback.codes
        inspect.signature(RULES[code]).bind(MetricHistory(), **json.loads(json.dumps(settings)))


def test_diag_config_is_written_by_the_first_diagnostic_callback_and_the_latest_start_counts(tmp_path: Path) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="run", version="")
    monitor, balance = DivergenceMonitor(metric="val/pesq"), GradientBalance(gan_terms=["loss_metric"])
    trainer, module = FakeTrainer(loggers=[logger], callbacks=[L.Callback(), monitor, balance]), FakeModule()
    for callback in (monitor, balance):
        callback.on_train_start(trainer, module)
    trainer.fit_loop.epoch_loop._batches_that_stepped = 20  # a resumed start, with another metric
    monitor.metric, monitor.mode = "val/si_sdr", "max"
    monitor.on_train_start(trainer, module)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("diag/config/text_summary")] == [0, 20]  # once per start
    [(_, history)] = load_histories(str(tmp_path / "run"))
    assert history.run_config["family"] == "FakeModule"
    assert history.run_config["rules"] == {
        "LOSS_METRIC_DIVERGENCE": {"metric": "val/si_sdr", "loss": "train/loss_g", "mode": "max", "min_drop": None,
                                   "patience": 2},
        # No on_fit_start: no family and no weights.
        "GAN_TERM_NEGLIGIBLE": {"gan_terms": ["loss_metric"], "family": None, "term_weights": None},
        "LOSS_TERM_DISABLED": {"term_weights": None, "gan_terms": ["loss_metric"]},
    }  # fmt: skip
    settings = {c["class"]: c["settings"] for c in history.run_config["callbacks"]}
    assert settings["GradientBalance"] == {"every_n_steps": 50, "gan_terms": ["loss_metric"]}
    assert settings["DivergenceMonitor"]["action"] == "warn"
    assert history.run_config["callbacks"][0]["codes"] == ["LOSS_METRIC_DIVERGENCE", "NONFINITE_LOSS"]


def test_measurements_between_logging_steps_are_written_once_each_at_their_own_step() -> None:
    logger = RecordingLogger()
    callback, module = GradientBalance(every_n_steps=3), FakeModule()
    trainer = FakeTrainer(log_every_n_steps=4, loggers=[logger])
    norms = {"loss_mel": torch.tensor(9.0), "loss_adv": torch.tensor(1.0)}
    for step in range(8):  # measured at 0, 3 and 6 (two of them between the logging steps 3 and 7)
        callback.on_train_batch_end(trainer, module, {"term_grad_norms": norms} if step % 3 == 0 else {}, None, step)
        trainer.advance()
    written = [(step, values["epoch"]) for values, step in logger.written if "diag/grad_share/loss_adv" in values]
    assert written == [(p.step, p.epoch) for p in callback.history.series("diag/grad_share/loss_adv")]
    assert written == [(0, 0), (3, 0), (6, 0)]


class RecordingLogger:
    def __init__(self) -> None:
        self.written: list[tuple[dict, int]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.written.append((dict(metrics), step))


def test_a_30k_step_history_gives_the_same_answer_live_and_offline(tmp_path: Path) -> None:
    # Feature matching falls to 8% of its first epochs' value and stays there: vanished by its early peak (not by its
    # share of loss_g). A history that kept only its last 512 points (25.6k steps at a logging interval of 50) would
    # lose the early peak and find nothing.
    callback, logger = DiscriminatorHealth(), TensorBoardLogger(str(tmp_path), name="run", version="")
    trainer, module = FakeTrainer(log_every_n_steps=50, loggers=[logger]), FakeModule()
    epoch_steps = 1000
    with pytest.warns(UserWarning, match="FEATURE_MATCHING_VANISHED"):
        feed_30k_steps(callback, trainer, module, logger, epoch_steps)
    logger.experiment.flush()
    [(_, offline)] = load_histories(str(tmp_path / "run"))
    for tag in callback.history.tags():  # every point the callback kept is in the logs, and only those
        kept, logged = callback.history.series(tag), offline.series(tag)
        assert [(p.step, p.epoch) for p in kept] == [(p.step, p.epoch) for p in logged], tag
        assert [p.value for p in kept] == pytest.approx([p.value for p in logged], rel=1e-6), tag
    live = feature_matching_vanished(callback.history)
    assert live is not None and live.severity == "warning" and live == feature_matching_vanished(offline)
    assert "FEATURE_MATCHING_VANISHED" in callback.alarms.active
    assert len(callback.history.series("train/loss_fm")) == 600 > 512
    truncated = MetricHistory()
    for tag in callback.history.tags():
        for point in callback.history.series(tag)[-512:]:
            truncated.add(tag, point.value, point.step, point.epoch)
    assert feature_matching_vanished(truncated) is None  # what a 512-point cap answered
    assert math.isclose(callback.history.per_epoch("train/loss_fm")[0].value, 1.0)


def feed_30k_steps(callback, trainer, module, logger, epoch_steps: int) -> None:
    """The logging steps (every 50) of 30 epochs of 1000 steps, each written to `logger` as Lightning would."""
    for step in range(30_000):
        trainer.current_epoch = step // epoch_steps
        if (step + 1) % 50 == 0:
            loss_fm = 1.0 if trainer.current_epoch < 3 else 0.08
            losses = {"loss_d": torch.tensor(1.0), "loss_fm": torch.tensor(loss_fm), "loss_g": torch.tensor(1.0)}
            outputs = {"losses": losses, "d_stepped": True, "d_loss_chance": 2.0, "d_update_ratio": 1e-3}
            outputs.update(d_real=torch.tensor(0.5), d_fake=torch.tensor(-0.5), grad_norm_d=torch.tensor(1.0))
            callback.on_train_batch_end(trainer, module, outputs, None, step)  # writes its own values to `logger`
            # What the module logged at this step, as Lightning writes it.
            logged = {f"train/{name}": float(value) for name, value in losses.items()}
            logged.update({"diag/d_loss_chance": 2.0, "diag/d_update_ratio": 1e-3, "epoch": trainer.current_epoch})
            logger.log_metrics(logged, step=step)
        trainer.advance()
        if (step + 1) % epoch_steps == 0:
            callback.on_train_epoch_end(trainer, module)
