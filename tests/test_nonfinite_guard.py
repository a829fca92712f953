"""NonFiniteGuard on scripted batches: the device-side counters, the stop after too many non-finite batches in a row,
the schedulers' waits, their checkpoint state, and the buffer names existing checkpoints hold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from codecgan.lightning_cli import build_cli
from codecgan.nonfinite_guard import NonFiniteGuard, NonFiniteTrainingError
from tests.conftest import EXPERIMENTS


def flags(generator: bool, discriminator: bool) -> torch.Tensor:
    return torch.tensor([generator, discriminator])


class CountingScheduler:
    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> None:
        self.steps += 1


def test_counters_follow_a_scripted_run_of_batches() -> None:
    module = nn.Module()
    guard = NonFiniteGuard(module, max_in_a_row=5)
    in_a_row = []
    # (skipped: non-finite generator / discriminator step, not stepped: also the discriminator's asked-for skips)
    script = [
        (flags(False, False), flags(False, False)),
        (flags(True, False), flags(True, False)),
        (flags(False, True), flags(False, True)),
        (flags(False, False), flags(False, True)),  # a finite batch whose discriminator update was dropped
        (flags(True, True), flags(True, True)),
    ]
    for skipped, not_stepped in script:
        guard.count(skipped, not_stepped)
        in_a_row.append(int(module.nonfinite_in_a_row))
    assert in_a_row == [0, 1, 2, 0, 1]
    assert int(module.nonfinite_steps) == 3
    assert module.unread_skipped_steps.tolist() == [2, 3]
    guard.read(step=5)
    assert guard.scheduler_waits == [2, 3] and module.unread_skipped_steps.tolist() == [0, 0]


def test_too_many_non_finite_batches_in_a_row_stop_at_the_read_with_the_numbers() -> None:
    module = nn.Module()
    guard = NonFiniteGuard(module, max_in_a_row=3)
    guard.count(flags(True, False), flags(True, False))
    guard.count(flags(False, False), flags(False, False))
    for _ in range(2):
        guard.count(flags(False, True), flags(False, True))
    guard.read(step=4)  # 2 in a row: below the limit
    guard.count(flags(True, True), flags(True, True))
    with pytest.raises(NonFiniteTrainingError, match=r"3 batches in a row .*step 5, 4 in total"):
        guard.read(step=5)


def test_a_scheduler_waits_one_batch_per_skipped_step() -> None:
    guard = NonFiniteGuard(nn.Module(), max_in_a_row=10)
    guard.count(flags(True, False), flags(True, True))
    guard.count(flags(True, False), flags(True, False))
    guard.read(step=2)
    generator, discriminator = CountingScheduler(), CountingScheduler()
    for _ in range(5):
        guard.step_scheduler(generator, 0)
        guard.step_scheduler(discriminator, 1)
    assert (generator.steps, discriminator.steps) == (3, 4)
    assert guard.scheduler_waits == [0, 0]


def test_the_waits_round_trip_through_a_checkpoint_with_the_unread_skips() -> None:
    module = nn.Module()
    guard = NonFiniteGuard(module, max_in_a_row=10)
    guard.count(flags(True, False), flags(True, True))
    guard.read(step=1)
    guard.count(flags(False, False), flags(False, True))  # not read yet: the checkpoint still owes it
    checkpoint: dict = {}
    guard.save(checkpoint)
    assert checkpoint["scheduler_waits"] == [1, 2]
    resumed = NonFiniteGuard(nn.Module(), max_in_a_row=10)
    resumed.load(checkpoint)
    assert resumed.scheduler_waits == [1, 2]
    resumed.load({})  # a checkpoint without waits
    assert resumed.scheduler_waits == [0, 0]


def test_the_guard_counts_on_the_buffers_the_module_holds_after_it_moved() -> None:
    module = nn.Module()
    guard = NonFiniteGuard(module, max_in_a_row=10)
    module._apply(torch.clone)  # what .to(device) does: every buffer replaced by a new tensor
    guard.count(flags(True, False), flags(True, False))
    assert int(module.nonfinite_steps) == 1 and module.unread_skipped_steps.tolist() == [1, 0]


def test_a_gan_modules_checkpoint_holds_the_counters_at_its_top_level(tmp_path) -> None:
    cli = build_cli(
        ["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--trainer.default_root_dir", str(tmp_path)], run=False
    )
    state = cli.model.state_dict()
    assert {"nonfinite_steps", "nonfinite_in_a_row"} <= set(state)
    assert not any(key.endswith("unread_skipped_steps") for key in state)
    state["nonfinite_steps"], state["nonfinite_in_a_row"] = torch.tensor(7), torch.tensor(2)
    cli.model.load_state_dict(state)
    assert int(cli.model.nonfinite_steps) == 7 and int(cli.model.nonfinite_in_a_row) == 2


def test_max_in_a_row_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_nonfinite_in_a_row must be >= 1, got 0"):
        NonFiniteGuard(nn.Module(), max_in_a_row=0)
