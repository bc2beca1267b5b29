"""The order of training items and their augmentation draws, as a function of (seed, epoch, index).

A training run must be the same run whatever `--workers` says: the worker count is a
speed knob. torch's DataLoader does not give that by itself. Its shuffling generator
is also drawn for the workers' base seed once per *iterator*, and a persistent-worker
loader makes one iterator for the whole run while a `--workers 0` loader makes one
per epoch, so from the second epoch on the two orders differ; and the augmentation's
random draws come from the main process's global RNG with no workers but from
per-worker seeds with them. `EpochOrder` and `SeededItems` remove both: the epoch's
permutation is drawn from a generator seeded with (seed, epoch), and each item's
augmentation from one seeded with (seed, epoch, index) inside `torch.random.fork_rng`,
so the main process's own RNG stream (dropout, initialisation) is untouched. Resume
needs no loader RNG state either: epoch E's order follows from the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

_MIX = 1_000_003  # keeps (epoch, index) pairs apart in the item seed


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s permutation."""
    return seed * _MIX + epoch


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one item's augmentation draws in one epoch."""
    return (epoch_seed(seed, epoch) * _MIX + index) % (2**63)


class EpochOrder(Sampler[tuple[int, int]]):
    """A seeded permutation per epoch, split across `world` ranks, yielding (index, item seed).

    With `world` > 1 each rank takes every world-th item of the permutation truncated to a
    multiple of `world` (what DistributedSampler does with drop_last), so the ranks together
    see each clip at most once per epoch.
    """

    def __init__(self, size: int, seed: int, world: int = 1, rank: int = 0) -> None:
        self.size, self.seed, self.world, self.rank = size, seed, world, rank
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Chooses the epoch whose order the next iteration yields (1-based, as the train loop counts)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        mine = order[: len(self) * self.world][self.rank :: self.world]
        return iter([(i, item_seed(self.seed, self.epoch, i)) for i in mine])


class SeededItems(Dataset):
    """`dataset[index]` with torch's RNG seeded for that item, from an `EpochOrder` key."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]
