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

import numpy as np

from neuco_io.errors import UsageError

MAX_EPOCH = 2**63 - 1
"""The shared cell is a signed 64-bit integer; numpy's seeding refuses negative epochs."""


def checked_epoch(epoch: Any) -> int:
    """`epoch` as an int, or a UsageError naming it: a negative, fractional, boolean or oversized epoch would
    otherwise fail deep inside numpy's seeding, or wrap around silently in the shared cell."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not 0 <= epoch <= MAX_EPOCH:
        raise UsageError(f"epoch: expected a whole number from 0 to {MAX_EPOCH}, got {epoch!r}")
    return int(epoch)


class SharedEpoch:
    """An epoch the main process sets and its DataLoader workers read, persistent workers included."""

    def __init__(self, epoch: int = 0) -> None:
        self._cell = multiprocessing.RawValue("q", checked_epoch(epoch))

    @property
    def value(self) -> int:
        return int(self._cell.value)

    @value.setter
    def value(self, epoch: int) -> None:
        self._cell.value = checked_epoch(epoch)

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
