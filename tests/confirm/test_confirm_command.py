"""`codecgan confirm` end to end on a tiny fault run: random validation crops (EVAL_NONDETERMINISTIC) are confirmed
by the fixed-crop experiment and its arms are re-used by a second call; the control (fixed crops) and a code the run
does not show have no finding, and nothing runs for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from codecgan.cli import main
from codecgan.confirm.arms import apply_change, read_run_config
from codecgan.confirm.experiments import EXPERIMENTS
from tests.conftest import EXPERIMENTS as CONFIGS
from tests.conftest import write_overlay

CONFIRM_STEPS = 16


def tiny_codec_run(folder: Path, val_crop: str) -> Path:
    """codec_tiny for 24 steps, validation every 6 (four rounds), with the given validation crops."""
    overlay = {
        "trainer": {
            "max_steps": 24,
            "val_check_interval": 6,
            "log_every_n_steps": 3,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(folder / "run"),
            "logger": {"init_args": {"save_dir": str(folder), "name": "run"}},
        },
        "data": {
            "init_args": {"synthetic_items": [16, 4, 4], "crop_seconds": 0.2, "batch_size": 4, "val_crop": val_crop}
        },
    }
    overlay_path = write_overlay(folder, "overlay.yaml", overlay)
    main(["fit", "--config", str(CONFIGS / "codec_tiny.yaml"), "--config", str(overlay_path)])
    return folder / "run"


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory) -> Path:
    """The fault: random validation crops."""
    return tiny_codec_run(tmp_path_factory.mktemp("fault"), "random")


def confirm_json(run: Path, capsys, *args: str) -> list[dict]:
    with pytest.raises(SystemExit) as exit_info:
        main(["confirm", str(run), "--json", *args])
    assert exit_info.value.code == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_confirm_confirms_random_validation_crops_and_reuses_its_arms(fault_run: Path, capsys) -> None:
    verdicts = confirm_json(fault_run, capsys, "--code", "EVAL_NONDETERMINISTIC", "--steps", str(CONFIRM_STEPS))
    assert len(verdicts) == 1
    verdict = verdicts[0]
    assert set(verdict) >= {
        "code",
        "experiment",
        "verdict",
        "metric",
        "control",
        "treatment",
        "effect",
        "noise",
        "runs",
    }
    assert (verdict["code"], verdict["experiment"], verdict["verdict"]) == (
        "EVAL_NONDETERMINISTIC",
        "fixed validation crops",
        "confirmed",
    )
    assert verdict["metric"] == "diag/eval_input_changed_fraction" and verdict["direction"] == "min"
    assert verdict["control"] > 0.5 and verdict["treatment"] == 0.0 and verdict["effect"] > verdict["noise"]
    runs = [Path(run) for run in verdict["runs"]]
    assert [run.name for run in runs] == [
        "control-fresh-seed0",
        "control-fresh-seed1",
        "fixed-validation-crops-seed0",
        "fixed-validation-crops-seed1",
    ]
    assert all(run.parent == fault_run / "confirm" / "EVAL_NONDETERMINISTIC" for run in runs)
    treatment = yaml.safe_load((runs[2] / "arm.yaml").read_text())
    assert treatment["data"]["init_args"]["val_crop"] == "center" and treatment["seed_everything"] == 0
    assert yaml.safe_load((runs[0] / "arm.yaml").read_text())["data"]["init_args"]["val_crop"] == "random"
    # A second call with the same settings trains nothing: it reads the finished arms.
    events = sorted(runs[0].glob("events.out.tfevents.*"))
    again = confirm_json(fault_run, capsys, "--code", "EVAL_NONDETERMINISTIC", "--steps", str(CONFIRM_STEPS))
    assert again == verdicts and sorted(runs[0].glob("events.out.tfevents.*")) == events
    # The arms are runs of their own: `codecgan diagnose RUN` still reads the one run.
    with pytest.raises(SystemExit):
        main(["diagnose", str(fault_run), "--json"])
    assert "In run" not in capsys.readouterr().out


@pytest.mark.slow
def test_a_code_the_run_does_not_show_has_no_finding_and_nothing_runs(fault_run: Path, capsys) -> None:
    verdicts = confirm_json(fault_run, capsys, "--code", "LENGTH_MISMATCH")
    assert [(v["code"], v["verdict"]) for v in verdicts] == [("LENGTH_MISMATCH", "no finding")]
    assert not (fault_run / "confirm" / "LENGTH_MISMATCH").exists()


@pytest.mark.slow
def test_every_codec_experiment_applies_to_a_real_run_config(fault_run: Path) -> None:
    config = read_run_config(fault_run)
    for code, experiments in EXPERIMENTS.items():
        for experiment in experiments:
            for path, change in experiment.changes_for("codec").items():
                apply_change(config, path, change)  # raises ConfirmError when a path does not fit


def test_a_folder_that_is_not_a_run_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["confirm", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("codecgan confirm: error:")


@pytest.mark.slow
def test_the_control_run_with_fixed_crops_has_no_finding_to_confirm(tmp_path: Path, capsys) -> None:
    control = tiny_codec_run(tmp_path, "center")
    verdicts = confirm_json(control, capsys, "--code", "EVAL_NONDETERMINISTIC", "--steps", str(CONFIRM_STEPS))
    assert [(v["code"], v["verdict"]) for v in verdicts] == [("EVAL_NONDETERMINISTIC", "no finding")]
    assert not (control / "confirm").exists()
