"""Vocos's generator for mel input: a ConvNeXt backbone at the frame rate and an ISTFT head (`vocos_istft.py`).

Layer for layer Vocos 0.1.0's `VocosBackbone` (without adaptive layer norm, which only its EnCodec-token model uses)
and `ISTFTHead`, under Vocos's module names, so a released `pytorch_model.bin` loads after
`codecgan.models.vocos_checkpoint.from_vocos_state_dict`. The released `vocos-mel-24khz` configuration
(`input_channels=100, dim=512, intermediate_dim=1536, num_layers=8`, head `n_fft=1024, hop_length=256,
padding="center"`) has 13,531,650 parameters: backbone 13,005,312, head 526,338.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from codecgan.models.vocos_istft import ISTFTHead
from codecgan.models.vocos_mel import check_padding

LAYER_NORM_EPS = 1e-6


class ConvNeXtBlock(nn.Module):
    """A 1-D ConvNeXt block: depthwise conv (kernel 7), LayerNorm, Linear-GELU-Linear, per-channel scale, residual.

    Args:
        dim: channels.
        intermediate_dim: hidden width of the pointwise MLP.
        layer_scale_init_value: initial per-channel scale of the residual branch (no scale if <= 0).

    Shapes: `[B, dim, frames] -> [B, dim, frames]`.
    """

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = (
            nn.Parameter(torch.full((dim,), float(layer_scale_init_value))) if layer_scale_init_value > 0 else None
        )

    def forward(self, x: Tensor) -> Tensor:
        branch = self.norm(self.dwconv(x).transpose(1, 2))
        branch = self.pwconv2(self.act(self.pwconv1(branch)))
        if self.gamma is not None:
            branch = self.gamma * branch
        return x + branch.transpose(1, 2)


class VocosBackbone(nn.Module):
    """Embedding conv (kernel 7), LayerNorm, `num_layers` ConvNeXt blocks, final LayerNorm; no resampling.

    Args:
        input_channels: mel bands.
        dim: channels.
        intermediate_dim: ConvNeXt MLP width.
        num_layers: ConvNeXt blocks.
        layer_scale_init_value: initial residual scale; `1 / num_layers` if None (Vocos's default).

    Convs and linears start from a truncated normal (std 0.02) and zero biases, as Vocos's.

    Shapes: `mel: [B, input_channels, frames]` -> `[B, frames, dim]`.
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: float | None = None,
    ) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        scale = layer_scale_init_value or 1 / num_layers
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, intermediate_dim, scale) for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.constant_(module.bias, 0)

    def forward(self, mel: Tensor) -> Tensor:
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


class VocosGenerator(nn.Module):
    """Log-mel spectrogram to waveform: `VocosBackbone` then `ISTFTHead`.

    Args:
        n_mels: mel bands of the input (the front-end's, `codecgan.models.vocos_mel.VocosMelSpectrogram`).
        dim, intermediate_dim, num_layers, layer_scale_init_value: the backbone's.
        n_fft, hop_length, padding: the head's; `hop_length` must be the mel front-end's.

    Defaults are the released `vocos-mel-24khz` model's.

    Shapes: `mel: [B, n_mels, frames]` -> `[B, 1, (frames - 1) * hop]` ("center") or `[B, 1, frames * hop]` ("same").
    """

    def __init__(
        self,
        n_mels: int = 100,
        dim: int = 512,
        intermediate_dim: int = 1536,
        num_layers: int = 8,
        n_fft: int = 1024,
        hop_length: int = 256,
        padding: str = "center",
        layer_scale_init_value: float | None = None,
    ) -> None:
        super().__init__()
        check_padding(padding, "model.init_args.generator.init_args.padding")
        self.hop_length = hop_length
        self.backbone = VocosBackbone(n_mels, dim, intermediate_dim, num_layers, layer_scale_init_value)
        self.head = ISTFTHead(dim, n_fft, hop_length, padding)

    def forward(self, mel: Tensor) -> Tensor:
        return self.head(self.backbone(mel))
