"""VocosGenerator's contracts that the reference fixture does not cover: lengths per padding, fp32 head under autocast,
a float64 model, and the errors for impossible settings."""

from __future__ import annotations

import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.models.vocos_generator import VocosGenerator
from codecgan.models.vocos_istft import ISTFTHead
from codecgan.models.vocos_mel import VocosMelSpectrogram

TINY = {"n_mels": 16, "dim": 16, "intermediate_dim": 24, "num_layers": 1, "n_fft": 128, "hop_length": 32}


def audio(samples: int = 1024) -> torch.Tensor:
    return 0.3 * torch.randn(2, 1, samples, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("padding", "frames", "samples"), [("center", 33, 1024), ("same", 32, 1024)])
def test_frames_and_output_length_per_padding(padding: str, frames: int, samples: int) -> None:
    torch.manual_seed(0)
    mel = VocosMelSpectrogram(n_fft=128, hop_length=32, n_mels=16, padding=padding)
    generator = VocosGenerator(**TINY, padding=padding)
    features = mel(audio())
    assert features.shape == (2, 16, frames) and mel.frames(1024) == frames
    assert generator(features).shape == (2, 1, samples)


def test_the_head_computes_in_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    generator = VocosGenerator(**TINY)
    features = generator.backbone(VocosMelSpectrogram(n_fft=128, hop_length=32, n_mels=16)(audio()))
    with torch.no_grad():
        expected = generator.head.spectrum(features)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            spectrum = generator.head.spectrum(features)
    assert spectrum.dtype == torch.complex64
    torch.testing.assert_close(spectrum, expected)


def test_a_float64_generator_stays_float64() -> None:
    torch.manual_seed(0)
    mel = VocosMelSpectrogram(n_fft=128, hop_length=32, n_mels=16).double()
    generator = VocosGenerator(**TINY).double()
    assert generator(mel(audio().double())).dtype == torch.float64


@pytest.mark.parametrize("hop_length", [0, 128])
def test_a_hop_outside_the_window_is_a_config_error(hop_length: int) -> None:
    with pytest.raises(ConfigError, match=rf"hop_length \({hop_length}\) must lie in 1\.\.n_fft - 1 \(127\)"):
        ISTFTHead(16, 128, hop_length)


def test_an_unknown_mel_padding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="padding of VocosMelSpectrogram must be \"center\".*'valid'"):
        VocosMelSpectrogram(padding="valid")
