"""Crops: fixed length, padding, one window per item, reproducible per (seed, epoch, index)."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from codecgan.data.crops import CroppedDataset
from codecgan.data.noise import SyntheticNoisySpeech


class RampPairs(Dataset):
    """Item i: noisy = 0, 1, 2, ... (so a window's first value is its start), clean = noisy +
    1000, with the given true lengths; ``padded_to`` right-pads the tensors beyond it."""

    def __init__(self, lengths: list[int], padded_to: int | None = None) -> None:
        self.lengths = lengths
        self.padded_to = padded_to

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict:
        length = self.lengths[index]
        ramp = torch.arange(1, length + 1, dtype=torch.float32)[None]
        if self.padded_to is not None:
            ramp = torch.nn.functional.pad(ramp, (0, self.padded_to - length))
        clean = torch.where(ramp > 0, ramp + 1000, ramp)
        return {"noisy": ramp, "clean": clean, "length": length, "index": index}


def window_start(item: dict) -> int:
    return int(item["noisy"][0, 0]) - 1


def test_long_items_are_cropped_and_short_ones_zero_padded() -> None:
    dataset = CroppedDataset(RampPairs([500, 60]), crop_samples=100, mode="random", seed=1)
    long_item, short_item = dataset[0], dataset[1]
    assert long_item["noisy"].shape == long_item["clean"].shape == (1, 100)
    assert long_item["length"] == 100 and long_item["index"] == 0
    assert short_item["noisy"].shape == (1, 100) and short_item["length"] == 60
    assert torch.equal(short_item["noisy"][0, :60], torch.arange(1.0, 61.0))
    assert short_item["noisy"][0, 60:].abs().sum() == 0
    assert short_item["clean"][0, 60:].abs().sum() == 0


def test_paired_keys_share_one_window() -> None:
    dataset = CroppedDataset(RampPairs([1000] * 8), crop_samples=64, mode="random", seed=3)
    for index in range(8):
        item = dataset[(index, 5)]
        assert torch.equal(item["clean"] - item["noisy"], torch.full((1, 64), 1000.0))
        assert torch.equal(item["noisy"][0], torch.arange(64.0) + item["noisy"][0, 0])


def test_random_crops_depend_on_epoch_and_index_not_on_call_order() -> None:
    keys = [(index, epoch) for epoch in range(4) for index in range(6)]
    forward = CroppedDataset(RampPairs([5000] * 6), crop_samples=100, mode="random", seed=7)
    backward = CroppedDataset(RampPairs([5000] * 6), crop_samples=100, mode="random", seed=7)
    starts = {key: window_start(forward[key]) for key in keys}
    assert starts == {key: window_start(backward[key]) for key in reversed(keys)}
    assert len({starts[(0, epoch)] for epoch in range(4)}) > 1, "the window must move each epoch"
    assert len({starts[(index, 0)] for index in range(6)}) > 1, "items must get different windows"
    assert window_start(forward[2]) == starts[(2, 0)]  # a plain index means epoch 0
    other_seed = CroppedDataset(RampPairs([5000] * 6), crop_samples=100, mode="random", seed=8)
    assert [window_start(other_seed[key]) for key in keys] != [starts[key] for key in keys]
    assert all(0 <= start <= 4900 for start in starts.values())


@pytest.mark.parametrize(("mode", "expected_start"), [("start", 0), ("center", 450)])
def test_start_and_center_crops_are_the_same_every_epoch(mode: str, expected_start: int) -> None:
    dataset = CroppedDataset(RampPairs([1000, 80]), crop_samples=100, mode=mode, seed=0)
    assert {window_start(dataset[(0, epoch)]) for epoch in range(5)} == {expected_start}
    assert window_start(dataset[(1, 3)]) == 0 and dataset[(1, 3)]["length"] == 80


def test_windows_never_start_in_the_base_items_padding() -> None:
    dataset = CroppedDataset(RampPairs([300] * 4, padded_to=2000), crop_samples=100, seed=2)
    for epoch in range(5):
        for index in range(4):
            item = dataset[(index, epoch)]
            assert window_start(item) <= 200 and item["length"] == 100
    centered = CroppedDataset(RampPairs([300], padded_to=2000), crop_samples=100, mode="center")
    assert window_start(centered[0]) == 100


def test_bad_arguments_are_refused_with_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="'middle'.*'random', 'start', 'center'"):
        CroppedDataset(RampPairs([10]), crop_samples=5, mode="middle")
    with pytest.raises(ValueError, match="crop_samples"):
        CroppedDataset(RampPairs([10]), crop_samples=0)


def test_cropped_batches_collate_into_the_interface_shapes() -> None:
    base = SyntheticNoisySpeech(4, 0.5, 16000, seed=0)
    loader = DataLoader(CroppedDataset(base, crop_samples=4000, mode="random"), batch_size=4)
    batch = next(iter(loader))
    assert batch["noisy"].shape == batch["clean"].shape == (4, 1, 4000)
    assert batch["length"].dtype == torch.int64 and batch["length"].tolist() == [4000] * 4
    assert batch["index"].tolist() == [0, 1, 2, 3]
    assert len(CroppedDataset(base, 4000)) == 4
