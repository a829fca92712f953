"""Training epochs of excerpts: about total duration / crop of them, files drawn in proportion to duration,
reproducible per (seed, epoch, index), resumable to the batch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from codecgan.data import CodecDataModule
from codecgan.data.audio_folder import AudioFolder
from codecgan.data.excerpts import ExcerptDataset
from codecgan.data.samplers import ResumableTrainSampler
from tests.data.wav_files import write_noise_folder

RATE = 8000


def test_a_folder_of_four_five_minute_files_trains_at_batch_12(tmp_path: Path) -> None:
    write_noise_folder(tmp_path, [300.0] * 4, RATE)
    datamodule = CodecDataModule(sample_rate=RATE, train_dir=str(tmp_path), crop_seconds=0.38, batch_size=12)
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    assert len(dataset) == math.ceil(4 * 300 / 0.38)  # 3158 excerpts: total duration / crop
    loader = datamodule.train_dataloader()
    assert len(loader) == 3158 // 12
    batch = next(iter(loader))
    assert batch["audio"].shape == (12, 1, 3040) and batch["length"].tolist() == [3040] * 12
    assert batch["index"].tolist() == list(range(12))  # excerpts are independent draws: no shuffle needed


def test_files_are_drawn_in_proportion_to_their_duration(tmp_path: Path) -> None:
    write_noise_folder(tmp_path, [10.0, 20.0, 30.0, 40.0], RATE)
    dataset = ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=RATE // 2, seed=3)
    assert len(dataset) == 200
    draws = [dataset.source_item(index, epoch) for epoch in range(40) for index in range(200)]
    shares = np.bincount(draws, minlength=4) / len(draws)
    # 8000 draws: the standard error of a share is at most 0.0055.
    np.testing.assert_allclose(shares, [0.1, 0.2, 0.3, 0.4], atol=0.02)


def test_excerpts_are_a_pure_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    write_noise_folder(tmp_path, [3.0, 5.0], RATE)
    first = ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=1000, seed=1)
    second = ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=1000, seed=1)
    keys = [(index, epoch) for epoch in range(3) for index in range(len(first))]
    audio = {key: first[key]["audio"] for key in keys}
    for key in reversed(keys):
        assert torch.equal(second[key]["audio"], audio[key])
    assert not torch.equal(audio[(0, 0)], audio[(0, 1)]), "an excerpt must move each epoch"
    assert first[(4, 2)]["index"] == 4 and torch.equal(first[0]["audio"], audio[(0, 0)])
    other_seed = ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=1000, seed=2)
    assert not torch.equal(other_seed[(0, 0)]["audio"], audio[(0, 0)])
    with pytest.raises(IndexError, match="out of range"):
        first[(len(first), 0)]


def test_an_epoch_holds_at_least_one_batch_per_rank(tmp_path: Path) -> None:
    write_noise_folder(tmp_path, [1.0], RATE)
    assert len(ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=RATE // 2)) == 2
    datamodule = CodecDataModule(sample_rate=RATE, train_dir=str(tmp_path), crop_seconds=0.5, batch_size=6)
    datamodule.setup("fit")
    assert len(datamodule.datasets["train"]) == 6 and len(datamodule.train_dataloader()) == 1


def test_a_resumed_epoch_draws_the_excerpts_an_uninterrupted_one_would(tmp_path: Path) -> None:
    write_noise_folder(tmp_path, [4.0, 2.0], RATE)
    dataset = ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=RATE // 4, seed=5)  # 24 excerpts
    straight = list(ResumableTrainSampler(dataset, 4, shuffle=False))
    resumed = list(ResumableTrainSampler(dataset, 4, position=lambda: (3, 0), shuffle=False))
    assert resumed == straight[12:]
    fresh = ExcerptDataset(AudioFolder(tmp_path, RATE), crop_samples=RATE // 4, seed=5)
    for key in resumed:
        assert torch.equal(fresh[key]["audio"], dataset[key]["audio"])
    ranks = [list(ResumableTrainSampler(dataset, 4, num_replicas=2, rank=rank, shuffle=False)) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 12 and not set(ranks[0]) & set(ranks[1])
    epoch_two = ResumableTrainSampler(dataset, 4, shuffle=False)
    epoch_two.set_epoch(2)
    assert [key[1] for key in epoch_two] == [2] * 24
