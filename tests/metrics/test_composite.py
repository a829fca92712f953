"""codecgan's SSNR, LLR, WSS and composite ratings equal CMGAN's port, Loizou's composite.m and pysepm on the same
signals (composite_reference.json, written by those implementations), and keep their definitions' invariants."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codecgan.metrics.composite import composite_measures, composite_ratings
from codecgan.metrics.log_likelihood_ratio import frame_log_likelihood_ratios, log_likelihood_ratio
from codecgan.metrics.quality_frames import mean_of_lowest
from codecgan.metrics.quality_frames import signal_pair as prepared_pair
from codecgan.metrics.segmental_snr import frame_snrs_db, segmental_snr
from codecgan.metrics.weighted_spectral_slope import frame_spectral_slope_distances, weighted_spectral_slope

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "composite"
sys.path.insert(0, str(FIXTURES))
from composite_signals import CASES, signal_pair  # noqa: E402

REFERENCE = json.loads((FIXTURES / "composite_reference.json").read_text())["cases"]
WIDEBAND = [name for name in CASES if CASES[name][0] == 16000]
# The largest difference measured is 3.7e-13 relative (composite.m's LLR: Octave sums in another order); this
# leaves room for other FFT and BLAS builds while catching any change of definition.
RELATIVE = 1e-9


@functools.cache
def pair(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    return signal_pair(name)


def measures(name: str, convention: str) -> dict[str, float]:
    clean, processed, sample_rate = pair(name)
    return {
        "llr": log_likelihood_ratio(clean, processed, sample_rate, convention),
        "wss": weighted_spectral_slope(clean, processed, sample_rate, convention),
        "ssnr_db": segmental_snr(clean, processed, sample_rate),
    }


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize(("convention", "implementation"), [("cmgan", "cmgan"), ("matlab", "composite_m")])
def test_measures_equal_reference_implementation(name: str, convention: str, implementation: str) -> None:
    reference = REFERENCE[name][implementation]
    expected = {key: reference[key] for key in ("llr", "wss", "ssnr_db")}
    assert measures(name, convention) == pytest.approx(expected, rel=RELATIVE)
    clean, processed, sample_rate = pair(name)
    assert frame_snrs_db(*prepared_pair(clean, processed), sample_rate).size == reference["frames"]


@pytest.mark.parametrize("name", WIDEBAND)
def test_ratings_equal_cmgan_compute_metrics(name: str) -> None:
    """CMGAN's whole ``compute_metrics`` on the equal-length float pair (no epsilon added), with its real PESQ."""
    reference = REFERENCE[name]["cmgan_compute_metrics"]
    clean, processed, _ = pair(name)
    result = composite_measures(clean, processed, reference["pesq_wb"], convention="cmgan")
    for key in ("csig", "cbak", "covl", "ssnr_db"):
        assert getattr(result, key) == pytest.approx(reference[key], rel=RELATIVE), key


@pytest.mark.parametrize("name", WIDEBAND)
def test_ratings_equal_composite_m(name: str) -> None:
    reference = REFERENCE[name]["composite_m"]
    clean, processed, _ = pair(name)
    result = composite_measures(clean, processed, reference["pesq"], convention="matlab")
    for key in ("csig", "cbak", "covl", "llr", "wss", "ssnr_db"):
        assert getattr(result, key) == pytest.approx(reference[key], rel=RELATIVE), key


@pytest.mark.parametrize("name", CASES)
def test_pysepm_is_composite_m_with_pythons_rounding(name: str) -> None:
    """pysepm_evo's frames, windows and -100 dB floor are composite.m's, its kept-frame count is Python's round
    (CMGAN's), its SNRseg adds no epsilon, and its ``llr`` alone limits frames to 2."""
    reference = REFERENCE[name]["pysepm_evo"]
    clean, processed, sample_rate = pair(name)
    prepared = prepared_pair(clean, processed)
    frame_llrs = frame_log_likelihood_ratios(*prepared, sample_rate)
    assert mean_of_lowest(frame_llrs, "cmgan") == pytest.approx(reference["llr"], rel=RELATIVE)
    assert mean_of_lowest(np.minimum(frame_llrs, 2.0), "cmgan") == pytest.approx(reference["llr_limited"], rel=RELATIVE)
    frame_wss = frame_spectral_slope_distances(*prepared, sample_rate, "matlab")
    assert mean_of_lowest(frame_wss, "cmgan") == pytest.approx(reference["wss"], rel=RELATIVE)
    assert segmental_snr(clean, processed, sample_rate) == pytest.approx(reference["ssnr_db"], rel=RELATIVE)


def test_conventions_differ_where_documented() -> None:
    """270 frames: composite.m keeps 257 (MATLAB rounds 256.5 up), CMGAN's port 256. WSS: CMGAN's floor depends on
    the level, composite.m's does not reach a signal with a -60 dBFS noise floor."""
    cmgan, matlab = measures("gain_lowpass", "cmgan"), measures("gain_lowpass", "matlab")
    assert REFERENCE["gain_lowpass"]["cmgan"]["frames"] == 270
    assert matlab["llr"] != pytest.approx(cmgan["llr"], rel=1e-3)
    clean, processed, _ = pair("white_noise_10db")
    louder = weighted_spectral_slope(clean, processed, convention="matlab")
    quieter = weighted_spectral_slope(0.1 * clean, 0.1 * processed, convention="matlab")
    assert quieter == pytest.approx(louder, rel=1e-9)
    assert weighted_spectral_slope(0.1 * clean, 0.1 * processed) < 0.9 * weighted_spectral_slope(clean, processed)


@pytest.mark.parametrize("convention", ["cmgan", "matlab"])
def test_identical_signals(convention: str) -> None:
    clean, _, _ = pair("white_noise_10db")
    result = composite_measures(clean, clean, 4.5, convention)
    assert (result.llr, result.wss, result.ssnr_db) == (0.0, 0.0, 35.0)
    assert (result.csig, result.cbak, result.covl) == (5.0, 5.0, 5.0)


@pytest.mark.parametrize(("sample_rate", "shortest"), [(16000, 600), (8000, 300)])
def test_clips_under_37_5_ms_have_no_frame(sample_rate: int, shortest: int) -> None:
    rng = np.random.default_rng(0)
    for samples, finite in ((shortest - 1, False), (shortest, True), (10, False)):
        clean = rng.standard_normal(samples)
        processed = clean + 0.1 * rng.standard_normal(samples)
        functions = (log_likelihood_ratio, weighted_spectral_slope, segmental_snr)
        values = [function(clean, processed, sample_rate) for function in functions]
        assert [math.isfinite(value) for value in values] == [finite] * 3, samples
    short = composite_measures(np.ones(599), np.ones(599), 3.0)
    assert all(math.isnan(value) for value in short)


def test_failed_pesq_gives_nan_ratings_and_keeps_the_measures() -> None:
    clean, processed, _ = pair("echo")
    result = composite_measures(clean, processed, float("nan"))
    assert all(math.isnan(value) for value in (result.csig, result.cbak, result.covl))
    assert all(math.isfinite(value) for value in (result.llr, result.wss, result.ssnr_db))


def test_ratings_formula_by_hand() -> None:
    # CSIG 3.093 - 0.5145 + 1.809 - 0.27; CBAK 1.634 + 1.434 - 0.21 + 0.63; COVL 1.594 + 2.415 - 0.256 - 0.21.
    assert composite_ratings(3.0, 0.5, 30.0, 10.0) == pytest.approx((4.1175, 3.488, 3.543), abs=1e-12)
    # 5.8065, 5.99, 5.2165 and -0.291, 0.782, 0.163 are limited to the rating scale.
    assert composite_ratings(4.5, 0.0, 0.0, 35.0) == (5.0, 5.0, 5.0)
    assert composite_ratings(1.0, 3.0, 100.0, -10.0) == (1.0, 1.0, 1.0)
    # CBAK does not use LLR, so a NaN LLR leaves it.
    csig, cbak, covl = composite_ratings(3.0, float("nan"), 30.0, 10.0)
    assert math.isnan(csig) and math.isnan(covl) and cbak == pytest.approx(3.488)


def test_torch_and_float32_inputs_give_the_numpy_values() -> None:
    clean, processed, _ = pair("echo")
    clean32, processed32 = clean.astype(np.float32), processed.astype(np.float32)
    from_numpy = composite_measures(clean32, processed32, 2.0)
    from_torch = composite_measures(torch.from_numpy(clean32), torch.from_numpy(processed32), 2.0)
    assert from_torch == from_numpy


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: composite_measures(x, x[:-1], 3.0), "cut both to the common length"),
        (lambda x: segmental_snr(x[None], x[None]), r"1-D signal \[T\], got shape \(1, 1000\)"),
        (lambda x: log_likelihood_ratio(x, np.where(np.arange(x.size) == 3, np.nan, x)), "1 NaN or infinite"),
        (lambda x: composite_measures(x, x, 3.0, convention="pysepm"), "convention must be one of"),
        (lambda x: log_likelihood_ratio(x, x, convention="MATLAB"), "convention must be one of"),
        (lambda x: weighted_spectral_slope(x, x, convention=""), "convention must be one of"),
        (lambda x: segmental_snr(x, x, sample_rate=44100), "got 44100"),
        (lambda x: weighted_spectral_slope(x, x, sample_rate=22050), "got 22050"),
        (lambda x: log_likelihood_ratio(x, x, sample_rate=48000), "got 48000"),
    ],
)
def test_invalid_input_raises(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(np.random.default_rng(0).standard_normal(1000))
