"""Dask execution against the process pool, and a scaling estimate for all of SSL4EO-S12 v1.1 (issue 7).

    .venv/bin/python benchmarks/bench_scale.py [--locations 300] [--v11-locations 256 768] [--repeat 3]

Goal, measured in the same run on the same data: `convert --scheduler local:2`
takes at most 1.25x the time of `convert --jobs 2` (both through the real CLI,
cluster start-up included, runs interleaved). A third variant connects to an
already running two-worker cluster (`--scheduler ADDRESS`), which separates
the per-unit cost of Dask from the fixed cost of starting a cluster.

The estimate: a convert on an existing two-worker cluster records each task's
compute time (Dask's task stream), which gives the cost of a planning unit
(checking one v1.1 file) and of a shard unit per source byte. From those, the
time to convert the 3,846 files (1.5 TB) of SSL4EO-S12 v1.1 on N workers, with
the assumptions printed next to it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dask

from neuco_io.execution import dask_worker_config

from bench_convert import EXE
from common import describe_machine, sample_dataset, warm
from memory import run_measured

V11_FILES = 3_846
V11_BYTES = 1.5e12
SHARD = "100MB"


def cli_convert(root: Path, out: Path, *extra: str) -> tuple[float, int]:
    seconds, peak, _ = run_measured([EXE, "convert", str(root), str(out), "--quiet", "--overwrite", "--to",
                                     "webdataset", "--shard-size", SHARD, *extra], stdout=subprocess.DEVNULL)
    return seconds, peak


def compare(root: Path, out: Path, repeat: int, address: str) -> float:
    """Interleaved CLI runs: the process pool, a LocalCluster started by the command, a running cluster.
    Returns the median extra seconds `local:2` costs over `--jobs 2` (its fixed start-up)."""
    runs: dict[str, list[float]] = {"--jobs 2": [], "--scheduler local:2": [], "--scheduler ADDRESS": []}
    peaks = []
    digests = set()
    for _ in range(repeat):
        for name, extra in (("--jobs 2", ["--jobs", "2"]), ("--scheduler local:2", ["--scheduler", "local:2"]),
                            ("--scheduler ADDRESS", ["--scheduler", address])):
            seconds, peak = cli_convert(root, out, *extra)
            runs[name].append(seconds)
            if name.endswith("local:2"):
                peaks.append(peak)
            # The manifest holds every shard's sha256: one manifest digest means byte-identical output.
            digests.add(hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest())
            shutil.rmtree(out)
    pool = runs["--jobs 2"]
    print("| command | best | median | median of paired ratios to --jobs 2 |")
    print("|---|---:|---:|---:|")
    for name, times in runs.items():
        ratios = [t / p for t, p in zip(times, pool)]
        print(f"| `convert {name}` | {min(times):.2f} s | {statistics.median(times):.2f} s | "
              f"{statistics.median(ratios):.2f}x |")
    print(f"peak memory of the whole process tree with local:2 (scheduler, nannies, workers): "
          f"{max(peaks) / 2**20:.0f} MiB; output byte-identical across all {3 * repeat} runs: {len(digests) == 1}")
    return statistics.median(d - p for d, p in zip(runs["--scheduler local:2"], pool))


def unit_costs(root: Path, out: Path) -> tuple[float, float, float]:
    """(cluster start-up s, planning s per v1.1 file, shard-writing s per source byte) on 2 workers."""
    from distributed import Client, LocalCluster, get_task_stream

    from neuco_io.converters import convert

    started = time.perf_counter()
    with dask.config.set(dask_worker_config()):  # as `--scheduler local:2` and the README do
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=50)
    client = Client(cluster)
    client.run(lambda: __import__("neuco_io.converters"))  # a real run imports on first use; do it up front
    startup = time.perf_counter() - started
    try:
        with get_task_stream(client) as stream:
            result = convert(root, out, to="webdataset", shard_size=100_000_000, overwrite=True,
                             scheduler=cluster.scheduler_address)
        plan, write = [], []
        for task in stream.data:
            compute = sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
            (plan if "check_cubes" in task["key"] else write).append(compute)
    finally:
        client.close()
        cluster.close()
    files = len(list(root.rglob("*.zarr.zip")))
    source = sum(p.stat().st_size for p in root.rglob("*.zarr.zip"))
    print(f"task stream: {len(plan)} planning units ({sum(plan):.2f} s of compute for {files} files), "
          f"{len(write)} shard units ({sum(write):.2f} s for {source / 1e9:.2f} GB, {result.records} records; "
          f"median unit {statistics.median(write):.2f} s)")
    return startup, sum(plan) / files, sum(write) / source


def estimate(startup: float, per_file: float, per_byte: float, store_rate: float = 100e6) -> None:
    units = math.ceil(V11_BYTES / 1e9)  # the default --shard-size is 1 GB
    unit = per_byte * 1e9
    io_unit = max(unit, 1e9 / store_rate)
    print(f"\nEstimate for SSL4EO-S12 v1.1 ({V11_FILES} files, {V11_BYTES / 1e12:.1f} TB; default 1 GB shards = "
          f"{units} shard units). Measured here: ~{unit:.1f} s of compute per shard unit (a worker converts "
          f"{1e9 / unit / 1e6:.0f} MB/s when its reads keep up), {per_file * 1e3:.0f} ms to plan a file, "
          f"{startup:.1f} s to start a local cluster. The last column assumes instead that each worker reads "
          f"the store at {store_rate / 1e6:.0f} MB/s ({io_unit:.0f} s per unit) and that the store's total "
          f"bandwidth keeps up.\n")
    print("| workers | planning | writing, compute-bound | total, compute-bound | total at "
          f"{store_rate / 1e6:.0f} MB/s per worker |")
    print("|---:|---:|---:|---:|---:|")
    for workers in (1, 2, 8, 32, 128):
        planning = math.ceil(V11_FILES / workers) * per_file
        writing = math.ceil(units / workers) * unit
        io_bound = startup + planning + math.ceil(units / workers) * io_unit
        print(f"| {workers} | {planning / 60:.1f} min | {writing / 3600:.2f} h | "
              f"{(startup + planning + writing) / 3600:.2f} h | {io_bound / 3600:.2f} h |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=300)
    parser.add_argument("--v11-locations", type=int, nargs="+", default=[256, 768])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/neuco-bench-scale"))
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    print(f"machine: {describe_machine()}")
    # The running cluster the `--scheduler ADDRESS` runs connect to, set up as the README advises.
    with dask.config.set(dask_worker_config()), LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=50) as cluster, Client(cluster):
        overheads = []
        for layout, n in [("downstream", args.locations)] + [("v1.1", n) for n in args.v11_locations]:
            root = sample_dataset(layout, n)
            source = warm(root)
            print(f"\n## {layout}: {n} locations, {len(list(root.rglob('*.zarr.zip')))} files, "
                  f"{source / 1e9:.2f} GB\n")
            overheads.append(compare(root, args.out / "out", args.repeat, cluster.scheduler_address))
    print(f"\nfixed cost of starting and stopping a LocalCluster in the command: {min(overheads):.1f}-"
          f"{max(overheads):.1f} s (median extra time of local:2 over --jobs 2)")
    root = sample_dataset("v1.1", args.v11_locations[0])
    estimate(*unit_costs(root, args.out / "units"))
    shutil.rmtree(args.out, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
