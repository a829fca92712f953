"""Evaluation files that are training files, found in folders written here: the same file, a renamed copy, a
validation folder that is the test folder; and nothing in a clean layout or without folders."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from codecgan.data.leaks import EDGE_BYTES, find_data_leaks
from tests.data.wav_files import noise, write_audio, write_noise_folder

RATE = 8000


def split(root: Path, name: str, count: int, first_seed: int, seconds: float = 0.5) -> Path:
    """`count` noise files of equal length (so equal size) with their own seeds under root/name."""
    for index in range(count):
        write_audio(root / name / f"{name}{index}.wav", noise(seconds, RATE, seed=first_seed + index), RATE)
    return root / name


@pytest.fixture
def clean_layout(tmp_path: Path) -> dict[str, str]:
    """Train, val and test folders whose files all have the same size and different content."""
    return {
        "train": str(split(tmp_path, "train", 6, 0)),
        "val": str(split(tmp_path, "val", 3, 100)),
        "test": str(split(tmp_path, "test", 3, 200)),
    }


def test_a_clean_layout_has_no_shared_files(clean_layout: dict[str, str]) -> None:
    report = find_data_leaks(clean_layout)
    assert report is not None and report.files_checked == 12
    assert report.leaked_count == 0 and report.val_test_files == [] and not report.same_val_test_folder


def test_a_validation_folder_inside_the_training_folder_shares_its_files_by_path(tmp_path: Path) -> None:
    train = split(tmp_path, "data", 4, 0)
    write_noise_folder(train / "held_out", [0.5, 0.5], RATE)  # listed again as the validation folder
    report = find_data_leaks({"train": str(train), "val": str(train / "held_out"), "test": None})
    assert report.leaked_count == 2
    assert all(shared.same_file and shared.path == shared.twin for shared in report.training_files["val"])
    assert report.examples(1) == ["val file file0.wav is training file held_out/file0.wav"]


def test_a_symlink_to_a_training_file_is_the_same_file(clean_layout: dict[str, str]) -> None:
    os.symlink(Path(clean_layout["train"]) / "train2.wav", Path(clean_layout["test"]) / "linked.wav")
    report = find_data_leaks(clean_layout)
    [shared] = report.training_files["test"]
    assert shared.same_file and shared.twin.endswith("train2.wav") and shared.path.endswith("linked.wav")


def test_a_renamed_copy_of_a_training_file_is_found_by_its_content(clean_layout: dict[str, str]) -> None:
    shutil.copy(Path(clean_layout["train"]) / "train4.wav", Path(clean_layout["val"]) / "p287_001.wav")
    report = find_data_leaks(clean_layout)
    [shared] = report.training_files["val"]
    assert not shared.same_file and shared.twin.endswith("train4.wav")
    assert report.examples(5) == ["val file p287_001.wav is training file train4.wav (same content)"]


def test_large_files_of_equal_size_are_told_apart_by_their_edges(tmp_path: Path) -> None:
    seconds = 3 * EDGE_BYTES / (2 * RATE)  # 16-bit samples: three times the edge length in bytes
    write_audio(tmp_path / "train" / "a.wav", noise(seconds, RATE, seed=1), RATE)
    write_audio(tmp_path / "val" / "b.wav", noise(seconds, RATE, seed=2), RATE)
    shutil.copy(tmp_path / "train" / "a.wav", tmp_path / "val" / "c.wav")
    report = find_data_leaks({"train": str(tmp_path / "train"), "val": str(tmp_path / "val")})
    assert [Path(shared.path).name for shared in report.training_files["val"]] == ["c.wav"]


def test_a_validation_folder_that_is_the_test_folder(clean_layout: dict[str, str]) -> None:
    layout = {**clean_layout, "val": clean_layout["test"]}
    report = find_data_leaks(layout)
    assert report.same_val_test_folder and len(report.val_test_files) == 3 and report.leaked_count == 0


def test_enhancement_trees_compare_noisy_and_clean_files(tmp_path: Path) -> None:
    for name, seed in (("train", 0), ("test", 50)):
        for kind in ("noisy", "clean"):
            write_noise_folder(tmp_path / name / kind, [0.5, 0.5], RATE)
            for index in range(2):  # each tree its own content
                write_audio(tmp_path / name / kind / f"file{index}.wav", noise(0.5, RATE, seed=seed + index), RATE)
    shutil.copy(tmp_path / "train" / "clean" / "file1.wav", tmp_path / "test" / "clean" / "file0.wav")
    report = find_data_leaks({"train": str(tmp_path / "train"), "val": None, "test": str(tmp_path / "test")})
    assert [Path(s.path).relative_to(tmp_path).as_posix() for s in report.training_files["test"]] == [
        "test/clean/file0.wav"
    ]


@pytest.mark.parametrize(
    "dirs", [{"train": None, "val": None, "test": None}, {"train": "somewhere", "val": None, "test": None}]
)
def test_synthetic_data_or_a_single_folder_has_nothing_to_compare(dirs: dict) -> None:
    assert find_data_leaks(dirs) is None


def test_thousands_of_files_are_checked_in_well_under_a_second(tmp_path: Path) -> None:
    # Files of equal size (the worst case: every one is hashed), 2000 training and 200 validation files.
    template = write_audio(tmp_path / "template.wav", noise(0.25, RATE), RATE)
    data = bytearray(template.read_bytes())
    for name, count in (("train", 2000), ("val", 200)):
        (tmp_path / name).mkdir()
        for index in range(count):
            data[-8:] = f"{name[0]}{index:07d}".encode()  # different last samples, same size
            (tmp_path / name / f"{index}.wav").write_bytes(data)
    start = time.perf_counter()
    report = find_data_leaks({"train": str(tmp_path / "train"), "val": str(tmp_path / "val")})
    elapsed = time.perf_counter() - start
    assert report.files_checked == 2200 and report.leaked_count == 0
    assert elapsed < 2.0, elapsed
