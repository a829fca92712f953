"""DNSMOS in `codecgan test` equals the DNS Challenge organisers' `speechmos` package on the same utterances, and a
missing optional install is a ConfigError that names the pip command."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from codecgan.cli import main
from codecgan.config_error import ConfigError
from codecgan.evaluation import dnsmos_score
from codecgan.evaluation.dnsmos_score import DNSMOS_MEASURES, DnsmosRows, DnsmosScore, model_windows, require_dnsmos
from codecgan.evaluation.enhancement_scores import ENHANCEMENT_MEASURES
from tests.conftest import EXPERIMENTS, run_codecgan, tiny_trainer_overlay, write_overlay

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dnsmos"
sys.path.insert(0, str(FIXTURE))
from dnsmos_signals import CASES, utterance  # noqa: E402

DNSMOS_INSTALLED = all(importlib.util.find_spec(name) is not None for name in ("speechmos", "onnxruntime"))
needs_dnsmos = pytest.mark.skipif(
    not DNSMOS_INSTALLED, reason="the optional DNSMOS packages are not installed: pip install 'codecgan[dnsmos]'"
)
# onnxruntime's kernels differ by CPU (AVX2, AVX-512) in the last bits of float32; the fixture's CPU gave equality.
TOLERANCE = 1e-4


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def score() -> DnsmosScore:
    return DnsmosScore()


# Two cases in the default suite (a short one repeated to fill the model's input, a long one of several windows); the
# other three in `make test-slow`.
FAST_CASES = ("clean_2s", "white_noise_10db_11_5s")


@needs_dnsmos
@pytest.mark.parametrize(
    "name", [name if name in FAST_CASES else pytest.param(name, marks=pytest.mark.slow) for name in CASES]
)
def test_dnsmos_equals_speechmos_on_the_reference_utterances(score, name):
    """Against ``speechmos.dnsmos.run(audio, 16000)``, as written into dnsmos_reference.json by its own code."""
    expected = json.loads((FIXTURE / "dnsmos_reference.json").read_text())["cases"][name]
    ours = score(torch.from_numpy(utterance(name)))
    assert ours["dnsmos_sig"] == pytest.approx(expected["sig_mos"], abs=TOLERANCE)
    assert ours["dnsmos_bak"] == pytest.approx(expected["bak_mos"], abs=TOLERANCE)
    assert ours["dnsmos_ovrl"] == pytest.approx(expected["ovrl_mos"], abs=TOLERANCE)


@pytest.mark.skipif(
    importlib.util.find_spec("librosa") is None or not DNSMOS_INSTALLED,
    reason="speechmos's own wrapper imports librosa and requests, which only the fixture's environment installs",
)
def test_dnsmos_equals_speechmos_run_in_this_process(score):
    from speechmos import dnsmos

    audio = utterance("white_noise_20db_3s")
    expected = dnsmos.run(audio, sr=16000)
    ours = score(audio)
    assert [ours[m] for m in DNSMOS_MEASURES] == pytest.approx(
        [expected["sig_mos"], expected["bak_mos"], expected["ovrl_mos"]], abs=1e-9
    )


def test_model_windows_repeat_a_short_utterance_and_hop_one_second():
    """speechmos's cutting: doubled until 9.01 s, then windows of 144160 samples every 16000 over the whole seconds."""
    short = np.arange(50000, dtype=np.float32)
    windows = model_windows(short)  # 50000 -> 100000 -> 200000 samples (12.5 s): windows at 0, 1 and 2 s
    tiled = np.tile(short, 4)
    assert windows.shape == (3, 144160)
    assert all(np.array_equal(windows[hop], tiled[16000 * hop : 16000 * hop + 144160]) for hop in range(3))
    assert model_windows(np.zeros(144160, np.float32)).shape == (1, 144160)
    assert model_windows(np.zeros(160159, np.float32)).shape == (1, 144160)  # 10.0 s less a sample: one window
    long = np.arange(184000, dtype=np.float32)  # 11.5 s: windows at 0 and 1 s
    assert np.array_equal(model_windows(long)[:, 0], [0, 16000])


@needs_dnsmos
def test_an_empty_or_nonfinite_utterance_has_no_dnsmos(score):
    assert all(math.isnan(value) for value in score(torch.zeros(0)).values())
    assert all(math.isnan(value) for value in score(torch.tensor([0.1, math.nan])).values())


@needs_dnsmos
@pytest.mark.slow
def test_rows_scored_in_the_background_join_the_intrusive_rows(score):
    """``DnsmosRows`` adds each (utterance, system)'s columns to the intrusive rows, or gives its rows alone."""
    audio = torch.from_numpy(utterance("clean_2s"))
    systems = {"enhanced": audio.view(1, 1, -1), "noisy input": torch.from_numpy(utterance("white_noise_0db_2s"))}
    systems["noisy input"] = systems["noisy input"].view(1, 1, -1)
    length, index = torch.tensor([32000]), torch.tensor([7])

    class Intrusive:
        def result(self):
            return [{"utterance": 7, "system": s, "stoi": 0.5} for s in ("noisy input", "enhanced")]

    dnsmos = score.submit(systems, length, index)
    joined, alone = DnsmosRows(Intrusive(), dnsmos).result(), DnsmosRows(None, dnsmos).result()
    expected = json.loads((FIXTURE / "dnsmos_reference.json").read_text())["cases"]
    assert [row["system"] for row in joined] == ["noisy input", "enhanced"]
    assert joined[1]["stoi"] == 0.5
    assert joined[1]["dnsmos_bak"] == pytest.approx(expected["clean_2s"]["bak_mos"], abs=TOLERANCE)
    assert joined[0]["dnsmos_bak"] == pytest.approx(expected["white_noise_0db_2s"]["bak_mos"], abs=TOLERANCE)
    assert [row["system"] for row in alone] == ["enhanced", "noisy input"]
    assert alone[0]["dnsmos_ovrl"] == joined[1]["dnsmos_ovrl"]


def test_missing_packages_are_a_config_error_naming_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        dnsmos_score.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "onnxruntime" else real_find_spec(name, *args),
    )
    with pytest.raises(
        ConfigError,
        match=r"model.init_args.test_dnsmos: true .* onnxruntime is not installed.*"
        r"pip install 'codecgan\[dnsmos\]'",
    ):
        require_dnsmos("model.init_args.test_dnsmos")


def write_noisy_folder(folder: Path, speech: bool = True) -> None:
    """Three noisy recordings of 1 to 2 s (``dnsmos_signals``' speech, else white noise), one in a subfolder, and no
    clean/ folder."""
    files = (("a.wav", "white_noise_0db_2s", 1.0), ("b.wav", "white_noise_20db_3s", 2.0))
    files += (("sub/c.wav", "brown_noise_5db_one_input", 1.5),)
    for seed, (name, case, seconds) in enumerate(files):
        (folder / "noisy" / name).parent.mkdir(parents=True, exist_ok=True)
        samples = int(seconds * 16000)
        audio = utterance(case)[:samples] if speech else 0.1 * np.random.default_rng(seed).standard_normal(samples)
        soundfile.write(folder / "noisy" / name, audio, 16000, subtype="FLOAT")


def test_a_config_asking_for_dnsmos_without_its_packages_fails_at_construction(monkeypatch):
    from codecgan import MetricGANEnhancer
    from codecgan.models import CMGANGenerator, MetricDiscriminator

    monkeypatch.setattr(dnsmos_score.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ConfigError, match=r"speechmos, onnxruntime is not installed.*pip install 'codecgan\[dnsmos\]'"):
        MetricGANEnhancer(CMGANGenerator(channels=4, num_blocks=1), MetricDiscriminator(channels=4), test_dnsmos=True)


def test_codecgan_test_on_noisy_recordings_without_dnsmos_says_nothing_can_be_scored(tmp_path, capsys):
    write_noisy_folder(tmp_path / "recordings", speech=False)
    overlay = tiny_trainer_overlay(tmp_path / "run")
    overlay["data"]["init_args"]["test_dir"] = str(tmp_path / "recordings")
    args = [
        "--config",
        str(EXPERIMENTS / "enhance_tiny.yaml"),
        "--config",
        str(write_overlay(tmp_path, "o.yaml", overlay)),
    ]
    with pytest.raises(SystemExit):
        main(["test", *args])
    error = capsys.readouterr().err
    assert "data.init_args.test_dir has no clean/ folder, so without clean references" in error
    assert "set model.init_args.test_dnsmos: true (pip install 'codecgan[dnsmos]')" in error


@needs_dnsmos
@pytest.mark.slow
def test_codecgan_test_scores_noisy_recordings_without_references_with_dnsmos_only(tmp_path, caplog):
    """A test_dir of noisy recordings only: DNSMOS of the enhanced output and the noisy input, and the intrusive
    measures reported as not scored for want of a reference (an untrained enhancer: the pipeline, not its quality)."""
    caplog.set_level(logging.INFO)
    write_noisy_folder(tmp_path / "recordings")
    overlay = tiny_trainer_overlay(tmp_path / "run")
    overlay["data"]["init_args"]["test_dir"] = str(tmp_path / "recordings")
    overlay["model"] = {"init_args": {"test_dnsmos": True, "pesq_workers": 0}}
    args = [
        "--config",
        str(EXPERIMENTS / "enhance_tiny.yaml"),
        "--config",
        str(write_overlay(tmp_path, "o.yaml", overlay)),
    ]
    main(["test", *args])
    summary = json.loads((tmp_path / "run" / "tb" / "metrics.json").read_text())
    assert summary["measures"] == list(DNSMOS_MEASURES)
    assert summary["not_scored"] == dict.fromkeys(ENHANCEMENT_MEASURES, "no reference")
    for system in ("enhanced", "noisy input"):
        assert summary["systems"][system]["utterances"] == 3
        for entry in summary["systems"][system]["measures"].values():
            assert entry["scored"] == 3 and 1.0 <= entry["mean"] <= 5.0
    rows = {(row["file"], row["system"]): row for row in read_csv(tmp_path / "run" / "tb" / "metrics.csv")}
    assert sorted(file for file, system in rows if system == "noisy input") == ["a.wav", "b.wav", "sub/c.wav"]
    # b.wav is speech at 20 dB SNR, a.wav at 0 dB: DNSMOS hears the quieter background.
    assert float(rows["b.wav", "noisy input"]["dnsmos_bak"]) > float(rows["a.wav", "noisy input"]["dnsmos_bak"])
    assert float(rows["a.wav", "noisy input"]["dnsmos_bak"]) == pytest.approx(
        DnsmosScore()(utterance("white_noise_0db_2s")[:16000])["dnsmos_bak"],
        abs=1e-5,  # metrics.csv: 6 digits
    )
    table = next(record.getMessage() for record in caplog.records if "| system |" in record.getMessage())
    assert "| DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL |" in table
    assert "Not scored (no reference): PESQ wb, PESQ nb, CSIG, CBAK, COVL, SSNR, STOI, SI-SDR." in table


@needs_dnsmos
@pytest.mark.slow
def test_codecgan_test_adds_dnsmos_to_the_intrusive_measures_of_paired_data(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    overlay = tiny_trainer_overlay(tmp_path / "run")
    overlay["data"]["init_args"].update(crop_seconds=0.3, synthetic_items=[8, 2, 3], synthetic_seconds=1.0)
    overlay["model"] = {"init_args": {"test_dnsmos": True, "pesq_workers": 0}}
    args = [
        "--config",
        str(EXPERIMENTS / "enhance_tiny.yaml"),
        "--config",
        str(write_overlay(tmp_path, "o.yaml", overlay)),
    ]
    main(["test", *args])
    summary = json.loads((tmp_path / "run" / "tb" / "metrics.json").read_text())
    assert summary["measures"] == [*ENHANCEMENT_MEASURES, *DNSMOS_MEASURES]
    assert "not_scored" not in summary
    for system in summary["systems"].values():
        assert all(entry["scored"] == 3 for entry in system["measures"].values())
        assert all(1.0 <= system["measures"][m]["mean"] <= 5.0 for m in DNSMOS_MEASURES)
    table = next(record.getMessage() for record in caplog.records if "| system |" in record.getMessage())
    assert "| SI-SDR | DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL |" in table


@needs_dnsmos
@pytest.mark.slow
def test_dnsmos_means_are_the_same_on_one_and_two_processes(tmp_path):
    """Under DDP each rank scores its share of the test set: the report gathers every row once, and the logged
    ``test/dnsmos_*`` (MeanMetric, reduced across ranks) equals the report's mean of the enhanced output."""
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=2, val_every=2, checkpoint_every=2)
    overlay["data"]["init_args"].update(crop_seconds=0.3, synthetic_items=[8, 2, 3], synthetic_seconds=1.0)
    overlay["model"] = {"init_args": {"test_dnsmos": True, "pesq_workers": 0}}
    run_codecgan("fit", "enhance_tiny.yaml", tmp_path, "fit", overlay)
    means = {}
    for devices in (1, 2):
        overlay["trainer"].update(
            devices=devices, strategy="gan_ddp", default_root_dir=str(tmp_path / f"test{devices}")
        )
        overlay["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / f"test{devices}")
        overlay["ckpt_path"] = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
        printed = run_codecgan("test", "enhance_tiny.yaml", tmp_path, f"test{devices}", overlay).stdout
        summary = json.loads((tmp_path / f"test{devices}" / "tb" / "metrics.json").read_text())
        means[devices] = {system: summary["systems"][system] for system in ("enhanced", "noisy input")}
        for measure in DNSMOS_MEASURES:
            logged = float(re.search(rf"test/{measure}\D*?([0-9.]+)", printed).group(1))
            assert logged == pytest.approx(means[devices]["enhanced"]["measures"][measure]["mean"], abs=1e-6)
    for system in ("enhanced", "noisy input"):
        assert means[1][system]["utterances"] == means[2][system]["utterances"] == 3
        for measure in DNSMOS_MEASURES:
            one, two = (means[devices][system]["measures"][measure] for devices in (1, 2))
            assert one["scored"] == two["scored"] == 3
            assert math.isclose(one["mean"], two["mean"], rel_tol=1e-9), (system, measure)
