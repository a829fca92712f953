"""Two gloo processes drive guarded callbacks through scripted failures at every point of a hook invocation, and
check after each batch that their collectives are still paired. Writes each rank's results as JSON.

    python tests/callbacks/guard_vote_script.py OUT_DIR

A failing callback performs an all-reduce and two all-gathers at its sync moments (odd steps); a healthy one does
the same at every step. After each batch both ranks all-reduce the step number (the canary): a collective paired
with a different one on the other rank gives a wrong sum, a shape error or (caught by the timeouts) a hang.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from callbacks.distributed import gather_rows, reduce_sum
from callbacks.guard import GuardedCallback
from callbacks.sync_moments import always, every_n_batches
from codecgan.cadence import logged_step
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer
from tests.ddp_helpers import free_port

STEPS = 6
# scenario: [(rank, step, position)]: where each failing rank raises. Sync moments are steps 1, 3 and 5.
SCENARIOS = {
    "sync_start_rank1": [(1, 3, "start")],
    "sync_between_rank1": [(1, 3, "between")],
    "sync_end_rank0": [(0, 3, "end")],
    "non_sync_rank1": [(1, 2, "non_sync")],
    "both_ranks_before_one_vote": [(0, 3, "start"), (1, 3, "start")],
    "rank0_after_rank1s_vote": [(0, 3, "between"), (1, 3, "start")],  # rank 0 learns of rank 1's first
    "both_ranks_non_sync": [(0, 2, "non_sync"), (1, 2, "non_sync")],
    "non_sync_rank1_then_sync_rank0": [(1, 2, "non_sync"), (0, 3, "end")],
}


class GlooStrategy:
    root_device = torch.device("cpu")

    def reduce(self, tensor: torch.Tensor, reduce_op: str = "sum") -> torch.Tensor:
        dist.all_reduce(tensor)
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor)
        return torch.stack(gathered)


class ScriptedCollectives(GuardedCallback):
    """At its sync moments: reduce_sum, raise point "between", gather_rows; raises where `faults` say."""

    def __init__(self, faults: list[tuple[int, int, str]], every: int) -> None:
        self.faults, self.every = {tuple(fault) for fault in faults}, every
        self.results: list[list[float]] = []

    sync_moments = {"on_train_batch_end": every_n_batches("every")}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, rank = logged_step(trainer), trainer.global_rank

        def fault(position: str) -> None:
            if (rank, step, position) in self.faults:
                raise RuntimeError(f"scripted failure ({position}) at step {step} on rank {rank}")

        fault("start")
        if not self.sync_moments["on_train_batch_end"](self, trainer):
            fault("non_sync")
            return
        total = reduce_sum(trainer, torch.ones(2))
        fault("between")
        rows = gather_rows(trainer, torch.full((trainer.global_rank + 1, 3), float(trainer.global_rank)))
        self.results.append([*total.tolist(), float(rows.shape[0]), float(rows.sum())])
        fault("end")


class EveryStep(ScriptedCollectives):
    sync_moments = {"on_train_batch_end": always}


def run_scenario(rank: int, faults: list[tuple[int, int, str]]) -> dict:
    failing, healthy = ScriptedCollectives(faults, every=2), EveryStep([], every=1)
    trainer = FakeTrainer(world_size=2, global_rank=rank, is_global_zero=rank == 0, strategy=GlooStrategy())
    trainer.callbacks = [failing, healthy]
    module, canary_ok = FakeModule(), True
    for step in range(STEPS):
        for callback in trainer.callbacks:
            callback.on_train_batch_end(trainer, module, {}, None, step)
        canary = torch.tensor([float(step)])
        dist.all_reduce(canary)
        canary_ok = canary_ok and canary.item() == 2.0 * step
        trainer.advance()
    return {
        "disabled": failing.guard.disabled,
        "failing_results": failing.results,
        "healthy_disabled": healthy.guard.disabled is not None,
        "healthy_results": healthy.results,
        "canary_ok": canary_ok,
    }


def worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))  # fmt: skip
    results = {name: run_scenario(rank, faults) for name, faults in SCENARIOS.items()}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    mp.spawn(worker, args=(free_port(), sys.argv[1]), nprocs=2)
