"""Who reads what: splitting records across DataLoader workers and distributed ranks.

Every consumer (a worker of a rank) gets a disjoint part of the epoch, and
together they get every record once. The epoch has one canonical order,
fixed by seed and epoch alone; ranks take contiguous parts of it, and a
rank's workers split its runs of records (or, with fewer runs than workers,
its records), so extra workers never idle forever and no rank hangs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Consumer", "canonical_order", "consumer_positions", "current_consumer", "records_per_rank", "runs_of"]


@dataclass(frozen=True)
class Consumer:
    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def total(self) -> int:
        return self.world_size * self.num_workers


def distributed_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else torch.distributed when initialized, else RANK/WORLD_SIZE, else 0/1."""
    if rank is not None or world_size is not None:
        if rank is None or world_size is None or not 0 <= rank < world_size:
            raise ValueError(f"rank/world_size: need both, with 0 <= rank < world_size (got {rank}, {world_size})")
        return rank, world_size
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def current_consumer(rank: int | None = None, world_size: int | None = None) -> Consumer:
    r, w = distributed_rank(rank, world_size)
    worker, num_workers = 0, 1
    try:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None:
            worker, num_workers = info.id, info.num_workers
    except ImportError:
        pass
    return Consumer(r, w, worker, num_workers)


def record_offsets(counts: list[int]) -> np.ndarray:
    """Where each shard's records start in the dataset's numbering (one more entry: the total)."""
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)


def canonical_order(counts: list[int], *, epoch: int = 0, seed: int = 0, shuffle: bool = False,
                    size: int | None = None, resampled: bool = False) -> np.ndarray:
    """The records of an epoch (their numbers: shard offset + row) in one order that depends on seed and
    epoch only, never on the number of ranks or workers (MosaicML's canonical order): shards in a seeded
    order with `shuffle`, rows ascending. Ranks and workers split it afterwards, so a job resumed on another
    number of GPUs continues the same epoch.

    `size` (epoch_size): that many records, the first of the order, or the data again (in the next seeded
    shard order) when there are fewer. `resampled`: shards drawn with replacement (in proportion to their
    records, seeded by seed and epoch), each read whole, until `size` records (webdataset's resampled shards).
    """
    offsets = record_offsets(counts)
    lengths_all = np.asarray(counts, dtype=np.int64)
    total = int(lengths_all.sum())
    size = total if size is None else int(size)
    if not total or not size:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    if resampled:
        draws = max(1, int(np.ceil(size / total * len(counts) * 1.5)) + 8)
        shards = rng.choice(len(counts), size=draws, p=lengths_all / total)
        while lengths_all[shards].sum() < size:
            shards = np.concatenate([shards, rng.choice(len(counts), size=draws, p=lengths_all / total)])
    else:
        rounds = -(-size // total)
        shards = np.concatenate([rng.permutation(len(counts)) if shuffle else np.arange(len(counts))
                                 for _ in range(rounds)])
    lengths = lengths_all[shards]
    firsts = np.cumsum(lengths) - lengths  # where each shard starts in the order
    order = np.repeat(offsets[shards] - firsts, lengths) + np.arange(lengths.sum(), dtype=np.int64)
    return order[:size]


def _bounds(total: int, rank: int, world_size: int) -> tuple[int, int]:
    return rank * total // world_size, (rank + 1) * total // world_size


def rank_positions(positions: np.ndarray, rank: int, world_size: int, equal_per_rank: bool | str = False
                   ) -> np.ndarray:
    """A rank's contiguous part of `positions` (the canonical order's, or what is left of them after a
    resume), so ranks differ by at most one record and each reads few shards. A rank's count does not
    change between epochs (its records do, with `shuffle`)."""
    start, end = _bounds(len(positions), rank, world_size)
    mine = positions[start:end]
    if not equal_per_rank or world_size == 1:
        return mine
    sizes = [b - a for a, b in (_bounds(len(positions), r, world_size) for r in range(world_size))]
    if equal_per_rank is True or equal_per_rank == "pad":
        if not len(mine):  # nothing of its own to repeat: borrow the first records of the epoch
            mine = positions[:1]
        return np.resize(mine, max(sizes)) if len(mine) else mine  # repeats from the start
    if equal_per_rank == "drop":
        return mine[: min(sizes)]
    raise ValueError(f"equal_per_rank: expected True, 'pad' or 'drop', got {equal_per_rank!r}")


def rank_records(counts: list[int], rank: int, world_size: int, *, epoch: int = 0, seed: int = 0,
                 shuffle: bool = False, equal_per_rank: bool | str = False) -> np.ndarray:
    """A rank's record numbers in a whole epoch (see `rank_positions`)."""
    order = canonical_order(counts, epoch=epoch, seed=seed, shuffle=shuffle)
    return order[rank_positions(np.arange(len(order)), rank, world_size, equal_per_rank)]


def _run_starts(records: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Where runs start: a run is consecutive records of one shard with ascending rows (one sequential read)."""
    if not len(records):
        return np.zeros(0, dtype=np.int64)
    shards = np.searchsorted(offsets, records, side="right") - 1
    breaks = (shards[1:] != shards[:-1]) | (records[1:] <= records[:-1])
    return np.concatenate([[0], np.flatnonzero(breaks) + 1])


def consumer_positions(counts: list[int], consumer: Consumer, canonical: np.ndarray, *,
                       positions: np.ndarray | None = None, equal_per_rank: bool | str = False) -> np.ndarray:
    """The positions in `canonical` this consumer reads in an epoch, in reading order.

    Two levels: ranks split the canonical order (or what is left of it:
    `positions`) into contiguous parts, then a rank's workers split its runs
    (or, with fewer runs than workers, its records). `equal_per_rank` ("pad"
    or True; or "drop") makes every rank read the same number of records, as
    DDP needs: "pad" repeats records from the start of the rank's own share,
    "drop" leaves out its last ones. A rank's records do not depend on its
    number of workers.
    """
    if positions is None:
        positions = np.arange(len(canonical))
    mine = rank_positions(positions, consumer.rank, consumer.world_size, equal_per_rank)
    starts = _run_starts(canonical[mine], record_offsets(counts))
    if len(starts) < consumer.num_workers:
        return mine[consumer.worker::consumer.num_workers]
    ends = np.append(starts[1:], len(mine))
    return np.concatenate([mine[starts[i]:ends[i]] for i in range(consumer.worker, len(starts),
                                                                    consumer.num_workers)])


def runs_of(records: np.ndarray, counts: list[int]) -> list[tuple[int, list[int]]]:
    """(shard index, ascending rows) per run of `records` (record numbers), in order."""
    offsets = record_offsets(counts)
    starts = _run_starts(records, offsets)
    runs = []
    for start, end in zip(starts, np.append(starts[1:], len(records))):
        chunk = records[start:end]
        shard = int(np.searchsorted(offsets, chunk[0], side="right") - 1)
        runs.append((shard, (chunk - offsets[shard]).tolist()))
    return runs


def records_per_rank(counts: list[int], rank: int, world_size: int, equal_per_rank: bool | str = False,
                     total: int | None = None) -> int:
    """How many records a rank yields in a whole epoch (of `total` records, all by default), whatever the
    shuffle and its number of workers, counted without listing them: what `rank_records` returns has this
    length."""
    total = sum(counts) if total is None else total
    sizes = [b - a for a, b in (_bounds(total, r, world_size) for r in range(world_size))]
    if not equal_per_rank or world_size == 1:
        return sizes[rank]
    if equal_per_rank is True or equal_per_rank == "pad":
        return max(sizes)
    if equal_per_rank == "drop":
        return min(sizes)
    raise ValueError(f"equal_per_rank: expected True, 'pad' or 'drop', got {equal_per_rank!r}")
