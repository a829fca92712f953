"""Two gloo processes run a LossBalancer on different batches of different sizes and save what each rank holds.

    python tests/losses/balancer_ddp_script.py OUT_DIR

Rank r sees the problem of tests/fixtures/balancer/problem.py at step ``10 r + step``, with 3 items on rank 0 and 2
on rank 1, so the ranks' own norms differ. Each writes ``rank<r>.pt``: its per-step norms (for the test's
single-process expectation), factors, balanced gradients and final moving-average state.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from codecgan.losses.balancer import LossBalancer
from tests.ddp_helpers import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "balancer"))
from problem import STEPS, WEIGHTS, losses, step_inputs  # noqa: E402

BATCH_SIZES = (3, 2)


def rank_inputs(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    y, target = step_inputs(10 * rank + step)
    return y[: BATCH_SIZES[rank]].clone(), target[: BATCH_SIZES[rank]].clone()


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))  # fmt: skip
    balancer = LossBalancer(WEIGHTS)
    own_norms, factors, gradients = [], [], []
    for step in range(STEPS):
        y, target = rank_inputs(rank, step)
        y.requires_grad_(True)
        terms = losses(y, target)
        grads = [torch.autograd.grad(terms[name], y, retain_graph=True)[0] for name in WEIGHTS]
        own_norms.append(torch.stack([g.flatten(1).norm(dim=1).mean() for g in grads]).double())
        gradient, stats = balancer(terms, y)
        factors.append(torch.stack([stats[f"weight_{name}"] for name in WEIGHTS]))
        gradients.append(gradient)
    torch.save(
        {
            "own_norms": torch.stack(own_norms),
            "factors": torch.stack(factors),
            "gradients": gradients,
            "state": balancer.state_dict(),
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(free_port(), sys.argv[1]), nprocs=2)
