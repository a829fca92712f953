"""The codec papers' measures of one utterance (DAC's table): bitrate, mel and STFT distances, SI-SDR, SNR, and
optionally ViSQOL (``codecgan.evaluation.visqol_score``) in its audio or speech mode."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio, signal_noise_ratio

from codecgan.evaluation.visqol_score import VisqolScore
from codecgan.inference.codes_file import bitrate_kbps
from codecgan.losses.mel import MultiScaleMelLoss
from codecgan.metrics.stft_distance import multiscale_stft_distance

__all__ = ["CODEC_MEASURES", "CodecScores", "bitrate_kbps"]

CODEC_MEASURES = ("bitrate_kbps", "mel_distance", "stft_distance", "si_sdr_db", "snr_db")


class CodecScores:
    """Scores reconstructions against their references (``[T]`` each, the same length) at ``sample_rate`` Hz.

    The mel distance is DAC's 7-scale log-mel L1 at its default settings (not the training config's scales), so
    numbers compare across runs and with DAC's paper; the STFT distance is DAC's ``MultiScaleSTFTLoss``
    (``multiscale_stft_distance``, tested equal to it). SI-SDR removes the means first, as DAC's evaluation
    (audiotools' ``SISDRLoss``) does; SNR does not. Both are NaN for an all-zero reference.

    ``visqol_mode`` (``audio``, ``speech`` or ``None``) adds the measure ``visqol_<mode>`` (``VisqolScore``): off by
    default because it costs up to a second of CPU per second of audio, 5 to 10 times the others together.
    """

    def __init__(self, sample_rate: int, visqol_mode: str | None = None) -> None:
        self.sample_rate = sample_rate
        self.mel_distance = MultiScaleMelLoss(sample_rate)
        self.visqol = None if visqol_mode is None else VisqolScore(visqol_mode)
        self.measures = CODEC_MEASURES + (() if visqol_mode is None else (f"visqol_{visqol_mode}",))

    @torch.no_grad()
    def __call__(self, reference: Tensor, estimate: Tensor, bitrate: float) -> dict[str, float]:
        if reference.shape != estimate.shape or reference.dim() != 1:
            raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} must be [T].")
        self.mel_distance.to(reference.device)
        reference, estimate = reference.float(), estimate.float()
        silent = not bool(reference.any())  # no signal-to-anything ratio is defined
        scores = {
            "bitrate_kbps": bitrate,
            "mel_distance": float(self.mel_distance(estimate[None, None], reference[None, None])),
            "stft_distance": float(multiscale_stft_distance(estimate, reference)),
            "si_sdr_db": math.nan
            if silent
            else float(scale_invariant_signal_distortion_ratio(estimate.double(), reference.double(), zero_mean=True)),
            "snr_db": math.nan if silent else float(signal_noise_ratio(estimate.double(), reference.double())),
        }
        if self.visqol is not None:
            scores[f"visqol_{self.visqol.mode}"] = self.visqol(reference, estimate, self.sample_rate)
        return scores
