"""Datasets of codecgan: synthetic speech and noise, audio folders, crops and excerpts, the
files a prediction reads (docs/interfaces.md).

Names are imported on first use, so that `codecgan scan` (``codecgan.data.scan_command``) starts
without loading torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AudioFolder": "codecgan.data.audio_folder",
    "PairedAudioFolder": "codecgan.data.audio_folder",
    "AudioReadError": "codecgan.data.audio_reading",
    "read_audio": "codecgan.data.audio_reading",
    "collate_padded": "codecgan.data.collate",
    "CROP_MODES": "codecgan.data.crops",
    "CroppedDataset": "codecgan.data.crops",
    "AudioDataModule": "codecgan.data.datamodule",
    "CodecDataModule": "codecgan.data.datamodule",
    "EnhancementDataModule": "codecgan.data.datamodule",
    "ExcerptRecipe": "codecgan.data.excerpt_recipe",
    "ExcerptDataset": "codecgan.data.excerpts",
    "AudioHeader": "codecgan.data.folder_scan",
    "BadAudioError": "codecgan.data.folder_scan",
    "BadAudioFile": "codecgan.data.folder_scan",
    "check_audio_file": "codecgan.data.folder_scan",
    "list_audio_files": "codecgan.data.folder_scan",
    "read_audio_header": "codecgan.data.folder_scan",
    "scan_audio_files": "codecgan.data.folder_scan",
    "scan_audio_headers": "codecgan.data.folder_scan",
    "scan_paired": "codecgan.data.folder_scan",
    "SHORT_ITEM_FILLS": "codecgan.data.item_audio",
    "fill_to_length": "codecgan.data.item_audio",
    "integrated_loudness_db": "codecgan.data.loudness",
    "MelPairExcerpts": "codecgan.data.mel_pair_dataset",
    "MelPairFolder": "codecgan.data.mel_pairs",
    "MixedSpeech": "codecgan.data.mixing",
    "MixingRecipe": "codecgan.data.mixing",
    "NoisePool": "codecgan.data.mixing",
    "mix": "codecgan.data.mixing",
    "NOISE_KINDS": "codecgan.data.noise",
    "SyntheticNoisySpeech": "codecgan.data.noise",
    "babble_noise": "codecgan.data.noise",
    "make_noise": "codecgan.data.noise",
    "mix_at_snr": "codecgan.data.noise",
    "noise_gain_for_snr": "codecgan.data.noise",
    "pink_noise": "codecgan.data.noise",
    "white_noise": "codecgan.data.noise",
    "shift_phase": "codecgan.data.phase_shift",
    "PredictionFiles": "codecgan.data.prediction_files",
    "SyntheticSpeech": "codecgan.data.synthetic_speech",
    "derive_seed": "codecgan.data.synthetic_speech",
    "synthesize_speech": "codecgan.data.synthetic_speech",
    "VocoderDataModule": "codecgan.data.vocoder_datamodule",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codecgan.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
