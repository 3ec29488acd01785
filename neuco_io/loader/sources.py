"""Resolve what a ShardDataset reads: a converted folder (with its manifest), paths, or a brace pattern."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ShardError, UsageError
from ..storage import as_path, file_size, is_remote, open_read

__all__ = ["ShardSource", "resolve_shards"]


@dataclass
class ShardSource:
    """The shards of a dataset, their record counts and format; what the manifest knew, if any."""

    paths: list[Any]
    """Path or UPath (URLs keep their storage options)."""
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


def count_tar_records(path: Any) -> int:
    """Records in a tar shard, from its headers (members of one record are contiguous)."""
    keys = 0
    last = None
    try:
        with open_read(as_path(path), sequential=True) as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
            for info in tar:
                if info.isfile():
                    key = info.name.rsplit("/", 1)[-1].split(".", 1)[0]
                    if key != last:
                        keys += 1
                        last = key
    except (tarfile.TarError, OSError) as exc:
        raise ShardError(path, f"cannot count records: {exc}") from None
    return keys


def count_parquet_records(path: Any) -> int:
    import pyarrow.parquet as pq

    try:
        with open_read(as_path(path)) as fh:
            return pq.ParquetFile(fh).metadata.num_rows
    except Exception as exc:
        raise ShardError(path, f"cannot read Parquet metadata: {exc}") from None


def _from_manifest(folder: Any) -> ShardSource:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    shards = manifest["shards"]
    return ShardSource([folder / s["name"] for s in shards], [int(s["records"]) for s in shards],
                       manifest["output_format"], manifest.get("tasks", {}), manifest)


def _exists(path: Any) -> bool:
    return file_size(path) is not None


def resolve_shards(source: Any, storage_options: dict[str, Any] | None = None) -> ShardSource:
    """A folder written by `convert` (manifest.json), a list of shard paths or URLs, or a brace pattern."""
    if isinstance(source, (str, os.PathLike)) or type(source).__module__.startswith("upath"):
        text = str(source) if type(source).__module__.startswith("upath") else os.fspath(source)
        if "{" not in text:
            folder = as_path(source, storage_options)
            if _exists(folder / "manifest.json"):
                return _from_manifest(folder)
            if not is_remote(folder) and folder.is_dir():
                raise UsageError(f"{text}: no manifest.json; pass shard paths or a pattern instead")
            names = [text]
        else:
            names = _expand(text)
    else:
        names = list(source)
    if not names:
        raise UsageError("no shards given")
    paths = [as_path(n, storage_options) for n in names]
    missing = [str(p) for p in paths if not _exists(p)]
    if missing:
        raise UsageError(f"shard not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                              else ""))
    fmt = _format_of([str(p) for p in paths])
    # Shards that all come from one converted folder: take counts and tasks from its manifest.
    parents = {str(p.parent) for p in paths}
    if len(parents) == 1 and _exists(paths[0].parent / "manifest.json"):
        full = _from_manifest(paths[0].parent)
        known = {str(p): n for p, n in zip(full.paths, full.counts)}
        if all(str(p) in known for p in paths):
            return ShardSource(paths, [known[str(p)] for p in paths], fmt, full.tasks, full.manifest)
    counter = count_parquet_records if fmt == "parquet" else count_tar_records
    return ShardSource(paths, [counter(p) for p in paths], fmt)
