"""A causal `CodecGenerator` run chunk by chunk: audio in, codes out, and codes in, audio out, as they arrive.

Each causal layer carries what it has read but not yet used (`codecgan.models.causal_convs`):

- a conv keeps the last `(kernel_size - 1) * dilation - (stride - 1)` samples of its input, its left padding,
  which start as the zeros the whole-file conv pads with;
- a transposed conv keeps its last `ceil((kernel_size - stride) / stride)` input frames (one for DAC's
  k=2s), starting as zeros, and recomputes the samples they spill into the next chunk's output rather than
  carrying those sums: each output sample then adds the same terms in the same order as the whole-file layer;
- Snake, Tanh, the residual sums and the quantizer act on each sample or frame alone and need nothing.

The encoder buffers the samples of an unfinished frame (any chunk size works), and `flush` pads the last frame
with zeros as `CodecGenerator.encode` does. So the codes equal `generator.encode(audio)` exactly and the audio
`generator.decode(codes)` to float rounding (tests/inference/test_streaming.py), whatever the chunk sizes.

Latency: a causal codec's output sample t depends on input samples up to the last of t's frame, so a sample
cannot be output before its frame is complete: up to `hop_length - 1` samples of look-ahead, and `hop_length`
samples from a frame's first sample arriving to its last (`algorithmic_latency_seconds`). No layer looks further
ahead (tests/models/test_causal_codec.py). Chunks longer than a frame add their own buffering delay on top.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from codecgan.models.causal_convs import CausalConvTranspose1d, LeftPaddedConv
from codecgan.models.conv_blocks import Snake1d
from codecgan.models.dac_codec import CodecGenerator, ResidualUnit

CAUSAL_KEY = "model.init_args.generator.init_args.causal"


class NotCausalError(ValueError):
    """A generator with centred convs asked to stream: its output depends on samples not yet received."""


def require_causal(generator: nn.Module) -> None:
    """Raise `NotCausalError`, naming the config key, unless `generator` was built with `causal=True`."""
    if not getattr(generator, "causal", False):
        raise NotCausalError(
            f"streaming needs a causal codec, and this {type(generator).__name__} was built with "
            f"{CAUSAL_KEY}: false (its centred convs read samples that have not arrived yet); train one with "
            f"{CAUSAL_KEY}: true, or leave out --streaming."
        )


def algorithmic_latency_seconds(generator: CodecGenerator, sample_rate: int) -> float:
    """Seconds from a sample entering a causal codec to its reconstruction leaving it, computation aside:
    `hop_length / sample_rate` (a frame waits for its last sample; no layer looks further ahead)."""
    require_causal(generator)
    return generator.hop_length / sample_rate


class StreamingEncoder:
    """Codes of audio pushed in chunks of any length; in eval mode, `generator.encode`'s codes exactly.

    Args:
        generator: a causal `CodecGenerator` in eval mode.
        n_codebooks: codebooks to keep, from the first (default all).
    """

    def __init__(self, generator: CodecGenerator, n_codebooks: int | None = None) -> None:
        require_causal(generator)
        self.generator = generator
        self.n_codebooks = generator.n_codebooks if n_codebooks is None else n_codebooks
        self._states: dict[nn.Module, Tensor] = {}
        self._unfinished: Tensor | None = None  # [B, 1, < hop] samples of a frame not yet complete

    @torch.no_grad()
    def push(self, audio: Tensor) -> Tensor:
        """`audio: [B, 1, T]`, the next T samples -> `[B, n_codebooks, frames]` int64: the codes of every frame
        completed by them (none when the chunk does not finish a frame)."""
        hop = self.generator.hop_length
        if self._unfinished is not None:
            audio = torch.cat([self._unfinished, audio], dim=-1)
        frames = audio.shape[-1] // hop
        self._unfinished = audio[..., frames * hop :]
        if frames == 0:
            return self._no_codes(audio)
        with parametrize.cached():
            latents = stream_through(self.generator.encoder, audio[..., : frames * hop], self._states)
            return self.generator.quantizer(latents, self.n_codebooks).codes

    def flush(self) -> Tensor:
        """The end of the stream: the codes of its last, unfinished frame, zero-padded as `CodecGenerator.encode`
        pads, `[B, n_codebooks, 1]`, or none (`[B, n_codebooks, 0]`) when the samples filled whole frames."""
        unfinished = self._unfinished
        if unfinished is None:
            return self._no_codes(torch.zeros(0, 1, 0))
        if unfinished.shape[-1] == 0:
            return self._no_codes(unfinished)
        padding = unfinished.new_zeros(*unfinished.shape[:-1], self.generator.hop_length - unfinished.shape[-1])
        return self.push(padding)

    def _no_codes(self, audio: Tensor) -> Tensor:
        return torch.zeros(audio.shape[0], self.n_codebooks, 0, dtype=torch.long, device=audio.device)


class StreamingDecoder:
    """Audio of codes pushed in chunks of frames; in eval mode, `generator.decode`'s audio to float rounding.

    Args:
        generator: a causal `CodecGenerator` in eval mode.
    """

    def __init__(self, generator: CodecGenerator) -> None:
        require_causal(generator)
        self.generator = generator
        self._states: dict[nn.Module, Tensor] = {}

    @torch.no_grad()
    def push(self, codes: Tensor) -> Tensor:
        """`codes: [B, n_q, N]`, the next N frames (any leading codebooks) -> their audio, `[B, 1, N * hop]`."""
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 1, 0, device=codes.device)
        with parametrize.cached():
            latents = self.generator.quantizer.decode_codes(codes)
            return stream_through(self.generator.decoder, latents, self._states)


def stream_through(module: nn.Module, x: Tensor, states: dict[nn.Module, Tensor]) -> Tensor:
    """`module(x)` for the next chunk `x: [B, C, T]` of a stream, each causal layer's carried input in `states`
    (updated). T must be a whole number of frames at `module`'s input rate (every stride divides it)."""
    if isinstance(module, ResidualUnit):
        return x + stream_through(module.block, x, states)
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = stream_through(layer, x, states)
        return x
    if isinstance(module, LeftPaddedConv):
        return _stream_conv(module, x, states)
    if isinstance(module, CausalConvTranspose1d):
        return _stream_conv_transpose(module, x, states)
    if isinstance(module, (Snake1d, nn.Tanh)):
        return module(x)
    raise TypeError(f"cannot stream a {type(module).__name__}: only causal convs and pointwise layers stream.")


def _stream_conv(conv: LeftPaddedConv, x: Tensor, states: dict[nn.Module, Tensor]) -> Tensor:
    carried = states.get(conv)
    if carried is None:
        carried = x.new_zeros(*x.shape[:-1], conv.left_padding)
    buffer = torch.cat([carried, x], dim=-1)
    stride, span = conv.stride[0], (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
    frames = (buffer.shape[-1] - span) // stride + 1
    states[conv] = buffer[..., frames * stride :]
    return conv.convolve_unpadded(buffer[..., : (frames - 1) * stride + span])


def _stream_conv_transpose(conv: CausalConvTranspose1d, x: Tensor, states: dict[nn.Module, Tensor]) -> Tensor:
    stride = conv.stride[0]
    context_frames = -(-conv.overlap // stride)
    carried = states.get(conv)
    if carried is None:
        carried = x.new_zeros(*x.shape[:-1], context_frames)
    frames = torch.cat([carried, x], dim=-1)
    states[conv] = frames[..., frames.shape[-1] - context_frames :]
    skip = context_frames * stride
    return conv(frames)[..., skip : skip + x.shape[-1] * stride]
