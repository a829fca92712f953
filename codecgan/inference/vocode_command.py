"""``codecgan vocode --ckpt CKPT INPUT... --out DIR``: run a trained vocoder over audio files and mel files.

- An audio file (``.wav``/``.flac``) is resynthesised: read with every channel, resampled to the model's rate,
  turned into the run's log-mel by its front-end and back into audio by the generator, channel by channel, and
  written as ``DIR/<name>.wav`` at the model's rate, as long as the input.
- A mel file (``.npy``, or ``.pt`` holding one tensor) is rendered: ``[n_mels, frames]`` in the front-end's
  log-mel (what ``codecgan.load(ckpt).mel(audio)`` gives; natural log of the magnitude mel), written as
  ``DIR/<name>.wav`` at the model's rate, as long as the generator makes it (the tiny and 24 kHz Vocos configs,
  with centred frames: ``(frames - 1) × hop_length`` samples).

Folders are searched for both kinds. Each file is vocoded whole. Outputs are 32-bit float WAV. A file that cannot
be read or does not fit (a mel with other bands) is named and skipped, and the command exits with status 2. It
does not import Lightning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from codecgan.data.folder_scan import AUDIO_SUFFIXES
from codecgan.data.input_files import InputFile, list_inputs, read_at_rate
from codecgan.inference.audio_writing import write_wav
from codecgan.inference.file_runs import (
    CommandError,
    add_model_arguments,
    load_generator,
    prepare_output_folder,
    report_start_failure,
    run_over_files,
)
from codecgan.inference.vocoder import Vocoder

MEL_SUFFIXES = (".npy", ".pt")
VOCODER_METHODS = ("vocode", "resynthesise")


def read_mel(path: Path, n_mels: int) -> Tensor:
    """The log-mel ``[n_mels, frames]`` (float32) a ``.npy`` or ``.pt`` file holds; raises ``ValueError`` naming
    the file, its shape and the expected one when it is not such a mel, ``OSError`` when it cannot be read."""
    try:
        if path.suffix.lower() == ".npy":
            mel = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            mel = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError) as error:
        raise OSError(f"{path} cannot be read ({error})") from None
    except Exception as error:  # a damaged .npy, a .pt of another kind
        raise ValueError(f"{path} holds no mel tensor: {type(error).__name__}: {error}") from None
    expected = f"[{n_mels}, frames]: the vocoder's {n_mels}-band log-mel"
    if not isinstance(mel, Tensor):
        raise ValueError(f"{path} holds a {type(mel).__name__}, not a tensor {expected}.")
    if mel.dim() != 2 or mel.shape[0] != n_mels or mel.shape[1] == 0:
        raise ValueError(f"{path} holds a mel of shape {list(mel.shape)}; expected {expected}.")
    if not mel.is_floating_point() or not bool(torch.isfinite(mel).all()):
        raise ValueError(f"{path} holds {mel.dtype} values or NaN/infinity; expected finite floats {expected}.")
    return mel.float()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecgan vocode",
        description="Resynthesise audio files and render mel files (.npy/.pt, [n_mels, frames]) with a trained "
        "vocoder; folders are searched for .wav/.flac/.npy/.pt files.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files, mel files and folders")
    add_model_arguments(parser)
    return parser


def vocode_main(argv: list[str]) -> int:
    """Run the command; returns the exit status (0, or 2 when a file failed or the command could not start)."""
    args = build_parser().parse_args(argv)
    try:
        vocoder: Vocoder = load_generator(args, "vocoder", VOCODER_METHODS)
        inputs = list_inputs(args.inputs, AUDIO_SUFFIXES + MEL_SUFFIXES)
        prepare_output_folder(args.out)
    except (CommandError, ValueError) as error:
        return report_start_failure("vocode", error)
    sample_rate, device = vocoder.sample_rate, next(vocoder.parameters()).device
    print(
        f"codecgan vocode: {type(vocoder.generator).__name__} at {sample_rate} Hz ({vocoder.n_mels} mels, hop "
        f"{vocoder.hop_length}), {len(inputs)} file(s); writing {sample_rate} Hz to {args.out}.",
        file=sys.stderr,
    )

    def handle(item: InputFile, on_chunk: Callable[[int, int], None]) -> None:
        if item.path.suffix.lower() in MEL_SUFFIXES:
            mel = read_mel(item.path, vocoder.n_mels).to(device)
            audio = vocoder.vocode(mel[None])[:, 0]
        else:
            channels = read_at_rate(item.path, sample_rate).audio
            audio = vocoder.resynthesise(channels.unsqueeze(1).to(device))[:, 0]
        on_chunk(1, 1)
        write_wav(item.output(args.out, ".wav"), audio.cpu(), sample_rate)

    return run_over_files("vocode", inputs, args.out, handle)


if __name__ == "__main__":
    raise SystemExit(vocode_main(sys.argv[1:]))
