"""Peak memory of a command and all its child processes, sampled from /proc (Linux)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    """Every descendant; a child belongs to the thread that started it (Dask's nannies start from a
    background thread), so all threads are asked."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids + [g for k in kids for g in _children(k)]


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], **kwargs) -> tuple[float, int, int]:
    """Run `cmd`; return (seconds, peak RSS of the whole process tree, peak RSS of the largest process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kwargs)
    peak_total = peak_single = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_total, peak_single
        while not done.is_set():
            sizes = [_rss(p) for p in [proc.pid, *_children(proc.pid)]]
            peak_total = max(peak_total, sum(sizes))
            peak_single = max(peak_single, max(sizes, default=0))
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = proc.wait()
    elapsed = time.perf_counter() - started
    done.set()
    thread.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}")
    return elapsed, peak_total, peak_single


if __name__ == "__main__":  # pragma: no cover
    import sys

    seconds, total, single = run_measured(sys.argv[1:])
    print(f"{seconds:.2f} s, peak RSS {total / 2**20:.0f} MiB (largest process {single / 2**20:.0f} MiB)",
          file=sys.stderr)
    os._exit(0)
