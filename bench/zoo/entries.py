"""The zoo's entries: one per overlay of experiments/zoo/, with the finding it should raise and the curve that
shows it, and the data an entry writes before its run."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import soundfile
import yaml

from codecgan.data.synthetic_speech import derive_seed, synthesize_speech

ROOT = Path(__file__).resolve().parents[2]
ZOO_DIR = ROOT / "experiments" / "zoo"
# Relative cost of a step, to start the longest runs first: the enhancer's step (with PESQ) is about twice the codec's.
STEP_COST = {"enhance_tiny.yaml": 2.0, "enhance_mpsenet_tiny.yaml": 2.0, "enhance_metricgan_plus_tiny.yaml": 2.0}


@dataclass(frozen=True)
class ZooEntry:
    """One overlay of experiments/zoo/ and what the zoo expects of it.

    expected: the finding code the fault should raise; None for a control (nothing above info expected).
    curve: the tag whose picture shows the fault.
    fault_step: the batch at which the fault begins (0: from the start); latency counts from here.
    processes: `codecgan fit` processes the run takes (DDP ranks), one slot each.
    extra_args: command-line overrides appended after the overlay (the smoke test shortens budgets).
    confirm_steps: the length of each `codecgan confirm` arm (its measurement must fall inside it).
    prepare: writes what the run needs into its folder before it starts (audio folders, say) and returns the
        command-line arguments that point the run at it.
    resume_at: fit to this step, then resume from the checkpoint saved there (`checkpoints/step<N>.ckpt`) to the
        budget with `resume_args` appended, as a user resumes a stopped run with an edited config.
    """

    name: str
    expected: str | None
    curve: str
    fault_step: int = 0
    processes: int = 1
    extra_args: tuple[str, ...] = ()
    confirm_steps: int = 60
    prepare: Callable[[Path], tuple[str, ...]] | None = None
    resume_at: int | None = None
    resume_args: tuple[str, ...] = ()

    @property
    def overlay(self) -> Path:
        return ZOO_DIR / f"{self.name}.yaml"

    @property
    def header(self) -> str:
        """The overlay's first line: '# base: <config> | hypothesis: <text>'."""
        return self.overlay.read_text().splitlines()[0]

    @property
    def base(self) -> Path:
        match = re.match(r"#\s*base:\s*(\S+)", self.header)
        if not match:
            raise ValueError(f"{self.overlay} must start with '# base: experiments/<config>.yaml | hypothesis: ...'.")
        return ROOT / match.group(1)

    @property
    def hypothesis(self) -> str:
        return self.header.split("hypothesis:", 1)[-1].strip()

    def max_steps(self) -> int:
        """The step budget: the last --trainer.max_steps override, else the overlay's."""
        args = self.extra_args
        overrides = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--trainer.max_steps"]
        if overrides:
            return int(overrides[-1])
        return int(yaml.safe_load(self.overlay.read_text())["trainer"]["max_steps"])

    def cost(self) -> float:
        return self.max_steps() * STEP_COST.get(self.base.name, 1.0)


SAMPLE_RATE = 16000  # codec_tiny's


def leaky_folders(run_dir: Path) -> tuple[str, ...]:
    """Write 20 training and 8 validation files of synthetic speech (1 s, 16 kHz, 16-bit WAV) under run_dir/data, 2 of
    the validation files byte copies of training files under other names; return the arguments that point the run's
    data at them."""
    train, val = run_dir / "data" / "train", run_dir / "data" / "val"
    for folder, prefix, count, seed in ((train, "utt", 20, 0), (val, "val", 6, 1)):
        folder.mkdir(parents=True)
        for index in range(count):
            audio = synthesize_speech(SAMPLE_RATE, SAMPLE_RATE, derive_seed(seed, index))
            soundfile.write(folder / f"{prefix}{index:02d}.wav", audio.numpy(), SAMPLE_RATE, subtype="PCM_16")
    for index in (3, 12):  # the leak
        shutil.copyfile(train / f"utt{index:02d}.wav", val / f"p287_{index:03d}.wav")
    return ("--data.init_args.train_dir", str(train), "--data.init_args.val_dir", str(val))


# Table order: the faults, then the controls.
ZOO: tuple[ZooEntry, ...] = (
    ZooEntry("random_eval_crop", "EVAL_NONDETERMINISTIC", "diag/eval_input_changed_fraction"),
    ZooEntry("pesq_drop_batch_silence", "PESQ_NONE_HIGH", "diag/pesq_none_rate"),
    ZooEntry("frozen_discriminator", "DISCRIMINATOR_FROZEN", "diag/d_update_ratio"),
    ZooEntry("starved_discriminator", "DISCRIMINATOR_AT_CHANCE", "diag/d_loss_to_chance"),
    ZooEntry("overpowering_discriminator", "DISCRIMINATOR_OVERPOWERING", "diag/d_loss_to_chance"),
    ZooEntry("grouped_conv_discriminator", "DISCRIMINATOR_AT_CHANCE", "diag/d_loss_to_chance"),
    ZooEntry("gan_weight_zero", "GAN_TERM_NEGLIGIBLE", "diag/grad_share/loss_adv"),
    ZooEntry("istft_length_mismatch", "LENGTH_MISMATCH", "diag/length_mismatch"),
    ZooEntry(
        "rank_desync",
        "RANK_DIVERGENCE",
        "diag/rank_param_spread/discriminator",
        fault_step=20,
        processes=2,
        confirm_steps=120,
    ),  # RankConsistency measures every 100 steps
    ZooEntry("nonfinite_loss", "NONFINITE_LOSS", "diag/nonfinite_loss_steps", fault_step=30),
    ZooEntry("lr_too_high", "NEGATIVE_SNR", "val/snr_db"),
    # The learning rates fall under 1e-3 of their initial values at step 20 (0.7**20 = 8e-4).
    ZooEntry("lr_vanished", "LR_VANISHED", "train/lr_g", fault_step=20),
    ZooEntry("data_leak", "DATA_LEAK", "diag/data_leak_files", prepare=leaky_folders),
    # LOSS_SPIKE warns at the third spike (step 84).
    ZooEntry("loss_spike", "LOSS_SPIKE", "train/loss_g", fault_step=54),
    ZooEntry(
        "resume_discontinuity",
        "RESUME_DISCONTINUITY",
        "train/loss_g",
        fault_step=100,
        resume_at=100,
        resume_args=("--model.init_args.loss_weights", "{mel: 150}"),  # codec_tiny's 15 ×10
    ),
    ZooEntry("healthy_codec", None, "val/amplitude_ratio"),
    ZooEntry("healthy_enhance", None, "val/pesq"),
    # 300 steps: the quiet start (AMPLITUDE_UNSTABLE's PESQ warm-up) needs 4 validation rounds to be read as one.
    ZooEntry("healthy_mpsenet", None, "val/amplitude_ratio"),
    ZooEntry("balancer_adversarial_zero", "GAN_TERM_NEGLIGIBLE", "diag/balancer_share/loss_adv"),
    # CodebookUsage closes its windows at steps 100 and 200; the collapse is sustained at the second.
    ZooEntry("codebook_decay_one", "CODEBOOK_COLLAPSE", "diag/codebook_entropy_fraction/0", fault_step=0),
    # GradientBalance measures every 10 steps from step 1; the trailing median flags at the third measurement (21).
    ZooEntry("healthy_metricgan_plus", None, "diag/replay_buffer_items_epoch"),
    # The buffer is empty at the ends of epochs 1 and 2 (the first may end empty): flagged at step 36.
    ZooEntry("replay_history_zero", "REPLAY_BUFFER_STALLED", "diag/replay_buffer_items_epoch"),
    ZooEntry("phase_weight_zero", "LOSS_TERM_DISABLED", "diag/grad_share/loss_phase"),
    ZooEntry("healthy_vocoder", None, "val/mel_distance"),
    ZooEntry("vocoder_discriminator_frozen", "DISCRIMINATOR_FROZEN", "diag/d_update_ratio"),
    ZooEntry("vocoder_mel_weight_zero", "LOSS_TERM_DISABLED", "val/mel_distance"),
    ZooEntry("vocoder_gan_weight_zero", "GAN_TERM_NEGLIGIBLE", "diag/grad_share/loss_adv"),
)
