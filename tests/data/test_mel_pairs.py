"""Fine-tuning a vocoder on precomputed mels: (audio, mel) pairs matched by relative path, checked at scan time with a
ConfigError naming the files and numbers, cropped on frame boundaries (the precomputed crop equals the front-end's mel
of the cropped audio away from the edges), deterministic per (seed, epoch, index); and VocoderGAN takes the batch's
mel."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.data.audio_folder import AudioFolder
from codecgan.data.mel_pair_dataset import MelPairExcerpts
from codecgan.data.mel_pairs import MelPairFolder, mel_frame_counts
from codecgan.data.vocoder_datamodule import VocoderDataModule
from codecgan.diagnosis.history import MetricHistory
from codecgan.models import VocosMelSpectrogram
from tests.conftest import run_codecgan, tiny_trainer_overlay
from tests.data.wav_files import noise, tone, write_audio

RATE, HOP, N_MELS, N_FFT = 16000, 64, 32, 256


def front_end(padding: str) -> VocosMelSpectrogram:
    return VocosMelSpectrogram(RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, padding=padding)


def speechlike(seconds: float, seed: int) -> np.ndarray:
    return tone(seconds, RATE, 220.0 + 50 * seed, amplitude=0.3) + noise(seconds, RATE, 0.05, seed=seed)


def write_pairs(
    root: Path, names_seconds: dict[str, float], padding: str = "same", suffix: str = ".npy", layout: str = "2d"
) -> tuple[Path, Path]:
    """``root/audio/<name>.wav`` (float) and ``root/mels/<name><suffix>``, the front-end's log-mel of the whole file."""
    mel_of = front_end(padding)
    for seed, (name, seconds) in enumerate(names_seconds.items()):
        samples = speechlike(seconds, seed)
        write_audio(root / "audio" / f"{name}.wav", samples, RATE, subtype="FLOAT")
        mel = mel_of(torch.from_numpy(samples)[None, None])  # [1, n_mels, frames]
        mel = mel if layout == "3d" else mel[0]
        path = root / "mels" / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".npy":
            np.save(path, mel.numpy())
        else:
            torch.save(mel, path)
    return root / "audio", root / "mels"


def pair_folder(audio_root: Path, mel_root: Path, n_mels: int = N_MELS, **kwargs) -> MelPairFolder:
    return MelPairFolder(AudioFolder(audio_root, RATE), audio_root, mel_root, HOP, n_mels, **kwargs)


def test_pairs_are_matched_by_relative_path_in_both_formats_and_layouts(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.3, "spk/b": 0.25})
    write_pairs(tmp_path, {"spk/c": 0.2}, suffix=".pt", layout="3d")
    pairs = pair_folder(audio_root, mel_root)
    assert [path.relative_to(mel_root).as_posix() for path in pairs.mel_files] == ["a.npy", "spk/b.npy", "spk/c.pt"]
    assert pairs.audio.lengths == [4800, 4000, 3200]
    assert pairs.mel_frames == [75, 62, 50]  # T // hop: "same" padding, HiFi-GAN's convention


def test_accepted_frame_counts_are_floor_ceil_and_centred() -> None:
    assert mel_frame_counts(4000, 64) == (62, 63)  # 62.5 hops: floor, ceil = floor + 1
    assert mel_frame_counts(4096, 64) == (64, 65)  # whole hops: floor = ceil, centred STFT one more


@pytest.mark.parametrize("padding", ["same", "center"])
def test_crops_are_frame_aligned_and_match_the_mel_of_the_cropped_audio(tmp_path: Path, padding: str) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.5, "b": 0.4}, padding=padding)
    extra = 1 if padding == "center" else 0
    segment = 24
    excerpts = MelPairExcerpts(
        pair_folder(audio_root, mel_root, min_samples=segment * HOP), segment, extra, seed=3, min_excerpts=8
    )
    mel_of = front_end(padding)
    starts = set()
    for index in range(len(excerpts)):
        pair, start = excerpts.draw(index)
        starts.add(start)
        item = excerpts[index]
        assert item["audio"].shape == (1, segment * HOP) and item["mel"].shape == (N_MELS, segment + extra)
        whole = speechlike((0.5, 0.4)[pair], pair)
        np.testing.assert_array_equal(item["audio"][0].numpy(), whole[start * HOP : (start + segment) * HOP])
        recomputed = mel_of(item["audio"][None])[0]
        assert recomputed.shape == item["mel"].shape
        # Reflect padding at the crop's edges touches the first and last n_fft / hop frames; inside, they agree.
        inner = slice(N_FFT // HOP, -(N_FFT // HOP))
        torch.testing.assert_close(item["mel"][:, inner], recomputed[:, inner], atol=2e-4, rtol=0)
        # A crop that started half a hop late would not: the alignment is what is being checked.
        late = mel_of(torch.from_numpy(whole[start * HOP + HOP // 2 :][: segment * HOP])[None, None])[0]
        assert (late[:, inner] - item["mel"][:, inner]).abs().max() > 0.05
    assert len(starts) > 3


def test_an_excerpt_is_a_pure_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.5, "b": 0.4, "c": 0.3})
    first = MelPairExcerpts(pair_folder(audio_root, mel_root), 16, seed=5)
    second = MelPairExcerpts(pair_folder(audio_root, mel_root), 16, seed=5)
    keys = [(index, epoch) for epoch in (0, 1) for index in reversed(range(len(first)))]
    for key in keys:
        a, b = first[key], second[key]
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["mel"], b["mel"]) and a["index"] == key[0]
    draws = {epoch: [first.draw(index, epoch) for index in range(len(first))] for epoch in (0, 1)}
    assert draws[0] != draws[1]
    assert [MelPairExcerpts(pair_folder(audio_root, mel_root), 16, seed=6).draw(i) for i in range(8)] != draws[0][:8]


def test_an_unreadable_audio_file_is_replaced_by_the_next_pair_with_its_own_mel(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.5, "b": 0.4})
    excerpts = MelPairExcerpts(pair_folder(audio_root, mel_root), 16, seed=1, min_excerpts=8)
    index = next(i for i in range(len(excerpts)) if excerpts.draw(i)[0] == 0)
    (audio_root / "a.wav").write_bytes(b"not audio any more")  # rewritten while training runs
    with pytest.warns(RuntimeWarning, match="using the next readable item"):
        item = excerpts[index]
    np.testing.assert_array_equal(item["audio"][0].numpy(), speechlike(0.4, 1)[: 16 * HOP])
    assert torch.equal(item["mel"], torch.from_numpy(np.load(mel_root / "b.npy"))[:, :16])
    assert item["index"] == index and excerpts.pairs.audio.read_failures == 1


def test_a_missing_mel_file_is_a_config_error_naming_the_files(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.3, "b": 0.3})
    (mel_root / "b.npy").unlink()
    with pytest.raises(
        ConfigError, match=r"1 audio files under data\.init_args\.train_dir without a mel file"
    ) as error:
        pair_folder(audio_root, mel_root)
    assert str(audio_root / "b.wav") in str(error.value) and str(mel_root / "b.npy") in str(error.value)


def test_a_length_mismatch_is_a_config_error_with_the_numbers(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.3})
    np.save(mel_root / "a.npy", np.zeros((N_MELS, 77), dtype=np.float32))  # 4800 samples: 75 or 76 frames
    with pytest.raises(ConfigError) as error:
        pair_folder(audio_root, mel_root)
    message = str(error.value)
    assert "data.init_args.mel_dir" in message and "more than one hop from their audio's length" in message
    assert "77 frames x hop 64 = 4928 samples" in message and "has 4800 samples at 16000 Hz" in message
    assert "accepted: 75, 76 frames" in message


def test_an_n_mels_mismatch_is_a_config_error(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.3})
    with pytest.raises(ConfigError, match=r"a\.npy: 32 mel bands, the front-end has 80"):
        pair_folder(audio_root, mel_root, n_mels=80)


def test_a_mel_of_another_shape_or_unreadable_is_a_config_error(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.3, "b": 0.3})
    np.save(mel_root / "a.npy", np.zeros((2, N_MELS, 75), dtype=np.float32))
    (mel_root / "b.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ConfigError, match=r"2 unusable mel files under data\.init_args\.mel_dir") as error:
        pair_folder(audio_root, mel_root)
    assert "a.npy: shape [2, 32, 75], not [n_mels, frames] or [1, n_mels, frames]" in str(error.value)
    assert "b.npy: cannot be read" in str(error.value)


def test_offenders_are_listed_up_to_five(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {f"f{i}": 0.1 for i in range(7)})
    for path in mel_root.iterdir():
        path.unlink()
    with pytest.raises(ConfigError, match=r"7 audio files .*\n(  .*\n){5}  \.\.\. and 2 more"):
        pair_folder(audio_root, mel_root)


def test_the_data_module_batches_mels_and_checks_its_keys(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.5, "b": 0.4}, padding="center")
    settings = {"hop_length": HOP, "n_mels": N_MELS, "mel_padding": "center", "sample_rate": RATE}
    data = VocoderDataModule(train_dir=str(audio_root), mel_dir=str(mel_root), crop_seconds=0.128, **settings)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["audio"].shape == (8, 1, 2048) and batch["mel"].shape == (8, N_MELS, 33)
    odd = VocoderDataModule(train_dir=str(audio_root), mel_dir=str(mel_root), crop_seconds=0.13, **settings)
    with pytest.raises(ConfigError, match=r"crop_seconds gives 2080 samples.*0\.128 \(2048 samples\)"):
        odd.setup("fit")
    with pytest.raises(ConfigError, match=r"loudness_db changes the audio.*loudness_db: null"):
        VocoderDataModule(mel_dir=str(mel_root), loudness_db=-16.0, **settings)
    with pytest.raises(ConfigError, match=r"mel_padding must be one of \['center', 'same'\]"):
        VocoderDataModule(mel_dir=str(mel_root), **{**settings, "mel_padding": "valid"})


def test_validation_pairs_are_one_fixed_frame_aligned_crop_per_pair(tmp_path: Path) -> None:
    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.5, "b": 0.3}, padding="same")
    settings = {"hop_length": HOP, "n_mels": N_MELS, "mel_padding": "same", "sample_rate": RATE}
    data = VocoderDataModule(
        val_dir=str(audio_root), val_mel_dir=str(mel_root), val_crop_seconds=0.192, val_batch_size=2, **settings
    )
    data.setup("fit")
    validation = data.datasets["val"]
    assert len(validation) == 2 and [validation.draw(i) for i in range(2)] == [
        (0, 38),
        (1, 13),
    ]  # last starts 77, 27: the middles
    batch = next(iter(data.val_dataloader()))
    assert batch["audio"].shape == (2, 1, 3072) and batch["mel"].shape == (2, N_MELS, 48)
    np.testing.assert_array_equal(batch["audio"][1, 0].numpy(), speechlike(0.3, 1)[13 * HOP : 61 * HOP])
    assert torch.equal(batch["mel"][1], torch.from_numpy(np.load(mel_root / "b.npy"))[:, 13:61])
    with pytest.raises(ConfigError, match=r"val_mel_dir needs fixed-length validation crops.*val_crop: center"):
        VocoderDataModule(val_mel_dir=str(mel_root), val_crop="full", **settings)
    short = VocoderDataModule(val_dir=str(audio_root), val_mel_dir=str(mel_root), val_crop_seconds=0.4, **settings)
    with pytest.raises(ConfigError, match=r"1 pairs shorter than one crop \(lower data\.init_args\.val_crop_seconds\)"):
        short.setup("fit")


def test_the_front_end_settings_come_from_the_model_and_are_checked_against_it(tmp_path: Path) -> None:
    from tests.test_vocoder_module import tiny_vocoder

    audio_root, mel_root = write_pairs(tmp_path, {"a": 0.5}, padding="center")
    trainer = SimpleNamespace(lightning_module=tiny_vocoder(), world_size=1, global_rank=0)
    data = VocoderDataModule(train_dir=str(audio_root), mel_dir=str(mel_root), sample_rate=RATE, crop_seconds=0.128)
    data.trainer = trainer
    assert data.front_end_settings() == {"hop_length": HOP, "n_mels": N_MELS, "padding": "center"}
    data.setup("fit")
    assert data.datasets["train"][0]["mel"].shape == (N_MELS, 33)
    wrong = VocoderDataModule(train_dir=str(audio_root), mel_dir=str(mel_root), sample_rate=RATE, n_mels=80)
    wrong.trainer = trainer
    with pytest.raises(
        ConfigError, match=r"data\.init_args\.n_mels is 80 but .*mel_spectrogram\.init_args\.n_mels is 32"
    ):
        wrong.setup("fit")
    alone = VocoderDataModule(train_dir=str(audio_root), mel_dir=str(mel_root), sample_rate=RATE)
    with pytest.raises(ConfigError, match=r"mel_dir needs the mel front-end's \['hop_length', 'n_mels', 'padding'\]"):
        alone.setup("fit")


def test_the_vocoder_takes_the_batch_mel_instead_of_computing_one() -> None:
    from tests.test_vocoder_module import tiny_vocoder

    torch.manual_seed(0)
    vocoder = tiny_vocoder()
    audio = torch.randn(2, 1, 1024) * 0.1
    mel = torch.zeros(2, N_MELS, 17)  # center padding: 16 hops + 1
    batch = {"audio": audio, "length": torch.tensor([1024, 1024]), "index": torch.tensor([0, 1])}
    with torch.no_grad():
        given = vocoder.generator_forward({**batch, "mel": mel})
        computed = vocoder.generator_forward(batch)
        assert torch.equal(given["estimate"], vocoder.generator(mel)) and given["mel"] is mel
        assert torch.equal(computed["mel"], vocoder.mel_spectrogram(audio))


@pytest.mark.slow
def test_a_tiny_vocoder_fine_tunes_on_written_out_pairs(tmp_path: Path) -> None:
    """A few steps of experiments/vocoder_vocos_tiny.yaml on (audio, mel) pairs, the front-end's settings taken from
    the model."""
    audio_root, mel_root = write_pairs(tmp_path / "train", {f"f{i}": 0.6 for i in range(4)}, padding="center")
    val_root, val_mel_root = write_pairs(tmp_path / "val", {"v0": 1.1, "v1": 1.2}, padding="center")
    run_dir = tmp_path / "run"
    overlay = tiny_trainer_overlay(run_dir, max_steps=4, val_every=2, checkpoint_every=2)
    folders = {"train_dir": audio_root, "mel_dir": mel_root, "val_dir": val_root, "val_mel_dir": val_mel_root}
    overlay["data"] = {
        "class_path": "codecgan.data.VocoderDataModule",
        "init_args": {key: str(folder) for key, folder in folders.items()},
    }
    run_codecgan("fit", "vocoder_vocos_tiny.yaml", tmp_path, "overlay", overlay)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 4
    history = MetricHistory.from_tensorboard_run(str(run_dir / "tb"))
    mel = [point.value for point in history.series("val/mel_distance")]
    assert len(mel) == 2 and all(math.isfinite(value) for value in mel), mel
