"""`submission pack`: a correct submission CSV from an array and an id list, or from a sloppy CSV.

The result is checked (with the chosen profile) before it is renamed into
place; a file that would fail is never left under the output name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neuco_io import spec
from neuco_io.errors import NeucoError, UsageError
from neuco_io.findings import Report
from neuco_io.storage.atomic import atomic_path
from neuco_io.storage.local import require_regular_file
from neuco_io.submission.check import check_submission, read_id_list
from neuco_io.submission.writer import EmbeddingWriter
from neuco_io.wording import plural

__all__ = ["PackRefused", "SubmissionPack", "pack_submission"]


class PackRefused(NeucoError):
    """The submission would not pass its check: nothing was written."""

    def __init__(self, report: Report) -> None:
        self.report = report
        first = report.errors[0]
        where = f" (line {first.row})" if first.row else ""
        super().__init__(f"refusing to write the submission: {plural(len(report.errors), 'error')}, first "
                         f"{first.code}{where}: {first.message}")


@dataclass
class SubmissionPack:
    out: Path
    rows: int
    dim: int
    report: Report


def _dimension_order(names: list[str]) -> list[str]:
    digits = [c for c in names if str(c).isdigit()]
    return sorted(digits, key=int) if digits else list(names)


def _from_csv(path: Path) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"id": str}, encoding="utf-8-sig", keep_default_na=False,
                            na_values=[""])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a readable CSV: {exc}") from None
    if "id" not in frame.columns:
        raise UsageError(f"{path}: no `id` column")
    columns = _dimension_order([c for c in frame.columns if c != "id"])
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame[columns].notna()
    if bad.any().any():
        row, col = next((r, c) for c in columns for r in np.flatnonzero(bad[c].to_numpy()))
        raise UsageError(f"{path}: line {row + 2}, column {col}: {frame[col].iloc[row]!r} is not a number")
    return frame["id"].astype(str).tolist(), values.to_numpy(np.float64)


def _from_parquet(path: Path) -> tuple[list[str] | None, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    ids = table.column("id").to_pylist() if "id" in table.column_names else None
    others = [c for c in table.column_names if c != "id"]
    if len(others) == 1 and str(table.schema.field(others[0]).type).startswith(("list", "fixed_size_list",
                                                                                  "large_list")):
        matrix = np.array(table.column(others[0]).to_pylist(), dtype=np.float64)
    else:
        matrix = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
                                  for c in _dimension_order(others)])
    return ids, matrix


def pack_submission(source: str | os.PathLike[str], out: str | os.PathLike[str], *,
                    ids: str | os.PathLike[str] | None = None, dim: int | None = None,
                    expected: set[str] | None = None, profile: str = "benchmark",
                    overwrite: bool = False) -> SubmissionPack:
    """Write `out` (.csv) from SOURCE (.npy array [N, D], .parquet, or a CSV to tidy), checked first."""
    source, out = Path(source), Path(out)
    if out.suffix != ".csv":
        raise UsageError("--out must be a .csv file (the NeuCo-Bench submission format)")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --overwrite)")
    try:
        require_regular_file(source)
    except OSError as exc:
        raise UsageError(f"{source}: cannot read: {exc.strerror}") from None
    suffix = source.suffix.lower()
    if suffix == ".npy":
        try:
            matrix = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{source}: not a readable .npy array: {exc}") from None
        if ids is None:
            raise UsageError("an .npy array needs --ids (one id per line, in row order)")
        id_list: list[str] | None = None
    elif suffix == ".parquet":
        id_list, matrix = _from_parquet(source)
    elif suffix == ".csv":
        id_list, matrix = _from_csv(source)
    else:
        raise UsageError(f"{source}: use an .npy, .parquet or .csv file")
    if ids is not None:
        id_list = read_id_list(ids)
    if id_list is None:
        raise UsageError(f"{source} has no `id` column: pass --ids")
    if matrix.ndim != 2 or matrix.dtype.kind not in "biuf":
        raise UsageError(f"{source}: expected a numeric [N, D] array, got {matrix.dtype} {list(matrix.shape)}")
    if len(id_list) != matrix.shape[0]:
        raise UsageError(f"{len(id_list)} ids for {matrix.shape[0]} embedding rows")
    id_list = [spec.strip_cube_suffix(str(i).strip()) for i in id_list]
    width = matrix.shape[1]
    if dim is not None:
        if width > dim:
            raise UsageError(f"{width} dimensions, more than --dim {dim}")
        matrix = np.pad(matrix, ((0, 0), (0, dim - width)))
    with atomic_path(out, overwrite=True) as temp:
        writer = EmbeddingWriter(temp, matrix.shape[1])
        try:
            for start in range(0, matrix.shape[0], 4096):
                writer.write(id_list[start:start + 4096], matrix[start:start + 4096])
        finally:
            writer.close()
        report = check_submission(temp, ids=expected, dim=dim, profile=profile, padding=matrix.shape[1] - width)
        report.root = str(out)
        report.findings = [replace(f, path=str(out)) for f in report.findings]  # the user's file, not ours
        if report.errors:
            raise PackRefused(report)
    return SubmissionPack(out, matrix.shape[0], matrix.shape[1], report)
