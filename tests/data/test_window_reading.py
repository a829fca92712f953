"""Start-up reads headers only; an item reads only its window, and resampling the window equals resampling the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as audio_functional

import codecgan.data.audio_reading as audio_reading
from codecgan.data import CodecDataModule, EnhancementDataModule
from codecgan.data.audio_folder import AudioFolder, PairedAudioFolder
from codecgan.data.audio_reading import WindowReader, read_audio, resampled_length
from codecgan.data.folder_scan import read_audio_header
from tests.data.wav_files import noise, tone, write_audio, write_noise_folder


@pytest.mark.parametrize(("file_rate", "sample_rate"), [(48000, 44100), (44100, 16000), (8000, 16000), (16000, 16000)])
def test_a_window_equals_the_same_samples_of_the_whole_file_resampled(tmp_path: Path, file_rate, sample_rate) -> None:
    stereo = np.stack([noise(1.3, file_rate, seed=1), tone(1.3, file_rate, 300.0)], axis=1)
    path = write_audio(tmp_path / "file.wav", stereo, file_rate, subtype="FLOAT")
    whole = read_audio(path, sample_rate)
    header = read_audio_header(path)
    assert whole.shape[-1] == resampled_length(header.frames, file_rate, sample_rate)
    reader = WindowReader(sample_rate)
    length = whole.shape[-1]
    for start, frames in [(0, 1000), (1, 999), (length // 3, 4321), (length - 700, 700), (length - 300, 1000)]:
        window = reader.read(path, header, start, frames)
        expected = whole[:, start : start + frames]
        assert window.shape == expected.shape, (start, frames)
        torch.testing.assert_close(window, expected, atol=1e-5, rtol=0)  # float rounding of the conv


def test_an_item_reads_only_its_window_with_a_small_margin(tmp_path: Path, monkeypatch) -> None:
    write_audio(tmp_path / "long.wav", noise(300.0, 8000), 8000)  # five minutes
    reads = []
    original_read = soundfile.read

    def counting_read(path, *args, start=0, stop=None, **kwargs):
        samples, rate = original_read(path, *args, start=start, stop=stop, **kwargs)
        reads.append(samples.shape[0])
        return samples, rate

    monkeypatch.setattr(audio_reading.soundfile, "read", counting_read)
    for file_rate_crop in (8000, 16000):  # without and with resampling (8 kHz file at 16 kHz)
        reads.clear()
        datamodule = CodecDataModule(
            sample_rate=file_rate_crop, train_dir=str(tmp_path), crop_seconds=0.5, batch_size=2
        )
        datamodule.setup("fit")
        assert reads == [], "setup must not decode audio"
        for index in range(5):
            item = datamodule.datasets["train"][(index, 0)]
            assert item["audio"].shape == (1, file_rate_crop // 2)
        crop_frames_in_file = 4000
        assert len(reads) == 5 and max(reads) <= crop_frames_in_file + 200, reads


def fail(*args, **kwargs):
    raise AssertionError("start-up decoded audio; it must read headers only")


def test_start_up_reads_headers_only(tmp_path: Path, monkeypatch) -> None:
    write_noise_folder(tmp_path / "codec", [2.0, 3.0, 0.5])
    for tree in ("noisy", "clean"):
        write_noise_folder(tmp_path / "pairs" / tree, [1.0, 2.5])
    # Every decode goes through SoundFile.read or SoundFile.blocks; soundfile.info opens the header only.
    for name in ("read", "blocks", "buffer_read"):
        monkeypatch.setattr(soundfile.SoundFile, name, fail)
    codec = CodecDataModule(
        sample_rate=8000,
        train_dir=str(tmp_path / "codec"),
        val_dir=str(tmp_path / "codec"),
        crop_seconds=0.25,
        batch_size=2,
    )
    codec.setup("fit")
    assert codec.datasets["train"].base.lengths == [16000, 24000, 4000]
    enhancement = EnhancementDataModule(
        sample_rate=16000,
        train_dir=str(tmp_path / "pairs"),
        val_dir=str(tmp_path / "pairs"),
        crop_seconds=0.25,
        batch_size=2,
    )
    enhancement.setup("fit")
    assert enhancement.datasets["train"].base.lengths == [16000, 40000]  # 8 kHz files at 16 kHz


def test_a_file_that_fails_to_decode_after_a_good_header_is_skipped_and_counted(tmp_path: Path) -> None:
    good = write_noise_folder(tmp_path, [1.0, 1.0])
    samples = noise(1.0, 8000)
    samples[5000] = np.nan  # inside the window read below: only the window is decoded
    write_audio(tmp_path / "file2.wav", samples, 8000, subtype="FLOAT")
    dataset = AudioFolder(tmp_path, 8000)  # the header is fine: no error at start-up
    assert len(dataset) == 3 and dataset.skipped == []
    with pytest.warns(RuntimeWarning, match="file2.wav.*non-finite"):
        item = dataset.read_window(2, 4000, 2000)
    assert item["index"] == 0 and dataset.read_failures == 1  # wrapped around to the first file
    assert torch.equal(item["audio"], read_audio(good[0], 8000)[:, 4000:6000])


def test_a_pair_window_is_the_same_samples_of_both_files(tmp_path: Path) -> None:
    clean = tone(2.0, 16000)
    write_audio(tmp_path / "clean" / "a.wav", clean, 16000, subtype="FLOAT")
    write_audio(tmp_path / "noisy" / "a.wav", clean + 0.25, 16000, subtype="FLOAT")
    dataset = PairedAudioFolder(tmp_path / "noisy", tmp_path / "clean", 16000)
    item = dataset.read_window(0, 12345, 3000)
    assert item["length"] == 3000 and item["clean"].shape == item["noisy"].shape == (1, 3000)
    torch.testing.assert_close(item["noisy"] - item["clean"], torch.full((1, 3000), 0.25))
    torch.testing.assert_close(item["clean"][0], torch.from_numpy(clean[12345:15345]))


def test_resampled_length_matches_torchaudio() -> None:
    cases = [(1, 48000, 44100), (12345, 44100, 16000), (999, 8000, 16000), (16048, 16000, 16000)]
    for frames, file_rate, rate in cases:
        expected = audio_functional.resample(torch.zeros(1, frames), file_rate, rate).shape[-1]
        assert resampled_length(frames, file_rate, rate) == expected
