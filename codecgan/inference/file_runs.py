"""What ``codecgan enhance``, ``encode`` and ``decode`` share: their common options, the checkpoint's
generator, and one pass over the inputs with a progress bar, where a file that fails is named and skipped.

Exit statuses: 0 when every file was written; 2 when a file failed (the others are still written) or the
command could not start (no checkpoint, no config, a folder without inputs, a generator of the other family).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from codecgan.data.audio_reading import AudioReadError
from codecgan.data.input_files import InputFile
from codecgan.inference.checkpoint_loading import load
from codecgan.inference.codes_file import CodesFileError

EXIT_FAILED = 2

# handle(input, on_chunk) processes and writes one input, calling on_chunk(done, total) after each window.
FileHandler = Callable[[InputFile, Callable[[int, int], None]], None]


class CommandError(Exception):
    """A problem that stops a command before it reads any input; the message says what to do."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ckpt``, ``--config``, ``--out`` and ``--device``."""
    parser.add_argument(
        "--ckpt", required=True, help="checkpoint written by codecgan fit (e.g. runs/x/checkpoints/last.ckpt)"
    )
    parser.add_argument(
        "--config", default=None, help="the run's config.yaml (default: found next to the checkpoint's folder)"
    )
    parser.add_argument("--out", required=True, help="output folder (created; a folder input's layout is mirrored)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def load_generator(args: argparse.Namespace, family: str, required: Sequence[str]) -> nn.Module:
    """The checkpoint's generator on ``args.device``; raises ``CommandError`` when it cannot be loaded or lacks
    one of the ``required`` methods (a generator of the other ``family``)."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        generator = load(args.ckpt, args.config, map_location=device)
    except Exception as error:  # a missing file, a bad config, a file that is no checkpoint: all end the command
        raise CommandError(f"could not load {args.ckpt}: {type(error).__name__}: {error}") from None
    if not all(callable(getattr(generator, name, None)) for name in required):
        raise CommandError(
            f"{args.ckpt} holds a {type(generator).__name__}, not a {family} generator (one with "
            f"{', '.join(required)}); use a checkpoint of the {family} family."
        )
    return generator


def run_over_files(command: str, inputs: Sequence[InputFile], out: str | Path, handle: FileHandler) -> int:
    """Call ``handle`` on every input in order, with a progress bar (on a terminal) that advances per window.

    A file whose reading or processing raises ``OSError`` (unreadable audio, a failed write) or
    ``ValueError`` (a codes file that does not fit, audio too short for the model) is named on stderr and
    skipped; the rest go on. Returns 0, or ``EXIT_FAILED`` when any file failed, after a summary that lists
    them."""
    failures: list[tuple[Path, str]] = []
    # disable=None: a progress bar on a terminal only, nothing in logs.
    with tqdm(total=len(inputs), desc=f"codecgan {command}", unit="file", disable=None, file=sys.stderr) as bar:
        for index, item in enumerate(inputs):

            def on_chunk(done: int, total: int, index: int = index) -> None:
                bar.n = index + done / total
                bar.refresh()

            try:
                handle(item, on_chunk)
            except (OSError, ValueError) as error:
                problem = error.problem if isinstance(error, (AudioReadError, CodesFileError)) else str(error)
                failures.append((item.path, problem))
                tqdm.write(f"codecgan {command}: {item.path}: {problem}; skipped.", file=sys.stderr)
            bar.n = index + 1
            bar.refresh()
    written = len(inputs) - len(failures)
    print(f"codecgan {command}: wrote {written} of {len(inputs)} file(s) to {out}.")
    if not failures:
        return 0
    lines = "\n".join(f"  {path}: {problem}" for path, problem in failures)
    print(f"codecgan {command}: {len(failures)} file(s) failed:\n{lines}", file=sys.stderr)
    return EXIT_FAILED


def report_start_failure(command: str, error: Exception) -> int:
    """Print why ``command`` could not start; returns ``EXIT_FAILED``."""
    print(f"codecgan {command}: error: {error}", file=sys.stderr)
    return EXIT_FAILED
