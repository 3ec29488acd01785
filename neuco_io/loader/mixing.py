"""`MixedDataset`: several datasets in one stream, drawn by weight (litdata's CombinedStreamingDataset,
MosaicML's Stream proportions).

Each sample comes from source i with probability weights[i]; the draws are
seeded by seed, the epoch and the consumer (DataLoader worker of a rank), so
an epoch is the same every time it is run. The epoch ends when a source runs
out (the proportions then hold to the end); give sources `epoch_size` and
`resampled=True` for a fixed number of samples per epoch. Resumable like
`ShardDataset`: the state holds each source's state and the number of draws.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from neuco_io.errors import UsageError
from neuco_io.loader.datasets import _IterBase
from neuco_io.loader.epoch import EpochMixin, SharedEpoch
from neuco_io.loader.split import current_consumer
from neuco_io.loader.state import loader_states

__all__ = ["MixedDataset"]

MIXED_FORMAT = "neuco-io.mixed-state"
BLOCK = 4096
"""Draws made at a time."""


class MixedDataset(EpochMixin, _IterBase):
    """Samples of `datasets` (iterable datasets, e.g. ShardDatasets), each drawn from source i with
    probability `weights[i]` (normalized; equal by default), deterministic per `seed` and epoch.
    `set_epoch` reaches every source."""

    def __init__(self, datasets: Sequence[Any], weights: Sequence[float] | None = None, seed: int = 0) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise UsageError("MixedDataset: give at least one dataset")
        raw = np.ones(len(self.datasets)) if weights is None else np.asarray(weights, dtype=np.float64)
        if raw.shape != (len(self.datasets),) or not np.isfinite(raw).all() or (raw < 0).any() or raw.sum() <= 0:
            raise UsageError(f"MixedDataset: weights must be {len(self.datasets)} non-negative numbers, not all 0, "
                             f"got {weights!r}")
        self.weights = raw / raw.sum()
        self.seed = seed
        self._epoch = SharedEpoch()
        self._resume: dict[str, Any] | None = None
        self._progress: dict[str, Any] | None = None

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        for dataset in self.datasets:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        consumer = current_consumer(getattr(self.datasets[0], "rank", None),
                                    getattr(self.datasets[0], "world_size", None))
        epoch = self.epoch
        setup = [consumer.world_size, consumer.num_workers]
        generation, skip = 0, 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            same = self._resume["setup"] == setup
            generation = self._resume["generation"] + (0 if same else 1)
            skip = self._resume["draws"].get(str(consumer.index), 0) if same else 0
        rng = np.random.default_rng([self.seed, epoch, consumer.index, 2, generation])
        progress = {"format": MIXED_FORMAT, "epoch": epoch, "seed": self.seed, "setup": setup,
                    "generation": generation, "draws": {str(consumer.index): skip}}
        self._progress = progress
        for _ in range(skip // BLOCK):  # the draws already made: replayed, nothing read
            rng.choice(len(self.datasets), size=BLOCK, p=self.weights)
        choices = rng.choice(len(self.datasets), size=BLOCK, p=self.weights)[skip % BLOCK:]
        iterators = [iter(d) for d in self.datasets]
        try:
            while True:
                for source in choices.tolist():
                    try:
                        sample = next(iterators[source])
                    except StopIteration:
                        self._resume = None
                        return
                    progress["draws"][str(consumer.index)] += 1
                    yield sample
                choices = rng.choice(len(self.datasets), size=BLOCK, p=self.weights)
        finally:
            for it in iterators:
                if hasattr(it, "close"):
                    it.close()

    def state_dict(self) -> dict[str, Any]:
        """The draws made and every source's state (sources must have `state_dict`, as ShardDataset has)."""
        if self._progress is not None and self._progress["epoch"] == self.epoch:
            state = dict(self._progress)
        else:
            consumer = current_consumer()
            state = {"format": MIXED_FORMAT, "epoch": self.epoch, "seed": self.seed,
                     "setup": [consumer.world_size, consumer.num_workers], "generation": 0,
                     "draws": {str(consumer.index): 0}}
        state["sources"] = [d.state_dict() for d in self.datasets]
        return state

    def load_state_dict(self, state: Any) -> None:
        """Continue an epoch from `state_dict()`, a StatefulDataLoader state, or a list of them (every rank's),
        on the same or another number of workers and ranks (sources resume as they do alone)."""
        states = loader_states(state, MIXED_FORMAT)
        if not states:
            raise UsageError("load_state_dict: the state holds no MixedDataset position")
        first = states[0]
        if any((s["epoch"], s["seed"], s["setup"], s["generation"]) !=
               (first["epoch"], first["seed"], first["setup"], first["generation"]) for s in states):
            raise UsageError("load_state_dict: the MixedDataset states come from different runs or set-ups")
        if first["seed"] != self.seed or len(first["sources"]) != len(self.datasets):
            raise UsageError(f"load_state_dict: the state was saved with seed {first['seed']} and "
                             f"{len(first['sources'])} sources; this MixedDataset has seed {self.seed} and "
                             f"{len(self.datasets)}")
        for i, dataset in enumerate(self.datasets):
            dataset.load_state_dict([s["sources"][i] for s in states])
        draws: dict[str, int] = {}
        for s in states:
            draws.update(s["draws"])
        self._resume = {**first, "draws": draws}
        self._progress = None
        self.set_epoch(first["epoch"])
