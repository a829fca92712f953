"""Trained tiny runs for the inference tests (one codec, one enhancer, a few steps each, once per session) and
folders of audio at mixed rates, channel counts and lengths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from codecgan.cli import main
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

FIT_STEPS = 6


@dataclass(frozen=True)
class TinyRun:
    """A finished ``codecgan fit`` run: its config arguments (base config and overlay) and last checkpoint."""

    config_args: list[str]
    checkpoint: Path


def fit_tiny(folder: Path, config: str, data: dict, model: dict) -> TinyRun:
    """``codecgan fit`` for ``FIT_STEPS`` steps on synthetic data, without validation, into ``folder``."""
    overlay = tiny_trainer_overlay(folder / "run", max_steps=FIT_STEPS, val_every=FIT_STEPS, checkpoint_every=FIT_STEPS)
    overlay["trainer"]["limit_val_batches"] = 0
    overlay["data"] = {"init_args": {"batch_size": 4, "synthetic_items": [24, 2, 2], **data}}
    overlay["model"] = {"init_args": model}
    args = ["--config", str(EXPERIMENTS / config), "--config", str(write_overlay(folder, "overlay.yaml", overlay))]
    main(["fit", *args])
    return TinyRun(args, folder / "run" / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="session")
def codec_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return fit_tiny(tmp_path_factory.mktemp("codec"), "codec_tiny.yaml", {"crop_seconds": 0.2}, {})


@pytest.fixture(scope="session")
def enhancer_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    # PESQ inline: no worker processes to start for six steps.
    return fit_tiny(
        tmp_path_factory.mktemp("enhancer"), "enhance_tiny.yaml", {"crop_seconds": 0.3}, {"pesq_workers": 0}
    )


@dataclass(frozen=True)
class Recording:
    """What a test recording holds: ``frames`` per channel at ``sample_rate``, ``channels``."""

    frames: int
    sample_rate: int
    channels: int


# Relative path -> (seconds, rate, channels): the model's rate and others, mono and multichannel, a file
# shorter than one window and ones longer, one in a subfolder.
RECORDINGS = {
    "phone_8k.wav": (1.3, 8000, 1),
    "studio/stereo_44k.flac": (2.6, 44100, 2),
    "mono_16k.wav": (0.4, 16000, 1),
    "three_channels_16k.wav": (2.9, 16000, 3),
}


def noisy_tones(seconds: float, sample_rate: int, channels: int, seed: int) -> np.ndarray:
    """``[frames, channels]`` float32: a different tone per channel in white noise."""
    rng = np.random.default_rng(seed)
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    tones = [0.3 * np.sin(2 * np.pi * (220 + 110 * channel) * times) for channel in range(channels)]
    return (np.stack(tones, axis=1) + 0.05 * rng.standard_normal((len(times), channels))).astype(np.float32)


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Recording]]:
    """A folder of ``RECORDINGS`` and what each holds."""
    folder = tmp_path_factory.mktemp("recordings")
    held = {}
    for seed, (name, (seconds, rate, channels)) in enumerate(RECORDINGS.items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = noisy_tones(seconds, rate, channels, seed)
        soundfile.write(path, samples, rate)
        held[name] = Recording(samples.shape[0], rate, channels)
    return folder, held
