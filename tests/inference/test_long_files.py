"""Long files in windows equal whole-file processing: exactly (to float rounding) for the codec, whose receptive
field is bounded, at 60 s; within a measured tolerance for the enhancer, whose attention and level normalisation
see the whole window, at a length whose whole-file attention still fits a test."""

from __future__ import annotations

import pytest
import torch

from codecgan.data.noise import make_noise, mix_at_snr
from codecgan.data.synthetic_speech import synthesize_speech
from codecgan.inference.checkpoint_loading import load
from codecgan.inference.chunking import chunk_windows, process_in_chunks
from codecgan.inference.codec_chunks import CodecChunking, decode_in_chunks, encode_in_chunks
from codecgan.inference.enhancement import EnhanceSettings, enhance

SAMPLE_RATE = 16000


def snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.square().sum() / (estimate - reference).square().sum()))


@torch.no_grad()
@pytest.mark.slow
def test_a_60_second_file_in_windows_equals_the_whole_file_through_the_codec(codec_run):
    codec = load(codec_run.checkpoint)
    audio = synthesize_speech(60 * SAMPLE_RATE + 17, SAMPLE_RATE, seed=3)[None, None]  # not a multiple of the hop
    whole = codec(audio)
    chunking = CodecChunking(chunk_seconds=5.0, context_seconds=0.25)
    codes = encode_in_chunks(codec, audio, SAMPLE_RATE, chunking=chunking)
    assert torch.equal(codes, whole.codes)  # all 96,004 codes (24,001 frames x 4 codebooks)
    decoded = decode_in_chunks(codec, codes, audio.shape[-1], SAMPLE_RATE, chunking)
    # Measured: 3e-7 (forward adds the straight-through residual, decode sums codebook vectors).
    torch.testing.assert_close(decoded, whole.audio, rtol=0, atol=1e-5)
    # The cross-faded windows of process_in_chunks, with the codec's hop as the grid: measured 3e-7.
    hop = codec.hop_length
    # 5 s windows, 12 seams; 40 frames (1,600 samples) of context cover the tiny codec's receptive field (about 530
    # samples in the encoder and 15 frames in the decoder).
    cross_faded = process_in_chunks(lambda piece: codec(piece).audio, audio, 2000 * hop, 40 * hop, 40 * hop, hop)
    torch.testing.assert_close(cross_faded, whole.audio, rtol=0, atol=1e-5)


@torch.no_grad()
def test_the_enhancer_in_windows_stays_close_to_the_whole_file_without_a_seam(enhancer_run):
    enhancer = load(enhancer_run.checkpoint)
    length = 5 * SAMPLE_RATE
    clean = synthesize_speech(length, SAMPLE_RATE, seed=3)
    noisy = mix_at_snr(clean, make_noise("pink", length, SAMPLE_RATE, seed=4), 5.0)[None, None]
    whole = enhancer(noisy).audio
    settings = EnhanceSettings(chunk_seconds=2.0, overlap_seconds=0.5)
    windowed = enhance(enhancer, noisy, SAMPLE_RATE, settings)
    assert windowed.shape == whole.shape
    # Measured 17.9 dB for this 6-step model (after 100 steps: 16.5 dB here, 20.5 dB for 4 s windows on 12 s).
    assert snr_db(windowed, whole) > 15.0
    # No seam: the difference within the cross-fades is no larger than elsewhere (measured ratio of RMS 1.04;
    # 1.20 after 100 steps, 0.86 for 4 s windows on 12 s).
    difference = (windowed - whole)[0, 0]
    in_fades = torch.zeros(length, dtype=torch.bool)
    chunk, overlap = settings.samples(SAMPLE_RATE)
    for window in chunk_windows(length, chunk, overlap)[1:]:
        in_fades[window.keep_start : window.keep_start + overlap] = True
    rms = lambda samples: samples.square().mean().sqrt()  # noqa: E731
    assert rms(difference[in_fades]) < 1.5 * rms(difference[~in_fades])
