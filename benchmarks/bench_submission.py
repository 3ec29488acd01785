"""`submission check` on a 13,260 x 1,024 CSV against a pandas-based checker of the same rules (issue 6).

    .venv/bin/python benchmarks/bench_submission.py [--rows 13260] [--dim 1024] [--repeat 3]

Goal: at least 5x faster than the pandas checker, measured in the same run.
The file (~250 MB) is written once to bench-output/; a handful of defects
(a NaN, an empty cell, a suffixed id) make both checkers do real work.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from neuco_io.submission import check_submission

from common import CACHE, describe_machine
from memory import run_measured


def make_file(path: Path, rows: int, dim: int) -> list[str]:
    ids = [f"{i:064x}" for i in range(rows)]
    if path.exists():
        return ids
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        fh.write("id," + ",".join(str(i) for i in range(dim)) + "\n")
        for start in range(0, rows, 1000):
            # float64 values written in full (what pandas' to_csv does): ~18 characters each, ~250 MB
            block = rng.normal(size=(min(1000, rows - start), dim))
            lines = []
            for k, row in enumerate(block):
                values = [repr(float(v)) for v in row]
                i = start + k
                if i == 17:
                    values[5] = "nan"
                if i == 4000:
                    values[700] = ""
                loc = ids[i] + (".zarr.zip" if i == 9000 else "")
                lines.append(loc + "," + ",".join(values))
            fh.write("\n".join(lines) + "\n")
    tmp.rename(path)
    return ids


def pandas_check(path: Path, expected: set[str], dim: int) -> dict:
    """The same rules, the obvious pandas way (as the evaluator itself reads submissions)."""
    df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False, na_values=[""])
    out: dict = {"id_column": "id" in df.columns}
    raw_ids = df["id"].astype(str)
    ids = raw_ids.str.replace(".zarr.zip", "", regex=False).str.replace(".zarr", "", regex=False)
    out["suffixed"] = int((ids != raw_ids).sum())
    out["duplicates"] = int(ids.duplicated().sum())
    out["missing"] = len(expected - set(ids))
    out["unknown"] = len(set(ids) - expected)
    dims = sorted((c for c in df.columns if c.isdigit()), key=int)
    out["names_ok"] = dims == [str(i) for i in range(len(dims))]
    out["too_many"] = len(dims) > dim
    block = df[dims]
    numeric = block.apply(pd.to_numeric, errors="coerce")
    out["not_numeric"] = int((numeric.isna() & block.notna()).sum().sum())
    values = numeric.to_numpy(np.float64)
    nan = np.isnan(values)
    out["nan"] = int(nan.sum())
    out["nan_cells"] = list(zip(*np.nonzero(nan)))[:20]
    out["inf"] = int(np.isinf(values).sum())
    finite = np.where(np.isfinite(values), values, np.nan)
    out["constant"] = int((np.nanmin(finite, axis=0) == np.nanmax(finite, axis=0)).sum())
    return out


def main() -> None:
    warnings.filterwarnings("ignore", category=pd.errors.DtypeWarning)  # the NaN column, as in real files
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=13260)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = CACHE / f"submission-{args.rows}x{args.dim}-float64.csv"
    ids = make_file(path, args.rows, args.dim)
    expected = set(ids)
    path.read_bytes()  # warm the page cache for both checkers
    print(f"machine: {describe_machine()}")
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB, {args.rows} x {args.dim})")
    base, ours = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        reference = pandas_check(path, expected, args.dim)
        base.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = check_submission(path, ids=expected, dim=args.dim)
        ours.append(time.perf_counter() - started)
    counts = report.summary["counts"]
    assert counts.get("submission.nan") == reference["nan"] == 2
    assert counts.get("submission.id-suffix") == reference["suffixed"] == 1
    b, o = min(base), min(ours)
    print(f"pandas-based checker: {b:.2f} s")
    print(f"neuco-io submission check: {o:.2f} s = {b / o:.1f}x faster (goal >= 5x)")
    exe = str(Path(sys.executable).with_name("neuco-io"))
    seconds, peak, _ = run_measured([exe, "submission", "check", str(path), "--dim", str(args.dim), "--format",
                                     "json"], stdout=subprocess.DEVNULL)
    print(f"CLI run: {seconds:.2f} s, peak memory {peak / 2**20:.0f} MiB for a {path.stat().st_size / 2**20:.0f} MiB "
          "file")


if __name__ == "__main__":
    main()
