"""MP-SENet's generator losses (yxlu-0102/MP-SENet at 89932cf, ``train.py`` and ``models/model.py``).

Spectra are compressed (``|X|**0.3``) ``[B, 1, F, T']``; phases in radians, same shape; waveforms
``[B, 1, T]``. Everything is computed in fp32. The reference's total, with its weights:

``0.9 mag + 0.3 (IP + GD + IAF) + 0.1 complex + 0.1 consistency + 0.05 metric + 0.2 time``

where ``complex`` and ``consistency`` are the reference's MSE over the stacked (real, imag) pair times 2,
i.e. the MSE of the real parts plus that of the imaginary parts (``0.2`` per un-doubled MSE).
The magnitude, time and metric terms are ``codecgan.losses.enhancement``'s.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MPSENET_LOSS_WEIGHTS = {
    "magnitude": 0.9,
    "phase": 0.3,  # on IP + GD + IAF
    "complex": 0.1,
    "consistency": 0.1,
    "time": 0.2,
    "gan": 0.05,
}


def anti_wrapping(x: Tensor) -> Tensor:
    """``|x - 2 pi round(x / 2 pi)|``: the distance of an angle difference to the nearest multiple of
    2 pi, in ``[0, pi]``, so that phases 2 pi apart count as equal."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_losses(estimate_phase: Tensor, clean_phase: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """MP-SENet's anti-wrapped phase losses on phases ``[B, 1, F, T']``: (instantaneous phase, group delay,
    instantaneous angular frequency), each a mean of ``anti_wrapping`` of a difference.

    Group delay differences the phase along frequency, instantaneous angular frequency along time: they
    penalise phase structure errors that a per-bin phase error misses (a constant phase offset costs
    nothing in either)."""
    estimate, clean = estimate_phase.float(), clean_phase.float()
    instantaneous = anti_wrapping(clean - estimate).mean()
    group_delay = anti_wrapping(torch.diff(clean, dim=-2) - torch.diff(estimate, dim=-2)).mean()
    angular_frequency = anti_wrapping(torch.diff(clean, dim=-1) - torch.diff(estimate, dim=-1)).mean()
    return instantaneous, group_delay, angular_frequency


def complex_loss(estimate_real: Tensor, estimate_imag: Tensor, clean_real: Tensor, clean_imag: Tensor) -> Tensor:
    """``2 mean(((real, imag) - (clean_real, clean_imag))**2)`` over the stacked pair, as the reference writes
    it: the MSE of the real parts plus that of the imaginary parts."""
    estimate = torch.stack([estimate_real.float(), estimate_imag.float()])
    clean = torch.stack([clean_real.float(), clean_imag.float()])
    return 2 * (estimate - clean).square().mean()


def consistency_loss(
    estimate_real: Tensor, estimate_imag: Tensor, reanalysed_real: Tensor, reanalysed_imag: Tensor
) -> Tensor:
    """``complex_loss`` between the generator's compressed spectrum and the compressed STFT of its own
    ISTFT output. An arbitrary (magnitude, phase) pair is not the STFT of any signal; this term pulls the
    estimate towards one that is, so the waveform keeps what the spectral losses asked for."""
    return complex_loss(estimate_real, estimate_imag, reanalysed_real, reanalysed_imag)
