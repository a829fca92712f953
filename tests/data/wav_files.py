"""Audio files the data tests write for themselves: tones, noise and silence at any rate and length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def tone(seconds: float, sample_rate: int, frequency_hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """``[frames]`` float32 sine."""
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency_hz * times)).astype(np.float32)


def noise(seconds: float, sample_rate: int, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """``[frames]`` float32 white noise of RMS ``amplitude``."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(round(seconds * sample_rate))).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``samples`` (``[frames]`` or ``[frames, channels]``) as a file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, sample_rate, subtype=subtype)
    return path


def write_noise_folder(root: Path, seconds: list[float], sample_rate: int = 8000) -> list[Path]:
    """One noise file per entry of ``seconds`` (``file0.wav``, ``file1.wav`` ...), each with its own seed."""
    return [
        write_audio(root / f"file{index}.wav", noise(length, sample_rate, seed=index), sample_rate)
        for index, length in enumerate(seconds)
    ]
