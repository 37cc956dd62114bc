"""What a training run draws at each step: the order of the items, and the learning rate.

* :class:`EpochBatches` cuts a seeded permutation of the data set into batches, one epoch at
  a time; :func:`epoch_loader` wraps it in a ``DataLoader``.
* :func:`learning_rate` is the schedule: cosine, the official step schedule, or constant,
  with a linear warm-up.

Reproducibility rests here.  The order of epoch ``e`` is drawn from ``(seed, e)`` alone, and
every loader gets its own generator seeded the same way, so that no loader draws from
PyTorch's global random state (a ``DataLoader`` draws a seed for its workers each time it
starts an epoch, from the global state unless it has a generator of its own).  The global
state is then left to the model (dropout), and a run resumed from a checkpoint, which
restores it, draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from course_lib.validation import check_integer


class EpochBatches(torch.utils.data.Sampler):
    """Batches of indices for one epoch: a permutation drawn from ``(seed, epoch)``, cut into full batches.

    Starting at ``start`` (a batch number) skips the batches an interrupted run already used.

    Distributed training (``world_size`` processes, this one being ``rank``): every process
    draws the same permutation and cuts it into global batches of ``batch_size * world_size``
    items; process ``rank`` reads items ``[rank * batch_size, (rank + 1) * batch_size)`` of
    each.  The processes together see exactly the batches one process with batch
    ``batch_size * world_size`` would see, which is what makes the two runs agree.
    """

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int, start: int = 0, *,
                 rank: int = 0, world_size: int = 1) -> None:
        generator = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
        self.order = torch.randperm(size, generator=generator).tolist()
        self.world_size = check_integer(world_size, "world_size", minimum=1)
        self.rank = check_integer(rank, "rank", minimum=0, maximum=self.world_size - 1)
        self.batch_size, self.start = batch_size, start

    def __len__(self) -> int:
        return len(self.order) // (self.batch_size * self.world_size) - self.start

    def __iter__(self) -> Iterator[list[int]]:
        global_batch = self.batch_size * self.world_size
        for b in range(self.start, len(self.order) // global_batch):
            first = b * global_batch + self.rank * self.batch_size
            yield self.order[first:first + self.batch_size]


def _epoch_seed(seed: int, epoch: int) -> int:
    """One number per ``(seed, epoch)``: the seed of that epoch's order and of its loader."""
    return int(seed) * 1_000_003 + int(epoch)


def epoch_loader(
    data: torch.utils.data.Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    start: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
    collate_fn=None,
) -> torch.utils.data.DataLoader:
    """The ``DataLoader`` of epoch ``epoch``: :class:`EpochBatches` from batch ``start`` on, and its own generator.

    The generator (seeded from ``(seed, epoch)``) is what the loader draws its workers' seed
    from, so that starting an epoch, or resuming one halfway, never touches the global
    random state.  ``rank`` and ``world_size`` select this process's share of each batch
    (:class:`EpochBatches`); ``collate_fn`` replaces ``default_collate``.
    """
    batches = EpochBatches(len(data), check_integer(batch_size, "batch_size", minimum=1), seed, epoch, start=start,
                           rank=rank, world_size=world_size)
    return torch.utils.data.DataLoader(
        data,
        batch_sampler=batches,
        num_workers=check_integer(num_workers, "num_workers", minimum=0),
        pin_memory=pin_memory,
        persistent_workers=False,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)),
    )


def learning_rate(base: float, progress: float, schedule: str, warmup: float = 0.0,
                  milestones: tuple[float, ...] = (2 / 3, 8 / 9), factor: float = 0.1) -> float:
    """Learning rate at ``progress`` in [0, 1] of the run.

    * ``"cosine"``: ``lr = base (1 + cos(pi p)) / 2`` (Loshchilov & Hutter 2017);
    * ``"step"``: ``lr = base * factor ** (number of milestones <= p)``, by default x0.1 at
      2/3 and x0.01 at 8/9 of the run.  The official recipes place the milestones at
      epochs 170 and 200 of 210 (HRNet) or 90 and 120 of 140 (SimpleBaseline): pass
      ``milestones=(170 / 210, 200 / 210)`` (see :mod:`course_lib.recipes`);
    * ``"constant"``.

    A linear warm-up over the first ``warmup`` fraction multiplies any of them.
    """
    p = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        lr = base * 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule == "step":
        lr = base * factor ** sum(p >= m for m in milestones)
    else:
        lr = base
    if warmup > 0 and p < warmup:
        lr *= (p / warmup) * 0.9 + 0.1
    return lr
