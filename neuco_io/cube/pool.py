"""One pool of open cubes for convert, verify and the loader: an LRU keyed by path, fork-safe.

Opening a cube reads its zip directory and metadata, so readers that visit the
same files again keep a few open. A zip handle inherited across `fork` is
shared with the parent (one file offset for two processes), which corrupts
reads with CRC or BadZipFile errors; so a forked child starts with every pool
empty, and a pickled pool (a spawned DataLoader worker) arrives empty too.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from neuco_io.cube.reader import Cube

__all__ = ["CubePool"]


class _Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=_Closable)

_POOLS: weakref.WeakSet[CubePool[Any]] = weakref.WeakSet()


class CubePool(Generic[T]):
    """Up to `capacity` open cubes (or objects holding one, with a `close()`), least recently used closed first.

    `get(path)` opens a `Cube`; `get(path, opener)` keeps whatever `opener()`
    returns (a cube with checks run or variables loaded once, say).
    """

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = max(1, capacity)
        self.opened = 0
        """Objects opened so far (found and readable), evicted ones included."""
        self._open: OrderedDict[str, T] = OrderedDict()
        _POOLS.add(self)

    def get(self, path: Any, opener: Callable[[], T] | None = None) -> T:
        """The open object for `path`, opened (by `opener`, else as a Cube) when it is not in the pool."""
        key = str(path)
        handle = self._open.get(key)
        if handle is not None:
            self._open.move_to_end(key)
            return handle
        handle = opener() if opener is not None else Cube(path)  # type: ignore[assignment]
        self.opened += 1
        self._open[key] = handle
        while len(self._open) > self.capacity:
            self._open.popitem(last=False)[1].close()
        return handle

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, path: Any) -> bool:
        return str(path) in self._open

    def close(self) -> None:
        """Close every open object (the pool stays usable)."""
        while self._open:
            self._open.popitem(last=False)[1].close()

    def __enter__(self) -> CubePool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "opened": self.opened}  # open handles never travel

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["capacity"])
        self.opened = state["opened"]

    def _forget(self) -> None:
        """Drop the handles without closing them: they belong to the parent (closing a zarr store could wait
        on a lock a parent thread held at fork time); the child's copies of the descriptors go with them."""
        self._open = OrderedDict()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
