"""Shared pieces of the benchmark scripts: cached sample datasets, timing, reporting."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NEUCO_BENCH_DIR", ROOT / "bench-output"))


def sample_dataset(layout: str = "downstream", locations: int = 300, seed: int = 0,
                   samples_per_file: int = 64) -> Path:
    """A sample dataset, written once and reused by later runs."""
    from neuco_io.sample import write_sample

    name = f"{layout}-{locations}-seed{seed}" + (f"-{samples_per_file}" if layout == "v1.1" else "")
    root = CACHE / name
    stamp = root / ".complete"
    if not stamp.exists():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        write_sample(root, layout=layout, locations=locations, seed=seed, samples_per_file=samples_per_file)
        stamp.write_text(json.dumps({"seconds": time.perf_counter() - started}))
        print(f"# wrote {root} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return root


def warm(root: Path) -> int:
    """Read every file once so all runs start from a warm page cache; total bytes."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    total += len(chunk)
    return total


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, list[float]]:
    """Minimum and all wall times of `repeat` runs (the minimum is the least disturbed by a shared machine)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times), times


def describe_machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def spread(times: list[float]) -> str:
    return f"median {statistics.median(times):.2f} s over {len(times)} runs"
