"""The ``codecgan`` command.

    codecgan fit --config experiments/codec_tiny.yaml
    codecgan fit --config experiments/codec_tiny.yaml --ckpt_path last     # resume
    codecgan diagnose runs/codec_tiny [--json]
    codecgan confirm runs/codec_tiny [--code CODE] [--steps N] [--seeds K] [--json]   # each finding's experiment
    codecgan scan data/train [data/val ...]                               # decode every audio file
    codecgan enhance --ckpt CKPT INPUT... --out DIR [--keep-rate]         # a trained enhancer on files
    codecgan encode --ckpt CKPT INPUT... --out DIR [--n-codebooks N]      # a trained codec's codes
    codecgan decode --ckpt CKPT CODES... --out DIR [--keep-rate]
    codecgan vocode --ckpt CKPT INPUT... --out DIR                        # a trained vocoder on audio or mel files

``fit``/``validate``/``test``/``predict`` are LightningCLI (``codecgan.lightning_cli``); ``diagnose`` reads
logs and ``scan`` decodes audio files (training start-up reads only their headers); neither imports
torch, so both start quickly. ``enhance``, ``encode``, ``decode`` and ``vocode`` (``codecgan.inference``) load a
generator from a checkpoint without Lightning.
"""

from __future__ import annotations

import importlib
import sys

# Commands that run a trained generator; imported on use, none imports Lightning.
INFERENCE_COMMANDS = {
    "enhance": ("codecgan.inference.enhance_command", "enhance_main"),
    "encode": ("codecgan.inference.codec_command", "encode_main"),
    "decode": ("codecgan.inference.codec_command", "decode_main"),
    "vocode": ("codecgan.inference.vocode_command", "vocode_main"),
}


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] == "diagnose":
        from codecgan.diagnosis.cli import diagnose_main

        raise SystemExit(diagnose_main(argv[1:]))
    if argv and argv[0] == "confirm":
        from codecgan.confirm.cli import confirm_main

        raise SystemExit(confirm_main(argv[1:]))
    if argv and argv[0] == "scan":
        from codecgan.data.scan_command import scan_main

        raise SystemExit(scan_main(argv[1:]))
    if argv and argv[0] in INFERENCE_COMMANDS:
        module_name, function_name = INFERENCE_COMMANDS[argv[0]]
        raise SystemExit(getattr(importlib.import_module(module_name), function_name)(argv[1:]))
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from codecgan.atomic_checkpoint_io import CheckpointWriteError
    from codecgan.config_error import ConfigError
    from codecgan.data.folder_scan import BadAudioError
    from codecgan.lightning_cli import (
        CRASH_NOTE,
        EXIT_BAD_INPUT,
        EXIT_CHECKPOINT_WRITE_FAILED,
        EXIT_NONFINITE,
        EXIT_PREEMPTED,
        build_cli,
    )
    from codecgan.nonfinite_guard import NonFiniteTrainingError

    try:
        build_cli(args)
    except SIGTERMException:
        # Lightning turns SIGTERM into a SystemExit with status 0, which a scheduler reads as "finished".
        print(f"codecgan: stopped by SIGTERM; {CRASH_NOTE}", file=sys.stderr)
        raise SystemExit(EXIT_PREEMPTED) from None
    except (BadAudioError, ConfigError, FileNotFoundError, FileExistsError) as error:
        # Problems with the user's data or checkpoint paths: the message says everything, a traceback
        # from inside Lightning would only hide it.
        print(f"codecgan: {error}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except CheckpointWriteError as error:
        # A full disk or an I/O error: the message names the file, the OS error, the free space and the fix.
        print(f"codecgan: {error}", file=sys.stderr)
        raise SystemExit(EXIT_CHECKPOINT_WRITE_FAILED) from None
    except NonFiniteTrainingError as error:
        print(f"codecgan: {error} {CRASH_NOTE}", file=sys.stderr)
        raise SystemExit(EXIT_NONFINITE) from None
