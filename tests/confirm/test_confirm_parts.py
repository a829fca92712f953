"""`codecgan confirm`'s parts on their own: the experiment registry, arm configs, start checkpoints, verdicts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from codecgan.confirm.arms import ConfirmError, apply_change, arm_config, get_path, start_checkpoint, transform
from codecgan.confirm.experiments import EXPERIMENTS, WITHOUT_EXPERIMENT, Scale, Set
from codecgan.confirm.verdict import decide, metric_value
from codecgan.diagnosis.registry import RULES


def run_config() -> dict:
    return {
        "seed_everything": 3,
        "trainer": {
            "max_steps": 400,
            "log_every_n_steps": 10,
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"dirpath": "/elsewhere"}},
                {"class_path": "callbacks.RankConsistency", "init_args": {"every_n_steps": 100}},
                {"class_path": "callbacks.DivergenceMonitor", "init_args": {"dirpath": "/elsewhere"}},
            ],
        },
        "model": {
            "class_path": "codecgan.CodecGAN",
            "init_args": {
                "loss_weights": None,
                "discriminator_start_step": 500,
                "optimizer_g": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 3e-4}},
                "optimizer_d": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.0}},
            },
        },
        "data": {"class_path": "codecgan.data.CodecDataModule", "init_args": {"seed": 0}},
        "ckpt_path": "runs/x/last.ckpt",
    }


def test_every_rule_code_has_an_experiment_or_says_why_not() -> None:
    assert set(RULES) <= set(EXPERIMENTS) | set(WITHOUT_EXPERIMENT)
    assert set(EXPERIMENTS) | set(WITHOUT_EXPERIMENT) <= set(RULES)
    for code in (
        "EVAL_NONDETERMINISTIC",
        "PESQ_NONE_HIGH",
        "LOSS_METRIC_DIVERGENCE",
        "DISCRIMINATOR_AT_CHANCE",
        "GAN_TERM_NEGLIGIBLE",
        "AMPLITUDE_UNSTABLE",
        "LENGTH_MISMATCH",
        "RANK_DIVERGENCE",
    ):
        assert EXPERIMENTS[code], code
    assert [e.name for e in EXPERIMENTS["LOSS_METRIC_DIVERGENCE"]] == [
        "adversarial weight ×0.5",
        "generator learning rate ×0.5",
    ]


def test_an_arm_is_the_run_with_the_change_its_seed_its_folder_and_the_start_weights(tmp_path: Path) -> None:
    original = run_config()
    changes = {
        "model.init_args.optimizer_d.init_args.lr": Scale(4.0, when_zero="model.init_args.optimizer_g.init_args.lr"),
        "trainer.callbacks[RankConsistency].init_args.resync": Set(True),
        "model.init_args.loss_weights.adversarial": Scale(4.0, default=1.0),
    }
    folder = tmp_path / "confirm" / "CODE" / "treatment-seed4"
    config = arm_config(original, changes, folder, seed=4, steps=100, start=(300, tmp_path / "step300.ckpt"))
    assert original["model"]["init_args"]["optimizer_d"]["init_args"]["lr"] == 0.0  # the original is untouched
    assert get_path(config, "model.init_args.optimizer_d.init_args.lr") == 3e-4  # 0 × 4 is 0: the generator's
    assert config["model"]["init_args"]["loss_weights"] == {"adversarial": 4.0}
    assert config["trainer"]["callbacks"][1]["init_args"] == {"every_n_steps": 100, "resync": True}
    assert config["seed_everything"] == 4 and config["data"]["init_args"]["seed"] == 4
    assert config["model"]["init_args"]["init_from"] == str(tmp_path / "step300.ckpt")
    assert config["model"]["init_args"]["discriminator_start_step"] == 200  # the warm-up left at step 300
    assert "ckpt_path" not in config
    trainer = config["trainer"]
    assert (trainer["max_steps"], trainer["val_check_interval"], trainer["log_every_n_steps"]) == (100, 25, 5)
    assert trainer["default_root_dir"] == str(folder)
    assert trainer["logger"]["init_args"]["save_dir"] == str(folder.parent)
    assert trainer["logger"]["init_args"]["name"] == "treatment-seed4"
    assert trainer["callbacks"][0]["init_args"]["dirpath"] == str(folder / "checkpoints")
    assert trainer["callbacks"][2]["init_args"]["dirpath"] is None  # never into the original run's folder


def test_a_balanced_codec_term_is_changed_in_the_balancers_weights() -> None:
    config = run_config()
    config["model"]["init_args"]["loss_balancer"] = {"weights": {"adversarial": 0.0, "mel": 2.0}}
    experiment = EXPERIMENTS["GAN_TERM_NEGLIGIBLE"][0]
    for path, change in experiment.changes_for("codec").items():
        apply_change(config, path, change)
    assert config["model"]["init_args"]["loss_balancer"]["weights"] == {"adversarial": 1.0, "mel": 2.0}  # 0 -> 1
    assert "adversarial" not in (config["model"]["init_args"].get("loss_weights") or {})
    assert experiment.metrics_for("codec")[0] == ("diag/balancer_share/loss_adv", "max")
    apply_change(config, "model.init_args.loss_weights.commitment", Set(0.5))  # VQ terms stay outside the balancer
    assert config["model"]["init_args"]["loss_weights"]["commitment"] == 0.5


def test_a_missing_value_or_callback_is_named() -> None:
    with pytest.raises(
        ConfirmError, match="scales model.init_args.loss_weights.mel, which the run's config does not set"
    ):
        apply_change(run_config(), "model.init_args.loss_weights.mel", Scale(2.0))
    with pytest.raises(ConfirmError, match="no callbacks entry of class PesqHealth"):
        apply_change(run_config(), "trainer.callbacks[PesqHealth].init_args.x", Set(1))


def test_arms_start_from_the_last_checkpoint_at_or_before_the_finding_or_fresh(tmp_path: Path) -> None:
    checkpoints = [(100, tmp_path / "step100.ckpt"), (200, tmp_path / "step200.ckpt")]
    assert start_checkpoint(checkpoints, 250) == checkpoints[1]
    assert start_checkpoint(checkpoints, 200) == checkpoints[1]
    assert start_checkpoint(checkpoints, 99) is None
    assert start_checkpoint(checkpoints, None) is None


@pytest.mark.parametrize(
    "controls, treatments, direction, verdict",
    [
        ([0.9, 0.8], [0.0, 0.0], "min", "confirmed"),  # effect 0.85, noise 0.1
        ([0.9, 0.8], [1.0, 0.85], "min", "inconclusive"),  # effect -0.075, inside the noise band 0.15
        ([0.5, 0.5], [0.3, 0.3], "max", "refuted"),  # worse, and the seeds agree exactly
        ([2.0, 2.4], [2.3, 2.5], "max", "inconclusive"),  # effect 0.2 within the seeds' spread 0.4
        ([2.0, math.nan], [2.3, math.nan], "max", "confirmed"),  # one seed without the metric: the other decides
        ([math.nan], [1.0], "max", "inconclusive"),
    ],
)
def test_the_verdict_compares_the_effect_with_the_seed_noise(controls, treatments, direction, verdict) -> None:
    assert decide(controls, treatments, direction)[0] == verdict


def test_the_effect_is_signed_so_that_positive_is_better() -> None:
    _, effect, noise, _ = decide([0.9, 0.8], [0.0, 0.0], "min")
    assert effect == pytest.approx(0.85) and noise == pytest.approx(0.1)


def test_an_arm_is_measured_on_the_second_half_of_its_points(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step, value in enumerate([9.0, 9.0, 1.0, 2.0]):
        writer.add_scalar("val/x", value, step)
        writer.add_scalar("diag/spread/a", value, step)
        writer.add_scalar("diag/spread/b", 1.0, step)
    writer.close()
    assert metric_value(tmp_path, "val/x", None) == 1.5
    assert metric_value(tmp_path, "diag/spread/*", None) == 2.5
    assert math.isnan(metric_value(tmp_path, "val/missing", None))
    assert transform(0.5, "abs_db") == pytest.approx(6.0206, rel=1e-4)
