"""`ids=`: which records a dataset reads, from a list or a file of ids, through the manifest's index.

The manifest `convert` writes maps every id to `[shard, row, offset, size]`
(for tar shards the byte range of the record's members). A selection keeps,
per shard, the rows wanted and their byte ranges, so a shard is read once and
only where its wanted records are: one positioned read (one range request on
a URL) per run of adjacent records.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from neuco_io.errors import ShardError, UsageError
from neuco_io.storage import open_store
from neuco_io.storage.local import require_regular_file
from neuco_io.wording import first_few

__all__ = ["Selection", "locate", "manifest_index", "read_id_list", "read_ranges", "select_ids"]

ID_SUFFIXES = (".zarr.zip", ".zarr")

MAX_ID_FILE_BYTES = 256 << 20
"""Largest id file read: far above any real list, far below what would exhaust memory."""


def read_id_list(ids: str | os.PathLike[str] | Iterable[str]) -> list[str]:
    """Ids from a list, or from a text file with one id per line (blank lines and `#` comments skipped;
    `.zarr.zip` suffixes stripped, as the evaluator does). Repeats are kept once, first place first."""
    if isinstance(ids, (str, os.PathLike)):
        try:
            if require_regular_file(ids) > MAX_ID_FILE_BYTES:
                raise UsageError(f"ids: {os.fspath(ids)} is over {MAX_ID_FILE_BYTES >> 20} MiB; an id list of the "
                                 "largest dataset (SSL4EO-S12 v1.1: about 250,000 ids) takes a few MB")
            with open(ids, encoding="utf-8-sig") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            hint = f" (one id goes in a list: ids=[{ids!r}])" if isinstance(ids, str) and not os.path.lexists(ids) \
                else ""
            raise UsageError(f"ids: cannot read {os.fspath(ids)}: {exc.strerror or exc}{hint}") from None
        except UnicodeDecodeError:
            raise UsageError(f"ids: {os.fspath(ids)} is not UTF-8 text (one id per line)") from None
        items = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        items = [str(i).strip() for i in ids]
    out = []
    for item in items:
        for suffix in ID_SUFFIXES:
            if item.endswith(suffix):
                item = item[: -len(suffix)]
                break
        out.append(item)
    if not out:
        where = f" in {os.fspath(ids)}" if isinstance(ids, (str, os.PathLike)) else ""
        raise UsageError(f"ids: no id given{where} (leave out ids= to read every record)")
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Selection:
    """Per shard (in the dataset's shard order): the rows read, ascending, and their byte ranges."""

    rows: list[list[int]]
    ranges: list[list[tuple[int, int]]]
    """(offset, size) per selected row; offset -1 where the shard format has none (Parquet)."""

    @property
    def counts(self) -> list[int]:
        return [len(r) for r in self.rows]


def manifest_index(manifest: dict[str, Any] | None, what: str) -> dict[str, list[int]]:
    index = (manifest or {}).get("index")
    if not index:
        raise UsageError(f"{what}: needs the manifest.json `convert` writes (its index of ids); pass the convert "
                         f"output folder, or its shards with the manifest beside them")
    return index


def select_ids(ids: Sequence[str], manifest: dict[str, Any] | None, shard_names: Sequence[str]) -> Selection:
    """The rows holding `ids` (each id once). An id the index does not know, or in a shard not read, is a
    UsageError naming the first few."""
    index = manifest_index(manifest, "ids")
    names = [s["name"] for s in manifest["shards"]]
    position = {name: i for i, name in enumerate(shard_names)}
    rows: list[dict[int, tuple[int, int]]] = [{} for _ in shard_names]
    unknown = []
    for loc_id in ids:
        entry = index.get(loc_id)
        where = position.get(names[entry[0]]) if entry is not None else None
        if where is None:
            unknown.append(loc_id)
            continue
        rows[where][entry[1]] = checked_range(manifest, loc_id, entry)
    if unknown:
        raise UsageError(f"ids: {len(unknown)} of {len(ids)} ids are not in the shards read: {first_few(unknown)}")
    ordered = [sorted(r) for r in rows]
    return Selection(ordered, [[r[row] for row in keep] for r, keep in zip(rows, ordered)])


def locate(loc_id: str, manifest: dict[str, Any] | None, shard_names: Sequence[str]) -> tuple[int, int, int, int]:
    """(shard position among `shard_names`, row, offset, size) of one id; KeyError when unknown."""
    entry = manifest_index(manifest, "get")[loc_id]
    shard = list(shard_names).index(manifest["shards"][entry[0]]["name"])
    return (shard, entry[1], *checked_range(manifest, loc_id, entry))


def checked_range(manifest: dict[str, Any], loc_id: str, entry: list[int]) -> tuple[int, int]:
    """(offset, size) of an index entry, inside its shard: a tampered index must not make `get`/`ids=` seek
    outside the file or allocate a terabyte. Parquet entries carry (-1, -1) (rows are found by row group)."""
    shard = manifest["shards"][entry[0]]
    offset, size = entry[2], entry[3]
    if (offset, size) == (-1, -1) and manifest.get("output_format") == "parquet":
        return offset, size
    if not (offset >= 0 and size > 0 and offset + size <= shard["bytes"]):
        raise ShardError(shard["name"], f"the manifest's index places {loc_id[:100]!r} at bytes "
                         f"{offset}..{offset + size}, outside the shard's {shard['bytes']} bytes")
    return offset, size


def read_ranges(path: Any, ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[int, memoryview]]:
    """(index in `ranges`, the bytes) for byte ranges of one file, ascending: adjacent ranges are one read
    (one range request on a URL, never the whole file)."""
    if not ranges:
        return
    groups: list[list[int]] = []
    for i in sorted(range(len(ranges)), key=lambda k: ranges[k][0]):
        if groups and ranges[i][0] == sum(ranges[groups[-1][-1]]):
            groups[-1].append(i)
        else:
            groups.append([i])
    spans = [(ranges[group[0]][0], sum(ranges[group[-1]])) for group in groups]
    with contextlib.closing(open_store(path).read_ranges("", spans)) as blocks:  # the file closes with us
        for group, (start, end), data in zip(groups, spans, blocks):
            if len(data) != end - start:
                raise OSError(f"{path}: bytes {start}-{end} asked, {len(data)} read (the shard is "
                              f"{'shorter' if len(data) < end - start else 'other'} than its manifest says)")
            for i in group:
                offset, size = ranges[i]
                yield i, memoryview(data)[offset - start: offset - start + size]
