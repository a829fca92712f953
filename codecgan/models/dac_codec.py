"""DAC's codec generator: a strided conv encoder, a residual vector quantizer, a mirror decoder.

Defaults are DAC's 44.1 kHz model (hop 512 samples, 9 codebooks of 1024 codes, ~86 frames/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike
from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.config_error import ConfigError
from codecgan.models.causal_convs import codec_conv1d, codec_conv_transpose1d
from codecgan.models.conv_blocks import Snake1d, shared_snake_constants
from codecgan.models.dac_checkpoint_format import (
    codec_generator_kwargs,
    load_dac_generator_weights,
    read_dac_checkpoint,
)
from codecgan.models.ema_quantizer import EMAResidualVectorQuantizer
from codecgan.models.residual_vq import ResidualVectorQuantizer

RESIDUAL_DILATIONS = (1, 3, 9)


class ResidualUnit(nn.Module):
    """Snake, dilated k7 conv, Snake, k1 conv, added to the input; `[B, C, T] -> [B, C, T]`."""

    def __init__(self, channels: int, dilation: int, causal: bool = False) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(channels),
            codec_conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation, causal=causal),
            Snake1d(channels),
            codec_conv1d(channels, channels, 1, causal=causal),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _check_strides(strides: Sequence[int], name: str) -> None:
    # A k=2s, s-strided conv maps T to T/s exactly only for s >= 2 (s = 1 would add a sample).
    if len(strides) == 0 or any(stride < 2 for stride in strides):
        raise ValueError(f"{name} must be a non-empty list of strides >= 2, got {list(strides)}.")


class EncoderBlock(nn.Sequential):
    """Three residual units at `channels`, then a strided conv to `2 * channels`.

    Shapes: `[B, C, T] -> [B, 2C, T / stride]` (T a multiple of the stride).
    """

    def __init__(self, channels: int, stride: int, causal: bool = False) -> None:
        super().__init__(
            *(ResidualUnit(channels, dilation, causal) for dilation in RESIDUAL_DILATIONS),
            Snake1d(channels),
            codec_conv1d(
                channels, 2 * channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2), causal=causal
            ),
        )


class Encoder(nn.Sequential):
    """Waveform to latent frames; channels double at every stride.

    Args:
        dim: channels after the input conv (DAC's `encoder_dim`).
        strides: downsampling factors; the hop is their product.
        latent_dim: output channels D (default `dim * 2**len(strides)`).
        causal: pad every conv on the left only (`codecgan.models.causal_convs`).

    Shapes: `[B, 1, T] -> [B, D, T / hop]` (T a multiple of the hop).
    """

    def __init__(
        self,
        dim: int = 64,
        strides: Sequence[int] = (2, 4, 8, 8),
        latent_dim: int | None = None,
        causal: bool = False,
    ) -> None:
        _check_strides(strides, "encoder_strides")
        layers: list[nn.Module] = [codec_conv1d(1, dim, 7, padding=3, causal=causal)]
        for stride in strides:
            layers.append(EncoderBlock(dim, stride, causal))
            dim *= 2
        latent_dim = dim if latent_dim is None else latent_dim
        layers += [Snake1d(dim), codec_conv1d(dim, latent_dim, 3, padding=1, causal=causal)]
        super().__init__(*layers)


class DecoderBlock(nn.Sequential):
    """Snake, a transposed conv upsampling by `stride`, then three residual units.

    Odd strides get `output_padding=1` so that every block multiplies the length exactly by its
    stride (DAC's decoder loses a sample per odd-stride block and crops at the end instead).

    Shapes: `[B, C_in, N] -> [B, C_out, N * stride]`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, causal: bool = False) -> None:
        super().__init__(
            Snake1d(in_channels),
            codec_conv_transpose1d(
                in_channels,
                out_channels,
                2 * stride,
                stride=stride,
                padding=math.ceil(stride / 2),
                output_padding=stride % 2,
                causal=causal,
            ),
            *(ResidualUnit(out_channels, dilation, causal) for dilation in RESIDUAL_DILATIONS),
        )


class Decoder(nn.Sequential):
    """Latent frames to a float32 waveform in [-1, 1] (also under bf16 autocast); channels halve at every stride.

    Args:
        latent_dim: input channels D.
        dim: channels after the input conv (DAC's `decoder_dim`), divisible by `2**len(strides)`.
        strides: upsampling factors; the hop is their product.
        causal: pad every conv on the left only, trim every transposed conv on the right.

    Shapes: `[B, D, N] -> [B, 1, N * hop]`.
    """

    def __init__(
        self, latent_dim: int, dim: int = 1536, strides: Sequence[int] = (8, 8, 4, 2), causal: bool = False
    ) -> None:
        _check_strides(strides, "decoder_strides")
        if dim % 2 ** len(strides) != 0:
            raise ValueError(
                f"decoder_dim must be divisible by 2**{len(strides)} = {2 ** len(strides)} "
                f"(it halves at each of the {len(strides)} strides), got {dim}."
            )
        layers: list[nn.Module] = [codec_conv1d(latent_dim, dim, 7, padding=3, causal=causal)]
        for stride in strides:
            layers.append(DecoderBlock(dim, dim // 2, stride, causal))
            dim //= 2
        # The waveform layer computes in fp32 under autocast (see Float32Conv1d); parameter names are unchanged.
        layers += [Snake1d(dim), codec_conv1d(dim, 1, 7, padding=3, causal=causal, waveform=True), nn.Tanh()]
        super().__init__(*layers)


@dataclass
class CodecOutput:
    """What `CodecGenerator.forward` returns; n_q codebooks, `frames = ceil(T / hop)`."""

    audio: Tensor  # [B, 1, T] reconstruction, the input's length
    codes: Tensor  # [B, n_q, frames] int64 in [0, codebook_size)
    commitment_loss: Tensor  # scalar, trains the encoder towards its codes
    codebook_loss: Tensor  # scalar, trains the codebooks towards the encodings


class CodecGenerator(nn.Module):
    """DAC: Encoder -> ResidualVectorQuantizer -> Decoder, initialised as DAC initialises it; a DAC checkpoint
    loads with `CodecGenerator.from_dac_checkpoint(path)`.

    Args:
        encoder_dim: channels after the encoder's input conv.
        encoder_strides: encoder downsampling factors.
        latent_dim: quantized latent channels (default `encoder_dim * 2**len(encoder_strides)`).
        decoder_dim: channels after the decoder's input conv.
        decoder_strides: decoder upsampling factors; their product must equal the encoder's.
        n_codebooks, codebook_size, codebook_dim, quantizer_dropout: see `ResidualVectorQuantizer`.
        causal: EnCodec's causal padding in every conv, so that output sample t depends on input samples up to
            the end of t's frame only, and the codec streams (`codecgan.models.streaming_codec`); the state dict
            is a centred generator's. False: DAC's centred convs.
        quantizer: `"dac"`, DAC's factorized cosine codebooks (`ResidualVectorQuantizer`), or `"ema"`, EnCodec's
            Euclidean codebooks on the latent itself, updated by EMA with dead-code restarts
            (`EMAResidualVectorQuantizer`; `codebook_dim` is not used, the codebook loss is zero).
        codebook_decay, dead_code_threshold, kmeans_init: the `"ema"` codebooks' EMA decay, the EMA count under which
            a code is restarted, and whether they start from k-means on the first batch (EnCodec: 0.99, 2, true).

    Attributes:
        hop_length: samples per latent frame.
        codebook_size: codes per codebook.
        n_codebooks: number of codebooks.
        architecture: the arguments that fix the layers and their shapes, by name (`latent_dim` resolved); a DAC
            weights file's settings are checked against them (`codecgan.dac_initialisation`).
        causal: whether the convs are causal.
    """

    def __init__(
        self,
        encoder_dim: int = 64,
        encoder_strides: Sequence[int] = (2, 4, 8, 8),
        latent_dim: int | None = None,
        decoder_dim: int = 1536,
        decoder_strides: Sequence[int] = (8, 8, 4, 2),
        n_codebooks: int = 9,
        codebook_size: int = 1024,
        codebook_dim: int = 8,
        quantizer_dropout: float = 0.0,
        causal: bool = False,
        quantizer: str = "dac",
        codebook_decay: float = 0.99,
        dead_code_threshold: float = 2.0,
        kmeans_init: bool = True,
    ) -> None:
        super().__init__()
        if math.prod(encoder_strides) != math.prod(decoder_strides):
            raise ValueError(
                f"encoder_strides {list(encoder_strides)} (hop {math.prod(encoder_strides)}) and "
                f"decoder_strides {list(decoder_strides)} (hop {math.prod(decoder_strides)}) "
                "must have the same product."
            )
        latent_dim = encoder_dim * 2 ** len(encoder_strides) if latent_dim is None else latent_dim
        self.hop_length = math.prod(encoder_strides)
        self.latent_dim = latent_dim
        self.architecture = {
            "encoder_dim": encoder_dim,
            "encoder_strides": list(encoder_strides),
            "latent_dim": latent_dim,
            "decoder_dim": decoder_dim,
            "decoder_strides": list(decoder_strides),
            "n_codebooks": n_codebooks,
            "codebook_size": codebook_size,
            "codebook_dim": codebook_dim,
        }
        self.codebook_size = codebook_size
        self.n_codebooks = n_codebooks
        self.causal = causal
        self.encoder = Encoder(encoder_dim, encoder_strides, latent_dim, causal)
        if quantizer == "dac":
            self.quantizer = ResidualVectorQuantizer(
                latent_dim, n_codebooks, codebook_size, codebook_dim, quantizer_dropout
            )
        elif quantizer == "ema":
            if not 0.0 <= codebook_decay <= 1.0:
                raise ConfigError(
                    "model.init_args.generator.init_args.codebook_decay must lie in [0, 1] (EnCodec: 0.99), "
                    f"got {codebook_decay}."
                )
            if dead_code_threshold < 0:
                raise ConfigError(
                    "model.init_args.generator.init_args.dead_code_threshold must be 0 (no restarts) or more "
                    f"(EnCodec: 2), got {dead_code_threshold}."
                )
            self.quantizer = EMAResidualVectorQuantizer(
                latent_dim,
                n_codebooks,
                codebook_size,
                quantizer_dropout,
                codebook_decay,
                dead_code_threshold,
                kmeans_init,
            )
        else:
            raise ConfigError(
                f'model.init_args.generator.init_args.quantizer must be "dac" or "ema", got {quantizer!r}.'
            )
        self.decoder = Decoder(latent_dim, decoder_dim, decoder_strides, causal)
        self.snakes = tuple(module for module in self.modules() if isinstance(module, Snake1d))  # not submodules
        # DAC's init_weights zeroes every Conv1d's bias (not the ConvTranspose1d's). Its trunc_normal_(std=0.02) of
        # the weights has no effect: under the old weight norm, `weight` is recomputed from g and v before each
        # forward. So the weights keep PyTorch's default init, and a seeded CodecGenerator equals a seeded DAC
        # (tests/models/test_dac_reference.py).
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.zeros_(module.bias)

    @classmethod
    def from_dac_checkpoint(cls, source: str | PathLike | Mapping[str, Any], **overrides: Any) -> CodecGenerator:
        """A generator holding a DAC checkpoint's weights (a `.pth` saved by DAC, or its loaded dict), built with
        the checkpoint's `DAC(...)` arguments, then `overrides`. See `codecgan.models.dac_checkpoint`.

        A checkpoint without metadata builds with the defaults, which are DAC's 44.1 kHz model. DAC 1.0's save
        records `quantizer_dropout` as its default (off) whatever the model trained with: to fine-tune as DAC
        trained (0.5 in its final configs), pass it.
        """
        checkpoint = read_dac_checkpoint(source)
        generator = cls(**{**codec_generator_kwargs(checkpoint.kwargs), **overrides})
        load_dac_generator_weights(generator, checkpoint.state_dict)
        return generator

    def forward(self, audio: Tensor, n_quantizers: int | None = None) -> CodecOutput:
        """Encode, quantize and decode `audio: [B, 1, T]` with the first `n_quantizers` codebooks.

        The input is zero-padded on the right to a multiple of the hop and the output cropped
        back, so `output.audio` has exactly T samples.
        """
        length = audio.shape[-1]
        padded = F.pad(audio, (0, -length % self.hop_length))
        with shared_snake_constants(self.snakes):
            quantized = self.quantizer(self.encoder(padded), n_quantizers)
            reconstruction = self.decoder(quantized.z_q)[..., :length]
        return CodecOutput(reconstruction, quantized.codes, quantized.commitment_loss, quantized.codebook_loss)

    def encode(self, audio: Tensor, n_codebooks: int | None = None) -> Tensor:
        """The codes `forward` quantizes `audio: [B, 1, T]` to, with the first `n_codebooks` codebooks (default
        all): `[B, n_codebooks, ceil(T / hop)]` int64. In eval mode every item uses all `n_codebooks`."""
        padded = F.pad(audio, (0, -audio.shape[-1] % self.hop_length))
        return self.quantizer(self.encoder(padded), n_codebooks).codes

    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Waveform of codes (any number of leading codebooks); `[B, n_q, frames] -> [B, 1, length or frames * hop]`.

        `decode(encode(audio), T)` equals `forward(audio).audio` in eval mode (to float rounding: `forward`
        adds the straight-through residual, this sums the codebook vectors)."""
        audio = self.decoder(self.quantizer.decode_codes(codes))
        return audio if length is None else audio[..., :length]
