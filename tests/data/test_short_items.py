"""Training items shorter than the crop: tiled for the enhancement family (CMGAN), zero-padded for the codec (DAC)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codecgan.data import CodecDataModule, EnhancementDataModule
from codecgan.data.crops import CroppedDataset
from codecgan.data.item_audio import fill_to_length
from tests.data.wav_files import noise, tone, write_audio


def ramp_item(length: int, padded_to: int | None = None) -> dict:
    ramp = torch.arange(1.0, length + 1)[None]
    if padded_to is not None:
        ramp = torch.nn.functional.pad(ramp, (0, padded_to - length))
    return {"noisy": ramp, "clean": ramp + 1000 * (ramp > 0), "length": length, "index": 0}


def test_tiling_repeats_the_item_from_its_start_and_every_sample_counts() -> None:
    tiled = fill_to_length(ramp_item(3, padded_to=5), 8, "tile")
    assert tiled["noisy"].tolist() == [[1, 2, 3, 1, 2, 3, 1, 2]] and tiled["length"] == 8
    assert torch.equal(tiled["clean"] - tiled["noisy"], torch.full((1, 8), 1000.0))  # the pair stays aligned
    padded = fill_to_length(ramp_item(3, padded_to=5), 8, "zero_pad")
    assert padded["noisy"].tolist() == [[1, 2, 3, 0, 0, 0, 0, 0]] and padded["length"] == 3
    assert fill_to_length(ramp_item(8), 8, "tile")["noisy"].tolist() == [list(range(1, 9))]
    with pytest.raises(ValueError, match="'repeat'.*'zero_pad', 'tile'"):
        fill_to_length(ramp_item(3), 8, "repeat")


class Ramps(torch.utils.data.Dataset):
    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict:
        return dict(ramp_item(self.lengths[index]), index=index)


def test_cropped_dataset_tiles_short_items_and_crops_long_ones() -> None:
    dataset = CroppedDataset(Ramps([5, 40]), crop_samples=12, mode="random", seed=0, short_items="tile")
    short, long = dataset[(0, 3)], dataset[(1, 3)]
    assert short["noisy"].tolist() == [[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]] and short["length"] == 12
    assert long["length"] == 12 and torch.equal(long["noisy"][0], torch.arange(12.0) + long["noisy"][0, 0])
    with pytest.raises(ValueError, match="short_items"):
        CroppedDataset(Ramps([5]), crop_samples=12, short_items="loop")


def test_folder_training_items_are_tiled_for_enhancement_and_zero_padded_for_the_codec(tmp_path: Path) -> None:
    clean = tone(0.3, 16000)
    for tree, offset in (("clean", 0.0), ("noisy", 0.1)):
        write_audio(tmp_path / "pairs" / tree / "short.wav", clean + offset, 16000, subtype="FLOAT")
    enhancement = EnhancementDataModule(train_dir=str(tmp_path / "pairs"), crop_seconds=1.0, batch_size=2)
    enhancement.setup("fit")
    item = enhancement.datasets["train"][(0, 0)]
    assert item["clean"].shape == (1, 16000) and item["length"] == 16000
    torch.testing.assert_close(item["clean"][0, 4800:9600], torch.from_numpy(clean))  # the second copy
    torch.testing.assert_close(item["noisy"] - item["clean"], torch.full((1, 16000), 0.1))

    write_audio(tmp_path / "codec" / "short.wav", noise(0.3, 16000), 16000)
    codec = CodecDataModule(train_dir=str(tmp_path / "codec"), crop_seconds=1.0, batch_size=1)
    codec.setup("fit")
    item = codec.datasets["train"][(0, 0)]
    assert item["audio"].shape == (1, 16000) and item["length"] == 4800
    assert item["audio"][0, 4800:].abs().sum() == 0
    tiled = CodecDataModule(train_dir=str(tmp_path / "codec"), crop_seconds=1.0, batch_size=1, short_items="tile")
    tiled.setup("fit")
    assert tiled.datasets["train"][(0, 0)]["length"] == 16000
