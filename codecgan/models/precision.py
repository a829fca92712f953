"""The precision of the steps that never compute in half precision."""

from __future__ import annotations

import torch
from torch import Tensor


def at_least_float32(tensor: Tensor) -> Tensor:
    """`tensor` as float32, or as it is if it is float64.

    The waveform output layer, the STFT discriminators' spectrograms, the vector quantizer, the mel loss and the
    adversarial losses compute in fp32 even under bf16 autocast or in a half-precision model. A float64 model stays float64
    through them: `.float()` would round each of those steps to fp32, which the float64 comparisons with DAC
    (tests/models/test_dac_reference.py) would see. Dispatches no op where `.float()` would dispatch none.
    """
    return tensor if tensor.dtype == torch.float64 else tensor.float()
