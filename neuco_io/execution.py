"""Run units of work serially or in worker processes, with progress callbacks.

One execution layer for every command: `validate` sends batches of cube
checks, `convert` and `verify` send shard jobs. Results come back in the
order of the inputs, so reports and outputs do not depend on scheduling.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import multiprocessing
import os
import secrets
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import InvalidStateError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from neuco_io.errors import NeucoError, UsageError

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int], None]
"""Called with the number of units just finished."""

__all__ = ["DaskExecutor", "Executor", "ProcessExecutor", "Progress", "RunSettings", "SerialExecutor", "UnitFailed",
           "batched", "dask_worker_config", "default_jobs", "kill_all_workers", "make_executor"]


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

    def map(self, fn: Callable[[T], R], units: Iterable[T], names: list[str] | None = None) -> Iterator[R]:
        """fn over units, results in input order. `names` label the units in progress and errors."""
        raise NotImplementedError

    def close(self) -> None:
        """Wait for running units, drop the ones not started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    def map(self, fn: Callable[[T], R], units: Iterable[T], names: list[str] | None = None) -> Iterator[R]:
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


def _init_worker(environ: dict[str, str]) -> None:
    """Workers fork from a forkserver started earlier: give them the caller's environment as it is now
    (credentials such as AWS_* may have been set since)."""
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    os.environ.update(environ)
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


@functools.lru_cache(maxsize=8)
def _has_main_guard(path: str) -> bool:
    """Whether a script guards its work with `if __name__ == "__main__":` at top level."""
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return False
    guards = {"__name__ == '__main__'", "'__main__' == __name__"}
    return any(isinstance(node, ast.If) and ast.unparse(node.test) in guards for node in tree.body)


def worker_start_method() -> str | None:
    """How to start worker processes; None: run the units in this process.

    forkserver and spawn import the caller's `__main__` again in every worker: a script that calls
    neuco-io at top level without an `if __name__ == "__main__":` guard would rerun itself there and
    fail in multiprocessing's bootstrapping. Such a script gets fork, which imports nothing, while this
    process has no other thread (forking threads is unsafe); otherwise the units run here.
    """
    methods = multiprocessing.get_all_start_methods()
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file or _has_main_guard(os.path.abspath(main_file)):
        return "forkserver" if "forkserver" in methods else "spawn"
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return None


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Helper processes started meanwhile (the forkserver, workers) inherit a blocked SIGINT: Ctrl-C, sent
    to the whole process group, reaches only the main process, which then stops them (SIGTERM, see
    `ProcessExecutor.abort`). No helper dies half-started with a traceback, none is left behind."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


ABORT_GRACE = 10.0
"""Seconds a stopped worker gets to unwind its unit before it is killed."""


class ProcessExecutor(Executor):
    """A pool of worker processes started with forkserver (see `worker_start_method` for the exception).

    Forking a process whose zarr/asyncio threads are running is unsafe, and a
    zip handle inherited across fork corrupts reads, so workers start clean
    and open their own files. On Ctrl-C (sent to the whole process group) a
    busy worker abandons its unit, whose temporary file is removed; the main
    process cancels the units not started yet.
    """

    def __init__(self, jobs: int, start_method: str = "forkserver") -> None:
        self.jobs = jobs
        context = multiprocessing.get_context(start_method)
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                                         initargs=(dict(os.environ),))
        if start_method == "fork":  # fork every worker now, while this process has no other thread
            with _sigint_blocked():
                self._pool.submit(os.getpid).result()
        _LIVE.add(self)
        _quiet_pool_race()

    def map(self, fn: Callable[[T], R], units: Iterable[T], names: list[str] | None = None) -> Iterator[R]:
        with _sigint_blocked():  # the pool starts its forkserver and workers on the first submit
            results = self._pool.map(_Interruptible(fn), units)
        try:
            yield from results
        except BrokenProcessPool:
            raise WorkerDiedError("a worker process died unexpectedly (killed, or out of memory?)") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        _LIVE.discard(self)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # After an error or an interrupt, waiting for the pool's orderly shutdown can block forever (a worker
        # stuck on a queue lock): stop the workers instead, within a bounded time.
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _workers(self) -> list[Any]:
        live = list((getattr(self._pool, "_processes", None) or {}).values())
        self._seen = list({id(p): p for p in [*getattr(self, "_seen", []), *live]}.values())
        return self._seen

    def abort(self, grace: float = ABORT_GRACE) -> None:
        """Cancel the units not started and end every worker: SIGTERM (a busy worker unwinds its unit, so
        its temporary file goes), then SIGKILL for any still alive after `grace` seconds."""
        workers = self._workers()  # before shutdown(), which forgets them
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            with contextlib.suppress(Exception):
                process.terminate()
        deadline = time.monotonic() + grace
        for process in workers:
            with contextlib.suppress(Exception):
                process.join(max(0.0, deadline - time.monotonic()))
        self.kill()
        manager = getattr(self._pool, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(grace)
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL every worker still alive, and any process the forkserver started that the pool had not
        registered yet (an interrupt while workers were being launched)."""
        for process in self._workers():
            with contextlib.suppress(Exception):
                if process.is_alive():
                    process.kill()
                    process.join(ABORT_GRACE)
        _kill_forkserver_children()


def _kill_forkserver_children() -> None:
    """SIGKILL the children of this process's forkserver (Linux: found in /proc; elsewhere nothing)."""
    from multiprocessing import forkserver

    server = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if not server or not os.path.isdir("/proc"):
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                parent = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == server:
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)


_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


def _quiet_pool_race() -> None:
    """CPython's pool manager thread may mark an already cancelled unit as broken when workers are stopped
    during an interrupt and dies with InvalidStateError (a harmless race in concurrent.futures): do not
    print that thread's traceback to the user. Everything else goes to the previous hook."""
    previous = threading.excepthook
    if getattr(previous, "_neuco_io", False):
        return

    def hook(args: Any) -> None:
        if isinstance(args.exc_value, InvalidStateError) and type(args.thread).__name__ == "_ExecutorManagerThread":
            return
        previous(args)

    hook._neuco_io = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def kill_all_workers() -> None:
    """SIGKILL the workers of every pool of this process: the last resort of a second Ctrl-C, or of an
    interrupted command that does not end within its grace period."""
    for executor in list(_LIVE):
        executor.kill()
    _kill_forkserver_children()


class UnitFailed(NeucoError, RuntimeError):
    """A unit of work failed on a cluster; the message names the unit."""


class _InWorker:
    """A unit run on a Dask worker: one core per worker process, like the process pool."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, unit: Any) -> Any:
        single_threaded_codecs()
        return self.fn(unit)


_WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": 4 << 20}


def dask_worker_config() -> dict[str, Any]:
    """Dask configuration for the workers neuco-io starts, and worth giving a cluster of your own.

    Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_ set, which turns off glibc's adaptive mmap
    threshold: every chunk buffer above 128 KiB (most of them) is then a fresh mmap whose pages fault in,
    and units run 15-20% slower than in the process pool. Buffers up to 4 MiB come from the heap again.
    Use as `with dask.config.set(dask_worker_config()): LocalCluster(...)`.
    """
    return {f"distributed.nanny.pre-spawn-environ.{key}": value for key, value in _WORKER_MALLOC.items()}


class DaskExecutor(Executor):
    """Units as tasks of a dask.distributed cluster: a running scheduler (`tcp://host:8786`), or
    `local[:N]`, a LocalCluster of N single-threaded worker processes started for the run.

    A worker that dies has its tasks rescheduled by Dask; a unit that raises is retried `retries`
    times before its error, named after the unit, stops the run.
    """

    def __init__(self, scheduler: str, *, retries: int = 2) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError("--scheduler needs dask.distributed: pip install 'neuco-io[dask]'") from None
        self.retries = retries
        self._cluster = None
        import logging

        if scheduler == "local" or scheduler.startswith("local:"):
            count = scheduler.partition(":")[2]
            if count and (not count.isdigit() or int(count) < 1):
                raise UsageError(f"--scheduler {scheduler!r}: use local or local:N with N >= 1")
            workers = int(count) if count else default_jobs()
            import dask

            with dask.config.set(dask_worker_config()):
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(scheduler)  # waits distributed.comm.timeouts.connect (Dask config)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
        self.jobs = max(1, sum(self._client.nthreads().values()))

    def map(self, fn: Callable[[T], R], units: Iterable[T], names: list[str] | None = None) -> Iterator[R]:
        from distributed import as_completed

        units = list(units)
        if not units:
            return
        names = names or [str(i) for i in range(len(units))]
        token = secrets.token_hex(4)
        label = getattr(fn, "__name__", "unit").strip("_")
        keys = [f"neuco-{label}-{name}-{token}" for name in names]
        futures = self._client.map(_InWorker(fn), units, key=keys, pure=False, retries=self.retries)
        index = {future.key: i for i, future in enumerate(futures)}
        ready: dict[int, Any] = {}
        following = 0
        try:
            for future in as_completed(futures):  # progress follows completion; results keep the input order
                i = index[future.key]
                try:
                    ready[i] = future.result()
                except NeucoError as exc:
                    raise UnitFailed(f"{names[i]}: {exc}") from None
                except Exception as exc:  # KilledWorker, lost scheduler, errors in the unit
                    raise UnitFailed(f"{names[i]} failed on the cluster: {type(exc).__name__}: {exc}") from None
                while following in ready:
                    yield ready.pop(following)
                    following += 1
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close(timeout=10)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)


def make_executor(jobs: int | None, n_units: int | None = None, scheduler: str | None = None, *,
                  places: Sequence[Any] = ()) -> Executor:
    """A Dask executor when `scheduler` is given; else `jobs` worker processes (None: all cores),
    never more than there are units to share. `places` are the paths (or stores) the units touch: an in-process
    filesystem (memory://) among them keeps the work in this process, where its files live."""
    from neuco_io.storage import open_store

    local_only = [str(p) for p in places if open_store(p).in_process_only]
    if local_only:
        if scheduler:
            raise UsageError(f"{local_only[0]}: memory:// lives in this process; a Dask cluster cannot reach it")
        return SerialExecutor()
    if scheduler:
        if jobs:
            raise UsageError("--jobs and --scheduler exclude each other: a cluster's workers set its parallelism")
        return DaskExecutor(scheduler)
    jobs = default_jobs() if jobs is None or jobs <= 0 else jobs
    if n_units is not None:
        jobs = min(jobs, max(1, n_units))
    start_method = worker_start_method() if jobs > 1 else None
    return ProcessExecutor(jobs, start_method) if start_method else SerialExecutor()


RUN_SETTING_NAMES = ("jobs", "scheduler", "executor", "storage_options", "progress", "on_start")


@dataclass(frozen=True)
class RunSettings:
    """How a command runs, apart from what it does: validate, verify, convert and stats share these, so
    their signatures name them once (`run=`) and the settings travel as one value.

    `jobs` worker processes (None: all cores) or a Dask `scheduler`, or an `executor` of your own (kept
    open); `storage_options` for fsspec URLs; `progress(n)` as units finish, `on_start(total)` once.
    """

    jobs: int | None = None
    scheduler: str | None = None
    executor: Executor | None = None
    storage_options: dict[str, Any] | None = None
    progress: Progress | None = None
    on_start: Callable[[int], None] | None = None

    @classmethod
    def of(cls, run: RunSettings | None = None, overrides: dict[str, Any] | None = None) -> RunSettings:
        """`run` with `overrides` (the keyword shortcuts `jobs=1`, `progress=...` a function accepts)."""
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(RUN_SETTING_NAMES))
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        return replace(run or cls(), **overrides)

    @contextlib.contextmanager
    def pool(self, n_units: int | None = None, *, places: Sequence[Any] = ()) -> Iterator[Executor]:
        """The executor to run units on: the caller's own one as it is, else one made (and closed) here."""
        if self.executor is not None:
            yield self.executor
            return
        with make_executor(self.jobs, n_units, self.scheduler, places=places) as executor:
            yield executor

    def started(self, total: int) -> None:
        if self.on_start is not None:
            self.on_start(total)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress(n)
