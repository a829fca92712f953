"""Count DAC's own training step (descript-audio-codec's `scripts/train.py`) with codecgan's op counter.

Runs in DAC's environment, never in codecgan's (`bench/host_overhead.py` starts it there as a subprocess):

    /work/venvs/dacref/bin/python -m bench.dac_own_step      # from the repository root, ~1 min on 2 CPU cores

It builds DAC's generator, discriminator, losses and optimizers with `conf/final/44khz.yml` (the 44.1 kHz model's
settings, which `experiments/codec_dac.yaml` copies) and runs `train_loop` as `train.py` at commit c7cfc5d
(descript-audio-codec 1.0.0) runs it: wrapped by audiotools' `Tracker.log` and `Tracker.track` (which call
`.item()` on every scalar of the step's output) and `@timer`, with audiotools' `Accelerator` (fp32, no AMP) and
the `train/build_transform` of that config applied on the device inside the step. The batch is codecgan's count:
batch 1, one 0.38 s excerpt, fp32, CPU, one thread. Batches 0 and 1 warm up, batch 2 is counted, as
`bench/host_overhead.py` counts codecgan's.

Left out, none of which runs inside `train_loop`: argbind's configuration, the data loader (the batch is made
beforehand, as codecgan's count leaves out data loading), the TensorBoard writer and log file (the tracker gets
none: both only take Python floats), the rich live display (`with tracker.live`), and the validation, sample and
checkpoint calls that `train.py` makes every 1,000 / 10,000 steps (the counted step makes none).

Prints one JSON line: ops and host reads outside and inside the optimizers' `step`, the ops and host reads of the
data transform alone (included in the outside counts), and the number of tensors the step logs.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import warnings
from collections.abc import Callable
from types import SimpleNamespace

import torch

from bench.op_counting import HOST_READ, DispatchCounts, counting_ops

COUNTED_BATCH = 2  # batches 0 and 1 warm up (the optimizers' lazy state), as bench/host_overhead.py

# conf/final/44khz.yml
SAMPLE_RATE = 44100
LAMBDAS = {
    "mel/loss": 15.0,
    "adv/feat_loss": 2.0,
    "adv/gen_loss": 1.0,
    "vq/commitment_loss": 0.25,
    "vq/codebook_loss": 1.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1, help="items per batch (default: 1, as codecgan's count)")
    parser.add_argument("--seconds", type=float, default=0.38, help="excerpt length (default: DAC's 0.38 s)")
    parser.add_argument("--stacks", action="store_true", help="print where each host read comes from (to stderr)")
    parser.add_argument("--top", type=int, default=0, help="print the N most frequent ops outside the optimizers")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.seconds <= 0:
        parser.error(f"--batch-size must be >= 1 and --seconds > 0, got {args.batch_size} and {args.seconds}")
    return args


def build_state() -> SimpleNamespace:
    """DAC's `State` of `train.py` (the fields `train_loop` reads), built as `load()` builds it from 44khz.yml."""
    import dac
    from audiotools.data import transforms

    generator = dac.model.DAC(
        encoder_dim=64,
        encoder_rates=[2, 4, 8, 8],
        decoder_dim=1536,
        decoder_rates=[8, 8, 4, 2],
        n_codebooks=9,
        codebook_size=1024,
        codebook_dim=8,
        quantizer_dropout=0.5,
        sample_rate=SAMPLE_RATE,
    )
    discriminator = dac.model.Discriminator(
        rates=[],
        periods=[2, 3, 5, 7, 11],
        fft_sizes=[2048, 1024, 512],
        sample_rate=SAMPLE_RATE,
        bands=[[0.0, 0.1], [0.1, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]],
    )
    optimizer_g = torch.optim.AdamW(generator.parameters(), lr=1e-4, betas=(0.8, 0.99))
    optimizer_d = torch.optim.AdamW(discriminator.parameters(), lr=1e-4, betas=(0.8, 0.99))
    # build_transform with train/build_transform of 44khz.yml: Identity, Identity at probability 0, then
    # VolumeNorm(-16 dB), RescaleAudio, ShiftPhase.
    transform = transforms.Compose(
        transforms.Compose(transforms.Identity(), name="preprocess"),
        transforms.Compose(transforms.Identity(), name="augment", prob=0.0),
        transforms.Compose(
            transforms.VolumeNorm(db=("const", -16)),
            transforms.RescaleAudio(),
            transforms.ShiftPhase(),
            name="postprocess",
        ),
    )
    loss = dac.nn.loss
    return SimpleNamespace(
        generator=generator,
        optimizer_g=optimizer_g,
        scheduler_g=torch.optim.lr_scheduler.ExponentialLR(optimizer_g, 0.999996),
        discriminator=discriminator,
        optimizer_d=optimizer_d,
        scheduler_d=torch.optim.lr_scheduler.ExponentialLR(optimizer_d, 0.999996),
        waveform_loss=loss.L1Loss(),
        stft_loss=loss.MultiScaleSTFTLoss(window_lengths=[2048, 512]),
        mel_loss=loss.MelSpectrogramLoss(
            n_mels=[5, 10, 20, 40, 80, 160, 320],
            window_lengths=[32, 64, 128, 256, 512, 1024, 2048],
            mel_fmin=[0, 0, 0, 0, 0, 0, 0],
            mel_fmax=[None] * 7,
            pow=1.0,
            clamp_eps=1.0e-5,
            mag_weight=0.0,
        ),
        gan_loss=loss.GANLoss(discriminator),
        train_data=SimpleNamespace(transform=transform),
    )


def make_batch(transform, batch_size: int, seconds: float, index: int) -> dict:
    """A batch as DAC's `AudioDataset` + `collate` yield it: signals and each item's transform arguments.

    The audio is a harmonic tone plus noise (the counts do not depend on it), `round(seconds * 44100)` samples.
    """
    from audiotools import AudioSignal
    from audiotools.core import util
    from audiotools.data.datasets import AudioDataset

    samples = round(seconds * SAMPLE_RATE)
    generator = torch.Generator().manual_seed(index)
    time_axis = torch.arange(samples) / SAMPLE_RATE
    items = []
    for item in range(batch_size):
        idx = index * batch_size + item
        tone = sum(torch.sin(2 * torch.pi * 220.0 * k * time_axis) / k for k in range(1, 6))
        audio = 0.1 * tone + 0.01 * torch.randn(samples, generator=generator)
        signal = AudioSignal(audio.reshape(1, 1, samples), SAMPLE_RATE)
        state = util.random_state(idx)
        items.append({"signal": signal, "idx": idx, "transform_args": transform.instantiate(state, signal=signal)})
    return AudioDataset.collate(items)


def dac_train_loop() -> Callable[..., dict]:
    """`train_loop` of DAC's `scripts/train.py` at commit c7cfc5d, line for line (MIT licence, Descript, Inc.)."""
    from audiotools import AudioSignal
    from audiotools.core import util
    from audiotools.ml.decorators import timer

    @timer()
    def train_loop(state, batch, accel, lambdas):
        state.generator.train()
        state.discriminator.train()
        output = {}

        batch = util.prepare_batch(batch, accel.device)
        with torch.no_grad():
            signal = state.train_data.transform(batch["signal"].clone(), **batch["transform_args"])

        with accel.autocast():
            out = state.generator(signal.audio_data, signal.sample_rate)
            recons = AudioSignal(out["audio"], signal.sample_rate)
            commitment_loss = out["vq/commitment_loss"]
            codebook_loss = out["vq/codebook_loss"]

        with accel.autocast():
            output["adv/disc_loss"] = state.gan_loss.discriminator_loss(recons, signal)

        state.optimizer_d.zero_grad()
        accel.backward(output["adv/disc_loss"])
        accel.scaler.unscale_(state.optimizer_d)
        output["other/grad_norm_d"] = torch.nn.utils.clip_grad_norm_(state.discriminator.parameters(), 10.0)
        accel.step(state.optimizer_d)
        state.scheduler_d.step()

        with accel.autocast():
            output["stft/loss"] = state.stft_loss(recons, signal)
            output["mel/loss"] = state.mel_loss(recons, signal)
            output["waveform/loss"] = state.waveform_loss(recons, signal)
            (
                output["adv/gen_loss"],
                output["adv/feat_loss"],
            ) = state.gan_loss.generator_loss(recons, signal)
            output["vq/commitment_loss"] = commitment_loss
            output["vq/codebook_loss"] = codebook_loss
            output["loss"] = sum([v * output[k] for k, v in lambdas.items() if k in output])

        state.optimizer_g.zero_grad()
        accel.backward(output["loss"])
        accel.scaler.unscale_(state.optimizer_g)
        output["other/grad_norm"] = torch.nn.utils.clip_grad_norm_(state.generator.parameters(), 1e3)
        accel.step(state.optimizer_g)
        state.scheduler_g.step()
        accel.update()

        output["other/learning_rate"] = state.optimizer_g.param_groups[0]["lr"]
        output["other/batch_size"] = signal.batch_size * accel.world_size

        return {k: v for k, v in sorted(output.items())}

    return train_loop


class _CountedTransform:
    """Calls DAC's data transform and counts its ops apart (they are counted in the step's total too)."""

    def __init__(self, transform) -> None:
        self.transform = transform
        self.counts = None

    def __call__(self, signal, **kwargs):
        with counting_ops() as self.counts:
            return self.transform(signal, **kwargs)


def count_dac_step(
    batch_size: int = 1, seconds: float = 0.38, keep_stacks: bool = False
) -> tuple[DispatchCounts, DispatchCounts, int]:
    """Run DAC's step for `COUNTED_BATCH + 1` batches and count the last.

    Returns its counts, its data transform's counts, the number of tensors in its output (each read back by the
    tracker's ``.item()``; the tracker also reads back the tensors it makes of the Python numbers).
    """
    from audiotools.core import util
    from audiotools.ml import Accelerator
    from audiotools.ml.decorators import Tracker

    torch.set_num_threads(1)
    util.seed(0)
    accel = Accelerator(amp=False)
    state = build_state()
    state.generator = accel.prepare_model(state.generator)
    state.discriminator = accel.prepare_model(state.discriminator)
    counted_transform = _CountedTransform(state.train_data.transform)
    state.train_data.transform = counted_transform
    batches = [make_batch(counted_transform.transform, batch_size, seconds, i) for i in range(COUNTED_BATCH + 1)]

    tracker = Tracker(writer=None, log_file=None, rank=accel.local_rank)
    loop = dac_train_loop()
    logged_tensors = 0

    def loop_counting_its_tensors(*args, **kwargs) -> dict:
        nonlocal logged_tensors
        output = loop(*args, **kwargs)
        logged_tensors = sum(torch.is_tensor(value) for value in output.values())
        return output

    # train.py's wrapping, with the tensor count between the tracker and the loop
    train_loop = tracker.log("train", "value", history=False)(
        tracker.track("train", 250000, completed=tracker.step)(loop_counting_its_tensors)
    )
    for tracker.step, batch in enumerate(batches):
        if tracker.step < COUNTED_BATCH:
            train_loop(state, batch, accel, LAMBDAS)
            continue
        with counting_ops(split_optimizer_steps=True, keep_stacks=keep_stacks) as counts:
            train_loop(state, batch, accel, LAMBDAS)
    return counts, counted_transform.counts, logged_tensors


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")  # audiotools' and torch's deprecation warnings; train.py ignores UserWarning
    counts, transform_counts, logged_tensors = count_dac_step(args.batch_size, args.seconds, keep_stacks=args.stacks)
    for stack, count in collections.Counter(counts.host_read_stacks).items():
        print(f"{count} host read(s) at:\n{stack}", file=sys.stderr)
    for op, count in counts.outside.most_common(args.top):
        print(f"    {count:6d} {op}", file=sys.stderr)
    print(
        json.dumps(
            {
                "ops_outside": counts.ops_outside,
                "ops_inside": counts.ops_inside,
                "host_reads_outside": counts.outside[HOST_READ],
                "host_reads_inside": counts.inside[HOST_READ],
                "transform_ops": transform_counts.ops_outside,
                "transform_host_reads": transform_counts.outside[HOST_READ],
                "logged_tensors": logged_tensors,
                "batch_size": args.batch_size,
                "excerpt_seconds": args.seconds,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
