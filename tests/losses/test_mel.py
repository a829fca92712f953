"""The multi-scale mel loss: identities, sensitivity and precision under autocast."""

import math

import pytest
import torch

from codecgan.losses import MultiScaleMelLoss


@pytest.fixture(scope="module")
def mel_loss() -> MultiScaleMelLoss:
    return MultiScaleMelLoss(sample_rate=16_000)


@pytest.fixture(scope="module")
def signals() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    time = torch.arange(8_000) / 16_000
    reference = 0.5 * torch.sin(2 * math.pi * 220 * time).expand(2, 1, -1)
    estimate = reference + 0.05 * torch.randn(2, 1, 8_000, generator=generator)
    return estimate, reference


def test_identical_inputs_give_zero(mel_loss, signals):
    _, reference = signals
    assert mel_loss(reference, reference.clone()).item() == 0.0


def test_different_inputs_give_a_positive_finite_loss_that_grows_with_the_error(mel_loss, signals):
    estimate, reference = signals
    small = mel_loss(estimate, reference)
    large = mel_loss(reference + 4 * (estimate - reference), reference)
    assert torch.isfinite(small) and small.item() > 0.0
    assert large.item() > small.item()


def test_gradient_reaches_the_estimate(mel_loss, signals):
    estimate, reference = signals
    estimate = estimate.clone().requires_grad_()
    mel_loss(estimate, reference).backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_bf16_autocast_agrees_with_fp32(mel_loss, signals):
    estimate, reference = signals
    full_precision = mel_loss(estimate, reference)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = mel_loss(estimate, reference)
    assert autocast.dtype == torch.float32
    assert autocast.item() == pytest.approx(full_precision.item(), rel=1e-3)


def test_silence_is_floored_at_clamp_eps(mel_loss):
    silence = torch.zeros(1, 1, 4_000)
    # Both mels clamp to 1e-5 (log10 = -5) everywhere: the loss is exactly zero, not NaN.
    assert mel_loss(silence, silence).item() == 0.0
    # Against silence each scale contributes the mean distance of log10(mel) from -5.
    assert torch.isfinite(mel_loss(silence + 0.1, silence))


def test_mismatched_scales_are_rejected():
    with pytest.raises(ValueError, match="same length"):
        MultiScaleMelLoss(16_000, window_lengths=(64, 128), n_mels=(10,))


def test_magnitude_weight_adds_the_linear_mel_distance_which_grows_with_a_level_deficit() -> None:
    reference = torch.randn(2, 1, 4000) * 0.1
    log_only = MultiScaleMelLoss(16_000, window_lengths=(64, 256), n_mels=(10, 40))
    with_linear = MultiScaleMelLoss(16_000, window_lengths=(64, 256), n_mels=(10, 40), magnitude_weight=2.0)
    linear = [with_linear(g * reference, reference) - log_only(g * reference, reference) for g in (0.9, 0.7, 0.5)]
    assert 0 < linear[0] < linear[1] < linear[2]
    expected = sum(
        (spectrogram(0.5 * reference) - spectrogram(reference)).abs().mean() for spectrogram in log_only.spectrograms
    )
    assert linear[2].item() == pytest.approx(2.0 * expected.item(), rel=1e-4)
    with pytest.raises(ValueError, match="magnitude_weight must be >= 0"):
        MultiScaleMelLoss(16_000, magnitude_weight=-1.0)


def test_a_smeared_estimate_scores_best_below_the_reference_level() -> None:
    """Why a log-mel-trained codec is quiet while it warms up (and AMPLITUDE_UNSTABLE waits for the loss to level off).

    The estimate has the reference's short-time energy, its spectral envelope smoothed over 9 bins (no harmonics) and
    random phase: what a generator produces before it can place the harmonics. Scaling it down lowers the loss.
    """
    from codecgan.data.synthetic_speech import synthesize_speech

    generator = torch.Generator().manual_seed(0)
    reference = torch.stack([synthesize_speech(16_000, 16_000, seed) for seed in range(4)])
    window = torch.hann_window(512)
    magnitude = torch.stft(reference, 512, 128, window=window, return_complex=True).abs()  # [B, F, N]
    bins = magnitude.transpose(1, 2).reshape(-1, 1, magnitude.shape[1])
    envelope = (
        torch.nn.functional.avg_pool1d(bins, 9, 1, 4, count_include_pad=False)
        .reshape(magnitude.shape[0], magnitude.shape[2], -1)
        .transpose(1, 2)
    )
    phase = 2 * math.pi * torch.rand(envelope.shape, generator=generator)
    smeared = torch.istft(torch.polar(envelope, phase), 512, 128, window=window, length=reference.shape[-1])
    rms = lambda audio: audio.pow(2).mean(-1, keepdim=True).sqrt()  # noqa: E731
    smeared = (smeared * rms(reference) / rms(smeared))[:, None]
    loss = MultiScaleMelLoss(16_000, (64, 128, 256, 512), (10, 20, 40, 80))  # the tiny codec's scales
    gains = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]
    losses = [loss(gain * smeared, reference[:, None]).item() for gain in gains]
    best = gains[losses.index(min(losses))]
    assert best <= 0.9  # at least 1 dB below the reference's level
    assert losses[gains.index(1.0)] > 1.02 * min(losses)
