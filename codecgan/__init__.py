"""codecgan: adversarial audio training that tells you early, with evidence, when and why it goes wrong."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so that `codecgan diagnose` starts without loading torch and Lightning, and
# `codecgan.load` (a trained generator from a checkpoint) works without Lightning installed.
_LAZY = {
    "CodecGAN": "codecgan.codec_module",
    "GANModule": "codecgan.gan_module",
    "MetricGANEnhancer": "codecgan.enhance_module",
    "MetricGANPlusEnhancer": "codecgan.metricgan_plus_module",
    "VocoderGAN": "codecgan.vocoder_module",
    "load": "codecgan.inference.checkpoint_loading",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codecgan' has no attribute {name!r}")
