"""Count Vocos's own training step (`vocos.experiment.VocosExp.training_step`) with codecgan's op counter.

Runs in Vocos's environment, never in codecgan's (`bench/host_overhead.py` starts it there as a subprocess):

    /work/venvs/vocosref/bin/python -m bench.vocos_own_step     # from the repository root, ~1 min on 2 CPU cores

It builds `VocosExp` itself (vocos 0.1.0) with the 24 kHz settings of Vocos's `configs/vocos.yaml`, which
`experiments/vocoder_vocos_24k.yaml` copies: `MelSpectrogramFeatures(24000, 1024, 256, 100, "center")`,
`VocosBackbone(100, 512, 1536, 8)`, `ISTFTHead(512, 1024, 256, "center")`, lr 5e-4, mel_loss_coeff 45,
mrd_loss_coeff 0.1, no mel pre-training, no mel-coefficient decay. Its `__init__` builds the MPD, MRD and losses,
its `configure_optimizers` the two AdamW and their cosine schedules. One batch is what pytorch_lightning 1.x's
automatic optimization runs for a module with two optimizers: `on_train_batch_start`, then for optimizer 0 (the
discriminators) and 1 (the generator) in turn: `toggle_optimizer`, `training_step(batch, batch_idx, optimizer_idx)`,
`zero_grad`, `backward` of the returned loss, the optimizer's `step`, `untoggle_optimizer`; then both schedulers'
`step` and `on_train_batch_end`. Lightning 1.x runs the step, zero_grad and backward as the closure it passes to
`optimizer.step`; AdamW calls that closure first, so it is run just before `step` here, and its ops count as
outside the optimizers, as in codecgan's count.

The stand-in for the trainer (`_TrainerStandIn`, the only code here that is not Vocos's or Lightning's): `trainer`
returns an object with `max_steps` (2,000,000, configs/vocos.yaml's) and `optimizers`, which Lightning's own
`toggle_optimizer` reads; `global_step` counts optimizer steps as Lightning 1.x does (two per batch: the counted
batch's generator step is at global step 5, so the step's `global_step % 1000 == 0` branch that writes audio and
images to TensorBoard does not run, as on 999 of 1,000 steps); `log` keeps the logged value and dispatches nothing,
so Lightning 1.x's own logging bookkeeping is not counted. The step logs 9 tensors, two of them with
`prog_bar=True`, which Lightning 1.x reads back (`.item()`) for the progress bar on every batch: those reads are
reported as `progress_bar_reads`, not counted in `host_reads_outside`. `vocos.experiment` imports `transformers`
for `get_cosine_schedule_with_warmup`, so Vocos's environment needs it (`pip install transformers==4.46.3`).
`pytorch_lightning` resolves to the installed 2.x, whose `LightningModule` still accepts Vocos's 1.x-style methods
when they are called directly (the 2.x Trainer would refuse `optimizer_idx`).

Left out, none of which runs inside the step: the data loader (Vocos's dataset makes the 16,384-sample excerpt and
its random gain on the CPU before the step; here the excerpt is made beforehand), validation and checkpoints. The
batch is codecgan's count: batch 1, 16,384 samples, fp32, CPU, one thread. Batches 0 and 1 warm up, batch 2 is
counted, as `bench/host_overhead.py` counts codecgan's.

Prints one JSON line: ops and host reads outside and inside the optimizers' `step`, the tensors logged and the
progress-bar reads Lightning 1.x adds.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import types
import warnings

import torch

from bench.op_counting import HOST_READ, DispatchCounts, counting_ops

COUNTED_BATCH = 2  # batches 0 and 1 warm up (the optimizers' lazy state), as bench/host_overhead.py
SAMPLE_RATE = 24000
NUM_SAMPLES = 16384  # configs/vocos.yaml's data num_samples
MAX_STEPS = 2_000_000  # configs/vocos.yaml's trainer max_steps (one per optimizer step)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1, help="items per batch (default: 1, as codecgan's count)")
    parser.add_argument("--samples", type=int, default=NUM_SAMPLES, help=f"excerpt length (default: {NUM_SAMPLES})")
    parser.add_argument("--stacks", action="store_true", help="print where each host read comes from (to stderr)")
    parser.add_argument("--top", type=int, default=0, help="print the N most frequent ops outside the optimizers")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.samples < 1024:
        parser.error(f"--batch-size must be >= 1 and --samples >= 1024, got {args.batch_size} and {args.samples}")
    return args


def build_experiment():
    """`VocosExp` with configs/vocos.yaml's 24 kHz model, under the trainer stand-in (see the module docstring)."""
    from vocos.experiment import VocosExp
    from vocos.feature_extractors import MelSpectrogramFeatures
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    class VocosExpUnderStandIn(VocosExp):
        step_count = 0
        logged: dict = {}
        progress_bar_names: set = set()

        @property
        def trainer(self):
            return self._stand_in_trainer

        @property
        def global_step(self) -> int:
            return self.step_count

        def log(self, name, value, prog_bar=False, **kwargs) -> None:
            self.logged[name] = value
            if prog_bar:
                self.progress_bar_names.add(name)

    experiment = VocosExpUnderStandIn(
        feature_extractor=MelSpectrogramFeatures(
            sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=100, padding="center"
        ),
        backbone=VocosBackbone(input_channels=100, dim=512, intermediate_dim=1536, num_layers=8),
        head=ISTFTHead(dim=512, n_fft=1024, hop_length=256, padding="center"),
        sample_rate=SAMPLE_RATE,
        initial_learning_rate=5e-4,
        mel_loss_coeff=45,
        mrd_loss_coeff=0.1,
        num_warmup_steps=0,
        pretrain_mel_steps=0,
        decay_mel_coeff=False,
    )
    experiment._stand_in_trainer = types.SimpleNamespace(max_steps=MAX_STEPS, optimizers=[])
    return experiment


def count_vocos_step(
    batch_size: int = 1, samples: int = NUM_SAMPLES, keep_stacks: bool = False
) -> tuple[DispatchCounts, object]:
    """Run Vocos's step for `COUNTED_BATCH + 1` batches and count the last; returns the counts and the module."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    experiment = build_experiment()
    experiment.train()
    optimizers, scheduler_configs = experiment.configure_optimizers()
    experiment._stand_in_trainer.optimizers = optimizers
    schedulers = [config["scheduler"] for config in scheduler_configs]
    time_axis = torch.arange(samples) / SAMPLE_RATE
    tone = sum(torch.sin(2 * torch.pi * 220.0 * k * time_axis) / k for k in range(1, 6))
    generator = torch.Generator().manual_seed(0)
    batches = [0.1 * tone + 0.01 * torch.randn(batch_size, samples, generator=generator) for _ in range(3)]

    def run_batch(batch: torch.Tensor, batch_idx: int) -> None:
        experiment.on_train_batch_start(batch, batch_idx)
        for optimizer_idx, optimizer in enumerate(optimizers):
            experiment.toggle_optimizer(optimizer)
            loss = experiment.training_step(batch, batch_idx, optimizer_idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            experiment.step_count += 1
            experiment.untoggle_optimizer(optimizer)
        for scheduler in schedulers:
            scheduler.step()
        experiment.on_train_batch_end(None, batch, batch_idx)

    for batch_idx, batch in enumerate(batches):
        if batch_idx < COUNTED_BATCH:
            run_batch(batch, batch_idx)
            continue
        experiment.logged.clear()
        with counting_ops(split_optimizer_steps=True, keep_stacks=keep_stacks) as counts:
            run_batch(batch, batch_idx)
    return counts, experiment


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    counts, experiment = count_vocos_step(args.batch_size, args.samples, keep_stacks=args.stacks)
    for stack, count in collections.Counter(counts.host_read_stacks).items():
        print(f"{count} host read(s) at:\n{stack}", file=sys.stderr)
    for op, count in counts.outside.most_common(args.top):
        print(f"    {count:6d} {op}", file=sys.stderr)
    import vocos

    print(
        json.dumps(
            {
                "ops_outside": counts.ops_outside,
                "ops_inside": counts.ops_inside,
                "host_reads_outside": counts.outside[HOST_READ],
                "host_reads_inside": counts.inside[HOST_READ],
                "logged_tensors": sum(torch.is_tensor(value) for value in experiment.logged.values()),
                "progress_bar_reads": len(experiment.progress_bar_names),
                "batch_size": args.batch_size,
                "samples": args.samples,
                "vocos": getattr(vocos, "__version__", "0.1.0"),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
