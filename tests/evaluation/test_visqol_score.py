"""ViSQOL in `codecgan test` equals the `visqol-python` package's own command line on the same files."""

from __future__ import annotations

import copy
import math
import pickle
import re
import subprocess
import sys

import pytest
import soundfile
import torch
import torchaudio

from codecgan.evaluation.visqol_score import VisqolScore


def speech_like(seconds: float, sample_rate: int, seed: int) -> torch.Tensor:
    """A 150 Hz harmonic tone, syllable-rate modulated, over a little noise: ``[T]`` float32."""
    generator = torch.Generator().manual_seed(seed)
    time = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    tone = sum(torch.sin(2 * math.pi * 150 * harmonic * time) / harmonic for harmonic in range(1, 8))
    envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * 4 * time).clamp(min=0)
    noise = torch.randn(time.shape, generator=generator, dtype=torch.float64)
    return (0.2 * envelope * tone + 0.003 * noise).float()


def lowpassed(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``audio`` without the top third of its band, as a low-bitrate codec might leave it."""
    return torchaudio.functional.lowpass_biquad(audio, sample_rate, sample_rate / 3)


def command_line_moslqo(reference: str, degraded: str, mode: str) -> str:
    """The MOS-LQO that ``python -m visqol`` prints (6 decimals); speech mode with its polynomial mapper."""
    speech = ["--speech_mode", "--no_lattice_model"] if mode == "speech" else []
    result = subprocess.run(
        [sys.executable, "-m", "visqol", "-r", reference, "-d", degraded, *speech],
        capture_output=True,
        text=True,
        check=True,
    )
    return re.search(r"MOS-LQO:\s+(\S+)", result.stdout).group(1)


@pytest.mark.parametrize(("mode", "codec_rate"), [("audio", 44100), ("speech", 16000)])
def test_visqol_equals_the_package_command_line_on_the_same_files(tmp_path, mode, codec_rate):
    """At a codec's rate (44.1 kHz as DAC's, 16 kHz), against the command line on the pair resampled by torchaudio to
    the mode's rate (48 kHz, 16 kHz), as codecgan resamples it, and written as float WAVs (read back exactly)."""
    reference = speech_like(1.0, codec_rate, seed=0)
    degraded = lowpassed(reference, codec_rate) + 0.003 * torch.randn(
        reference.shape, generator=torch.Generator().manual_seed(1)
    )
    score = VisqolScore(mode)
    files = torchaudio.functional.resample(torch.stack([reference, degraded]), codec_rate, score.sample_rate)
    for name, audio in zip(("reference.wav", "degraded.wav"), files):
        soundfile.write(tmp_path / name, audio.numpy(), score.sample_rate, subtype="FLOAT")
    ours = score(reference, degraded, codec_rate)
    printed = command_line_moslqo(str(tmp_path / "reference.wav"), str(tmp_path / "degraded.wav"), mode)
    assert 2.0 < ours < 4.5  # neither end of the scale, where a clamp could hide a difference
    assert f"{ours:.6f}" == printed


def test_visqol_is_nan_where_it_has_no_score():
    score = VisqolScore("speech")
    clip = speech_like(1.0, 16000, seed=0)
    assert math.isnan(score(torch.zeros_like(clip), clip, 16000))  # ViSQOL would rate it near 5
    assert math.isnan(score(clip[:4000], clip[:4000], 16000))  # 0.25 s: too short for its patches


def test_visqol_can_be_copied_and_pickled_with_its_model_loaded():
    """Audio mode's SVR model is a ctypes object; a module that holds the score must still deep-copy and pickle."""
    score = VisqolScore("audio")
    clip = speech_like(0.25, 48000, seed=0)
    assert math.isnan(score(clip, clip, 48000))  # loads the model; 0.25 s is too short to score
    for twin in (copy.deepcopy(score), pickle.loads(pickle.dumps(score))):
        assert twin.mode == "audio" and math.isnan(twin(clip, clip, 48000))


def test_an_unknown_visqol_mode_is_refused():
    with pytest.raises(ValueError, match=r"ViSQOL mode must be one of \['audio', 'speech'\], got 'music'"):
        VisqolScore("music")
