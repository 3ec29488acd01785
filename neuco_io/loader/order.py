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

from neuco_io.loader.split import Consumer, Record, canonical_order, plan_epoch

__all__ = ["ConsumerPlan", "Generation", "buffer_shuffle", "consumer_plan", "in_order", "remaining_order"]


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
    """What one consumer reads (runs of ascending rows, in reading order) and the order it yields them in
    (positions in the concatenated runs)."""

    runs: list[tuple[int, list[int]]]
    order: list[int]

    def records(self) -> list[Record]:
        stream = [(shard, row) for shard, rows in self.runs for row in rows]
        return [stream[p] for p in self.order]


def buffer_shuffle(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Shuffle a stream through a buffer of `size` items (seeded: the same seed gives the same order)."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = int(rng.integers(len(buffer)))
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


def consumer_plan(counts: list[int], consumer: Consumer, *, epoch: int, seed: int, shuffle: int,
                  equal_per_rank: bool | str, order: list[Record] | None = None, generation: int = 0
                  ) -> ConsumerPlan:
    """The consumer's runs and yield order in an epoch, or in what is left of it (`order`, the `generation`-th
    set-up of consumers since the epoch began)."""
    runs = plan_epoch(counts, consumer, epoch=epoch, seed=seed, shuffle=shuffle > 0, equal_per_rank=equal_per_rank,
                      order=order)
    positions = range(sum(len(rows) for _, rows in runs))
    if shuffle <= 1:
        return ConsumerPlan(runs, list(positions))
    key = [seed, epoch, consumer.index, 1] + ([generation] if generation else [])
    return ConsumerPlan(runs, list(buffer_shuffle(iter(positions), shuffle, np.random.default_rng(key))))


def remaining_order(counts: list[int], history: Sequence[Generation], *, epoch: int, seed: int, shuffle: int,
                    equal_per_rank: bool | str) -> list[Record]:
    """The canonical order of the epoch without every record the set-ups in `history` yielded (each replayed
    from its own plan, on positions: nothing is read)."""
    order = canonical_order(counts, epoch=epoch, seed=seed, shuffle=shuffle > 0)
    for g, generation in enumerate(history):
        done: set[Record] = set()
        for index in range(generation.consumers):
            n = generation.yielded.get(index, 0)
            if n:
                plan = consumer_plan(counts, generation.consumer(index), epoch=epoch, seed=seed, shuffle=shuffle,
                                     equal_per_rank=equal_per_rank, order=order, generation=g)
                done.update(plan.records()[:n])
        order = [record for record in order if record not in done]
    return order


_SKIPPED = object()


def in_order(plan: ConsumerPlan, positions: Sequence[int], read: Callable[[int, list[int]], Iterator]) -> Iterator:
    """The records at `positions` of the plan, in that order, each shard read once and sequentially.

    `read(shard, rows)` yields (row, record) for ascending rows and may leave
    out a record it skipped (on_error="warn"). Records wait in memory only
    until their turn: with no shuffle that is one record, with a buffer
    shuffle about a buffer's worth, as when shuffling while reading.
    """
    wanted = set(positions)

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
        for position in positions:
            while position not in pending:
                got, record = next(source)
                pending[got] = record
            record = pending.pop(position)
            if record is not _SKIPPED:
                yield record
    finally:
        source.close()
