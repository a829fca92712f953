"""LightningDataModules: synthetic data by default, folders of real audio by path."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from codecgan.config_error import ConfigError
from codecgan.data.audio_folder import AudioFolder, NoisyAudioFolder, PairedAudioFolder
from codecgan.data.collate import collate_padded
from codecgan.data.crops import CROP_MODES, CroppedDataset
from codecgan.data.excerpt_recipe import ExcerptRecipe
from codecgan.data.excerpts import ExcerptDataset
from codecgan.data.item_audio import SHORT_ITEM_FILLS
from codecgan.data.mixing import MixedSpeech, NoisePool
from codecgan.data.mixing_folders import check_mixing_keys, mixing_folders, mixing_recipe, naming_the_key
from codecgan.data.noise import SyntheticNoisySpeech
from codecgan.data.prediction_files import PredictionFiles, one_item
from codecgan.data.samplers import EvaluationSampler, ResumableDataLoader, ResumableTrainSampler
from codecgan.data.synthetic_speech import SyntheticSpeech

SPLITS = ("train", "val", "test")


class AudioDataModule(L.LightningDataModule):
    """Train/val/test loaders of audio crops.

    Training on a folder draws an epoch of about ``total duration / crop_seconds`` excerpts, each from a
    file chosen in proportion to its duration (``ExcerptDataset``); training on synthetic data crops
    each item once per epoch (``CroppedDataset``). Both are a pure function of seed, epoch and item.
    Validation and test crops are deterministic (``start``, ``center``, or ``full``: each utterance
    whole, batched right-padded with its true ``length``), identical in every epoch and on every rank.
    Set ``val_crop: random`` only to reproduce the random-evaluation-crop bug.

    Args:
        sample_rate: Hz; files at other rates are resampled (only the samples an item needs).
        train_dir, val_dir, test_dir: folders of audio; ``null`` uses synthetic speech.
        crop_seconds: training crop length.
        val_crop_seconds: validation/test crop length (default: ``crop_seconds``; unused by ``full``).
        val_crop: ``start``, ``center``, ``full`` or ``random``.
        test_crop: the same for the test split; ``full`` (each utterance whole, as papers score) by default.
        short_items: how a training item shorter than the crop is filled: ``zero_pad`` (its ``length``
            stays true) or ``tile`` (repeated, as CMGAN does); ``null``: the family's default.
        batch_size, val_batch_size: items per batch (per rank).
        samples_per_epoch: training items per epoch, all ranks together (MetricGAN+: 100); ``null``: the whole
            training set (or an epoch of excerpts).
        epoch_passes: how many times an epoch yields its items, in the same order and with the same crops
            (``MetricGANPlusEnhancer``: 3, two discriminator passes and a generator pass); 1 otherwise.
        num_workers: DataLoader worker processes.
        seed: seeds the synthetic data, the shuffling and the random crops.
        synthetic_items: number of synthetic items for train, val and test.
        synthetic_seconds: length of each synthetic item.
        skip_bad_files: start anyway when a data folder holds files whose header cannot be read (they
            are skipped and listed in the dataset's ``skipped``); by default codecgan refuses to start
            and lists them. A file that fails to decode later is skipped and counted either way.
        predict_paths: files and folders (searched recursively) for ``codecgan predict``: each file whole,
            every channel, at ``sample_rate``, one per step (``codecgan.data.prediction_files``).
    """

    default_short_items = "zero_pad"

    def __init__(
        self,
        sample_rate: int = 16000,
        train_dir: str | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        crop_seconds: float = 0.5,
        val_crop_seconds: float | None = None,
        val_crop: str = "center",
        test_crop: str = "full",
        short_items: str | None = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        synthetic_items: tuple[int, int, int] = (512, 16, 16),
        synthetic_seconds: float = 2.0,
        skip_bad_files: bool = False,
        predict_paths: list[str] | None = None,
        samples_per_epoch: int | None = None,
        epoch_passes: int = 1,
    ) -> None:
        super().__init__()
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise ConfigError(f"data.samples_per_epoch must be >= 1 or null (the whole set), got {samples_per_epoch}.")
        if epoch_passes < 1:
            raise ConfigError(f"data.epoch_passes must be >= 1 (1: each item once per epoch), got {epoch_passes}.")
        for name, mode in (("val_crop", val_crop), ("test_crop", test_crop)):
            if mode not in CROP_MODES:
                raise ValueError(f"data.{name} must be one of {CROP_MODES}, got {mode!r}.")
        short_items = short_items or self.default_short_items
        if short_items not in SHORT_ITEM_FILLS:
            raise ValueError(f"data.short_items must be one of {SHORT_ITEM_FILLS}, got {short_items!r}.")
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
        self.test_crop = test_crop
        self.short_items = short_items
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.synthetic_items = dict(zip(SPLITS, synthetic_items))
        self.synthetic_seconds = synthetic_seconds
        self.skip_bad_files = skip_bad_files
        self.predict_paths = predict_paths
        self.samples_per_epoch, self.epoch_passes = samples_per_epoch, epoch_passes
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ what a family provides
    def folder_dataset(self, directory: str, split: str) -> Dataset:
        raise NotImplementedError

    def synthetic_dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def recipe(self, split: str) -> ExcerptRecipe:
        """What is done to each excerpt of ``split`` (loudness, salient excerpts, phase shift): nothing."""
        return ExcerptRecipe()

    def finish_dataset(self, split: str, dataset: Dataset) -> Dataset:
        """``split``'s items as the model takes them, from its crops or excerpts: unchanged."""
        return dataset

    @property
    def source_folders(self) -> dict[str, list[str]]:
        """Every folder each split reads, for the data-leak check (``codecgan.data.leaks``)."""
        return {split: [directory] if directory else [] for split, directory in self.dirs.items()}

    # ---------------------------------------------------------------------------------- loading
    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            self.datasets["predict"] = self._prediction_files()
            return
        for split in SPLITS:
            if split in self.datasets:
                continue
            directory = self.dirs[split]
            base = self._folder_dataset(split, directory) if directory else self.synthetic_dataset(split)
            seed = self.seed + SPLITS.index(split)
            if split != "train":
                mode = self.test_crop if split == "test" else self.val_crop
                dataset = CroppedDataset(base, self.val_crop_samples, mode, seed, recipe=self.recipe(split))
            elif directory:
                world, _ = self._world()
                dataset = ExcerptDataset(
                    base,
                    self.crop_samples,
                    seed,
                    min_excerpts=world * self.batch_size,
                    short_items=self.short_items,
                    recipe=self.recipe(split),
                )
            else:
                dataset = CroppedDataset(
                    base, self.crop_samples, "random", seed, short_items=self.short_items, recipe=self.recipe(split)
                )
            self.datasets[split] = self.finish_dataset(split, dataset)

    def _folder_dataset(self, split: str, directory: str) -> Dataset:
        """``folder_dataset(directory, split)``; a folder that is missing, empty or cannot be listed is a
        ``ConfigError`` naming the config key (a broken file stays a ``BadAudioError``, which lists the files)."""
        with naming_the_key(self.folder_key(split)):
            return self.folder_dataset(directory, split)

    def folder_key(self, split: str) -> str:
        """The config key that names ``split``'s folder."""
        return f"{split}_dir"

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
        if self.samples_per_epoch is not None and self.samples_per_epoch < world * self.batch_size:
            raise ConfigError(
                f"data.samples_per_epoch ({self.samples_per_epoch}) is less than one batch per rank "
                f"({world} ranks x batch_size {self.batch_size}); raise it to at least {world * self.batch_size}."
            )
        shuffle = not getattr(dataset, "independent_draws", False)  # excerpts are independent draws already
        sampler = ResumableTrainSampler(
            dataset,
            self.batch_size,
            self._training_position,
            world,
            rank,
            self.seed,
            shuffle=shuffle,
            items_per_epoch=self.samples_per_epoch,
            passes=self.epoch_passes,
        )
        return self._loader(dataset, sampler, self.batch_size, drop_last=True, loader_class=ResumableDataLoader)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def predict_dataloader(self) -> DataLoader:
        # One file per step, unbatched: files differ in length and channels, and each is processed in windows.
        return DataLoader(self.datasets["predict"], batch_size=1, collate_fn=one_item, num_workers=self.num_workers)

    def _prediction_files(self) -> PredictionFiles:
        if not self.predict_paths:
            raise ConfigError("codecgan predict needs data.init_args.predict_paths: a list of audio files and folders.")
        try:
            return PredictionFiles(self.predict_paths, self.sample_rate)
        except ValueError as error:
            raise ConfigError(f"data.init_args.predict_paths: {error}") from None

    def _evaluation_loader(self, split: str) -> DataLoader:
        world, rank = self._world()
        dataset = self.datasets[split]
        sampler = EvaluationSampler(dataset, world, rank)
        return self._loader(dataset, sampler, self.val_batch_size, drop_last=False, collate_fn=collate_padded)

    def _loader(
        self,
        dataset: Dataset,
        sampler,
        batch_size: int,
        drop_last: bool,
        loader_class: type = DataLoader,
        collate_fn=None,
    ) -> DataLoader:
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_fn,
        )


class CodecDataModule(AudioDataModule):
    """Single audio clips (`audio`, `length`, `index`): folders of wav/flac or synthetic speech.

    DAC's data recipe, each option off unless set (``codec_dac.yaml`` sets all three as DAC's
    ``conf/base.yml`` does):

    Args:
        loudness_db: normalise every excerpt (train, val and test, as DAC's ``VolumeNorm``) to this
            integrated loudness in dB LUFS (ITU-R BS.1770; DAC: -16), scaling it down if a peak then
            exceeds 1 (DAC's ``RescaleAudio``). ``null``: off.
        salient_cutoff_db: redraw a training excerpt quieter than this many dB LUFS from the same file,
            up to ``salient_tries`` draws, keeping the loudest when none reaches it (DAC's
            ``loudness_cutoff``: -40, ``num_tries``: 8). ``null``: off.
        salient_tries: draws per training excerpt at most.
        phase_shift: rotate the phase of every frequency component of each training excerpt by one
            angle drawn uniformly from [-pi, pi) (DAC's ``ShiftPhase``; ``codecgan.data.phase_shift``).
    """

    def __init__(
        self,
        *args,
        loudness_db: float | None = None,
        salient_cutoff_db: float | None = None,
        salient_tries: int = 8,
        phase_shift: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.training_recipe = ExcerptRecipe(
            loudness_db=loudness_db,
            salient_cutoff_db=salient_cutoff_db,
            salient_tries=salient_tries,
            phase_shift=phase_shift,
        )
        self.evaluation_recipe = ExcerptRecipe(loudness_db=loudness_db)

    def recipe(self, split: str) -> ExcerptRecipe:
        return self.training_recipe if split == "train" else self.evaluation_recipe

    def folder_dataset(self, directory: str, split: str) -> Dataset:
        return AudioFolder(directory, self.sample_rate, skip_bad_files=self.skip_bad_files)

    def synthetic_dataset(self, split: str) -> Dataset:
        seed = self.seed * 1000 + SPLITS.index(split) * 100_003
        return SyntheticSpeech(self.synthetic_items[split], self.synthetic_seconds, self.sample_rate, seed=seed)


class EnhancementDataModule(AudioDataModule):
    """Paired noisy/clean clips (`noisy`, `clean`, `length`, `index`).

    A folder (``train_dir`` ...) is the VoiceBank-DEMAND layout: ``<dir>/noisy/...`` and ``<dir>/clean/...`` with
    the same relative paths. Synthetic pairs mix synthetic speech with white, pink or babble noise at an SNR drawn
    from ``snr_db_range``; ``silent_item_fraction`` of the items have (nearly) silent speech, on which PESQ fails.
    Training items shorter than the crop are tiled by default, as CMGAN does (``short_items``).

    Noise mixed on the fly (``codecgan.data.mixing``): ``clean_dir``, each of ``noise_dirs`` and ``rir_dir`` hold
    one subfolder per split (``train/``, ``val/``, ``test/``). Training mixes excerpts of ``clean_dir/train`` with
    noise from every ``<noise_dir>/train``, a new mixture for each (seed, epoch, item); validation and test mix
    their fixed crops with fixed draws. A validation or test split may instead be a pair folder (``val_dir``,
    ``test_dir``: e.g. a prepared test set) when ``clean_dir`` has no subfolder for it.

    A ``test_dir`` without a ``clean/`` folder holds noisy recordings only (its ``noisy/`` folder, else the folder
    itself): ``codecgan test`` then scores the enhancer with DNSMOS alone (``model.init_args.test_dnsmos``), and
    ``test_references`` is false.

    Args:
        snr_db_range: SNR in dB of synthetic and mixed pairs, drawn uniformly.
        silent_item_fraction: synthetic items with silent speech.
        clean_dir: folder of clean speech, with ``train/``, ``val/``, ``test/`` subfolders; ``null``: no mixing.
        noise_dirs: noise folders, each with a subfolder per mixed split; their files form one pool, each file
            drawn in proportion to its duration.
        rir_dir: room impulse responses (one per file), with a subfolder per mixed split.
        level_db_range: the mixture's RMS level in dBFS, drawn uniformly.
        reverb_probability: fraction of mixtures whose speech is reverberated (the target stays dry).
    """

    default_short_items = "tile"

    def __init__(
        self,
        *args,
        snr_db_range: tuple[float, float] = (0.0, 15.0),
        silent_item_fraction: float = 0.0,
        clean_dir: str | None = None,
        noise_dirs: list[str] | None = None,
        rir_dir: str | None = None,
        level_db_range: tuple[float, float] = (-35.0, -15.0),
        reverb_probability: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.snr_db_range = snr_db_range
        self.silent_item_fraction = silent_item_fraction
        self.mixing = mixing_recipe(snr_db_range, level_db_range, reverb_probability)
        check_mixing_keys(self.dirs, clean_dir, noise_dirs, rir_dir, reverb_probability)
        self.mixing_arguments = (clean_dir, noise_dirs, rir_dir, reverb_probability)
        self.mixing_folders: dict[str, dict[str, list[str]]] = {}
        self.test_references = True  # false once setup finds a test_dir of noisy recordings only

    def setup(self, stage: str | None = None) -> None:
        # The folders are looked for here, not at construction, so a config instantiates without its data.
        if stage != "predict" and self.mixing_arguments[0] is not None and not self.mixing_folders:
            self.mixing_folders = mixing_folders(self.dirs, *self.mixing_arguments)
            for split, folders in self.mixing_folders.items():
                self.dirs[split] = folders["clean"][0]
        super().setup(stage)

    @property
    def source_folders(self) -> dict[str, list[str]]:
        folders = super().source_folders
        for split, mixed in self.mixing_folders.items():
            folders[split] = mixed["clean"] + mixed["noise"] + mixed["rir"]
        return folders

    def folder_key(self, split: str) -> str:
        return "clean_dir" if split in self.mixing_folders else super().folder_key(split)

    def folder_dataset(self, directory: str, split: str) -> Dataset:
        if split in self.mixing_folders:
            return AudioFolder(directory, self.sample_rate, skip_bad_files=self.skip_bad_files)
        root = Path(directory)
        if split == "test" and not (root / "clean").is_dir():
            self.test_references = False
            noisy = root / "noisy" if (root / "noisy").is_dir() else root
            return NoisyAudioFolder(noisy, self.sample_rate, skip_bad_files=self.skip_bad_files)
        return PairedAudioFolder(root / "noisy", root / "clean", self.sample_rate, skip_bad_files=self.skip_bad_files)

    def finish_dataset(self, split: str, dataset: Dataset) -> Dataset:
        if split not in self.mixing_folders:
            return dataset
        folders = self.mixing_folders[split]
        with naming_the_key("noise_dirs"):
            noise = NoisePool([self.folder_dataset(folder, split) for folder in folders["noise"]])
        with naming_the_key("rir_dir"):
            rirs = self.folder_dataset(folders["rir"][0], split) if folders["rir"] else None
        seed = self.seed + SPLITS.index(split)
        return MixedSpeech(dataset, noise, self.mixing, rirs, seed=seed, fixed=split != "train")

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
