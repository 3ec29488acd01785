"""A `convert` output's `manifest.json`, read as untrusted input: bounded, parsed, checked before use.

Everything that opens shards or label files by a manifest's word (the loader,
`verify`, `embed`, `labels export`, `info`, `convert --resume`) loads it here
as a `Manifest`, so a crafted manifest cannot name a file outside its folder,
claim impossible counts, come from a newer format, or exhaust memory or the
stack: it is refused with a `ManifestError` naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

from neuco_io import spec
from neuco_io.errors import ManifestError, UsageError
from neuco_io.names import name_problem, relative_path_problem
from neuco_io.shards.record import check_format_version
from neuco_io.storage import file_size, open_read, open_store

__all__ = ["JOURNAL", "MANIFEST", "MAX_MANIFEST_BYTES", "STATE_DIR", "Manifest", "check_manifest",
           "is_convert_output", "is_shard_source", "refuse_interrupted"]

MANIFEST = "manifest.json"
STATE_DIR = ".neuco-io"
JOURNAL = f"{STATE_DIR}/plan.json"
"""The journal of a conversion under way: there without a manifest, the conversion was interrupted."""
MAX_MANIFEST_BYTES = 256 << 20
"""About 2.5 million locations' index entries: ten times the largest public dataset (SSL4EO-S12 v1.1)."""
SHARD_SUFFIXES = {"webdataset": ".tar", "parquet": ".parquet"}


class Manifest(Mapping[str, Any]):
    """A checked manifest: its JSON fields (read-only, as a mapping), the shard files, and the index.

    Shard and label file names are plain file names (checked), so `path()` never leaves the folder.
    """

    def __init__(self, data: dict[str, Any], folder: Any) -> None:
        check_manifest(data, folder / MANIFEST)
        self._data = data
        self.folder = folder

    @classmethod
    def load(cls, folder: Any, storage_options: dict[str, Any] | None = None) -> Manifest:
        """`folder/manifest.json`. UsageError when there is none (saying so when a conversion was interrupted),
        ManifestError when it is unusable."""
        folder = open_store(folder, storage_options).path
        return cls(_read(folder), folder)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Manifest({self.folder}, {self.format}, {len(self.shards)} shards)"

    @property
    def format(self) -> str:
        """`webdataset` or `parquet`."""
        return self._data["output_format"]

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self._data["shards"]

    @property
    def tasks(self) -> dict[str, dict]:
        return self._data.get("tasks", {})

    def path(self, name: str) -> Any:
        """A file of this output (a shard, the labels table) by its checked name."""
        return self.folder / name

    @property
    def shard_paths(self) -> list[Any]:
        return [self.path(s["name"]) for s in self.shards]

    @property
    def labels_path(self) -> Any | None:
        """The labels table (`labels.parquet`), when the conversion had tasks."""
        return self.path(self._data["labels"]) if self._data.get("labels") else None

    def place(self, loc_id: str) -> tuple[int, int, int, int] | None:
        """Where a location is: (shard number, row, byte offset, size); offset and size are -1 in Parquet."""
        entry = self._data.get("index", {}).get(loc_id)
        return tuple(entry) if entry is not None else None

    @cached_property
    def by_shard(self) -> dict[int, list[list]]:
        """The index turned around: shard number -> its [id, row, offset, size] entries in row order."""
        by_shard: dict[int, list[list]] = {}
        for loc_id, (shard, *place) in self._data.get("index", {}).items():
            by_shard.setdefault(shard, []).append([loc_id, *place])
        for entries in by_shard.values():
            entries.sort(key=lambda entry: entry[1])
        return by_shard

    def ids(self, shard: dict[str, Any]) -> list[str]:
        """The ids of a shard entry's records, in row order."""
        return [entry[0] for entry in self.by_shard.get(shard["index"], [])]


def refuse_interrupted(folder: Any) -> None:
    """Raise a UsageError saying so if `folder` holds a conversion that was stopped before its manifest."""
    if file_size(folder / JOURNAL) is not None and file_size(folder / MANIFEST) is None:
        raise UsageError(f"{folder} holds an interrupted conversion (no manifest yet): finish it with "
                         "`neuco-io convert ROOT OUT --resume`")


def is_convert_output(folder: Any, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether `folder` is a finished `convert` output (it has a manifest)."""
    return open_store(folder, storage_options).has(MANIFEST)


def is_shard_source(source: Any, storage_options: dict[str, Any] | None = None) -> bool:
    """A convert output folder (manifest.json), shard files, or a brace pattern of them (not a dataset ROOT)."""
    if not isinstance(source, (str, os.PathLike)):
        return True
    text = os.fspath(source)
    return "{" in text or text.endswith((".tar", ".parquet")) or is_convert_output(source, storage_options)


def _read(folder: Any) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        size = file_size(path)
    except OSError as exc:
        raise ManifestError(path, f"unreadable manifest: {exc}") from None
    if size is None:
        refuse_interrupted(folder)
        raise UsageError(f"{path}: no manifest; is this a neuco-io convert output?")
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(path, f"manifest of {size} bytes exceeds the {MAX_MANIFEST_BYTES}-byte limit")
    try:
        with open_read(path, sequential=True) as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(path, f"manifest exceeds the {MAX_MANIFEST_BYTES}-byte limit")
        return json.loads(data.decode("utf-8"))
    except ManifestError:
        raise
    except (OSError, ValueError, RecursionError, MemoryError) as exc:  # JSONDecodeError and UnicodeError too
        raise ManifestError(path, f"unreadable manifest: {type(exc).__name__}: {exc}") from None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_manifest(manifest: Any, path: Any) -> None:
    """Refuse a manifest whose fields the readers would trip over or that names files outside its folder."""

    def refuse(message: str) -> None:
        raise ManifestError(path, message)

    if not isinstance(manifest, dict):
        refuse(f"not a JSON object but a {type(manifest).__name__}")
    try:
        check_format_version(manifest.get("format_version"))
    except ValueError as exc:  # written by a newer neuco-io, or nonsense
        refuse(str(exc))
    fmt = manifest.get("output_format")
    if fmt not in SHARD_SUFFIXES:
        refuse(f"output_format {fmt!r} is not one of {', '.join(SHARD_SUFFIXES)}")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        refuse("`shards` is not a list")
    names = set()
    for number, shard in enumerate(shards):
        if not isinstance(shard, dict):
            refuse(f"shard entry {number} is not an object")
        name = shard.get("name")
        problem = name_problem(name)
        if problem:
            refuse(f"shard name {name!r} {problem}")
        if not name.endswith(SHARD_SUFFIXES[fmt]):
            refuse(f"shard name {name!r} does not end with {SHARD_SUFFIXES[fmt]} ({fmt} output)")
        if name in names:
            refuse(f"shard {name!r} is listed twice")
        names.add(name)
        for field in ("records", "bytes", "index"):
            if not _int(shard.get(field)):
                refuse(f"shard {name}: `{field}` is not a non-negative integer: {shard.get(field)!r}")
        if not isinstance(shard.get("sha256"), str):
            refuse(f"shard {name}: `sha256` is not a string")
    if "records" in manifest and not _int(manifest["records"]):
        refuse(f"`records` is not a non-negative integer: {manifest['records']!r}")
    _check_index(manifest.get("index", {}), len(shards), refuse)
    _check_tasks(manifest.get("tasks", {}), refuse)
    labels = manifest.get("labels")
    if labels is not None and name_problem(labels):
        refuse(f"labels file name {labels!r} {name_problem(labels)}")
    modalities = manifest.get("modalities", [])
    if not isinstance(modalities, list) or any(not isinstance(m, str) or m not in spec.MODALITIES
                                               for m in modalities):
        refuse(f"`modalities` is not a list of known modalities: {str(modalities)[:200]}")


def _check_index(index: Any, n_shards: int, refuse) -> None:
    if not isinstance(index, dict):
        refuse("`index` is not an object")
    for loc_id, entry in index.items():
        if not (isinstance(entry, list) and len(entry) == 4 and all(isinstance(v, int) for v in entry)
                and 0 <= entry[0] < n_shards and entry[1] >= 0):
            refuse(f"index entry for {loc_id[:100]!r} is not [shard, row, offset, size] of an existing shard")


def _check_tasks(tasks: Any, refuse) -> None:
    if not isinstance(tasks, dict):
        refuse("`tasks` is not an object")
    for task, info in tasks.items():
        problem = name_problem(task) or ("contains '__'" if "__" in task else None)
        if problem:
            refuse(f"task name {task!r} {problem}")
        if not isinstance(info, dict) or not isinstance(info.get("type"), str):
            refuse(f"task {task}: no `type`")
        file_name = f"{task}__{info['type']}.csv"
        problem = name_problem(file_name)
        if problem:
            refuse(f"task {task}: type {info['type']!r} makes a file name that {problem}")
        problem = relative_path_problem(info.get("file"))
        if problem:
            refuse(f"task {task}: label file {info.get('file')!r} {problem}")
