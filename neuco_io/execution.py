"""Run units of work serially or in worker processes, with progress callbacks.

One execution layer for every command: `validate` sends batches of cube
checks, `convert` and `verify` send shard jobs. Results come back in the
order of the inputs, so reports and outputs do not depend on scheduling.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .errors import NeucoError

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int], None]
"""Called with the number of units just finished."""

__all__ = ["Executor", "ProcessExecutor", "Progress", "SerialExecutor", "batched", "default_jobs", "make_executor"]


class WorkerDiedError(NeucoError, RuntimeError):
    """A worker process was killed (OOM killer, signal) while running a unit."""


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def batched(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


class Executor:
    """Maps a picklable function over units; subclasses decide where it runs. Use as a context manager."""

    jobs = 1

    def map(self, fn: Callable[[T], R], units: Iterable[T]) -> Iterator[R]:
        raise NotImplementedError

    def close(self) -> None:
        """Wait for running units, drop the ones not started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    def map(self, fn: Callable[[T], R], units: Iterable[T]) -> Iterator[R]:
        return map(fn, units)


def single_threaded_codecs() -> None:
    """One core per process: parallelism comes from worker processes (`--jobs`), and Blosc's own
    threads on top of them would only oversubscribe the cores."""
    import numcodecs

    numcodecs.blosc.use_threads = False


def _idle_signals() -> None:
    """Idle workers leave Ctrl-C to the main process (no traceback per worker); SIGTERM ends them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _init_worker() -> None:
    _idle_signals()
    single_threaded_codecs()


class _Stopped(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    raise _Stopped(signum)


class _Interruptible:
    """Runs a unit so that Ctrl-C or SIGTERM unwinds it (atomic writes clean up their temporary files).

    After Ctrl-C the worker reports the interruption and stays for the pool's
    orderly shutdown; after SIGTERM it exits once the unit is unwound.
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, unit: Any) -> Any:
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            return self.fn(unit)
        except _Stopped as stop:
            if stop.signum == signal.SIGTERM:
                os._exit(128 + signal.SIGTERM)
            raise KeyboardInterrupt from None
        finally:
            _idle_signals()


class ProcessExecutor(Executor):
    """A pool of worker processes started with forkserver.

    Forking a process whose zarr/asyncio threads are running is unsafe, and a
    zip handle inherited across fork corrupts reads, so workers start clean
    and open their own files. On Ctrl-C (sent to the whole process group) a
    busy worker abandons its unit, whose temporary file is removed; the main
    process cancels the units not started yet.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker)

    def map(self, fn: Callable[[T], R], units: Iterable[T]) -> Iterator[R]:
        results = self._pool.map(_Interruptible(fn), units)
        try:
            yield from results
        except BrokenProcessPool:
            raise WorkerDiedError("a worker process died unexpectedly (killed, or out of memory?); finished "
                                  "work is kept: run the command again (convert: with --resume)") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(jobs: int | None, n_units: int | None = None, **_: Any) -> Executor:
    """`jobs` workers (None: all cores), never more than there are units to share."""
    jobs = default_jobs() if jobs is None or jobs <= 0 else jobs
    if n_units is not None:
        jobs = min(jobs, max(1, n_units))
    return SerialExecutor() if jobs == 1 else ProcessExecutor(jobs)
