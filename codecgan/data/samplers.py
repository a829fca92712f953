"""Samplers that make training resumable to the batch and validation exact under DDP.

Both yield ``(index, epoch)`` keys, which ``CroppedDataset`` turns into crops that are a pure
function of ``(seed, epoch, index)``: the data never depends on worker count, call order or RNG state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence, Sized
from itertools import islice

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, DistributedSampler


class ResumableTrainSampler(DistributedSampler):
    """A seeded per-epoch permutation, split evenly across ranks, that can resume mid-epoch.

    Every rank gets ``len(dataset) // world_size`` items (the tail is dropped) so all ranks run the
    same number of batches: Lightning runs a collective every training batch under DDP.

    Args:
        dataset: the training dataset.
        batch_size: items per batch, to convert finished batches into items to skip.
        position: called when an epoch's iteration starts; returns ``(batches trained so far, current
            epoch)``. codecgan counts one step per batch, so after a mid-epoch resume the batches of
            this epoch already trained are ``steps - epoch * batches_per_epoch``. Both numbers come
            from the checkpoint, which is restored before any iterator exists (Lightning's own batch
            progress reads one batch short when the loader has worker processes).
        num_replicas, rank: the DDP world size and this process's rank.
        seed: the permutation is ``randperm(len, seed + epoch)``, identical on every rank.
        shuffle: ``False`` visits the items in index order, for datasets whose items are already
            independent random draws (``ExcerptDataset``); its order costs no memory, where a
            permutation of millions of excerpts would cost gigabytes per worker.
        items_per_epoch: use only the first ``items_per_epoch`` items of each epoch's order (all ranks
            together, rounded down to whole batches per rank); ``None``: all of them.
        passes: yield the epoch's items this many times in the same order, each pass the same crops
            (MetricGAN+ trains its discriminator twice and then its generator on one set of utterances).
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        position: Callable[[], tuple[int, int]] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        items_per_epoch: int | None = None,
        passes: int = 1,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.position = position
        self.items_per_epoch, self.passes = items_per_epoch, passes
        self.pass_items = self.num_samples
        if items_per_epoch is not None:
            mine = min(self.num_samples, items_per_epoch // num_replicas)
            self.pass_items = mine - mine % batch_size
        self.num_samples = self.pass_items * passes

    def batches_done(self) -> int:
        if self.position is None:
            return 0
        steps, epoch = self.position()
        per_epoch = self.num_samples // self.batch_size
        return max(0, min(per_epoch, steps - epoch * per_epoch))

    def _pass_order(self) -> Sequence[int]:
        """This rank's items of one pass of the current epoch."""
        if not self.shuffle:
            return range(self.rank, self.total_size, self.num_replicas)[: self.pass_items]
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        return order[self.rank : self.total_size : self.num_replicas][: self.pass_items]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip = self.batches_done() * self.batch_size
        epoch, mine = self.epoch, self._pass_order()
        keys = (index for _ in range(self.passes) for index in mine)
        return ((index, epoch) for index in islice(keys, skip, None))


class EvaluationSampler(DistributedSampler):
    """Every validation/test item exactly once across ranks, in a fixed order, without padding.

    torch's DistributedSampler pads the last shard with repeated items, which biases every metric and
    count (Lightning #5060). Ranks may therefore run one batch fewer than others; codecgan's
    validation has no per-batch collectives, so that is safe.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(index, self.epoch) for index in range(self.rank, len(self.dataset), self.num_replicas)])


class ResumableDataLoader(DataLoader):
    """The training DataLoader; its checkpoint state says which data order it was drawing.

    The position inside the epoch needs no state of its own: ``ResumableTrainSampler`` asks the
    trainer's restored batch counter. What can silently break an exact resume is a different data
    order — another seed, world size, dataset size, ``samples_per_epoch`` or ``epoch_passes`` — so that
    is saved and checked on load.
    """

    def state_dict(self) -> dict[str, int | None]:
        sampler = self.sampler
        state = {"seed": sampler.seed, "num_replicas": sampler.num_replicas, "dataset_size": len(self.dataset)}
        if sampler.items_per_epoch is not None or sampler.passes != 1:  # absent otherwise, as in older checkpoints
            state.update(samples_per_epoch=sampler.items_per_epoch, epoch_passes=sampler.passes)
        return state

    def load_state_dict(self, state: dict[str, int]) -> None:
        current = self.state_dict()
        if state != current:
            rank_zero_warn(
                f"The training data order changed since the checkpoint (was {state}, now {current}): "
                "the resumed run will not see the batches an uninterrupted run would have seen."
            )
