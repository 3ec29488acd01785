"""`SharedEpoch`: the epoch number, in memory shared with DataLoader workers.

`set_epoch` runs in the main process, but persistent DataLoader workers keep
the dataset copy they were started with: a plain attribute never reaches them,
and every epoch would replay the same shuffle. The epoch lives in a shared
memory cell instead, which forked workers inherit and spawned or forkserver
workers receive when they start.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import get_spawning_popen
from typing import Any


class SharedEpoch:
    """An epoch the main process sets and its DataLoader workers read, persistent workers included."""

    def __init__(self, epoch: int = 0) -> None:
        self._cell = multiprocessing.RawValue("q", int(epoch))

    @property
    def value(self) -> int:
        return int(self._cell.value)

    @value.setter
    def value(self, epoch: int) -> None:
        self._cell.value = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:  # starting a worker: hand it the shared cell itself
            return {"cell": self._cell}
        return {"epoch": self.value}  # pickle or deepcopy: an independent copy

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._cell = state["cell"] if "cell" in state else multiprocessing.RawValue("q", state["epoch"])


class EpochMixin:
    """`epoch` and `set_epoch` over a `SharedEpoch` in `self._epoch`."""

    _epoch: SharedEpoch

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """A new shuffle and season draw (`randomize_seasons`) per epoch: call it before each epoch, like
        DistributedSampler. DataLoader workers see it, persistent ones included."""
        self._epoch.value = epoch
