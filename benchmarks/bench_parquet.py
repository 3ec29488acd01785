"""Parquet against WebDataset: converting, reading, bytes, memory (issue 15).

    .venv/bin/python benchmarks/bench_parquet.py [--locations 120] [--repeat 3] [--layouts]

Goals, each a ratio measured in the same run on the same `neuco-io sample` locations:
- `convert --to parquet` (default layout) <= 1.5x the time of `convert --to webdataset` (default codec),
  through the CLI, `--jobs 1` and `--jobs 2`;
- `ShardDataset` over default Parquet >= 0.8x the locations/s over default WebDataset, float32 and native,
  and >= 4x the reference-like loader (benchmarks/reference_loader.py);
- default Parquet <= 1.15x the source bytes;
- peak memory (whole process tree) < 1 GiB converting and reading.

Runs are interleaved (webdataset, parquet, webdataset, ...) and the best of `--repeat` is kept: the machine
is shared. `--layouts` also measures the layouts and row-group sizes that were weighed (in-process, one core),
`--pages N` the page settings on N locations with pyarrow alone.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numcodecs

from common import describe_machine, sample_dataset, warm
from memory import run_measured

EXE = str(Path(sys.executable).with_name("neuco-io"))
MODALITIES = ["s1", "s2l1c", "s2l2a"]
READ_SCRIPT = """
import sys, numcodecs
numcodecs.blosc.use_threads = False
from neuco_io.loader import ShardDataset
n = sum(1 for _ in ShardDataset(sys.argv[1], modalities=["s1", "s2l1c", "s2l2a"]))
assert n == int(sys.argv[2]), n
"""


def size_of(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def convert_cli(root: Path, out: Path, fmt: str, jobs: int, *extra: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the whole process tree, peak memory of the tree."""
    cmd = [EXE, "convert", str(root), str(out), "--to", fmt, "--jobs", str(jobs), "--quiet", "--overwrite", *extra]
    cpu = children_cpu()
    seconds, total, _ = run_measured(cmd, stdout=subprocess.DEVNULL)
    return seconds, children_cpu() - cpu, total


def rate(factory, n: int) -> tuple[float, float]:
    """Locations per wall second and per CPU second (the second moves less when others load the machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in factory())
    assert count == n, (count, n)
    return n / (time.perf_counter() - started), n / (time.process_time() - cpu)


def goals(root: Path, out: Path, n: int, repeat: int) -> None:
    from neuco_io.loader import ShardDataset

    from reference_loader import ReferenceLikeDataset

    source = size_of(root, "data/*/*/*.zarr.zip")
    folders = {"webdataset": out / "webdataset", "parquet": out / "parquet"}
    times: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    peaks: dict[tuple[str, int], int] = {}
    for _ in range(repeat):
        for jobs in (1, 2):
            for fmt, folder in folders.items():
                seconds, cpu, peak = convert_cli(root, folder, fmt, jobs)
                times.setdefault((fmt, jobs), []).append(seconds)
                cpus.setdefault((fmt, jobs), []).append(cpu)
                peaks[(fmt, jobs)] = max(peaks.get((fmt, jobs), 0), peak)
    print(f"source: {n} downstream locations, {source / 1e6:.0f} MB of cubes")
    for jobs in (1, 2):
        wds, pq = min(times[("webdataset", jobs)]), min(times[("parquet", jobs)])
        wds_cpu, pq_cpu = min(cpus[("webdataset", jobs)]), min(cpus[("parquet", jobs)])
        print(f"convert --jobs {jobs} (CLI, best of {repeat}): webdataset {wds:.2f} s, parquet {pq:.2f} s = "
              f"{pq / wds:.2f}x (goal <= 1.5x); all runs wds {[round(t, 2) for t in times[('webdataset', jobs)]]} "
              f"parquet {[round(t, 2) for t in times[('parquet', jobs)]]}")
        if jobs == 1:  # pool workers are not waited for by the command: their CPU time is not counted
            print(f"  CPU time of the command: webdataset {wds_cpu:.2f} s, parquet {pq_cpu:.2f} s = "
                  f"{pq_cpu / wds_cpu:.2f}x")
        print(f"  peak memory, whole process tree: webdataset {peaks[('webdataset', jobs)] / 2**20:.0f} MiB, "
              f"parquet {peaks[('parquet', jobs)] / 2**20:.0f} MiB (goal < 1024)")
    for fmt, folder in folders.items():
        ext = "tar" if fmt == "webdataset" else "parquet"
        print(f"bytes, {fmt}: {size_of(folder, f'*.{ext}') / source:.3f}x the source (parquet goal <= 1.15x)")
    for folder in folders.values():
        warm(folder)

    kinds = {"float32": {}, "native": {"dtype": "native", "concat": False}}
    rates: dict[tuple[str, str], list[float]] = {}
    reference = [0.0, 0.0]
    for _ in range(repeat):
        got = rate(lambda: (ReferenceLikeDataset(str(root / "data"), MODALITIES)[i] for i in range(n)), n)
        reference = [max(a, b) for a, b in zip(reference, got)]
        for kind, options in kinds.items():
            for fmt, folder in folders.items():
                got = rate(lambda folder=folder, options=options: iter(ShardDataset(folder, modalities=MODALITIES,
                                                                                    **options)), n)
                rates[(fmt, kind)] = [max(a, b) for a, b in zip(rates.get((fmt, kind), [0.0, 0.0]), got)]
    print(f"reference-like loader (xarray.open_zarr + dask, float32): {reference[0]:.1f} locations/s "
          f"({reference[1]:.1f} per CPU second)")
    for kind in kinds:
        (wds, wds_cpu), (pq, pq_cpu) = rates[("webdataset", kind)], rates[("parquet", kind)]
        print(f"ShardDataset {kind}: webdataset {wds:.1f}/s, parquet {pq:.1f}/s = {pq / wds:.2f}x (goal >= 0.8x); "
              f"parquet = {pq / reference[0]:.1f}x the reference (goal >= 4x); per CPU second: webdataset "
              f"{wds_cpu:.1f}, parquet {pq_cpu:.1f} = {pq_cpu / wds_cpu:.2f}x, {pq_cpu / reference[1]:.1f}x the "
              "reference")
    for fmt, folder in folders.items():
        _, peak, _ = run_measured([sys.executable, "-c", READ_SCRIPT, str(folder), str(n)])
        print(f"peak memory reading every location, {fmt}: {peak / 2**20:.0f} MiB (goal < 1024)")


def layouts(root: Path, out: Path, n: int, repeat: int) -> None:
    """The layouts and page settings that were weighed, on the same records, in-process on one core."""
    from neuco_io.converters import convert
    from neuco_io.loader import ShardDataset

    source = size_of(root, "data/*/*/*.zarr.zip")
    variants = [
        ("webdataset", "blosc", "binary", 2), ("parquet", "blosc", "binary", 2),
        ("parquet", "none", "binary", 2), ("parquet", "blosc", "tensor", 2),
        ("parquet", "blosc", "binary", 1), ("parquet", "blosc", "binary", 4), ("parquet", "blosc", "binary", 8),
    ]
    best: dict[tuple, list[float]] = {}
    for _ in range(repeat):
        for fmt, codec, arrays, group in variants:
            folder = out / f"{fmt}-{codec}-{arrays}-{group}"
            started = time.perf_counter()
            parquet = {"parquet_arrays": arrays, "row_group_size": group} if fmt == "parquet" else {}
            convert(root, folder, to=fmt, codec=codec, jobs=1, overwrite=True, **parquet)
            write = n / (time.perf_counter() - started)
            read, _ = rate(lambda folder=folder: iter(ShardDataset(folder, modalities=MODALITIES, dtype="native",
                                                                   concat=False)), n)
            old = best.get((fmt, codec, arrays, group), [0.0, 0.0])
            best[(fmt, codec, arrays, group)] = [max(old[0], write), max(old[1], read)]
    print(f"layouts ({n} locations, library calls, --jobs 1, best of {repeat}; read = ShardDataset native):")
    for (fmt, codec, arrays, group), (write, read) in best.items():
        folder = out / f"{fmt}-{codec}-{arrays}-{group}"
        ext = "tar" if fmt == "webdataset" else "parquet"
        label = fmt if fmt == "webdataset" else f"parquet {arrays}, codec {codec}, {group} rows/group"
        print(f"  {label:45s} {size_of(folder, f'*.{ext}') / source:.3f}x bytes  write {write:6.1f}/s  "
              f"read {read:6.1f}/s")
        shutil.rmtree(folder, ignore_errors=True)


def page_settings(root: Path, n: int, repeat: int) -> None:
    """Parquet settings on the array columns of `n` locations, with pyarrow alone (one array per value)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from neuco_io.cube.passthrough import read_sample, sample_frames
    from neuco_io.cube.reader import Cube
    from neuco_io.layout import discover
    from neuco_io.shards.codecs import blosc_member_parts, decode_blosc

    locations = list(discover(root).downstream_locations(MODALITIES))[:n]
    source = sum(f.path.stat().st_size for loc in locations for f in loc.files.values())
    blosc, raw = [], []
    for loc in locations:
        b, r = {}, {}
        for modality, f in loc.files.items():
            with Cube(f.path) as cube:
                array = read_sample(cube, "bands", 0)[0]
                b[modality] = b"".join(blosc_member_parts(array.dtype, array.shape, sample_frames(cube, "bands", 0)))
                r[modality] = array
        blosc.append(b)
        raw.append(r)

    def table(kind: str, rows: range) -> pa.Table:
        if kind == "tensor":
            return pa.table({m: pa.FixedShapeTensorArray.from_numpy_ndarray(np.stack([raw[i][m] for i in rows]))
                             for m in MODALITIES})
        values = blosc if kind == "blosc" else raw
        return pa.table({m: pa.chunked_array([pa.array([memoryview(np.ascontiguousarray(values[i][m])).cast("B")
                                                         if kind == "raw" else values[i][m]], pa.binary())
                                               for i in rows]) for m in MODALITIES})

    def write(path: Path, kind: str, **options) -> None:
        with pq.ParquetWriter(path, table(kind, range(2)).schema, **options) as writer:
            for start in range(0, n, 2):
                writer.write_table(table(kind, range(start, min(start + 2, n))))

    def read(path: Path, kind: str) -> None:
        pf = pq.ParquetFile(path, memory_map=True, pre_buffer=False)
        for group in range(pf.num_row_groups):
            columns = pf.read_row_group(group, use_threads=False)
            for m in MODALITIES:
                column = columns[m].combine_chunks()
                if kind == "tensor":
                    column.to_numpy_ndarray()
                    continue
                for value in column:
                    if kind == "blosc":
                        decode_blosc(value.as_buffer())
                    else:
                        np.frombuffer(value.as_buffer(), raw[0][m].dtype)

    plain = {"use_dictionary": False, "write_statistics": False}
    variants = [
        ("binary, blosc values, uncompressed pages (the default)", "blosc", {"compression": "none", **plain}),
        ("binary, blosc values, zstd-1 pages", "blosc", {"compression": "zstd", "compression_level": 1, **plain}),
        ("binary, blosc values, dictionary + statistics on", "blosc", {"compression": "none"}),
        ("binary, raw values, uncompressed", "raw", {"compression": "none", **plain}),
        ("binary, raw values, lz4 pages", "raw", {"compression": "lz4", **plain}),
        ("binary, raw values, zstd-1 pages (--codec none)", "raw",
         {"compression": "zstd", "compression_level": 1, **plain}),
        ("tensor, zstd-1", "tensor", {"compression": "zstd", "compression_level": 1, **plain}),
        ("tensor, zstd-1, byte-stream split on S1 (float16)", "tensor",
         {"compression": "zstd", "compression_level": 1, "use_byte_stream_split": ["s1.list.element"], **plain}),
    ]
    print(f"page settings ({n} locations, {source / 1e6:.0f} MB of cubes, pyarrow alone, one core, best of {repeat}; "
          "read = read every row group and decode every array to numpy):")
    path = Path("/dev/shm/neuco-page-settings.parquet")
    for label, kind, options in variants:
        write_s = read_s = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            write(path, kind, **options)
            write_s = min(write_s, time.perf_counter() - started)
            started = time.perf_counter()
            read(path, kind)
            read_s = min(read_s, time.perf_counter() - started)
        print(f"  {label:55s} {path.stat().st_size / source:.3f}x bytes  write {n / write_s:6.1f}/s  "
              f"read {n / read_s:6.1f}/s")
    path.unlink()


def main() -> None:
    numcodecs.blosc.use_threads = False  # one core per process, for every party
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/neuco-parquet-bench"))
    parser.add_argument("--layouts", action="store_true", help="also measure the layouts that were weighed")
    parser.add_argument("--pages", type=int, default=0, metavar="N",
                        help="also measure page settings on N locations with pyarrow alone")
    parser.add_argument("--skip-goals", action="store_true")
    args = parser.parse_args()
    root = sample_dataset("downstream", args.locations)
    warm(root)
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"machine: {describe_machine()}")
    if not args.skip_goals:
        goals(root, args.out, args.locations, args.repeat)
    if args.layouts:
        layouts(root, args.out, args.locations, args.repeat)
    if args.pages:
        page_settings(root, args.pages, args.repeat)
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
