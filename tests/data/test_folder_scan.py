"""The folder scan reports every broken audio file, with its path, and nothing else."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from codecgan.data.folder_scan import (
    BadAudioError,
    BadAudioFile,
    list_audio_files,
    scan_audio_files,
    scan_paired,
)

SAMPLE_RATE = 16000
GOOD_KINDS = ("mono_wav", "mono_flac", "stereo_wav")
BROKEN_KINDS = ("empty", "text", "zero_length", "nan", "inf", "truncated_header")


def tone(frames: int = 1600, channels: int = 1) -> np.ndarray:
    """A 440 Hz tone, ``[frames, channels]`` float32 at 0.5 peak."""
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(frames) / SAMPLE_RATE).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def write_audio(directory: Path, name: str, kind: str) -> Path:
    """Write a file of ``kind`` (one of GOOD_KINDS or BROKEN_KINDS) named ``name`` + suffix."""
    path = directory / f"{name}.{'flac' if kind == 'mono_flac' else 'wav'}"
    if kind in ("mono_wav", "mono_flac"):
        soundfile.write(path, tone(), SAMPLE_RATE)
    elif kind == "stereo_wav":
        soundfile.write(path, tone(channels=2), SAMPLE_RATE)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio, whatever the name says\n")
    elif kind == "zero_length":
        soundfile.write(path, np.zeros((0, 1), dtype=np.float32), SAMPLE_RATE)
    elif kind in ("nan", "inf"):
        samples = tone()
        samples[800, 0] = np.nan if kind == "nan" else np.inf
        soundfile.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    elif kind == "truncated_header":
        soundfile.write(path, tone(), SAMPLE_RATE)
        path.write_bytes(path.read_bytes()[:20])
    else:
        raise ValueError(kind)
    return path


def test_each_kind_of_broken_file_is_reported_with_its_path(tmp_path: Path) -> None:
    paths = {kind: write_audio(tmp_path, kind, kind) for kind in GOOD_KINDS + BROKEN_KINDS}
    bad = scan_audio_files(sorted(paths.values()), expect_channels=1)
    problems = {Path(entry.path): entry.problem for entry in bad}
    assert set(problems) == {paths[kind] for kind in BROKEN_KINDS + ("stereo_wav",)}
    assert "0 bytes" in problems[paths["empty"]]
    assert "not audio" in problems[paths["text"]]
    assert "0 frames" in problems[paths["zero_length"]]
    assert "1 non-finite" in problems[paths["nan"]]
    assert "1 non-finite" in problems[paths["inf"]]
    assert "not audio" in problems[paths["truncated_header"]]
    assert "2 channels, expected 1" in problems[paths["stereo_wav"]]
    assert scan_audio_files([paths["stereo_wav"]]) == []  # any channel count when not asked


def test_error_message_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    bad = [
        BadAudioFile(str(tmp_path / "a.wav"), "empty file (0 bytes)"),
        BadAudioFile(str(tmp_path / "b.wav"), "zero-length audio (0 frames)"),
    ]
    error = BadAudioError(bad, "Pass skip_bad_files=True to skip them.")
    lines = str(error).splitlines()
    assert isinstance(error, ValueError) and error.bad_files == bad
    assert lines[0] == "2 bad audio file(s):"
    assert lines[1] == f"  {tmp_path / 'a.wav'}: empty file (0 bytes)"
    assert lines[2] == f"  {tmp_path / 'b.wav'}: zero-length audio (0 frames)"
    assert "skip_bad_files" in lines[3]


def test_missing_file_is_reported(tmp_path: Path) -> None:
    (entry,) = scan_audio_files([tmp_path / "gone.wav"])
    assert entry.path == str(tmp_path / "gone.wav") and "does not exist" in entry.problem


def test_listing_is_recursive_sorted_and_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("b/z", "a/deep/y", "a/x"):
        write_audio(tmp_path, name, "mono_wav")
    write_audio(tmp_path, "a/w", "mono_flac")
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    (tmp_path / "a" / "LOUD.WAV").write_bytes((tmp_path / "a" / "x.wav").read_bytes())
    found = [path.relative_to(tmp_path).as_posix() for path in list_audio_files(tmp_path)]
    assert found == ["a/LOUD.WAV", "a/deep/y.wav", "a/w.flac", "a/x.wav", "b/z.wav"]


def test_missing_or_empty_root_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_audio_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    with pytest.raises(ValueError, match="empty.*holds no"):
        list_audio_files(tmp_path / "empty")


def test_paired_scan_reports_files_without_a_twin_and_broken_files(tmp_path: Path) -> None:
    for root in ("noisy", "clean"):
        (tmp_path / root / "p232").mkdir(parents=True)
        write_audio(tmp_path / root, "p232/001", "mono_wav")
    only_noisy = write_audio(tmp_path / "noisy", "p232/002", "mono_wav")
    only_clean = write_audio(tmp_path / "clean", "p232/003", "mono_wav")
    broken = write_audio(tmp_path / "clean", "p232/001_copy", "nan")
    write_audio(tmp_path / "noisy", "p232/001_copy", "mono_wav")
    bad = scan_paired(tmp_path / "noisy", tmp_path / "clean")
    problems = {Path(entry.path): entry.problem for entry in bad}
    assert set(problems) == {only_noisy, only_clean, broken}
    assert "no matching clean file" in problems[only_noisy]
    assert str(tmp_path / "clean" / "p232" / "002.wav") in problems[only_noisy]
    assert "no matching noisy file" in problems[only_clean]
    assert "non-finite" in problems[broken]


@settings(max_examples=15, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(GOOD_KINDS + BROKEN_KINDS), min_size=1, max_size=8),
    expect_mono=st.booleans(),
)
def test_scan_reports_exactly_the_broken_files(kinds: list[str], expect_mono: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        written = {write_audio(root, f"file{n}", kind): kind for n, kind in enumerate(kinds)}
        broken = {
            str(path)
            for path, kind in written.items()
            if kind in BROKEN_KINDS or (expect_mono and kind == "stereo_wav")
        }
        expect_channels = 1 if expect_mono else None
        reported = scan_audio_files(list_audio_files(root), expect_channels=expect_channels)
        assert {entry.path for entry in reported} == broken
        if broken:
            message = str(BadAudioError(reported))
            assert all(path in message for path in broken)
            assert len(message.splitlines()) == len(broken) + 1
