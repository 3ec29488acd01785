"""The position of a `ShardDataset` in an epoch, as a plain dict (`state_dict()` / `load_state_dict()`).

A state says which epoch, under which seed and shuffle, and how many records
each consumer (a DataLoader worker of a rank) yielded, for every set-up of
consumers the epoch ran under so far. That is enough to resume on the same
set-up (each consumer skips what it yielded, and the rest comes in the order
the uninterrupted run would have used) or on another number of workers and
ranks (what is left of the epoch is split again).

Inside a torchdata `StatefulDataLoader` every worker reports its own position;
`load_state_dict` takes such a loader's `state_dict()` as it is, or a list of
them (one per rank), and merges them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neuco_io.errors import UsageError
from neuco_io.loader.order import Generation

__all__ = ["LoaderState", "loader_states"]

STATE_FORMAT = "neuco-io.loader-state"
STATE_VERSION = 1


@dataclass
class LoaderState:
    """Where an epoch stands. `current` is the set-up running now (None: nothing yielded yet)."""

    epoch: int
    seed: int
    shuffle: int
    equal_per_rank: bool | str
    records: int
    history: list[Generation] = field(default_factory=list)
    current: Generation | None = None
    dataset: str = ""
    """A fingerprint of what the epoch's plan depends on besides the fields above (the shards, their records
    and sha256, `ids`, `epoch_size`, `resampled`): a state from other data is refused, not replayed."""

    def to_dict(self) -> dict[str, Any]:
        def gen(g: Generation) -> dict[str, Any]:
            return {"world_size": g.world_size, "num_workers": g.num_workers,
                    "yielded": {str(k): v for k, v in sorted(g.yielded.items())}}

        return {"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": self.epoch, "seed": self.seed,
                "shuffle": self.shuffle, "equal_per_rank": self.equal_per_rank, "records": self.records,
                "history": [gen(g) for g in self.history],
                "current": gen(self.current) if self.current is not None else None, "dataset": self.dataset}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LoaderState:
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise UsageError("load_state_dict: not a ShardDataset state (no \"format\": "
                             f"\"{STATE_FORMAT}\"); pass what ShardDataset.state_dict() or "
                             "StatefulDataLoader.state_dict() returned")
        if state.get("version") != STATE_VERSION:
            raise UsageError(f"load_state_dict: state version {state.get('version')!r}; this neuco-io reads "
                             f"version {STATE_VERSION}")
        try:
            return cls(int(state["epoch"]), state["seed"], int(state["shuffle"]), state["equal_per_rank"],
                       int(state["records"]), [_generation(g) for g in state["history"]],
                       _generation(state["current"]) if state["current"] is not None else None,
                       str(state["dataset"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"load_state_dict: a malformed ShardDataset state ({exc!r})") from None

    def same_run(self, other: LoaderState) -> bool:
        return (self.epoch, self.seed, self.shuffle, self.equal_per_rank, self.records, self.history, self.dataset) == \
            (other.epoch, other.seed, other.shuffle, other.equal_per_rank, other.records, other.history, other.dataset)


def _generation(g: Mapping[str, Any]) -> Generation:
    world, workers = int(g["world_size"]), int(g["num_workers"])
    yielded = {int(k): int(v) for k, v in g["yielded"].items()}
    if world < 1 or workers < 1 or any(not 0 <= k < world * workers or v < 0 for k, v in yielded.items()):
        raise ValueError(f"consumers out of range in {dict(g)}")
    return Generation(world, workers, yielded)


def loader_states(state: Any, fmt: str = STATE_FORMAT) -> list[Mapping[str, Any]]:
    """The dataset states (of format `fmt`) inside what the caller passed: a state, a StatefulDataLoader
    state (every worker's), or a list of either (one per rank)."""
    if isinstance(state, Sequence) and not isinstance(state, (str, bytes)):
        return [s for item in state for s in loader_states(item, fmt)]
    if not isinstance(state, Mapping):
        raise UsageError(f"load_state_dict: expected a state dict (or a list of them), got {type(state).__name__}")
    if state.get("format") == fmt:
        return [state]
    snapshots = (state.get("_snapshot") or {}).get("_worker_snapshots")
    if isinstance(snapshots, Mapping):  # StatefulDataLoader with workers
        return [s for snap in snapshots.values() if snap.get("dataset_state") is not None
                for s in loader_states(snap["dataset_state"], fmt)]
    if state.get("dataset_state") is not None:  # StatefulDataLoader without workers
        return loader_states(state["dataset_state"], fmt)
    raise UsageError(f"load_state_dict: not a ShardDataset, MixedDataset or StatefulDataLoader state (no "
                     f"\"format\": \"{fmt}\" in it)")


def merge(states: Sequence[LoaderState]) -> LoaderState:
    """One state from the states of several consumers of one run (every worker of every rank)."""
    first = states[0]
    yielded: dict[int, int] = {}
    setup = None
    for state in states:
        if not state.same_run(first):
            raise UsageError("load_state_dict: the states come from different runs (epoch, seed, shuffle, "
                             "dataset or history differ)")
        if state.current is None:
            continue
        if setup is not None and setup != (state.current.world_size, state.current.num_workers):
            raise UsageError("load_state_dict: the states come from different numbers of workers or ranks")
        setup = (state.current.world_size, state.current.num_workers)
        for index, n in state.current.yielded.items():
            if yielded.get(index, n) != n:
                raise UsageError(f"load_state_dict: two states disagree on consumer {index} ({yielded[index]} and "
                                 f"{n} records yielded)")
            yielded[index] = n
    current = Generation(setup[0], setup[1], yielded) if setup is not None else None
    return LoaderState(first.epoch, first.seed, first.shuffle, first.equal_per_rank, first.records,
                       list(first.history), current, first.dataset)
