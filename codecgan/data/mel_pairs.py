"""Audio files paired with precomputed log-mels (a TTS model's teacher-forced mels) for fine-tuning a vocoder.

``MelPairFolder`` matches every audio file of an ``AudioFolder`` with the mel file of the same relative path under
``mel_root`` (``a/b.wav`` -> ``a/b.npy`` or ``a/b.pt``; ``.npy`` first when both exist) and checks every pair at
construction, reading only headers where it can (a ``.npy`` header; a ``.pt`` file through ``torch.load(mmap=True)``),
so that a mismatch is a ``ConfigError`` naming the files, the numbers and the key before training starts, never a
shape error at step 1:

- a missing mel file;
- a mel that is not ``[n_mels, frames]`` or ``[1, n_mels, frames]``, or whose ``n_mels`` is not the front-end's;
- a mel whose ``frames × hop`` is more than one hop from the audio's length ``T`` (at the data's sample rate). The
  accepted frame counts are ``floor(T / hop)`` (HiFi-GAN's ``(n_fft - hop) / 2`` reflect padding on both sides, no
  centring), ``ceil(T / hop)``, and ``floor(T / hop) + 1`` (a centred STFT, torchaudio's and Vocos's ``center``);
- a pair too short for one training crop.

Mel frame ``i`` is taken to describe audio samples ``[i * hop, (i + 1) * hop)``, which holds for both conventions,
so a crop starting at frame ``f`` reads audio from sample ``f * hop``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from codecgan.config_error import ConfigError
from codecgan.data.audio_folder import AudioFolder

MEL_SUFFIXES = (".npy", ".pt")
SHOWN_OFFENDERS = 5


def mel_frame_counts(samples: int, hop: int) -> tuple[int, ...]:
    """The frame counts accepted for ``samples`` of audio: floor (HiFi-GAN), ceil, and floor + 1 (centred STFT)."""
    return tuple(sorted({samples // hop, -(-samples // hop), samples // hop + 1}))


def mel_file_shape(path: Path) -> tuple[int, ...]:
    """The shape of the array in a ``.npy`` or ``.pt`` mel file, reading as little as the format allows."""
    if path.suffix == ".npy":
        return tuple(np.load(path, mmap_mode="r").shape)
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # an old (non-zip) serialisation cannot be memory-mapped
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"holds a {type(tensor).__name__}, not a tensor")
    return tuple(tensor.shape)


def read_mel_frames(path: Path, start: int, frames: int) -> torch.Tensor:
    """Frames ``[start, start + frames)`` of a mel file as a float32 ``[n_mels, frames]`` tensor."""
    if path.suffix == ".npy":
        mel = np.load(path, mmap_mode="r")
        window = torch.from_numpy(np.array(mel.reshape(mel.shape[-2:])[:, start : start + frames], dtype=np.float32))
    else:
        mel = torch.load(path, map_location="cpu", weights_only=True)
        window = mel.reshape(mel.shape[-2:])[:, start : start + frames].float().clone()
    return window


def _listed(lines: list[str], what: str) -> str:
    shown = "\n  ".join(lines[:SHOWN_OFFENDERS])
    more = f"\n  ... and {len(lines) - SHOWN_OFFENDERS} more" if len(lines) > SHOWN_OFFENDERS else ""
    return f"{len(lines)} {what}:\n  {shown}{more}"


class MelPairFolder:
    """The (audio file, mel file) pairs of a folder, checked against the front-end's ``hop`` and ``n_mels``.

    Args:
        audio: the audio files of ``audio_root`` (``data.init_args.train_dir``), an ``AudioFolder``.
        mel_root: folder of mels mirroring its folder (``data.init_args.mel_dir``).
        hop: samples per mel frame (the front-end's ``hop_length``).
        n_mels: mel bands (the front-end's).
        min_samples, min_frames: the training crop in samples and in mel frames; a shorter pair is refused.
        keys: the config keys of the audio folder, the mel folder and the crop length, for the messages.

    ``mel_files[i]`` and ``mel_frames[i]`` belong to ``audio.files[i]``; ``audio.lengths[i]`` is its length.
    """

    def __init__(
        self,
        audio: AudioFolder,
        audio_root: str | Path,
        mel_root: str | Path,
        hop: int,
        n_mels: int,
        min_samples: int = 0,
        min_frames: int = 0,
        keys: tuple[str, str, str] = (
            "data.init_args.train_dir",
            "data.init_args.mel_dir",
            "data.init_args.crop_seconds",
        ),
    ) -> None:
        self.audio, self.mel_root = audio, Path(mel_root)
        self.audio_root = Path(audio_root)
        self.sample_rate = sample_rate = audio.sample_rate
        self.hop, self.n_mels = hop, n_mels
        audio_key, mel_key, crop_key = keys
        if not self.mel_root.is_dir():
            raise ConfigError(f"{mel_key} {str(mel_root)!r} is not a folder: give the folder of mel files.")
        missing, bad, bands, lengths, short = [], [], [], [], []
        self.mel_files: list[Path] = []
        self.mel_frames: list[int] = []
        for audio_path, samples in zip(self.audio.files, self.audio.lengths):
            name = audio_path.relative_to(self.audio_root).with_suffix("")
            candidates = [self.mel_root / f"{name}{suffix}" for suffix in MEL_SUFFIXES]
            mel_path = next((path for path in candidates if path.is_file()), None)
            if mel_path is None:
                missing.append(f"{audio_path} has no {candidates[0]} nor {candidates[1].name}")
                continue
            try:
                shape = mel_file_shape(mel_path)
            except Exception as error:  # any unreadable file is reported with the others, not as a traceback
                bad.append(f"{mel_path}: cannot be read ({error})")
                continue
            if len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] != 1):
                bad.append(f"{mel_path}: shape {list(shape)}, not [n_mels, frames] or [1, n_mels, frames]")
                continue
            bands_here, frames = shape[-2], shape[-1]
            if bands_here != n_mels:
                bands.append(f"{mel_path}: {bands_here} mel bands, the front-end has {n_mels}")
                continue
            accepted = mel_frame_counts(samples, hop)
            if frames not in accepted:
                lengths.append(
                    f"{mel_path}: {frames} frames x hop {hop} = {frames * hop} samples, but {audio_path} has {samples} "
                    f"samples at {sample_rate} Hz (accepted: {', '.join(map(str, accepted))} frames)"
                )
                continue
            if samples < min_samples or frames < min_frames:
                short.append(
                    f"{audio_path}: {samples} samples and {frames} mel frames, shorter than the crop of {min_samples} "
                    f"samples and {min_frames} frames"
                )
            self.mel_files.append(mel_path)
            self.mel_frames.append(frames)
        problems = []
        if missing:
            problems.append(_listed(missing, f"audio files under {audio_key} without a mel file under {mel_key}"))
        if bad:
            problems.append(_listed(bad, f"unusable mel files under {mel_key}"))
        if bands:
            problems.append(
                _listed(bands, f"mel files whose n_mels differs from model.init_args.mel_spectrogram's {n_mels}")
            )
        if lengths:
            problems.append(
                _listed(lengths, "mel files more than one hop from their audio's length (frames x hop vs samples)")
            )
        if short:
            problems.append(_listed(short, f"pairs shorter than one crop (lower {crop_key})"))
        if problems:
            raise ConfigError(
                f"The mel files under {mel_key} do not fit the audio under {audio_key}:\n" + "\n".join(problems)
            )

    def __len__(self) -> int:
        return len(self.mel_files)
