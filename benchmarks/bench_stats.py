"""How fast `stats` and `quicklook` are (issue 17).

    .venv/bin/python benchmarks/bench_stats.py [--locations 100] [--repeat 3]

Goals: `stats` over a dataset costs at most 1.3x the time of decoding every
chunk (the baseline of bench_validate: zip read + numcodecs decode, nothing
else), measured in the same run on one core; `quicklook` of 100 locations
takes under 1 s per location per core. `stats --stride 2` (every 4th value)
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
    base_runs, stats_runs, strided_runs = [], [], []
    for _ in range(args.repeat):  # interleaved: the shared machine's load hits all alike
        started = time.perf_counter()
        decode_every_chunk(paths)
        base_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        dataset_stats(root, jobs=1)
        stats_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        dataset_stats(root, jobs=1, stride=2)
        strided_runs.append(time.perf_counter() - started)
    base, stats, strided = min(base_runs), min(stats_runs), min(strided_runs)

    out = Path(tempfile.mkdtemp(prefix="neuco-quicklook-"))
    try:
        started = time.perf_counter()
        result = write_quicklooks(root, out)
        quick = time.perf_counter() - started
        png_bytes = sum(p.stat().st_size for p in [*result.images, *result.sheets])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    n = len(result.ids)

    print(f"machine: {describe_machine()}")
    print(f"dataset: {args.locations} downstream locations, {len(paths)} cubes, {size / 1e9:.2f} GB")
    print(f"baseline, decode every chunk: {base:.2f} s (runs: {', '.join(f'{t:.2f}' for t in base_runs)})")
    print(f"stats --jobs 1: {stats:.2f} s = {stats / base:.2f}x the baseline "
          f"(runs: {', '.join(f'{t:.2f}' for t in stats_runs)}; goal <= 1.3x)")
    print(f"stats --jobs 1 --stride 2: {strided:.2f} s = {strided / base:.2f}x the baseline "
          f"(runs: {', '.join(f'{t:.2f}' for t in strided_runs)})")
    print(f"quicklook, one process: {n} locations in {quick:.1f} s = {quick / n:.2f} s per location "
          f"(goal < 1 s); {len(result.sheets)} contact sheets, {png_bytes / 1e6:.0f} MB of PNG")


if __name__ == "__main__":
    main()
