"""The vocoder's data module: the codec's audio, or audio paired with a TTS model's precomputed mels to fine-tune on."""

from __future__ import annotations

from torch.utils.data import Dataset

from codecgan.config_error import ConfigError
from codecgan.data.datamodule import SPLITS, CodecDataModule
from codecgan.data.mel_pair_dataset import MelPairExcerpts
from codecgan.data.mel_pairs import MelPairFolder
from codecgan.vocoder_settings import check_whole_hops, front_end_setting

MEL_PADDINGS = {"center": 1, "same": 0}  # the mel frames a generator needs beyond one per hop
DATA = "data.init_args"


class VocoderDataModule(CodecDataModule):
    """``CodecDataModule``, plus a fine-tuning mode on precomputed mels (docs/vocoders.md, "Fine-tuning on a TTS
    model's mels").

    Without ``mel_dir`` it is the codec's data module: the vocoder computes each excerpt's mel itself. With
    ``mel_dir``, training items are ``MelPairExcerpts`` of ``train_dir``'s audio and the mel files of the same relative
    paths under ``mel_dir`` (``.npy`` or ``.pt``, ``[n_mels, frames]`` or ``[1, n_mels, frames]``): a crop of
    ``crop_seconds`` of audio (a whole number of hops) and the mel frames describing it, the batch's ``mel``
    ``[B, n_mels, frames]``, which the vocoder takes instead of computing one. With ``val_mel_dir``, validation items
    pair ``val_dir``'s audio with its mels the same way, one fixed crop of ``val_crop_seconds`` per pair (``val_crop``:
    ``start`` or ``center``); otherwise validation and test read their audio as the codec does (the vocoder computes
    their mels).

    Args:
        mel_dir: folder of mel files mirroring ``train_dir``; ``null``: mels computed from the audio.
        val_mel_dir: the same for ``val_dir``.
        hop_length, n_mels, mel_padding: the mel front-end's ``hop_length``, ``n_mels`` and ``padding`` (``center``:
            a crop of ``k`` hops takes ``k + 1`` frames; ``same``: ``k``). ``null``: read from the model's
            ``mel_spectrogram`` when training starts; values given are checked against it.
    """

    def __init__(
        self,
        *args,
        mel_dir: str | None = None,
        val_mel_dir: str | None = None,
        hop_length: int | None = None,
        n_mels: int | None = None,
        mel_padding: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if mel_padding is not None and mel_padding not in MEL_PADDINGS:
            raise ConfigError(f"{DATA}.mel_padding must be one of {list(MEL_PADDINGS)} or null, got {mel_padding!r}.")
        self.mel_dirs = {"train": mel_dir, "val": val_mel_dir}
        self.mel_settings = {"hop_length": hop_length, "n_mels": n_mels, "padding": mel_padding}
        if val_mel_dir is not None and self.val_crop not in ("start", "center"):
            raise ConfigError(
                f"{DATA}.val_mel_dir needs fixed-length validation crops: set {DATA}.val_crop: center (or start), "
                f"not {self.val_crop!r}."
            )
        if mel_dir is not None or val_mel_dir is not None:
            recipe = self.training_recipe
            changes = {"loudness_db": recipe.loudness_db, "salient_cutoff_db": recipe.salient_cutoff_db}
            changes["phase_shift"] = recipe.phase_shift or None
            used = sorted(key for key, value in changes.items() if value is not None)
            if used:
                raise ConfigError(
                    f"{DATA}.{used[0]} changes the audio of an excerpt but not its precomputed mel from "
                    f"{DATA}.mel_dir or val_mel_dir; set {', '.join(f'{DATA}.{key}: null' for key in used)} to fine-tune on mels."
                )

    def setup(self, stage: str | None = None) -> None:
        for split, mel_dir in self.mel_dirs.items():
            if stage != "predict" and mel_dir is not None and split not in self.datasets:
                self.datasets[split] = self.mel_pair_excerpts(split)
        super().setup(stage)

    def front_end_settings(self) -> dict[str, int | str]:
        """``hop_length``, ``n_mels`` and ``padding``: those given, checked against the model's front-end if any."""
        settings = dict(self.mel_settings)
        trainer = self.trainer
        front_end = getattr(trainer.lightning_module, "mel_spectrogram", None) if trainer is not None else None
        if front_end is not None:
            model = {"hop_length": front_end_setting(front_end, "hop_length")}
            model["n_mels"] = front_end_setting(front_end, "n_mels")
            model["padding"] = getattr(front_end, "padding", "center")
            for key, value in model.items():
                data_key = "mel_padding" if key == "padding" else key
                if settings[key] is not None and settings[key] != value:
                    raise ConfigError(
                        f"{DATA}.{data_key} is {settings[key]} but model.init_args.mel_spectrogram.init_args.{key} "
                        f"is {value}; set {DATA}.{data_key}: {value} (or null to take the model's)."
                    )
                settings[key] = value
        missing = [key for key, value in settings.items() if value is None]
        if missing:
            raise ConfigError(
                f"{DATA}.mel_dir needs the mel front-end's {missing}: set {DATA}.hop_length, n_mels and mel_padding, "
                "or train a model with a mel_spectrogram to take them from."
            )
        return settings

    def mel_pair_excerpts(self, split: str) -> Dataset:
        """``split``'s excerpts of its audio folder paired with its mel folder, checked at construction: random
        excerpts for training, one fixed crop per pair for validation."""
        training = split == "train"
        audio_key, mel_key = self.folder_key(split), "mel_dir" if training else "val_mel_dir"
        crop_key, crop = (
            ("crop_seconds", self.crop_samples) if training else ("val_crop_seconds", self.val_crop_samples)
        )
        if self.dirs[split] is None:
            raise ConfigError(f"{DATA}.{mel_key} pairs mels with the audio of {DATA}.{audio_key}; set {audio_key} too.")
        settings = self.front_end_settings()
        hop = int(settings["hop_length"])
        check_whole_hops(f"{DATA}.{crop_key}", crop, hop, self.sample_rate)
        segment_frames, extra_frames = crop // hop, MEL_PADDINGS[str(settings["padding"])]
        pairs = MelPairFolder(
            self._folder_dataset(split, self.dirs[split]),
            self.dirs[split],
            self.mel_dirs[split],
            hop,
            int(settings["n_mels"]),
            min_samples=crop,
            min_frames=segment_frames + extra_frames,
            keys=(f"{DATA}.{audio_key}", f"{DATA}.{mel_key}", f"{DATA}.{crop_key}"),
        )
        world, _ = self._world()
        return MelPairExcerpts(
            pairs,
            segment_frames,
            extra_frames,
            seed=self.seed + SPLITS.index(split),
            min_excerpts=world * self.batch_size,
            fixed=None if training else self.val_crop,
        )
