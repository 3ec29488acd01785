"""What resuming a ShardDataset mid-epoch costs (issue 16).

    .venv/bin/python benchmarks/bench_resume.py [--locations 40]

Goal: resuming costs less than 1 s plus reading the current shard, never a replay of the epoch.
1. Planning at the scale of SSL4EO-S12 v1.1 (246,144 records in 3,846 shards of 64), no data: an epoch run
   on 8 ranks x 4 workers, interrupted half-way, resumed on 4 ranks x 6 workers, interrupted again and
   resumed on 2 x 2; the time for one resumed consumer to know what it reads (`_start`, the remaining order
   and its plan), with `shuffle=1000`.
2. On real shards (a sample dataset, default codec, /dev/shm): time to the first sample of a fresh epoch
   against time to the first sample after `load_state_dict` half-way through the epoch.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from neuco_io.converters import convert
from neuco_io.loader import ShardDataset
from neuco_io.loader.order import Generation, consumer_plan, remaining_positions
from neuco_io.loader.split import Consumer, canonical_order

from common import describe_machine, sample_dataset, warm


def planning(shuffle: int) -> tuple[float, float]:
    counts = [64] * 3846
    kw = {"epoch": 3, "seed": 0, "shuffle": shuffle, "equal_per_rank": False}
    rng = np.random.default_rng(0)
    per_consumer = sum(counts) // 32
    first = Generation(8, 4, {i: int(rng.integers(per_consumer // 3, per_consumer * 2 // 3)) for i in range(32)})
    second = Generation(4, 6, {i: int(rng.integers(0, 2000)) for i in range(24)})
    times = []
    for history in ([first], [first, second]):
        started = time.perf_counter()
        canonical = canonical_order(counts, epoch=3, seed=0, shuffle=True)
        left = remaining_positions(counts, history, canonical, **kw)
        plan = consumer_plan(counts, Consumer(1, 2, 1, 2), canonical, positions=left, generation=len(history), **kw)
        times.append(time.perf_counter() - started)
        assert len(plan.order)
    return times[0], times[1]


def first_sample(folder: Path, state=None) -> float:
    started = time.perf_counter()
    ds = ShardDataset(folder, modalities=["s1", "s2l1c", "s2l2a"], shuffle=8)
    if state is not None:
        ds.load_state_dict(state)
    next(iter(ds))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/neuco-resume-bench"))
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    one, two = planning(shuffle=1000)
    print(f"v1.1 scale planning, resumed once / twice (shuffle=1000): {one:.3f} s / {two:.3f} s")
    root = sample_dataset("downstream", args.locations)
    shutil.rmtree(args.out, ignore_errors=True)
    convert(root, args.out, to="webdataset", jobs=1, max_records=8)
    warm(args.out)
    ds = ShardDataset(args.out, modalities=["s1", "s2l1c", "s2l2a"], shuffle=8)
    it = iter(ds)
    for _ in range(args.locations // 2 + 3):  # half-way, mid-shard
        next(it)
    state = ds.state_dict()
    it.close()
    fresh = min(first_sample(args.out) for _ in range(3))
    resumed = min(first_sample(args.out, state) for _ in range(3))
    print(f"{args.locations} locations in shards of 8: first sample fresh {fresh:.3f} s, after a resume half-way "
          f"through the epoch {resumed:.3f} s")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
