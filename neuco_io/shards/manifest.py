"""Read a `convert` output's `manifest.json` as untrusted input: bounded, parsed, checked before use.

Everything that opens shards or label files by a manifest's word (the loader,
`verify`, `embed`, `labels export`, `convert --resume`) reads it here, so a
crafted manifest cannot name a file outside its folder, claim impossible
counts, or exhaust memory or the stack: it is refused with a `ManifestError`
naming it.
"""

from __future__ import annotations

import json
from typing import Any

from neuco_io import spec
from neuco_io.errors import ManifestError, UsageError
from neuco_io.names import name_problem, relative_path_problem
from neuco_io.shards.record import check_format_version
from neuco_io.storage import file_size, open_read

__all__ = ["MANIFEST", "MAX_MANIFEST_BYTES", "check_manifest", "read_manifest"]

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 << 20
"""About 2.5 million locations' index entries: ten times the largest public dataset (SSL4EO-S12 v1.1)."""
SHARD_SUFFIXES = {"webdataset": ".tar", "parquet": ".parquet"}


def read_manifest(folder: Any) -> dict[str, Any]:
    """`folder/manifest.json`, checked. UsageError when there is none, ManifestError when it is unusable."""
    path = folder / MANIFEST
    try:
        size = file_size(path)
    except OSError as exc:
        raise ManifestError(path, f"unreadable manifest: {exc}") from None
    if size is None:
        raise UsageError(f"{path}: no manifest; is this a neuco-io convert output?")
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(path, f"manifest of {size} bytes exceeds the {MAX_MANIFEST_BYTES}-byte limit")
    try:
        with open_read(path, sequential=True) as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(path, f"manifest exceeds the {MAX_MANIFEST_BYTES}-byte limit")
        manifest = json.loads(data.decode("utf-8"))
    except ManifestError:
        raise
    except (OSError, ValueError, RecursionError, MemoryError) as exc:  # JSONDecodeError and UnicodeError too
        raise ManifestError(path, f"unreadable manifest: {type(exc).__name__}: {exc}") from None
    check_manifest(manifest, path)
    return manifest


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
