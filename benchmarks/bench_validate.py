"""How fast `validate` is, against the cost of simply decoding every chunk (issue 3).

    .venv/bin/python benchmarks/bench_validate.py [--locations 300] [--repeat 3]

Goals: metadata-level validation checks >= 250 cube files per second per core
(`--jobs 1`), and `--deep` costs <= 1.3x the time of decoding every chunk of
every cube (the baseline below: zip read + numcodecs decode, nothing else).
"""

from __future__ import annotations

import argparse
import json
import zipfile

import numcodecs
import numpy as np

from neuco_io.validators import validate

from common import best_of, describe_machine, sample_dataset, spread, warm


def decode_every_chunk(paths: list) -> int:
    """The floor: open each zip, parse its metadata, decode every chunk of every array."""
    decoded = 0
    codecs: dict[str, object] = {}
    for path in paths:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(".zmetadata"))["metadata"]
            arrays = {k[: -len("/.zarray")]: v for k, v in meta.items() if k.endswith("/.zarray")}
            for name in zf.namelist():
                array, _, chunk_key = name.rpartition("/")
                if array not in arrays or chunk_key.startswith("."):
                    continue
                doc = arrays[array]
                key = json.dumps(doc["compressor"], sort_keys=True)
                codec = codecs.get(key) or codecs.setdefault(key, numcodecs.get_codec(doc["compressor"]))
                raw = codec.decode(zf.read(name))
                decoded += np.frombuffer(raw, dtype=doc["dtype"]).nbytes
    return decoded


def main() -> None:
    # One core for every party: the baseline, and neuco-io with --jobs 1 (Blosc would otherwise
    # spread a decode over all cores in the main thread).
    numcodecs.blosc.use_threads = False
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = sample_dataset("downstream", args.locations)
    paths = sorted(root.glob("data/*/part-*/*.zarr.zip"))
    size = warm(root)
    n = len(paths)

    meta_time, meta_runs = best_of(lambda: validate(root, jobs=1), args.repeat)
    meta2_time, _ = best_of(lambda: validate(root, jobs=2), args.repeat)
    base_time, base_runs = best_of(lambda: decode_every_chunk(paths), args.repeat)
    deep_time, deep_runs = best_of(lambda: validate(root, jobs=1, deep=True), args.repeat)
    report = validate(root, jobs=1, deep=True)
    assert report.ok, "the benchmark dataset must validate clean"

    print(f"machine: {describe_machine()}")
    print(f"dataset: {args.locations} locations, {n} cube files, {size / 1e9:.2f} GB (sample, seed 0)")
    print(f"validate --jobs 1 (metadata): {meta_time:.2f} s = {n / meta_time:.0f} files/s per core "
          f"(goal >= 250) [{spread(meta_runs)}]")
    print(f"validate --jobs 2 (metadata): {meta2_time:.2f} s = {n / meta2_time:.0f} files/s")
    print(f"baseline, decode every chunk:  {base_time:.2f} s = {n / base_time:.0f} files/s [{spread(base_runs)}]")
    print(f"validate --jobs 1 --deep:      {deep_time:.2f} s = {deep_time / base_time:.2f}x baseline "
          f"(goal <= 1.3) [{spread(deep_runs)}]")


if __name__ == "__main__":
    main()
