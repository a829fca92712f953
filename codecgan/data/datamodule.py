"""LightningDataModules: synthetic data by default, folders of real audio by path."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from codecgan.data.audio_folder import AudioFolder, PairedAudioFolder
from codecgan.data.crops import CroppedDataset
from codecgan.data.noise import SyntheticNoisySpeech
from codecgan.data.samplers import EvaluationSampler, ResumableDataLoader, ResumableTrainSampler
from codecgan.data.synthetic_speech import SyntheticSpeech

CROP_MODES = ("random", "start", "center")
SPLITS = ("train", "val", "test")


class AudioDataModule(L.LightningDataModule):
    """Train/val/test loaders of fixed-length crops.

    Training crops are random (a pure function of seed, epoch and item); validation and test crops
    are deterministic (``start`` or ``center``) by default, identical in every epoch and on every
    rank. Set ``val_crop: random`` only to reproduce the random-evaluation-crop bug.

    Args:
        sample_rate: Hz; files at other rates are resampled.
        train_dir, val_dir, test_dir: folders of audio; ``null`` uses synthetic speech.
        crop_seconds: training crop length.
        val_crop_seconds: validation/test crop length (default: ``crop_seconds``).
        val_crop: ``start``, ``center`` or ``random``.
        batch_size, val_batch_size: items per batch (per rank).
        num_workers: DataLoader worker processes.
        seed: seeds the synthetic data, the shuffling and the random crops.
        synthetic_items: number of synthetic items for train, val and test.
        synthetic_seconds: length of each synthetic item.
        skip_bad_files: start anyway when a data folder holds unreadable files (they are skipped
            and counted); by default codecgan refuses to start and lists them.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        train_dir: str | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        crop_seconds: float = 0.5,
        val_crop_seconds: float | None = None,
        val_crop: str = "center",
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        synthetic_items: tuple[int, int, int] = (512, 16, 16),
        synthetic_seconds: float = 2.0,
        skip_bad_files: bool = False,
    ) -> None:
        super().__init__()
        if val_crop not in CROP_MODES:
            raise ValueError(f"data.val_crop must be one of {CROP_MODES}, got {val_crop!r}.")
        if sample_rate <= 0:
            raise ValueError(f"data.sample_rate must be a positive number of Hz, got {sample_rate}.")
        if crop_seconds <= 0 or (val_crop_seconds is not None and val_crop_seconds <= 0):
            raise ValueError(f"data.crop_seconds must be positive, got {crop_seconds} / {val_crop_seconds}.")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}.")
        self.sample_rate = sample_rate
        self.dirs = {"train": train_dir, "val": val_dir, "test": test_dir}
        self.crop_samples = round(crop_seconds * sample_rate)
        self.val_crop_samples = round((val_crop_seconds or crop_seconds) * sample_rate)
        self.val_crop = val_crop
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.synthetic_items = dict(zip(SPLITS, synthetic_items))
        self.synthetic_seconds = synthetic_seconds
        self.skip_bad_files = skip_bad_files
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ what a family provides
    def folder_dataset(self, directory: str) -> Dataset:
        raise NotImplementedError

    def synthetic_dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- loading
    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split in self.datasets:
                continue
            directory = self.dirs[split]
            base = self.folder_dataset(directory) if directory else self.synthetic_dataset(split)
            crop, mode = (self.crop_samples, "random") if split == "train" else (self.val_crop_samples, self.val_crop)
            self.datasets[split] = CroppedDataset(base, crop, mode=mode, seed=self.seed + SPLITS.index(split))

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _training_position(self) -> tuple[int, int]:
        """(batches trained so far, current epoch), as restored from a checkpoint."""
        trainer = self.trainer
        return (trainer.global_step, trainer.current_epoch) if trainer is not None else (0, 0)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        world, rank = self._world()
        if len(dataset) < world * self.batch_size:
            raise ValueError(
                f"The training set has {len(dataset)} items, fewer than one batch per rank "
                f"({world} ranks x batch_size {self.batch_size})."
            )
        sampler = ResumableTrainSampler(dataset, self.batch_size, self._training_position, world, rank, self.seed)
        return self._loader(dataset, sampler, self.batch_size, drop_last=True, loader_class=ResumableDataLoader)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def _evaluation_loader(self, split: str) -> DataLoader:
        world, rank = self._world()
        sampler = EvaluationSampler(self.datasets[split], world, rank)
        return self._loader(self.datasets[split], sampler, self.val_batch_size, drop_last=False)

    def _loader(
        self, dataset: Dataset, sampler, batch_size: int, drop_last: bool, loader_class: type = DataLoader
    ) -> DataLoader:
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


class CodecDataModule(AudioDataModule):
    """Single audio clips (`audio`, `length`, `index`): folders of wav/flac or synthetic speech."""

    def folder_dataset(self, directory: str) -> Dataset:
        return AudioFolder(directory, self.sample_rate, skip_bad_files=self.skip_bad_files)

    def synthetic_dataset(self, split: str) -> Dataset:
        seed = self.seed * 1000 + SPLITS.index(split) * 100_003
        return SyntheticSpeech(self.synthetic_items[split], self.synthetic_seconds, self.sample_rate, seed=seed)


class EnhancementDataModule(AudioDataModule):
    """Paired noisy/clean clips (`noisy`, `clean`, `length`, `index`).

    A folder is the VoiceBank-DEMAND layout: ``<dir>/noisy/...`` and ``<dir>/clean/...`` with the
    same relative paths. Synthetic pairs mix synthetic speech with white, pink or babble noise at an
    SNR drawn from ``snr_db_range``; ``silent_item_fraction`` of the items have (nearly) silent
    speech, on which PESQ fails.
    """

    def __init__(
        self,
        *args,
        snr_db_range: tuple[float, float] = (0.0, 15.0),
        silent_item_fraction: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.snr_db_range = snr_db_range
        self.silent_item_fraction = silent_item_fraction

    def folder_dataset(self, directory: str) -> Dataset:
        root = Path(directory)
        return PairedAudioFolder(root / "noisy", root / "clean", self.sample_rate, skip_bad_files=self.skip_bad_files)

    def synthetic_dataset(self, split: str) -> Dataset:
        seed = self.seed * 1000 + SPLITS.index(split) * 100_003
        return SyntheticNoisySpeech(
            self.synthetic_items[split],
            self.synthetic_seconds,
            self.sample_rate,
            seed=seed,
            snr_db_range=self.snr_db_range,
            silent_item_fraction=self.silent_item_fraction,
        )
