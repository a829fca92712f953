"""Hu & Loizou's composite measures CSIG, CBAK and COVL of one utterance, from PESQ, LLR, WSS and SSNR."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from codecgan.metrics.log_likelihood_ratio import frame_log_likelihood_ratios
from codecgan.metrics.quality_frames import check_convention, mean_of_lowest, signal_pair
from codecgan.metrics.segmental_snr import frame_snrs_db
from codecgan.metrics.weighted_spectral_slope import frame_spectral_slope_distances

SAMPLE_RATE = 16000
# The rating scale (MOS, 1-5) the predictions are limited to, as composite.m limits them.
RATING_RANGE = (1.0, 5.0)


class CompositeMeasures(NamedTuple):
    """One utterance's composite ratings (1-5, higher is better) and the measures they are made from.

    ``csig``: predicted rating of signal distortion; ``cbak``: of background-noise intrusiveness; ``covl``: of
    overall quality. ``llr`` (nepers), ``wss`` (dB^2-like slope distance) and ``ssnr_db`` (dB) are the values
    that went into them (``log_likelihood_ratio``, ``weighted_spectral_slope``, ``segmental_snr``).
    """

    csig: float
    cbak: float
    covl: float
    llr: float
    wss: float
    ssnr_db: float


def composite_ratings(pesq_wb: float, llr: float, wss: float, ssnr_db: float) -> tuple[float, float, float]:
    """``(csig, cbak, covl)`` from the four measures by Hu & Loizou's (2008) regressions, each limited to
    [1, 5]; NaN (never 1 or 0) when a measure it uses is NaN.

    - CSIG = 3.093 - 1.029 LLR + 0.603 PESQ - 0.009 WSS
    - CBAK = 1.634 + 0.478 PESQ - 0.007 WSS + 0.063 SSNR
    - COVL = 1.594 + 0.805 PESQ - 0.512 LLR - 0.007 WSS
    """
    predictions = (
        3.093 - 1.029 * llr + 0.603 * pesq_wb - 0.009 * wss,
        1.634 + 0.478 * pesq_wb - 0.007 * wss + 0.063 * ssnr_db,
        1.594 + 0.805 * pesq_wb - 0.512 * llr - 0.007 * wss,
    )
    # Python's max(1, nan) is 1: CMGAN's port turns a NaN measure into a rating of 1 this way.
    low, high = RATING_RANGE
    return tuple(value if math.isnan(value) else min(high, max(low, value)) for value in predictions)


def composite_measures(
    clean: np.ndarray | torch.Tensor,
    processed: np.ndarray | torch.Tensor,
    pesq_wb: float,
    convention: str = "cmgan",
) -> CompositeMeasures:
    """CSIG, CBAK and COVL of ``processed`` against ``clean`` (both ``[T]`` at 16 kHz, same length, float in
    [-1, 1]), given the clip's wide-band PESQ ``pesq_wb`` (P.862.2 MOS-LQO, e.g. from ``PesqPool``).

    The definition is Loizou's ``composite.m`` with the 16 kHz choice that CMGAN's ``compute_metrics.py`` and
    MP-SENet's copy of it make: PESQ is the wide-band MOS-LQO. Hu & Loizou fitted the regressions at 8 kHz with
    the raw narrow-band PESQ score, which ``composite.m`` still uses at 8 kHz; at 16 kHz every implementation in
    use substitutes the wide-band score, so the ratings are a convention rather than the paper's model.
    The 30 ms frames, the 95% trimming of LLR and WSS and the [-10, 35] dB SSNR limits are ``quality_frames``',
    ``log_likelihood_ratio``'s, ``weighted_spectral_slope``'s and ``segmental_snr``'s.

    ``convention`` (``"cmgan"`` or ``"matlab"``) chooses the WSS band-energy floor and the rounding of the 95%
    frame count (``quality_frames.check_convention``). The floor is why composite scores differ between
    implementations by tenths: CMGAN's port, run on floats as CMGAN and MP-SENet run it, has a much lower WSS,
    hence CSIG 0.1-0.5 and COVL 0.1-0.4 higher than ``composite.m`` on the same files (``weighted_spectral_slope``
    has the measurements), and it depends on the signals' level. Other known sources of disagreement: resampling
    the 48 kHz VoiceBank files to 16 kHz with different filters (PESQ and WSS both move), facebookresearch/
    denoiser's SSNR rescaling (CBAK), and pysepm's ``llr`` limited to 2 when called alone. pysepm's ``SNRseg``,
    ``wss`` and ``llr(..., used_for_composite=True)`` otherwise agree with ``"matlab"`` to rounding, except that they
    round the 95% frame count as CMGAN's port does (``tests/fixtures/composite/README.md``).

    A failed PESQ (NaN) gives NaN ratings, never 0 or 1, so the caller counts the clip as failed; ``llr``,
    ``wss`` and ``ssnr_db`` are still returned. Each measure is NaN for clips under 37.5 ms.
    """
    check_convention(convention)
    reference, estimate = signal_pair(clean, processed)
    llr = mean_of_lowest(frame_log_likelihood_ratios(reference, estimate, SAMPLE_RATE), convention)
    wss = mean_of_lowest(frame_spectral_slope_distances(reference, estimate, SAMPLE_RATE, convention), convention)
    frame_snrs = frame_snrs_db(reference, estimate, SAMPLE_RATE)
    ssnr_db = float(np.mean(frame_snrs)) if frame_snrs.size else float("nan")
    csig, cbak, covl = composite_ratings(float(pesq_wb), llr, wss, ssnr_db)
    return CompositeMeasures(csig=csig, cbak=cbak, covl=covl, llr=llr, wss=wss, ssnr_db=ssnr_db)
