"""Resolve what a ShardDataset reads: a converted folder (with its manifest), paths, or a brace pattern."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ShardError, UsageError

__all__ = ["ShardSource", "resolve_shards"]


@dataclass
class ShardSource:
    """The shards of a dataset, their record counts and format; what the manifest knew, if any."""

    paths: list[str]
    counts: list[int]
    format: str
    """webdataset or parquet."""
    tasks: dict[str, dict] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None


def _expand(pattern: str) -> list[str]:
    import braceexpand

    return list(braceexpand.braceexpand(pattern))


def _format_of(paths: Sequence[str]) -> str:
    kinds = {"parquet" if p.endswith(".parquet") else "webdataset" if p.endswith(".tar") else "?" for p in paths}
    if kinds == {"parquet"}:
        return "parquet"
    if kinds == {"webdataset"}:
        return "webdataset"
    raise UsageError(f"shards must all be .tar (WebDataset) or all .parquet, got {sorted(kinds)}")


def count_tar_records(path: str) -> int:
    """Records in a tar shard, from its headers (members of one record are contiguous)."""
    keys = 0
    last = None
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if info.isfile():
                    key = info.name.rsplit("/", 1)[-1].split(".", 1)[0]
                    if key != last:
                        keys += 1
                        last = key
    except (tarfile.TarError, OSError) as exc:
        raise ShardError(path, f"cannot count records: {exc}") from None
    return keys


def count_parquet_records(path: str) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:
        raise ShardError(path, f"cannot read Parquet metadata: {exc}") from None


def _from_manifest(folder: Path) -> ShardSource:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    shards = manifest["shards"]
    return ShardSource([str(folder / s["name"]) for s in shards], [int(s["records"]) for s in shards],
                       manifest["output_format"], manifest.get("tasks", {}), manifest)


def resolve_shards(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> ShardSource:
    """A folder written by `convert` (manifest.json), a list of shard paths, or a brace pattern."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if Path(text).is_dir():
            if not (Path(text) / "manifest.json").is_file():
                raise UsageError(f"{text}: no manifest.json; pass shard paths or a pattern instead")
            return _from_manifest(Path(text))
        paths = _expand(text) if "{" in text else [text]
    else:
        paths = [os.fspath(p) for p in source]
    if not paths:
        raise UsageError("no shards given")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UsageError(f"shard not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                              else ""))
    fmt = _format_of(paths)
    # Shards that all come from one converted folder: take counts and tasks from its manifest.
    folders = {Path(p).parent for p in paths}
    if len(folders) == 1 and (next(iter(folders)) / "manifest.json").is_file():
        full = _from_manifest(next(iter(folders)))
        known = dict(zip(full.paths, full.counts))
        if all(str(Path(p)) in known for p in paths):
            return ShardSource(paths, [known[str(Path(p))] for p in paths], fmt, full.tasks, full.manifest)
    counter = count_parquet_records if fmt == "parquet" else count_tar_records
    return ShardSource(paths, [counter(p) for p in paths], fmt)
