"""Validation and test at full length: each utterance whole, batches right-padded, true lengths kept, every
utterance exactly once across ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from codecgan.data import EnhancementDataModule
from codecgan.data.audio_reading import read_audio
from codecgan.data.collate import collate_padded
from codecgan.data.samplers import EvaluationSampler
from tests.data.wav_files import noise, write_audio

SECONDS = [1.5, 0.25, 3.0, 0.5, 2.0]  # VoiceBank test utterances run 1-15 s; shorter here to stay fast


@pytest.fixture
def voicebank_like(tmp_path: Path) -> Path:
    for index, seconds in enumerate(SECONDS):
        clean = noise(seconds, 16000, amplitude=0.1, seed=index)
        write_audio(tmp_path / "clean" / f"p232_{index:03d}.wav", clean, 16000, subtype="FLOAT")
        write_audio(
            tmp_path / "noisy" / f"p232_{index:03d}.wav",
            clean + noise(seconds, 16000, 0.05, seed=99),
            16000,
            subtype="FLOAT",
        )
    return tmp_path


def test_full_validation_batches_hold_whole_utterances_padded_with_true_lengths(voicebank_like: Path) -> None:
    folder = str(voicebank_like)
    module = EnhancementDataModule(
        train_dir=folder,
        val_dir=folder,
        test_dir=folder,
        crop_seconds=0.5,
        val_crop="full",
        batch_size=2,
        val_batch_size=2,
    )
    module.setup("fit")
    for loader in (module.val_dataloader(), module.test_dataloader()):
        batches = list(loader)
        assert [batch["index"].tolist() for batch in batches] == [[0, 1], [2, 3], [4]]
        for batch in batches:
            lengths = batch["length"]
            assert lengths.dtype == torch.int64 and batch["clean"].shape[-1] == int(lengths.max())
            for row, (index, length) in enumerate(zip(batch["index"].tolist(), lengths.tolist())):
                assert length == round(SECONDS[index] * 16000)
                expected = read_audio(voicebank_like / "clean" / f"p232_{index:03d}.wav", 16000)
                assert torch.equal(batch["clean"][row, :, :length], expected)
                assert batch["clean"][row, :, length:].abs().sum() == 0
                assert batch["noisy"][row, :, length:].abs().sum() == 0
    assert module.datasets["val"][2]["clean"].shape == (1, 48000)  # nothing truncated


def test_every_utterance_is_evaluated_exactly_once_across_ranks(voicebank_like: Path) -> None:
    module = EnhancementDataModule(val_dir=str(voicebank_like), val_crop="full", val_batch_size=2, batch_size=2)
    module.setup("validate")
    seen = []
    for rank in range(3):
        loader = torch.utils.data.DataLoader(
            module.datasets["val"],
            batch_size=2,
            collate_fn=collate_padded,
            sampler=EvaluationSampler(module.datasets["val"], 3, rank),
        )
        seen += [index for batch in loader for index in batch["index"].tolist()]
    assert sorted(seen) == list(range(len(SECONDS)))


def test_equal_length_items_collate_as_default_collate_does() -> None:
    items = [{"audio": torch.randn(1, 7), "length": 7, "index": index} for index in range(3)]
    padded, default = collate_padded(items), default_collate(items)
    assert padded.keys() == default.keys() and all(torch.equal(padded[key], default[key]) for key in padded)
