"""Loader throughput against a reference-like baseline (issue 5).

    .venv/bin/python benchmarks/bench_loader.py [--locations 120] [--repeat 3]

Goals, in the same run on the same locations:
- `ShardDataset` yielding float32 (all modalities and seasons) >= 4x the samples/s of the
  reference-like loader (benchmarks/reference_loader.py), and >= 8x with `dtype="native"`;
- a DataLoader with 2 workers >= 1.7x faster than with 0.
Shards are written to /dev/shm by `convert` first (not timed), with both codecs.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numcodecs

from neuco_io.converters import convert
from neuco_io.loader import CubeDataset, ShardDataset

from common import describe_machine, sample_dataset, warm
from reference_loader import ReferenceLikeDataset

MODALITIES = ["s1", "s2l1c", "s2l2a"]


def rate(iterable_factory, n_expected: int, repeat: int) -> float:
    """Best samples per second over `repeat` full passes."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        n = 0
        for _sample in iterable_factory():
            n += 1
        elapsed = time.perf_counter() - started
        assert n == n_expected, (n, n_expected)
        best = max(best, n / elapsed)
    return best


def loader_rate(dataset, workers: int, n_expected: int, repeat: int) -> float:
    from torch.utils.data import DataLoader

    def batches():
        loader = DataLoader(dataset, batch_size=4, num_workers=workers, persistent_workers=False)
        for batch in loader:
            yield from range(batch.shape[0])

    return rate(batches, n_expected, repeat)


def main() -> None:
    numcodecs.blosc.use_threads = False  # one core per process, for every party
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/neuco-loader-bench"))
    args = parser.parse_args()
    root = sample_dataset("downstream", args.locations)
    warm(root)
    n = args.locations
    shutil.rmtree(args.out, ignore_errors=True)
    shards = {}
    for codec in ("blosc", "none"):
        shards[codec] = args.out / codec
        convert(root, shards[codec], to="webdataset", codec=codec, jobs=2, shard_size=60_000_000)
        warm(shards[codec])
    print(f"machine: {describe_machine()}")
    print(f"dataset: {n} downstream locations, all modalities and seasons; shards in {args.out}")

    reference = rate(lambda: (ReferenceLikeDataset(str(root / "data"), MODALITIES)[i] for i in range(n)), n,
                     args.repeat)
    print(f"reference-like loader (xarray.open_zarr + dask, float32, torch): {reference:.1f} samples/s")
    for codec, folder in shards.items():
        f32 = rate(lambda folder=folder: iter(ShardDataset(folder, modalities=MODALITIES)), n, args.repeat)
        # native: one array per modality in its own dtype (concatenating int16 and float16 bands would
        # promote them to float32 again)
        native = rate(lambda folder=folder: iter(ShardDataset(folder, modalities=MODALITIES, dtype="native",
                                                              concat=False)), n, args.repeat)
        print(f"ShardDataset, --codec {codec} shards: float32 {f32:.1f} samples/s = {f32 / reference:.1f}x "
              f"(goal >= 4x); native (concat=False) {native:.1f} samples/s = {native / reference:.1f}x (goal >= 8x)")
    cubes = CubeDataset(root, modalities=MODALITIES)
    cube_rate = rate(lambda: (cubes[i] for i in range(n)), n, args.repeat)
    print(f"CubeDataset over the cubes, float32: {cube_rate:.1f} samples/s = {cube_rate / reference:.1f}x")
    import torch

    # "0 workers" is then one core, as each DataLoader worker is (torch gives workers one thread).
    torch.set_num_threads(1)
    for codec, folder in shards.items():
        dataset = ShardDataset(folder, modalities=MODALITIES, output="torch")
        w0 = loader_rate(dataset, 0, n, args.repeat)
        w2 = loader_rate(dataset, 2, n, args.repeat)
        print(f"DataLoader over --codec {codec} shards, batch 4: 0 workers {w0:.1f} samples/s, 2 workers "
              f"{w2:.1f} samples/s = {w2 / w0:.2f}x (goal >= 1.7x)")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
