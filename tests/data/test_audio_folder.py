"""Folder datasets: downmixing, resampling, pairing, validation and surviving files that break."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as audio_functional

from codecgan.config_error import ConfigError
from codecgan.data.audio_folder import AudioFolder, AudioReadError, PairedAudioFolder, read_audio
from codecgan.data.folder_scan import BadAudioError


def sine(frequency_hz: float, seconds: float, sample_rate: int) -> np.ndarray:
    """``[frames]`` float32 sine at 0.5 peak."""
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * frequency_hz * times)).astype(np.float32)


def write(path: Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, sample_rate, subtype="FLOAT" if path.suffix == ".wav" else None)
    return path


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """root/a/mono.wav (16 kHz), root/b/stereo.flac (16 kHz), root/c/slow.wav (8 kHz)."""
    write(tmp_path / "a" / "mono.wav", sine(440, 0.25, 16000))
    left, right = sine(440, 0.25, 16000), sine(880, 0.25, 16000)
    write(tmp_path / "b" / "stereo.flac", np.stack([left, right], axis=1))
    write(tmp_path / "c" / "slow.wav", sine(500, 0.25, 8000), sample_rate=8000)
    return tmp_path


def test_items_are_mono_at_the_target_rate_in_sorted_order(mixed_tree: Path) -> None:
    dataset = AudioFolder(mixed_tree, sample_rate=16000)
    assert [path.relative_to(mixed_tree).as_posix() for path in dataset.files] == [
        "a/mono.wav",
        "b/stereo.flac",
        "c/slow.wav",
    ]
    for index in range(3):
        item = dataset[index]
        assert set(item) == {"audio", "length", "index"} and item["index"] == index
        assert item["audio"].shape == (1, item["length"]) and item["audio"].dtype == torch.float32
    assert torch.equal(dataset[0]["audio"][0], torch.from_numpy(sine(440, 0.25, 16000)))


def test_stereo_is_downmixed_to_the_channel_mean(mixed_tree: Path) -> None:
    expected = (sine(440, 0.25, 16000) + sine(880, 0.25, 16000)) / 2
    downmixed = AudioFolder(mixed_tree, 16000)[1]["audio"][0].numpy()
    assert np.abs(downmixed - expected).max() < 1e-4  # FLAC stores 16-bit samples


def test_8_khz_file_is_resampled_to_16_khz(mixed_tree: Path) -> None:
    item = AudioFolder(mixed_tree, 16000)[2]
    assert item["length"] == 4000  # 0.25 s at 16 kHz
    spectrum = np.abs(np.fft.rfft(item["audio"][0].numpy()))
    assert np.fft.rfftfreq(4000, 1 / 16000)[np.argmax(spectrum)] == pytest.approx(500, abs=4)
    expected = audio_functional.resample(torch.from_numpy(sine(500, 0.25, 8000))[None], 8000, 16000)
    assert torch.allclose(item["audio"], expected)


def test_broken_files_stop_construction_with_all_of_them_listed(mixed_tree: Path) -> None:
    (mixed_tree / "empty.wav").write_bytes(b"")
    (mixed_tree / "a" / "fake.flac").write_text("not audio")
    with pytest.raises(BadAudioError) as raised:
        AudioFolder(mixed_tree, 16000)
    message = str(raised.value)
    assert str(mixed_tree / "empty.wav") in message
    assert str(mixed_tree / "a" / "fake.flac") in message
    assert "skip_bad_files=True" in message
    dataset = AudioFolder(mixed_tree, 16000, skip_bad_files=True)
    assert len(dataset) == 3
    assert sorted(Path(bad.path).name for bad in dataset.skipped) == ["empty.wav", "fake.flac"]


def test_a_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        AudioFolder(tmp_path / "no_such_dir", 16000)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        PairedAudioFolder(tmp_path / "no_such_dir", tmp_path, 16000)


def test_a_file_deleted_after_the_scan_is_replaced_by_the_next_item(mixed_tree: Path) -> None:
    dataset = AudioFolder(mixed_tree, 16000)
    (mixed_tree / "b" / "stereo.flac").unlink()
    with pytest.warns(RuntimeWarning, match="stereo.flac"):
        item = dataset[1]
    assert item["index"] == 2 and dataset.read_failures == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same file warns only once
        assert dataset[1]["index"] == 2
    assert dataset.read_failures == 2


def test_truncated_file_at_the_end_wraps_around_to_the_first(mixed_tree: Path) -> None:
    dataset = AudioFolder(mixed_tree, 16000)
    slow = mixed_tree / "c" / "slow.wav"
    slow.write_bytes(slow.read_bytes()[:30])
    with pytest.warns(RuntimeWarning, match="slow.wav"):
        assert dataset[2]["index"] == 0
    assert dataset.read_failures == 1


def test_all_files_gone_is_an_error_not_a_loop(mixed_tree: Path) -> None:
    dataset = AudioFolder(mixed_tree, 16000)
    for path in dataset.files:
        path.unlink()
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="None of the 3"):
        dataset[0]
    assert dataset.read_failures == 3


def test_read_audio_names_the_path_of_a_non_finite_file(tmp_path: Path) -> None:
    samples = sine(440, 0.1, 16000)
    samples[10] = np.nan
    path = write(tmp_path / "nan.wav", samples)
    with pytest.raises(AudioReadError, match="nan.wav.*non-finite"):
        read_audio(path, 16000)


@pytest.fixture
def paired_tree(tmp_path: Path) -> Path:
    """VoiceBank-like twin trees; clean/p1/002.wav is 0.1 s shorter than its noisy twin."""
    for name, seconds in (("p1/001.wav", 0.3), ("p1/002.wav", 0.4), ("p2/001.flac", 0.2)):
        write(tmp_path / "noisy" / name, sine(300, seconds, 16000) + 0.01)
        clean_seconds = seconds - 0.1 if name == "p1/002.wav" else seconds
        write(tmp_path / "clean" / name, sine(300, clean_seconds, 16000))
    return tmp_path


def test_pairs_are_matched_by_relative_path_and_cut_to_the_shorter(paired_tree: Path) -> None:
    dataset = PairedAudioFolder(paired_tree / "noisy", paired_tree / "clean", 16000)
    assert dataset.names == ["p1/001.wav", "p1/002.wav", "p2/001.flac"]
    item = dataset[1]
    assert set(item) == {"noisy", "clean", "length", "index"} and item["index"] == 1
    assert item["length"] == 4800
    assert item["noisy"].shape == item["clean"].shape == (1, 4800)
    assert torch.allclose(item["noisy"] - item["clean"], torch.full((1, 4800), 0.01), atol=1e-4)


def test_an_unpaired_file_is_reported_or_skipped(paired_tree: Path) -> None:
    lonely = write(paired_tree / "noisy" / "p3" / "009.wav", sine(300, 0.2, 16000))
    with pytest.raises(BadAudioError, match="009.wav: no matching clean file"):
        PairedAudioFolder(paired_tree / "noisy", paired_tree / "clean", 16000)
    dataset = PairedAudioFolder(paired_tree / "noisy", paired_tree / "clean", 16000, skip_bad_files=True)
    assert len(dataset) == 3 and [bad.path for bad in dataset.skipped] == [str(lonely)]


def test_a_pair_with_one_broken_file_is_skipped_whole(paired_tree: Path) -> None:
    (paired_tree / "clean" / "p1" / "001.wav").write_bytes(b"")
    dataset = PairedAudioFolder(paired_tree / "noisy", paired_tree / "clean", 16000, skip_bad_files=True)
    assert dataset.names == ["p1/002.wav", "p2/001.flac"]


def test_a_test_folder_without_clean_references_gives_noisy_items_and_says_so(tmp_path: Path) -> None:
    """``test_dir`` without ``clean/``: its ``noisy/`` folder (else itself) as ``noisy`` items, for DNSMOS alone;
    the validation split keeps needing pairs."""
    from codecgan.data import EnhancementDataModule
    from codecgan.data.audio_folder import NoisyAudioFolder
    from tests.data.wav_files import noise, write_audio

    for name, seconds in (("b.wav", 0.3), ("sub/a.wav", 0.2)):
        write_audio(tmp_path / "recordings" / "noisy" / name, noise(seconds, 16000), 16000)
        write_audio(tmp_path / "flat" / name, noise(seconds, 16000), 16000)
    for folder in ("recordings", "flat"):
        data = EnhancementDataModule(test_dir=str(tmp_path / folder), synthetic_items=(4, 2, 2))
        data.setup("test")
        assert data.test_references is False
        base = data.datasets["test"].base
        assert isinstance(base, NoisyAudioFolder) and base.names == ["b.wav", "sub/a.wav"]
        item = data.datasets["test"][1]
        assert sorted(item) == ["index", "length", "noisy"] and item["noisy"].shape == (1, 3200)
    paired = EnhancementDataModule(synthetic_items=(4, 2, 2))
    paired.setup("test")
    assert paired.test_references is True
    with pytest.raises(ConfigError, match="val_dir"):
        EnhancementDataModule(val_dir=str(tmp_path / "recordings"), synthetic_items=(4, 2, 2)).setup("validate")
