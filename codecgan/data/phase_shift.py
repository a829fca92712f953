"""Phase-shift augmentation: one constant phase rotation of every frequency component of an excerpt.

``shift_phase(x, θ)`` is ``Re(e^{iθ} · analytic(x)) = x cos θ - H{x} sin θ`` (``H`` the Hilbert
transform), computed over the excerpt's own (circular) spectrum: every bin between DC and Nyquist keeps
its magnitude and gains ``θ`` of phase; DC and Nyquist, which have no quadrature part, scale by
``cos θ``. DAC's ``ShiftPhase`` (audiotools) adds ``θ`` to the phase of every bin of the excerpt's STFT
and resynthesises it, which is the same rotation frame by frame; the magnitude spectrum, which the
mel and multi-resolution STFT losses compare, is unchanged either way, while the waveform is not.
"""

import math

import torch


def shift_phase(audio: torch.Tensor, radians: float) -> torch.Tensor:
    """``audio`` ``[..., T]`` with the phase of every frequency component rotated by ``radians``."""
    samples = audio.shape[-1]
    spectrum = torch.fft.rfft(audio, dim=-1)
    rotation = torch.full((spectrum.shape[-1],), complex(math.cos(radians), math.sin(radians)))
    rotation[0] = math.cos(radians)
    if samples % 2 == 0:
        rotation[-1] = math.cos(radians)
    return torch.fft.irfft(spectrum * rotation, n=samples, dim=-1).to(audio.dtype)
