"""The order a consumer yields records in, and what is left of an epoch after an interruption.

An epoch's records come from the canonical order (`split.canonical_order`),
split among consumers (workers of ranks), then mixed per consumer through a
seeded buffer shuffle. The buffer shuffle's choices depend only on counts and
its seed, never on the records, so the yield order is computed on positions
before anything is read: a resumed consumer knows which records it already
yielded without reading them, and what any set-up of consumers yielded can be
replayed in a fraction of a second (`remaining_order`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuco_io.loader.split import Consumer, consumer_positions, runs_of

__all__ = ["ConsumerPlan", "Generation", "buffer_shuffle", "consumer_plan", "in_order", "remaining_positions"]


@dataclass(frozen=True)
class Generation:
    """One stretch of an epoch run by one set-up of consumers, and how far each consumer got."""

    world_size: int
    num_workers: int
    yielded: dict[int, int]
    """Consumer index (rank * num_workers + worker) -> records it yielded."""

    @property
    def consumers(self) -> int:
        return self.world_size * self.num_workers

    def consumer(self, index: int) -> Consumer:
        return Consumer(index // self.num_workers, self.world_size, index % self.num_workers, self.num_workers)


@dataclass(frozen=True)
class ConsumerPlan:
    """What one consumer reads (positions in the canonical order, in reading order: `stream`) and the order
    it yields them in (indices into `stream`)."""

    stream: np.ndarray
    order: np.ndarray
    canonical: np.ndarray
    counts: list[int]

    @property
    def runs(self) -> list[tuple[int, list[int]]]:
        """(shard, ascending rows) per sequential read, in reading order."""
        return runs_of(self.canonical[self.stream], self.counts)

    def records(self) -> np.ndarray:
        """Record numbers in yield order."""
        return self.canonical[self.stream[self.order]]


def buffer_shuffle(n: int, size: int, rng: np.random.Generator, first: int | None = None) -> np.ndarray:
    """The order a stream of n items leaves a shuffle buffer of `size` items in (seeded): each new item
    swaps with a random one of the full buffer, which is emptied in random order at the end. The choices
    depend on counts only, so they are drawn up front; `first` stops once that many are known."""
    draws = rng.integers(size, size=max(0, n - size)).tolist()
    out: list[int] = []
    buffer = list(range(min(size, n)))
    for item, i in zip(range(size, n), draws):
        if first is not None and len(out) >= first:
            return np.asarray(out, dtype=np.int64)
        buffer[i], item = item, buffer[i]
        out.append(item)
    rng.shuffle(buffer)
    return np.asarray(out + buffer, dtype=np.int64)


def consumer_plan(counts: list[int], consumer: Consumer, canonical: np.ndarray, *, epoch: int, seed: int,
                  shuffle: int, equal_per_rank: bool | str, positions: np.ndarray | None = None,
                  generation: int = 0, first: int | None = None) -> ConsumerPlan:
    """The consumer's records and yield order in an epoch (`canonical`), or in what is left of it
    (`positions`, the `generation`-th set-up of consumers since the epoch began). With `first`, the yield
    order may stop after that many (all a replay needs)."""
    stream = consumer_positions(counts, consumer, canonical, positions=positions, equal_per_rank=equal_per_rank)
    if shuffle <= 1:
        return ConsumerPlan(stream, np.arange(len(stream)), canonical, counts)
    key = [seed, epoch, consumer.index, 1] + ([generation] if generation else [])
    return ConsumerPlan(stream, buffer_shuffle(len(stream), shuffle, np.random.default_rng(key), first), canonical,
                        counts)


def remaining_positions(counts: list[int], history: Sequence[Generation], canonical: np.ndarray, *, epoch: int,
                        seed: int, shuffle: int, equal_per_rank: bool | str) -> np.ndarray:
    """The positions of the canonical order not yielded by the set-ups in `history` (each replayed from its
    own plan, on positions: nothing is read)."""
    positions = np.arange(len(canonical))
    for g, generation in enumerate(history):
        done = [np.zeros(0, dtype=np.int64)]
        for index, n in sorted(generation.yielded.items()):  # not range(consumers): a state may claim 10**18
            if n:
                plan = consumer_plan(counts, generation.consumer(index), canonical, epoch=epoch, seed=seed,
                                     shuffle=shuffle, equal_per_rank=equal_per_rank, positions=positions,
                                     generation=g, first=n)
                done.append(plan.stream[plan.order[:n]])
        positions = positions[~np.isin(positions, np.concatenate(done))]
    return positions


_SKIPPED = object()


def in_order(plan: ConsumerPlan, positions: Sequence[int], read: Callable[[int, list[int]], Iterator]) -> Iterator:
    """The records at `positions` of the plan, in that order, each shard read once and sequentially.

    `read(shard, rows)` yields (row, record) for ascending rows and may leave
    out a record it skipped (on_error="warn"). Records wait in memory only
    until their turn: with no shuffle that is one record, with a buffer
    shuffle about a buffer's worth, as when shuffling while reading.
    """
    wanted = set(np.asarray(positions).tolist())

    def reading() -> Iterator[tuple[int, Any]]:
        base = 0
        for shard, rows in plan.runs:
            where = {row: base + i for i, row in enumerate(rows) if base + i in wanted}
            base += len(rows)
            if not where:
                continue
            seen = set()
            for row, record in read(shard, list(where)):
                seen.add(row)
                yield where[row], record
            for row, position in where.items():
                if row not in seen:
                    yield position, _SKIPPED

    source = reading()
    pending: dict[int, Any] = {}
    try:
        for position in np.asarray(positions).tolist():
            while position not in pending:
                got, record = next(source)
                pending[got] = record
            record = pending.pop(position)
            if record is not _SKIPPED:
                yield record
    finally:
        source.close()
