"""What ``codecgan enhance``, ``encode`` and ``decode`` share: their common options, the checkpoint's
generator, and one pass over the inputs with a progress bar, where a file that fails is named and skipped.

Exit statuses: 0 when every file was written; 2 when a file failed (the others are still written) or the
command could not start (a checkpoint missing, cut short or of the other family, no config, a folder without
inputs or one that cannot be listed, an output folder that cannot be written). Each problem is one line that
names the file and the fix. Outputs are written whole or not at all (``codecgan.atomic_file``).
"""

from __future__ import annotations

import argparse
import os
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
from codecgan.saved_file_damage import saved_file_damage

EXIT_FAILED = 2
EXAMPLE = "runs/<name>/checkpoints/last.ckpt"

# handle(input, on_chunk) processes and writes one input, calling on_chunk(done, total) after each window.
FileHandler = Callable[[InputFile, Callable[[int, int], None]], None]


class CommandError(Exception):
    """A problem that stops a command before it reads any input; the message says what to do."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ckpt``, ``--config``, ``--out`` and ``--device``."""
    parser.add_argument("--ckpt", required=True, help=f"checkpoint written by codecgan fit (e.g. {EXAMPLE})")
    parser.add_argument(
        "--config", default=None, help="the run's config.yaml (default: found next to the checkpoint's folder)"
    )
    parser.add_argument("--out", required=True, help="output folder (created; a folder input's layout is mirrored)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def load_generator(
    args: argparse.Namespace, family: str, required: Sequence[str], refused: Sequence[str] = ()
) -> nn.Module:
    """The checkpoint's generator on ``args.device``; raises ``CommandError`` when it is missing, cut short (a full
    disk, a copy killed midway), cannot be loaded, or lacks one of the ``required`` methods or has one of the
    ``refused`` ones (a generator of another family)."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = Path(args.ckpt)
    if not checkpoint.is_file():
        raise CommandError(f"--ckpt {checkpoint}: no such file; pass a checkpoint written by codecgan fit ({EXAMPLE}).")
    damage = saved_file_damage(checkpoint)
    if damage is not None:
        raise CommandError(
            f"--ckpt {checkpoint} is {damage}. Pass a whole checkpoint: another of the run's (its folder holds "
            "step*.ckpt besides last.ckpt) or a fresh copy."
        )
    try:
        generator = load(checkpoint, args.config, map_location=device)
    except Exception as error:  # a bad config, a file that is no checkpoint, weights of another model
        raise CommandError(f"could not load {checkpoint}: {first_line(error)}") from None
    if not all(callable(getattr(generator, name, None)) for name in required):
        raise CommandError(
            f"{args.ckpt} holds a {type(generator).__name__}, not {_article(family)} {family} generator (one with "
            f"{', '.join(required)}); use a checkpoint of the {family} family."
        )
    found = [name for name in refused if callable(getattr(generator, name, None))]
    if found:
        raise CommandError(
            f"{args.ckpt} holds a {type(generator).__name__}, not {_article(family)} {family} generator (it has "
            f"{', '.join(found)}: another family's); use a checkpoint of the {family} family."
        )
    return generator


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def prepare_output_folder(out: str | Path) -> None:
    """Create ``out`` and check that this user may write into it; raises ``CommandError`` naming it otherwise, so
    that a folder without permission is one message, not one failure per input."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(
            f"--out {folder}: cannot be created ({error.strerror or error}); pass a folder you may write to."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"--out {folder}: this user may not write into it; pass a folder you may write to.")


def first_line(error: BaseException) -> str:
    """``Type: message``, the message cut to its first line: torch and pickle errors run to many lines."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message.splitlines()[0] if message else ''}"


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
