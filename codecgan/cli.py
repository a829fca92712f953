"""The ``codecgan`` command: LightningCLI for fit/validate/test, plus ``codecgan diagnose``.

    codecgan fit --config experiments/codec_tiny.yaml
    codecgan fit --config experiments/codec_tiny.yaml --ckpt_path last     # resume
    codecgan diagnose runs/codec_tiny [--json]

This module only wires things together; keep classes out of it (LightningCLI resolves
``class_path`` entries by import path, and classes defined in ``__main__`` do not match them).
"""

from __future__ import annotations

import sys
import warnings

from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from codecgan.checkpoint_resolution import resolve_ckpt_path
from codecgan.data.datamodule import AudioDataModule
from codecgan.data.folder_scan import BadAudioError
from codecgan.gan_module import GANModule, NonFiniteTrainingError

EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a shell reports for a process killed by SIGTERM
CRASH_NOTE = "the checkpoint folder holds on_exception.ckpt; resume with --ckpt_path last."


class CodecGANCLI(LightningCLI):
    """LightningCLI with codecgan's links and resume rules."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.init_args.sample_rate", "model.init_args.sample_rate")

    def before_fit(self) -> None:
        self.config_init[self.subcommand]["ckpt_path"] = resolve_ckpt_path(
            self.config_init[self.subcommand].get("ckpt_path"), self.trainer
        )


def build_cli(args: list[str] | None, run: bool = True) -> CodecGANCLI:
    """Parse ``args`` (as on the command line), build model, data and trainer, and run the subcommand."""
    # ModelCheckpoint asks manual-optimization modules for a pre-step weight snapshot; the post-step
    # weights it saves are exactly what a resume needs, so the advice does not apply.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    return CodecGANCLI(
        GANModule,
        AudioDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] == "diagnose":
        from codecgan.diagnosis.cli import diagnose_main

        raise SystemExit(diagnose_main(argv[1:]))
    try:
        build_cli(args)
    except SIGTERMException:
        # Lightning turns SIGTERM into a SystemExit with status 0, which a scheduler reads as "finished".
        print(f"codecgan: stopped by SIGTERM; {CRASH_NOTE}", file=sys.stderr)
        raise SystemExit(EXIT_PREEMPTED) from None
    except (BadAudioError, FileNotFoundError, FileExistsError) as error:
        # Problems with the user's data or checkpoint paths: the message says everything, a traceback
        # from inside Lightning would only hide it.
        print(f"codecgan: {error}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except NonFiniteTrainingError as error:
        print(f"codecgan: {error} {CRASH_NOTE}", file=sys.stderr)
        raise SystemExit(EXIT_NONFINITE) from None
