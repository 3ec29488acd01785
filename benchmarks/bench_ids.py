"""Bytes read by `ids=` against the share of records picked (issue 16).

    .venv/bin/python benchmarks/bench_ids.py [--locations 40]

Goal: `ids=` over 1% of the records reads at most 2% of the bytes. Bytes are the process's read() bytes
(`rchar` in /proc/self/io) while the dataset is iterated, over local tar shards of the default codec; the
picked ids are spread over the dataset, and the manifest is read before counting (the dataset holds it).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from neuco_io.converters import convert
from neuco_io.loader import ShardDataset

from common import describe_machine, sample_dataset


def read_bytes() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def bytes_for(folder: Path, ids) -> int:
    ds = ShardDataset(folder, modalities=["s1", "s2l1c", "s2l2a"], ids=ids)
    before = read_bytes()
    count = sum(1 for _ in ds)
    used = read_bytes() - before
    assert count == (len(ids) if ids is not None else count)
    return used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/neuco-ids-bench"))
    args = parser.parse_args()
    root = sample_dataset("downstream", args.locations)
    shutil.rmtree(args.out, ignore_errors=True)
    convert(root, args.out, to="webdataset", jobs=1, max_records=8)
    manifest = json.loads((args.out / "manifest.json").read_text())
    ids = sorted(manifest["index"])
    total = sum(s["bytes"] for s in manifest["shards"])
    print(f"machine: {describe_machine()}")
    print(f"dataset: {len(ids)} downstream locations, {total / 1e6:.1f} MB of tar shards (shards of 8)")
    whole = bytes_for(args.out, None)
    print(f"every record: {whole / 1e6:.1f} MB read ({whole / total:.3f}x the shard bytes)")
    for n in (1, max(1, len(ids) // 10)):
        picked = ids[:: len(ids) // n][:n]
        used = bytes_for(args.out, picked)
        share = n / len(ids)
        print(f"ids= over {n} of {len(ids)} records ({share:.1%}): {used / 1e6:.2f} MB read = {used / total:.2%} "
              f"of the bytes, {used / total / share:.2f}x the share of records")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
