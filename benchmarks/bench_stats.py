"""How fast `stats` and `quicklook` are (issue 17).

    .venv/bin/python benchmarks/bench_stats.py [--locations 100] [--repeat 3]

Goals: `stats` over a dataset costs at most 1.3x the time of decoding every
chunk (the baseline of bench_validate: zip read + numcodecs decode, nothing
else), measured in the same run on one core; `quicklook` of 100 locations
takes under 1 s per location per core. `stats --stride 8` (every 8th row of pixels)
is measured beside the exact default.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numcodecs

from neuco_io.gallery import write_quicklooks
from neuco_io.stats import dataset_stats

from bench_validate import decode_every_chunk
from common import describe_machine, sample_dataset, warm


def main() -> None:
    numcodecs.blosc.use_threads = False  # one core for every party
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = sample_dataset("downstream", args.locations)
    paths = sorted(root.glob("data/*/part-*/*.zarr.zip"))
    size = warm(root)
    runs: dict[str, list[tuple[float, float]]] = {"base": [], "stats": [], "strided": []}
    jobs = {"base": lambda: decode_every_chunk(paths), "stats": lambda: dataset_stats(root, jobs=1),
            "strided": lambda: dataset_stats(root, jobs=1, stride=8)}
    for _ in range(args.repeat):  # interleaved: the shared machine's load hits all alike
        for name, job in jobs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            job()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    best = {name: (min(w for w, _ in r), min(c for _, c in r)) for name, r in runs.items()}

    out = Path(tempfile.mkdtemp(prefix="neuco-quicklook-"))
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = write_quicklooks(root, out)
        quick, quick_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        png_bytes = sum(p.stat().st_size for p in [*result.images, *result.sheets])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    n = len(result.ids)

    print(f"machine: {describe_machine()}")
    print(f"dataset: {args.locations} downstream locations, {len(paths)} cubes, {size / 1e9:.2f} GB")
    base_wall, base_cpu = best["base"]
    print(f"baseline, decode every chunk: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU (best of {args.repeat})")
    for name, label in (("stats", "stats --jobs 1"), ("strided", "stats --jobs 1 --stride 8")):
        wall, cpu = best[name]
        print(f"{label}: {wall:.2f} s wall = {wall / base_wall:.2f}x, {cpu:.2f} s CPU = {cpu / base_cpu:.2f}x the "
              f"baseline (goal <= 1.3x)")
    print(f"quicklook, one process: {n} locations in {quick:.1f} s wall, {quick_cpu:.1f} s CPU = "
          f"{quick / n:.2f} s wall, {quick_cpu / n:.2f} s CPU per location (goal < 1 s); {len(result.sheets)} "
          f"contact sheets, {png_bytes / 1e6:.0f} MB of PNG")


if __name__ == "__main__":
    main()
