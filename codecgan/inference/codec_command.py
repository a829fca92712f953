"""``codecgan encode`` and ``codecgan decode``: a trained codec's codes as files, and audio from them.

    codecgan encode --ckpt CKPT INPUT... --out DIR [--n-codebooks N]    # DIR/<name>.pt per input
    codecgan decode --ckpt CKPT CODES... --out DIR [--keep-rate]        # DIR/<name>.wav per codes file
    codecgan encode/decode ... --streaming [--streaming-chunk-ms MS]      # a causal codec, chunk by chunk

``encode`` reads each file with every channel, resamples it to the model's rate and writes its codes
(``codecgan.inference.codes_file``); ``--n-codebooks`` keeps the first N codebooks, a lower bitrate, which
it prints. ``decode`` writes 32-bit float WAVs at the model's rate, or with ``--keep-rate`` at the encoded
file's rate and exact length. Both run in windows (``codecgan.inference.codec_chunks``), so memory does not
grow with a file's length, and equal whole-file processing; with ``--streaming`` a causal codec (one trained
with ``causal: true``) runs in chunks of ``--streaming-chunk-ms`` with carried state instead, as a live stream
would (``codecgan.inference.streaming``), to the same codes. Neither imports Lightning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from codecgan.data.input_files import InputFile, list_inputs, read_at_rate
from codecgan.inference.audio_writing import to_file_rate, write_wav
from codecgan.inference.codec_chunks import CodecChunking, decode_in_chunks, encode_in_chunks
from codecgan.inference.codes_file import CODES_SUFFIX, ENCODE_AGAIN, CodesFile, CodesFileError, bitrate_kbps
from codecgan.inference.file_runs import (
    CommandError,
    add_model_arguments,
    load_generator,
    prepare_output_folder,
    report_start_failure,
    run_over_files,
)
from codecgan.inference.streaming import StreamingChunks, decode_streaming, encode_streaming
from codecgan.models.streaming_codec import NotCausalError, require_causal

CODEC_METHODS = ("encode", "decode")


def build_parser(command: str) -> argparse.ArgumentParser:
    inputs = {"encode": "audio files and folders (.wav/.flac)", "decode": f"codes files and folders ({CODES_SUFFIX})"}
    description = {
        "encode": "Encode audio files to codes with a trained codec; folders are searched for .wav/.flac files.",
        "decode": f"Decode codes files to WAV with the codec that wrote them; folders are searched for {CODES_SUFFIX} "
        "files.",
    }[command]
    parser = argparse.ArgumentParser(prog=f"codecgan {command}", description=description)
    parser.add_argument("inputs", nargs="+", help=inputs[command])
    add_model_arguments(parser)
    if command == "encode":
        parser.add_argument(
            "--n-codebooks",
            type=int,
            default=None,
            help="codebooks to keep, from the first (default: all): sets the bitrate",
        )
    else:
        parser.add_argument(
            "--keep-rate", action="store_true", help="write at the encoded file's rate (default: the model's rate)"
        )
    defaults = CodecChunking()
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=defaults.chunk_seconds,
        help=f"audio each window produces; it reads {defaults.context_seconds:g} s more on each side "
        f"(default {defaults.chunk_seconds:g})",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="run a causal codec chunk by chunk with carried state, as a live stream (same codes as without)",
    )
    streaming = StreamingChunks()
    parser.add_argument(
        "--streaming-chunk-ms",
        type=float,
        default=streaming.chunk_ms,
        help=f"with --streaming: audio per chunk in ms, or the whole frames nearest it (default {streaming.chunk_ms:g})",
    )
    return parser


class CodecRun(NamedTuple):
    """A started command: its arguments, generator, inputs, and how it splits a file."""

    args: argparse.Namespace
    generator: nn.Module
    inputs: list[InputFile]
    chunking: CodecChunking
    streaming: StreamingChunks | None  # None: windows of ``chunking``


def _start(command: str, argv: list[str]) -> CodecRun:
    args = build_parser(command).parse_args(argv)
    if args.chunk_seconds <= 0:
        raise CommandError(f"--chunk-seconds must be positive, got {args.chunk_seconds}.")
    if args.streaming_chunk_ms <= 0:
        raise CommandError(f"--streaming-chunk-ms must be positive, got {args.streaming_chunk_ms}.")
    generator = load_generator(args, "codec", CODEC_METHODS)
    if args.streaming:
        try:
            require_causal(generator)
        except NotCausalError as error:
            raise CommandError(f"--streaming with {args.ckpt}: {error}") from None
    inputs = list_inputs(args.inputs, (CODES_SUFFIX,)) if command == "decode" else list_inputs(args.inputs)
    prepare_output_folder(args.out)
    streaming = StreamingChunks(args.streaming_chunk_ms) if args.streaming else None
    return CodecRun(args, generator, inputs, CodecChunking(chunk_seconds=args.chunk_seconds), streaming)


def encode_main(argv: list[str]) -> int:
    """Run ``codecgan encode``; returns the exit status (0, or 2 when a file failed or it could not start)."""
    try:
        args, generator, inputs, chunking, streaming = _start("encode", argv)
        n_codebooks = generator.n_codebooks if args.n_codebooks is None else args.n_codebooks
        if not 1 <= n_codebooks <= generator.n_codebooks:
            raise CommandError(f"--n-codebooks must lie in [1, {generator.n_codebooks}], got {n_codebooks}.")
    except (CommandError, ValueError) as error:
        return report_start_failure("encode", error)
    sample_rate, hop, size = generator.sample_rate, generator.hop_length, generator.codebook_size
    kbps = bitrate_kbps(n_codebooks, size, sample_rate, hop)
    print(
        f"codecgan encode: {n_codebooks} of {generator.n_codebooks} codebooks x {size} codes at {sample_rate / hop:g} "
        f"frames/s = {kbps:.3f} kbps per channel; {len(inputs)} file(s) -> {args.out}"
    )

    def handle(item: InputFile, on_chunk: Callable[[int, int], None]) -> None:
        loaded = read_at_rate(item.path, sample_rate)
        audio = loaded.audio.unsqueeze(1).to(_device(generator))
        if streaming is None:
            codes = encode_in_chunks(generator, audio, sample_rate, n_codebooks, chunking, on_chunk)
        else:
            codes = encode_streaming(generator, audio, sample_rate, n_codebooks, streaming, on_chunk)
        CodesFile(
            codes, size, hop, sample_rate, loaded.audio.shape[-1], loaded.file_sample_rate, loaded.file_frames
        ).save(item.output(args.out, CODES_SUFFIX))

    return run_over_files("encode", inputs, args.out, handle)


def decode_main(argv: list[str]) -> int:
    """Run ``codecgan decode``; returns the exit status (0, or 2 when a file failed or it could not start)."""
    try:
        args, generator, inputs, chunking, streaming = _start("decode", argv)
    except (CommandError, ValueError) as error:
        return report_start_failure("decode", error)
    sample_rate = generator.sample_rate
    print(f"codecgan decode: {len(inputs)} codes file(s) -> {args.out}", file=sys.stderr)

    def handle(item: InputFile, on_chunk: Callable[[int, int], None]) -> None:
        codes_file = CodesFile.load(item.path)
        check_fits(codes_file, generator, item.path)
        codes, length = codes_file.codes.to(_device(generator)), codes_file.length
        if streaming is None:
            audio = decode_in_chunks(generator, codes, length, sample_rate, chunking, on_chunk)
        else:
            audio = decode_streaming(generator, codes, length, sample_rate, streaming, on_chunk)
        audio = audio[:, 0].cpu()
        rate = sample_rate
        if args.keep_rate:
            audio = to_file_rate(audio, sample_rate, codes_file.input_sample_rate, codes_file.input_length)
            rate = codes_file.input_sample_rate
        write_wav(item.output(args.out, ".wav"), audio, rate)

    return run_over_files("decode", inputs, args.out, handle)


def check_fits(codes_file: CodesFile, generator: nn.Module, path: str | Path) -> None:
    """Raise ``CodesFileError`` when the codes were written by a codec with other settings than ``generator``, or
    hold codes or a length they cannot."""
    written = (codes_file.sample_rate, codes_file.hop_length, codes_file.codebook_size)
    here = (generator.sample_rate, generator.hop_length, generator.codebook_size)
    if written != here or codes_file.n_codebooks > generator.n_codebooks:
        raise CodesFileError(
            path,
            f"written by a codec at {written[0]} Hz, hop {written[1]}, {codes_file.n_codebooks} codebooks of "
            f"{written[2]} codes; this checkpoint's is at {here[0]} Hz, hop {here[1]}, {generator.n_codebooks} "
            f"codebooks of {here[2]} codes; decode it with the checkpoint of the codec that wrote it.",
        )
    codes, frames = codes_file.codes, codes_file.codes.shape[-1]
    if codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < codes_file.codebook_size:
        problem = f"codes outside [0, {codes_file.codebook_size}): the file is damaged; {ENCODE_AGAIN}."
        raise CodesFileError(path, problem)
    if not 0 < codes_file.length <= frames * codes_file.hop_length:
        problem = (
            f"length {codes_file.length} does not fit {frames} frames of {codes_file.hop_length} samples: the file is "
            f"damaged; {ENCODE_AGAIN}."
        )
        raise CodesFileError(path, problem)


def _device(generator: nn.Module) -> torch.device:
    return next(generator.parameters()).device
