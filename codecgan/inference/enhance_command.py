"""``codecgan enhance --ckpt CKPT INPUT... --out DIR``: run a trained speech enhancer over files and folders.

Each file is read with every channel, resampled to the model's rate (16 kHz for CMGAN), enhanced channel by
channel in windows of ``--chunk-seconds`` cross-faded over ``--overlap-seconds`` (``codecgan.inference.
enhancement``), and written to ``DIR/<name>.wav`` as 32-bit float: at the model's rate by default, the rate
the model works at, so nothing is resampled twice; at the input's rate and exact length with
``--keep-rate``. Either way an output lasts as long as its input. It does not import Lightning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from codecgan.data.input_files import InputFile, list_inputs, read_at_rate
from codecgan.inference.audio_writing import to_file_rate, write_wav
from codecgan.inference.codec_command import CODEC_METHODS
from codecgan.inference.enhancement import EnhanceSettings, enhance
from codecgan.inference.file_runs import (
    CommandError,
    add_model_arguments,
    load_generator,
    prepare_output_folder,
    report_start_failure,
    run_over_files,
)
from codecgan.inference.vocode_command import VOCODER_METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecgan enhance",
        description="Enhance audio files with a trained enhancer; folders are searched for .wav/.flac files.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files and folders")
    add_model_arguments(parser)
    parser.add_argument(
        "--keep-rate", action="store_true", help="write each output at its input's rate (default: the model's rate)"
    )
    defaults = EnhanceSettings()
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=defaults.chunk_seconds,
        help=f"window length; memory grows with its square (default {defaults.chunk_seconds:g})",
    )
    parser.add_argument(
        "--overlap-seconds",
        type=float,
        default=defaults.overlap_seconds,
        help=f"cross-fade between windows, under half a window (default {defaults.overlap_seconds:g})",
    )
    return parser


def enhance_main(argv: list[str]) -> int:
    """Run the command; returns the exit status (0, or 2 when a file failed or the command could not start)."""
    args = build_parser().parse_args(argv)
    try:
        settings = EnhanceSettings(args.chunk_seconds, args.overlap_seconds)
        # Every enhancer maps noisy audio to an output with its audio (CMGAN, MP-SENet, MetricGAN+); the other
        # families are known by their methods.
        generator = load_generator(args, "enhancement", [], refused=(*CODEC_METHODS, *VOCODER_METHODS))
        sample_rate = generator.sample_rate
        settings.samples(sample_rate)  # fails now, not on the first file, when the windows do not fit
        inputs = list_inputs(args.inputs)
        prepare_output_folder(args.out)
    except (CommandError, ValueError) as error:
        return report_start_failure("enhance", error)
    rate = "each input's rate" if args.keep_rate else f"{sample_rate} Hz"
    print(
        f"codecgan enhance: {type(generator).__name__} at {sample_rate} Hz, {len(inputs)} file(s), windows of "
        f"{settings.chunk_seconds:g} s cross-faded over {settings.overlap_seconds:g} s; writing {rate} to {args.out}.",
        file=sys.stderr,
    )

    def handle(item: InputFile, on_chunk: Callable[[int, int], None]) -> None:
        loaded = read_at_rate(item.path, sample_rate)
        enhanced = enhance(generator, loaded.audio.unsqueeze(1), sample_rate, settings, on_chunk)[:, 0].cpu()
        if args.keep_rate:
            enhanced = to_file_rate(enhanced, sample_rate, loaded.file_sample_rate, loaded.file_frames)
        write_wav(item.output(args.out, ".wav"), enhanced, loaded.file_sample_rate if args.keep_rate else sample_rate)

    return run_over_files("enhance", inputs, args.out, handle)


if __name__ == "__main__":
    raise SystemExit(enhance_main(sys.argv[1:]))
