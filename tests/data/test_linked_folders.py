"""Data laid out as on shared clusters: split folders and files that are symbolic links into a dataset store, a
link cycle, a dangling link. Every place that lists audio follows the links; a cycle ends; a dangling link is named
as a bad file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codecgan.data.folder_scan import BadAudioError, list_audio_files, read_audio_header, unpaired_files
from codecgan.data.input_files import list_inputs
from codecgan.data.leaks import find_data_leaks
from codecgan.data.scan_command import EXIT_BAD_FILES, scan_main
from codecgan.lightning_cli import build_cli
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.data.wav_files import noise, tone, write_audio

RATE = 16000


def write_pairs(folder: Path, names: list[str], seed: int) -> None:
    """``folder/{noisy,clean}/<name>.wav``: 1 s of tone in noise and the tone."""
    for index, name in enumerate(names):
        clean = tone(1.0, RATE, frequency_hz=200.0 + 40 * (seed + index))
        write_audio(folder / "clean" / f"{name}.wav", clean, RATE)
        write_audio(folder / "noisy" / f"{name}.wav", clean + noise(1.0, RATE, seed=seed + index), RATE)


@pytest.fixture
def linked_splits(tmp_path: Path) -> Path:
    """``data/{train,val}/{noisy,clean}`` are links into ``store/``; one validation pair is a training pair."""
    store = tmp_path / "store"
    write_pairs(store / "train", ["p1", "p2", "p3", "p4"], seed=0)
    write_pairs(store / "val", ["v1"], seed=10)
    for kind in ("noisy", "clean"):  # the leaked pair: a renamed copy of a training pair
        (store / "val" / kind / "v2.wav").write_bytes((store / "train" / kind / "p1.wav").read_bytes())
    data = tmp_path / "data"
    for split in ("train", "val"):
        for kind in ("noisy", "clean"):
            (data / split).mkdir(parents=True, exist_ok=True)
            (data / split / kind).symlink_to(store / split / kind, target_is_directory=True)
    return data


def test_linked_split_folders_are_listed_from_the_split_root(linked_splits: Path) -> None:
    names = [path.relative_to(linked_splits / "train").as_posix() for path in list_audio_files(linked_splits / "train")]
    assert names == [f"{kind}/p{index}.wav" for kind in ("clean", "noisy") for index in range(1, 5)]
    noisy, clean, unpaired = unpaired_files(linked_splits / "train" / "noisy", linked_splits / "train" / "clean")
    assert (len(noisy), len(clean), unpaired) == (4, 4, [])


def test_the_leak_check_sees_through_linked_folders(linked_splits: Path) -> None:
    report = find_data_leaks({"train": str(linked_splits / "train"), "val": str(linked_splits / "val")})
    assert report is not None and report.files_checked == 8 + 4
    assert sorted(shared.name for shared in report.training_files["val"]) == ["clean/v2.wav", "noisy/v2.wav"]


def test_linked_files_are_listed(tmp_path: Path) -> None:
    store = write_audio(tmp_path / "store" / "take.wav", tone(0.1, RATE), RATE)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "take_link.wav").symlink_to(store)
    assert list_audio_files(tmp_path / "data") == [tmp_path / "data" / "take_link.wav"]
    assert [item.name.as_posix() for item in list_inputs([tmp_path / "data"])] == ["take_link"]


def test_a_link_cycle_ends_and_lists_each_file_once(tmp_path: Path) -> None:
    write_audio(tmp_path / "data" / "a" / "one.wav", tone(0.1, RATE), RATE)
    (tmp_path / "data" / "a" / "back_to_data").symlink_to(tmp_path / "data", target_is_directory=True)
    (tmp_path / "data" / "a" / "itself").symlink_to(tmp_path / "data" / "a", target_is_directory=True)
    assert list_audio_files(tmp_path / "data") == [tmp_path / "data" / "a" / "one.wav"]


def test_a_dangling_link_is_named_as_a_bad_file(tmp_path: Path, capsys) -> None:
    write_audio(tmp_path / "data" / "good.wav", tone(0.1, RATE), RATE)
    dangling = tmp_path / "data" / "gone.wav"
    dangling.symlink_to(tmp_path / "store" / "gone.wav")
    assert list_audio_files(tmp_path / "data") == [dangling, tmp_path / "data" / "good.wav"]
    problem = read_audio_header(dangling)
    assert isinstance(problem, str) and problem.startswith("dangling symbolic link")
    assert str(tmp_path / "store" / "gone.wav") in problem
    assert scan_main([str(tmp_path / "data")]) == EXIT_BAD_FILES
    assert f"{dangling}: dangling symbolic link" in capsys.readouterr().out


def test_the_codec_data_module_refuses_a_dangling_link_by_name(tmp_path: Path) -> None:
    from codecgan.data.datamodule import CodecDataModule

    write_audio(tmp_path / "train" / "good.wav", tone(1.0, RATE), RATE)
    (tmp_path / "train" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    data = CodecDataModule(sample_rate=RATE, train_dir=str(tmp_path / "train"), crop_seconds=0.2, batch_size=1)
    with pytest.raises(BadAudioError, match="gone.wav: dangling symbolic link"):
        data.setup("fit")


def test_an_enhancement_fit_on_linked_folders_trains_and_reports_its_leak(linked_splits: Path, tmp_path: Path) -> None:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=2, val_every=2, checkpoint_every=100)
    overlay["trainer"]["callbacks"].append({"class_path": "callbacks.DataLeakCheck"})
    overlay["trainer"]["limit_val_batches"] = 1
    overlay["data"]["init_args"] = {
        "train_dir": str(linked_splits / "train"),
        "val_dir": str(linked_splits / "val"),
        "crop_seconds": 0.5,
        "batch_size": 2,
    }
    overlay["model"] = {"init_args": {"pesq_workers": 0}}
    config = write_overlay(tmp_path, "linked.yaml", overlay)
    with pytest.warns(UserWarning, match=r"DATA_LEAK.*2 validation or test files are also training data"):
        build_cli(["fit", "--config", str(EXPERIMENTS / "enhance_tiny.yaml"), "--config", str(config)])
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "last.ckpt")
