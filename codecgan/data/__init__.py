"""Datasets of codecgan: synthetic speech and noise, audio folders, crops (docs/interfaces.md)."""

from codecgan.data.audio_folder import AudioFolder, AudioReadError, PairedAudioFolder, read_audio
from codecgan.data.crops import CROP_MODES, CroppedDataset
from codecgan.data.folder_scan import (
    BadAudioError,
    BadAudioFile,
    check_audio_file,
    list_audio_files,
    scan_audio_files,
    scan_paired,
)
from codecgan.data.noise import (
    NOISE_KINDS,
    SyntheticNoisySpeech,
    babble_noise,
    make_noise,
    mix_at_snr,
    noise_gain_for_snr,
    pink_noise,
    white_noise,
)
from codecgan.data.synthetic_speech import SyntheticSpeech, derive_seed, synthesize_speech

__all__ = [
    "AudioFolder",
    "AudioReadError",
    "BadAudioError",
    "BadAudioFile",
    "CROP_MODES",
    "CroppedDataset",
    "NOISE_KINDS",
    "PairedAudioFolder",
    "SyntheticNoisySpeech",
    "SyntheticSpeech",
    "babble_noise",
    "check_audio_file",
    "derive_seed",
    "list_audio_files",
    "make_noise",
    "mix_at_snr",
    "noise_gain_for_snr",
    "pink_noise",
    "read_audio",
    "scan_audio_files",
    "scan_paired",
    "synthesize_speech",
    "white_noise",
]

from codecgan.data.datamodule import AudioDataModule, CodecDataModule, EnhancementDataModule  # noqa: E402

__all__ += ["AudioDataModule", "CodecDataModule", "EnhancementDataModule"]
