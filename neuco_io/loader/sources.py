"""Resolve what a ShardDataset reads: a converted folder (with its manifest), paths, or a brace pattern."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from neuco_io.errors import UsageError
from neuco_io.findings import and_more
from neuco_io.shards.manifest import Manifest, is_convert_output
from neuco_io.shards.parquet import count_parquet_records
from neuco_io.shards.tar import count_tar_records
from neuco_io.storage import as_path, file_size, glob_files, is_upath, open_store

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
    manifest: Manifest | None = None


GLOB_CHARS = "*?["


def _expand(pattern: str, storage_options: dict[str, Any] | None) -> list[str]:
    """Brace patterns (`shard-{000000..000009}.tar`) and globs (`shard-*.tar`), sorted within each glob."""
    import braceexpand

    names = []
    for name in braceexpand.braceexpand(pattern):
        if not any(c in name for c in GLOB_CHARS):
            names.append(name)
        else:
            names.extend(glob_files(name, storage_options))
    return names


def _format_of(paths: Sequence[str]) -> str:
    kinds = {"parquet" if p.endswith(".parquet") else "webdataset" if p.endswith(".tar") else "?" for p in paths}
    if kinds == {"parquet"}:
        return "parquet"
    if kinds == {"webdataset"}:
        return "webdataset"
    raise UsageError(f"shards must all be .tar (WebDataset) or all .parquet, got {sorted(kinds)}")


def _from_manifest(folder: Any) -> ShardSource:
    manifest = Manifest.load(folder)  # checked: shard names are plain file names, counts integers
    return ShardSource(manifest.shard_paths, [s["records"] for s in manifest.shards], manifest.format,
                       manifest.tasks, manifest)


def _exists(path: Any) -> bool:
    return file_size(path) is not None


def resolve_shards(source: Any, storage_options: dict[str, Any] | None = None) -> ShardSource:
    """A folder written by `convert` (manifest.json), a list of shard paths or URLs, or a brace pattern."""
    if isinstance(source, (str, os.PathLike)) or is_upath(source):
        text = str(source) if is_upath(source) else os.fspath(source)
        if "{" not in text and not any(c in text for c in GLOB_CHARS):
            folder = open_store(source, storage_options)
            if is_convert_output(folder.path):
                return _from_manifest(folder.path)
            if folder.supports_listing and folder.is_dir():
                raise UsageError(f"{text}: no manifest.json; pass shard paths or a pattern instead")
            names = [text]
        else:
            names = _expand(text, storage_options)
            if not names:
                raise UsageError(f"{text}: no shard matches this pattern")
    else:
        names = list(source)
    if not names:
        raise UsageError("no shards given")
    paths = [as_path(n, storage_options) for n in names]
    missing = [str(p) for p in paths if not _exists(p)]
    if missing:
        raise UsageError(f"shard not found: {missing[0]}{and_more(len(missing) - 1, parens=True)}")
    fmt = _format_of([str(p) for p in paths])
    # Shards that all come from one converted folder: take counts and tasks from its manifest.
    parents = {str(p.parent) for p in paths}
    if len(parents) == 1 and is_convert_output(paths[0].parent):
        full = _from_manifest(paths[0].parent)
        known = {str(p): n for p, n in zip(full.paths, full.counts)}
        if all(str(p) in known for p in paths):
            return ShardSource(paths, [known[str(p)] for p in paths], fmt, full.tasks, full.manifest)
    counter = count_parquet_records if fmt == "parquet" else count_tar_records
    return ShardSource(paths, [counter(p) for p in paths], fmt)
