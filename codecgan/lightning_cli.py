"""LightningCLI for ``codecgan fit|validate|test|predict``: links, resume rules and exit statuses.

Keep model and data classes out of this module: LightningCLI resolves ``class_path`` entries by
import path, and classes defined in ``__main__`` do not match them.
"""

from __future__ import annotations

import warnings

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import LightningCLI

from codecgan.atomic_checkpoint_io import remove_interrupted_writes, use_atomic_writes
from codecgan.checkpoint_fit import check_checkpoint_fits, check_checkpoint_whole
from codecgan.checkpoint_resolution import checkpoint_folders, resolve_ckpt_path
from codecgan.data.datamodule import AudioDataModule
from codecgan.evaluation.report import EvaluationReport
from codecgan.gan_module import GANModule
from codecgan.inference.prediction_writer import AudioPredictionWriter
from codecgan.progress_bar import LoggingStepProgressBar
from codecgan.strategy_choice import choose_strategy

EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a shell reports for a process killed by SIGTERM
# sysexits.h's EX_IOERR ("an error occurred while doing I/O on some file"): a checkpoint could not be written (a
# full disk, an I/O error). Above the small statuses Python and argparse use (1, 2), below the 128 + signal range.
EXIT_CHECKPOINT_WRITE_FAILED = 74
CRASH_NOTE = "the checkpoint folder holds on_exception.ckpt; resume with --ckpt_path last."


class CodecGANCLI(LightningCLI):
    """LightningCLI with codecgan's links and resume rules."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.init_args.sample_rate", "model.init_args.sample_rate")

    def parse_arguments(self, parser, args) -> None:
        """Parse, then refuse a ``--ckpt_path`` file that is cut short before LightningCLI ``torch.load``s it (for
        the hyperparameters it may hold), which would fail with a traceback."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_checkpoint_whole(self.config[subcommand].get("ckpt_path"))

    def instantiate_trainer(self, **kwargs):
        """The Trainer, with Lightning's default progress bar replaced by one that reads the logged values
        back from the device on logging steps only (a progress bar given in the config is kept), and checkpoint
        writes that never leave a partial file (``AtomicCheckpointIO``, unless the config names a plugin). Several
        devices run ``gan_ddp`` (``codecgan.strategy_choice``)."""
        settings = self._get(self.config_init, "trainer", default={})
        kwargs["strategy"] = choose_strategy(
            kwargs.get("strategy", settings.get("strategy", "auto")),
            settings.get("devices", "auto"),
            settings.get("num_nodes", 1),
            settings.get("accelerator", "auto"),
            training=self.subcommand == "fit",
        )
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_writes(trainer.strategy)
        trainer.callbacks = [
            LoggingStepProgressBar() if type(callback) is TQDMProgressBar else callback
            for callback in trainer.callbacks
        ]
        return trainer

    def before_validate(self) -> None:
        check_checkpoint_fits(self.config_init[self.subcommand].get("ckpt_path"), self.model)

    def before_test(self) -> None:
        """``codecgan test`` writes the evaluation report (table, metrics.json, metrics.csv) into the run folder."""
        check_checkpoint_fits(self.config_init[self.subcommand].get("ckpt_path"), self.model)
        if not any(isinstance(callback, EvaluationReport) for callback in self.trainer.callbacks):
            self.trainer.callbacks.append(EvaluationReport())

    def before_predict(self) -> None:
        """``codecgan predict`` writes its outputs as files: into ``<default_root_dir>/predictions`` unless the config
        gives an ``AudioPredictionWriter``."""
        check_checkpoint_fits(self.config_init[self.subcommand].get("ckpt_path"), self.model)
        if not any(isinstance(callback, AudioPredictionWriter) for callback in self.trainer.callbacks):
            self.trainer.callbacks.append(AudioPredictionWriter(f"{self.trainer.default_root_dir}/predictions"))

    def before_fit(self) -> None:
        self.config_init[self.subcommand]["ckpt_path"] = resolve_ckpt_path(
            self.config_init[self.subcommand].get("ckpt_path"), self.trainer
        )
        # No rank writes a checkpoint before fit starts, so any temporary file there is a killed write's.
        for folder in checkpoint_folders(self.trainer):
            remove_interrupted_writes(folder)


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
