"""The training order and augmentation draws follow from (seed, epoch, index) alone."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from gsavl_cli.data.order import EpochOrder, SeededItems, item_seed


class _Draws(Dataset):
    """Item i is (i, a draw from torch's global RNG): what an augmentation sees."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple[int, float]:
        return index, float(torch.rand(()))


def test_each_epoch_is_a_permutation_and_epochs_differ():
    order = EpochOrder(10, seed=3)
    epochs = []
    for epoch in (1, 2):
        order.set_epoch(epoch)
        epochs.append([i for i, _ in order])
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1]
    order.set_epoch(1)
    assert [i for i, _ in order] == epochs[0]  # epoch 1 again: the same order (resume needs no state)
    assert [i for i, _ in EpochOrder(10, seed=4)] != epochs[0]  # another seed: another order


def test_ranks_split_the_epoch_without_overlap():
    whole = [i for i, _ in EpochOrder(10, seed=3)]
    ranks = [[i for i, _ in EpochOrder(10, seed=3, world=3, rank=r)] for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3]
    assert sorted(i for r in ranks for i in r) == sorted(whole[:9])  # the permutation cut to a multiple of the world
    assert ranks[1] == whole[1:9:3]


def test_item_draws_ignore_the_global_rng_and_leave_it_alone():
    items = SeededItems(_Draws())
    torch.manual_seed(0)
    first = items[(4, item_seed(1, 2, 4))]
    before = torch.get_rng_state()
    torch.manual_seed(99)
    again = items[(4, item_seed(1, 2, 4))]
    assert first == again
    assert items[(4, item_seed(1, 3, 4))] != first  # another epoch: another draw
    torch.manual_seed(0)
    items[(5, item_seed(1, 2, 5))]
    torch.manual_seed(0)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_loader_gives_the_same_batches_with_any_worker_count():
    def batches(workers: int) -> list[list[float]]:
        order = EpochOrder(10, seed=5)
        loader = DataLoader(
            SeededItems(_Draws()), batch_size=5, sampler=order, num_workers=workers, persistent_workers=workers > 0
        )
        out = []
        for epoch in (1, 2, 3):
            order.set_epoch(epoch)
            out += [batch[1].tolist() for batch in loader]
        return out

    assert batches(0) == batches(2)
