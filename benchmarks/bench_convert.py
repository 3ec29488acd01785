"""Convert speed, scaling and memory (issue 4).

    .venv/bin/python benchmarks/bench_convert.py [--locations 300] [--v11-locations 256] [--out /dev/shm/...]

Goals, each measured in the same run:
- converting costs <= 1.5x the time of merely reading and decoding every cube
  (baseline: open each zip, decode every chunk of every array with numcodecs);
- `--jobs 2` is >= 1.6x faster than `--jobs 1`;
- peak memory (all processes) stays under 1 GiB for both layouts, whatever the size.

Shards go to `--out` (default /dev/shm, a RAM disk) so the figures measure the
converter rather than the disk; `--out-disk` repeats the main run on the
project disk for reference. Every convert runs as the real CLI in a
subprocess; memory is sampled from /proc for the whole process tree.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numcodecs

from neuco_io.converters import convert

from bench_validate import decode_every_chunk
from common import CACHE, describe_machine, sample_dataset, warm
from memory import run_measured

EXE = str(Path(sys.executable).with_name("neuco-io"))


def convert_cmd(root: Path, out: Path, *extra: str) -> list[str]:
    return [EXE, "convert", str(root), str(out), "--quiet", "--overwrite", *extra]


def timed_convert(root: Path, out: Path, repeat: int, *extra: str) -> tuple[float, int]:
    """Best time and the largest peak memory over `repeat` runs."""
    best, peak = float("inf"), 0
    for _ in range(repeat):
        seconds, total, _ = run_measured(convert_cmd(root, out, *extra), stdout=subprocess.DEVNULL)
        best, peak = min(best, seconds), max(peak, total)
    return best, peak


def size_of(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern))


def main() -> None:
    # One core for every party: the baseline, and neuco-io with --jobs 1 (Blosc would otherwise
    # spread a decode over all cores in the main thread).
    numcodecs.blosc.use_threads = False
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=300)
    parser.add_argument("--v11-locations", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/neuco-bench"))
    parser.add_argument("--out-disk", type=Path, default=CACHE / "convert-out")
    parser.add_argument("--only-proof", action="store_true",
                        help="Only measure what decoding pass-through chunks (to prove them sound) costs.")
    args = parser.parse_args()
    if args.only_proof:
        passthrough_proof(args)
        return

    print(f"machine: {describe_machine()}")
    shard = ["--shard-size", "100MB"]
    for layout, n in (("downstream", args.locations), ("v1.1", args.v11_locations)):
        root = sample_dataset(layout, n)
        cubes = sorted(root.rglob("*.zarr.zip"))
        source = warm(root)
        out = args.out / layout
        print(f"\n## {layout}: {n} locations, {len(cubes)} cube files, {source / 1e9:.2f} GB")
        # The default conversion (the library call, in this process) and the baseline, interleaved so the
        # machine's drift hits both alike.
        base, one, two = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            decode_every_chunk(cubes)
            base.append(time.perf_counter() - started)
            for jobs, times in ((1, one), (2, two)):
                started = time.perf_counter()
                convert(root, out / "blosc", to="webdataset", jobs=jobs, shard_size=100_000_000, overwrite=True)
                times.append(time.perf_counter() - started)
        written = size_of(out / "blosc", "shard-*")
        # The same through the CLI, in a subprocess: whole-process-tree memory, and the start-up cost.
        # Interleaved, like the library calls; this is what a user runs, and the fair `--jobs 2` figure: a
        # library call's worker processes also re-import this script's own imports (forkserver).
        cli_one, cli_two, mem1, mem2 = [], [], 0, 0
        for _ in range(3):
            for extra, times in ((["--jobs", "1"], cli_one), (["--jobs", "2"], cli_two)):
                seconds, total = timed_convert(root, out / "blosc", 1, "--to", "webdataset", *extra, *shard)
                times.append(seconds)
                if extra[-1] == "1":
                    mem1 = max(mem1, total)
                else:
                    mem2 = max(mem2, total)
        cli1, cli2 = min(cli_one), min(cli_two)
        cli_speedup = statistics.median(x / y for x, y in zip(cli_one, cli_two))
        shutil.rmtree(out / "blosc", ignore_errors=True)
        b, o, w = min(base), min(one), min(two)
        ratios = [x / y for x, y in zip(one, base)]
        print(f"baseline, read + decode every chunk (one core): best {b:.2f} s of {args.repeat}")
        print(f"convert --to webdataset (default codec), library call: jobs 1 best {o:.2f} s = {o / b:.2f}x baseline "
              f"(median of the paired ratios {statistics.median(ratios):.2f}); jobs 2 best {w:.2f} s = {o / w:.2f}x "
              f"faster; shards {written / source:.3f}x source bytes")
        print(f"  the same through the CLI (best of 3): jobs 1 {cli1:.2f} s ({cli1 / b:.2f}x), jobs 2 {cli2:.2f} s = "
              f"{cli1 / cli2:.2f}x faster (median of the paired ratios {cli_speedup:.2f}); peak memory "
              f"{mem1 / 2**20:.0f} MiB (jobs 1), {mem2 / 2**20:.0f} MiB (jobs 2)")
        for fmt, codec in (("webdataset", "none"), ("parquet", "blosc")):
            t1, m1 = timed_convert(root, out / f"{fmt}-{codec}", 1, "--to", fmt, "--codec", codec, "--jobs", "1",
                                   *shard)
            size = size_of(out / f"{fmt}-{codec}", "shard-*")
            t2, m2 = timed_convert(root, out / f"{fmt}-{codec}", 1, "--to", fmt, "--codec", codec, "--jobs", "2",
                                   *shard)
            print(f"convert --to {fmt} --codec {codec}: jobs 1 {t1:.2f} s = {t1 / b:.2f}x baseline, jobs 2 "
                  f"{t2:.2f} s = {t1 / t2:.2f}x faster; shards {size / source:.3f}x source bytes; peak memory "
                  f"{m1 / 2**20:.0f} MiB (jobs 1), {m2 / 2**20:.0f} MiB (jobs 2)")
            shutil.rmtree(out / f"{fmt}-{codec}", ignore_errors=True)
        if layout == "downstream" and args.out_disk:
            disk, _ = timed_convert(root, args.out_disk, 1, "--to", "webdataset", "--jobs", "1", *shard)
            print(f"default conversion onto the project disk (fsync'd): {disk:.2f} s = {disk / b:.2f}x")
            shutil.rmtree(args.out_disk, ignore_errors=True)
    # Memory does not grow with the dataset: a quarter of the downstream set for comparison.
    small_n = max(args.locations // 4, 2)
    small = sample_dataset("downstream", small_n)
    for fmt in ("webdataset", "parquet"):
        _, mem_small = timed_convert(small, args.out / "small", 1, "--to", fmt, "--jobs", "1", *shard)
        print(f"{fmt} peak memory on {small_n} locations (jobs 1): {mem_small / 2**20:.0f} MiB")
    shutil.rmtree(args.out, ignore_errors=True)


def passthrough_proof(args: argparse.Namespace) -> None:
    """Pass-through with and without decoding each chunk once before copying it (issue 12), against the
    baseline, interleaved, library calls with --jobs 1 (in this process, so the switch reaches the writer)."""
    from neuco_io.converters import records

    root = sample_dataset("downstream", args.locations)
    cubes = sorted(root.rglob("*.zarr.zip"))
    source = warm(root)
    print(f"downstream: {args.locations} locations, {source / 1e9:.2f} GB")
    times: dict[str, list[float]] = {"baseline": [], "proof": [], "no proof": []}
    for _ in range(args.repeat):
        started = time.perf_counter()
        decode_every_chunk(cubes)
        times["baseline"].append(time.perf_counter() - started)
        for label, prove in (("proof", True), ("no proof", False)):
            records.PROVE_PASSTHROUGH = prove
            started = time.perf_counter()
            convert(root, args.out / "proof", to="webdataset", jobs=1, shard_size=100_000_000, overwrite=True)
            times[label].append(time.perf_counter() - started)
    records.PROVE_PASSTHROUGH = True
    shutil.rmtree(args.out / "proof", ignore_errors=True)
    base = min(times["baseline"])
    for label in ("proof", "no proof"):
        best = min(times[label])
        print(f"pass-through, {label}: best {best:.2f} s = {best / base:.2f}x baseline ({base:.2f} s)")
    ratios = [p / n for p, n in zip(times["proof"], times["no proof"])]
    print(f"proof / no proof: best {min(times['proof']) / min(times['no proof']):.2f}x, median of the paired "
          f"ratios {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
