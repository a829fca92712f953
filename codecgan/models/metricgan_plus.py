"""MetricGAN+'s generator and metric discriminator, as SpeechBrain's VoiceBank recipe builds them
(``speechbrain/lobes/models/MetricGAN.py``, speechbrain 1.1.2), and the map from SpeechBrain's state-dict keys.

Proven equal to SpeechBrain's own modules by ``tests/models/test_metricgan_plus_reference.py``.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

# The hook form, not torch.nn.utils.parametrizations.spectral_norm: its power iteration updates v then u,
# the parametrization u then v, so only the hook reproduces SpeechBrain's training-mode outputs.
from torch.nn.utils import spectral_norm

from codecgan.models.learnable_sigmoid import LearnableSigmoid


def _xavier_zero_bias(layer: nn.Module) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _spectral_norm_xavier(layer: nn.Module) -> nn.Module:
    """Spectral norm first (it draws u and v), xavier after: SpeechBrain's order, so seeded inits agree."""
    layer = spectral_norm(layer)
    nn.init.xavier_uniform_(layer.weight_orig)
    nn.init.zeros_(layer.bias)
    return layer


class MetricGANPlusGenerator(nn.Module):
    """``forward(noisy_features) -> mask``: a BLSTM mask estimator on log-magnitude spectra.

    ``noisy_features``: ``[B, frames, F]`` ``log1p(|STFT|)`` (``metricgan_plus_features``); every item is
    full length (the recipe trains with batches of one utterance). ``mask``: ``[B, frames, F]`` in
    ``(0, beta)``, unclamped; the recipe multiplies the *log* features by ``mask.clamp(min=0.05)``.

    Two bidirectional LSTM layers of ``hidden_size`` units, ``Linear(2·hidden → 300)``, ``LeakyReLU(0.3)``,
    ``Linear(300 → F)`` and a learnable sigmoid ``beta · sigmoid(slope_f · x)`` with ``beta`` 1.2, so a bin
    may be amplified up to 1.2× and the per-bin slope sets how sharply each frequency saturates.
    SpeechBrain's initialisation: xavier-uniform input-to-hidden and linear weights, orthogonal
    hidden-to-hidden weights, zero biases, slopes 1.
    """

    def __init__(self, frequency_bins: int = 257, hidden_size: int = 200, num_layers: int = 2, beta: float = 1.2):
        super().__init__()
        self.blstm = nn.LSTM(frequency_bins, hidden_size, num_layers, batch_first=True, bidirectional=True)
        # SpeechBrain's LSTM wrapper draws orthogonal hidden-to-hidden weights once on construction and the
        # generator draws them again; both draws are kept so that a seeded init gives SpeechBrain's numbers.
        for name, parameter in self.blstm.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(parameter)
        for name, parameter in self.blstm.named_parameters():
            if "bias" in name:
                nn.init.zeros_(parameter)
            elif "weight_ih" in name:
                nn.init.xavier_uniform_(parameter)
            elif "weight_hh" in name:
                nn.init.orthogonal_(parameter)
        self.hidden = _xavier_zero_bias(nn.Linear(2 * hidden_size, 300))
        self.activation = nn.LeakyReLU(0.3)
        self.output = _xavier_zero_bias(nn.Linear(300, frequency_bins))
        self.mask_activation = LearnableSigmoid(frequency_bins, beta=beta)

    def forward(self, noisy_features: Tensor) -> Tensor:
        hidden, _ = self.blstm(noisy_features)
        logits = self.output(self.activation(self.hidden(hidden)))
        # LearnableSigmoid keeps its per-feature slope on dim 1; the mask's frequency axis is last.
        return self.mask_activation(logits.transpose(1, 2)).transpose(1, 2)


class MetricGANPlusDiscriminator(nn.Module):
    """``forward(degraded_features, reference_features) -> [B, 1]``: an unbounded estimate of the recipe's
    normalized PESQ ``(PESQ + 0.5) / 5`` of ``degraded`` against ``reference``.

    Features: ``[B, frames, F]`` log-magnitude spectra (at least 17 frames and 17 bins: four unpadded 5×5
    convolutions). Batch norm (momentum 0.01) on the stacked pair, four spectral-norm 5×5 convolutions of
    ``channels`` without stride or padding, each followed by ``LeakyReLU(0.3)``, a mean over time and
    frequency, and spectral-norm ``Linear(channels → 50 → 10 → 1)`` with no output activation. Unlike
    CMGAN's ``MetricDiscriminator`` (strided convs, instance norm, PReLU, max pool, a sigmoid head), its
    output is not bounded, so its squared error to a target is the recipe's loss as it is.
    """

    def __init__(self, channels: int = 15, kernel_size: int = 5):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(2, momentum=0.01)
        self.convs = nn.ModuleList(
            _spectral_norm_xavier(nn.Conv2d(2 if i == 0 else channels, channels, kernel_size)) for i in range(4)
        )
        self.linears = nn.ModuleList(
            _spectral_norm_xavier(nn.Linear(n_in, n_out)) for n_in, n_out in ((channels, 50), (50, 10), (10, 1))
        )
        self.activation = nn.LeakyReLU(0.3)

    def forward(self, degraded_features: Tensor, reference_features: Tensor) -> Tensor:
        x = self.input_norm(torch.stack([degraded_features, reference_features], dim=1))
        for conv in self.convs:
            x = self.activation(conv(x))
        x = x.mean(dim=(2, 3))
        for linear in self.linears[:-1]:
            x = self.activation(linear(x))
        return self.linears[-1](x)


_SPEECHBRAIN_KEYS = [
    (r"^blstm\.rnn\.", "blstm."),
    (r"^linear1\.", "hidden."),
    (r"^linear2\.", "output."),
    (r"^Learnable_sigmoid\.", "mask_activation."),
    (r"^BN\.", "input_norm."),
    (r"^conv(\d)\.", lambda m: f"convs.{int(m.group(1)) - 1}."),
    (r"^Linear(\d)\.", lambda m: f"linears.{int(m.group(1)) - 1}."),
]


def from_speechbrain_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """SpeechBrain's ``EnhancementGenerator`` / ``MetricDiscriminator`` state dict under this module's
    keys, for ``load_state_dict(strict=True)``; spectral norm's ``weight_orig``, ``weight_u``, ``weight_v``
    keep their names."""
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _SPEECHBRAIN_KEYS:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed
