"""`codecgan test` end to end: a tiny model trained a few steps on synthetic data is scored with the papers'
measures, and the run folder gets the table's numbers as metrics.json and per utterance as metrics.csv."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import pytest

from codecgan.cli import main
from codecgan.evaluation.codec_scores import CODEC_MEASURES, bitrate_kbps
from codecgan.evaluation.enhancement_scores import ENHANCEMENT_MEASURES
from tests.conftest import EXPERIMENTS, run_codecgan, tiny_trainer_overlay, write_overlay


def fit_then_test(tmp_path: Path, config: str, data: dict, model: dict) -> Path:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=4, val_every=4, checkpoint_every=4)
    overlay["data"] = {"init_args": data}
    overlay["model"] = {"init_args": model}
    args = ["--config", str(EXPERIMENTS / config), "--config", str(write_overlay(tmp_path, "overlay.yaml", overlay))]
    main(["fit", *args])
    main(["test", *args, "--ckpt_path", str(tmp_path / "run" / "checkpoints" / "last.ckpt")])
    return tmp_path / "run" / "tb"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_codecgan_test_scores_a_tiny_enhancer_with_every_measure_and_the_noisy_baseline(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data = {"crop_seconds": 0.3, "batch_size": 2, "synthetic_items": [8, 2, 3], "silent_item_fraction": 0.0}
    run = fit_then_test(tmp_path, "enhance_tiny.yaml", data, {"pesq_workers": 0})
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["measures"] == list(ENHANCEMENT_MEASURES)
    assert list(summary["systems"]) == ["enhanced", "noisy input"]
    for system in summary["systems"].values():
        assert system["utterances"] == 3
        assert all(entry["scored"] == 3 and math.isfinite(entry["mean"]) for entry in system["measures"].values())
    rows = read_csv(run / "metrics.csv")
    assert [(row["utterance"], row["system"]) for row in rows] == [
        (str(index), system) for index in range(3) for system in ("enhanced", "noisy input")
    ]
    table = next(record.getMessage() for record in caplog.records if "| system |" in record.getMessage())
    assert "| PESQ wb | PESQ nb | CSIG | CBAK | COVL | SSNR | STOI | SI-SDR |" in table
    assert "| noisy input | 3 |" in table and "| enhanced | 3 |" in table


def test_codecgan_test_scores_a_tiny_codec_at_each_bitrate(tmp_path):
    data = {"crop_seconds": 0.2, "batch_size": 4, "synthetic_items": [16, 2, 3], "synthetic_seconds": 1.0}
    run = fit_then_test(tmp_path, "codec_tiny.yaml", data, {"test_codebook_counts": [1, 4], "test_visqol": "speech"})
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["measures"] == [*CODEC_MEASURES, "visqol_speech"]
    assert list(summary["systems"]) == ["1 codebooks", "4 codebooks"]
    # codec_tiny: codebooks of 256 entries (8 bits) at 16 kHz with a hop of 40 samples (400 frames/s): 3.2 kbps each.
    for count in (1, 4):
        measures = summary["systems"][f"{count} codebooks"]["measures"]
        assert (
            measures["bitrate_kbps"]["mean"]
            == pytest.approx(bitrate_kbps(count, 256, 16000, 40))
            == pytest.approx(3.2 * count)
        )
        assert all(entry["scored"] == 3 for entry in measures.values())
        assert measures["mel_distance"]["mean"] > 0 and measures["stft_distance"]["mean"] > 0
        assert 1.0 <= measures["visqol_speech"]["mean"] <= 5.0
    rows = read_csv(run / "metrics.csv")
    assert len(rows) == 6 and all(1.0 <= float(row["visqol_speech"]) <= 5.0 for row in rows)


def test_test_codebook_counts_beyond_the_generator_are_refused():
    from codecgan.codec_module import CodecGAN
    from codecgan.models import CodecGenerator, DACDiscriminator

    with pytest.raises(ValueError, match=r"test_codebook_counts must lie in 1..2 .* got \[3\]"):
        CodecGAN(CodecGenerator(n_codebooks=2), DACDiscriminator(), test_codebook_counts=[3])


def test_an_unknown_test_visqol_mode_is_a_config_error():
    from codecgan.codec_module import CodecGAN
    from codecgan.config_error import ConfigError
    from codecgan.models import CodecGenerator, DACDiscriminator

    with pytest.raises(ConfigError, match=r"model.init_args.test_visqol must be one of \['audio', 'speech'\] or null"):
        CodecGAN(CodecGenerator(n_codebooks=2), DACDiscriminator(), test_visqol="music")


@pytest.mark.slow
def test_visqol_means_are_the_same_on_one_and_two_processes(tmp_path):
    """Under DDP each rank scores its share of the test set; the report gathers every row, once."""
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=2, val_every=2, checkpoint_every=2)
    overlay["data"]["init_args"].update(synthetic_items=[8, 2, 5], synthetic_seconds=1.0)
    overlay["model"] = {"init_args": {"test_codebook_counts": [2], "test_visqol": "speech"}}
    run_codecgan("fit", "codec_tiny.yaml", tmp_path, "fit", overlay)
    means = {}
    for devices in (1, 2):
        overlay["trainer"].update(
            devices=devices, strategy="gan_ddp", default_root_dir=str(tmp_path / f"test{devices}")
        )
        overlay["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / f"test{devices}")
        overlay["ckpt_path"] = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
        run_codecgan("test", "codec_tiny.yaml", tmp_path, f"test{devices}", overlay)
        summary = json.loads((tmp_path / f"test{devices}" / "tb" / "metrics.json").read_text())
        means[devices] = summary["systems"]["2 codebooks"]
    assert means[1]["utterances"] == means[2]["utterances"] == 5
    assert means[1]["measures"]["visqol_speech"]["scored"] == 5
    for measure, entry in means[1]["measures"].items():
        assert math.isclose(entry["mean"], means[2]["measures"][measure]["mean"], rel_tol=1e-9), measure
