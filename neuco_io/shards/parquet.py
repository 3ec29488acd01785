"""Read neuco-io Parquet shards, either array layout, row group by row group.

A local shard is memory-mapped (its pages are decoded where they lie); from
a file object or a URL, a row group's columns are fetched together
(pyarrow's pre-buffering joins the column chunks a read needs into one
positioned read, one range request on object stores). Row groups holding no
wanted row are not read at all.
Binary values are decoded from pyarrow's buffers without copying them:
`.blosc` containers straight into the output array (only the timestamps
asked for), raw bytes as a read-only view. Every array is checked against
the dtype and shape its JSON record states; anything wrong is a ShardError
naming the shard and the id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuco_io.errors import ShardError
from neuco_io.shards.codecs import BLOSC_EXT, _check_dtype, check_format_version, decode_member
from neuco_io.shards.tar import check_array, check_record, check_record_version, data_errors, expected_specs
from neuco_io.storage import open_store

__all__ = ["ParquetRow", "ParquetShard", "iter_parquet_records", "open_parquet_shard"]

MAX_RECORD_CHARS = 16 << 20


def _error(shard: str, exc: BaseException) -> ShardError:
    return ShardError(shard, f"unreadable Parquet shard: {type(exc).__name__}: {exc}")


@dataclass
class ParquetRow:
    """One row of a row group: its JSON record, decoded on demand (`arrays`)."""

    number: int
    meta: dict[str, Any]
    shard: str
    _table: Any
    _index: int

    @property
    def id(self) -> str:
        return self.meta["id"]

    def arrays(self, names: Sequence[str] | None = None, take: Sequence[int] | None = None
               ) -> dict[str, np.ndarray]:
        """The arrays the record lists (or `names`), in their native dtype; `take` picks timestamps."""
        with data_errors(self.shard, self.meta["id"]):
            return self._arrays(names, take)

    def _arrays(self, names: Sequence[str] | None, take: Sequence[int] | None) -> dict[str, np.ndarray]:
        meta, key = self.meta, self.meta["id"]
        check_record_version(meta, self.shard, key)
        members = meta.get("members")
        if not isinstance(members, dict):
            raise ShardError(self.shard, "JSON record lacks `members`", key=key)
        expected = expected_specs(meta, self.shard, key)
        out = {}
        for name in names if names is not None else list(members):
            column = members.get(name)
            if not isinstance(column, str) or column == "record" or column not in self._table.column_names:
                raise ShardError(self.shard, f"array {name} is missing", key=key)
            array = self._decode(name, column, expected.get(name), take)
            check_array(array, expected.get(name), f"column {column}", self.shard, key, take)
            out[name] = array
        return out

    def _decode(self, name: str, column: str, expected: tuple[str, list[int]] | None,
                take: Sequence[int] | None) -> np.ndarray:
        import pyarrow as pa

        key = self.meta["id"]
        field = self._table.schema.field(column)
        values = self._table.column(column)
        if isinstance(field.type, pa.FixedShapeTensorType):
            chunk, index = _locate(values, self._index)
            if chunk.null_count:
                raise ShardError(self.shard, f"column {column} holds nulls", key=key)
            array = chunk.to_numpy_ndarray()[index]
            check_array(array, expected, f"column {column}", self.shard, key)
            return array if take is None or list(take) == list(range(array.shape[0])) else array[list(take)]
        if not (pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)):
            raise ShardError(self.shard, f"column {column} has type {field.type}, not an array column", key=key)
        buffer = _binary_value(values, self._index)
        if buffer is None:
            raise ShardError(self.shard, f"array {name} is null", key=key)
        encoding = (field.metadata or {}).get(b"encoding", b"").decode("utf-8", "replace")
        if encoding == "blosc":
            return decode_member(f"{name}.{BLOSC_EXT}", buffer, shard=self.shard, key=key, take=take)
        if encoding != "raw":
            raise ShardError(self.shard, f"column {column}: unknown encoding {encoding!r}", key=key)
        if expected is None:
            raise ShardError(self.shard, f"the JSON record gives no dtype and shape for {name}", key=key)
        _field_agrees(field, expected, self.shard, key)
        try:
            dtype = _check_dtype(expected[0])
        except (TypeError, ValueError) as exc:
            raise ShardError(self.shard, f"array {name}: {exc}", key=key) from None
        shape = expected[1]
        count = int(np.prod(shape, dtype=np.int64))
        if any(n < 0 for n in shape) or count * dtype.itemsize != buffer.size:
            raise ShardError(self.shard, f"array {name}: {buffer.size} bytes for {expected[0]} {shape}", key=key)
        array = np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)  # a view: no copy
        return array if take is None or list(take) == list(range(shape[0])) else array[list(take)]


def _locate(values: Any, index: int) -> tuple[Any, int]:
    for chunk in values.chunks:
        if index < len(chunk):
            return chunk, index
        index -= len(chunk)
    raise IndexError(index)


def _binary_value(values: Any, index: int) -> Any:
    """A binary value as a slice of the column's data buffer (a scalar would copy it), or None when null."""
    chunk, index = _locate(values, index)
    if chunk.null_count and not chunk.is_valid()[index].as_py():
        return None
    _, offsets, data = chunk.buffers()
    width = np.int64 if chunk.type.id == _large_binary_id() else np.int32
    start, end = np.frombuffer(offsets, dtype=width)[chunk.offset + index:chunk.offset + index + 2].tolist()
    return data.slice(start, end - start)


def _large_binary_id() -> int:
    import pyarrow as pa

    return pa.large_binary().id


def _field_agrees(field: Any, expected: tuple[str, list[int]], shard: str, key: str) -> None:
    """The field metadata (what stock readers decode with) must state what the record states."""
    meta = field.metadata or {}
    try:
        same = np.dtype(meta[b"dtype"].decode()) == np.dtype(expected[0]) and \
            json.loads(meta[b"shape"]) == list(expected[1])
    except (KeyError, TypeError, ValueError) as exc:
        raise ShardError(shard, f"column {field.name}: unreadable dtype/shape metadata ({exc})", key=key) from None
    if not same:
        raise ShardError(shard, f"column {field.name}: field metadata says {meta[b'dtype'].decode()} "
                                f"{meta[b'shape'].decode()}; the JSON record says {expected[0]} {expected[1]}",
                         key=key)


def _is_array_field(field: Any) -> bool:
    import pyarrow as pa

    return b"encoding" in (field.metadata or {}) or isinstance(field.type, pa.FixedShapeTensorType)


class ParquetShard:
    """An open Parquet shard. Close it (or use `with`): its file handle is released at once, not at exit."""

    def __init__(self, source: Any, shard: str = "?") -> None:
        import pyarrow.parquet as pq

        self.shard = shard
        self._handle = None
        self._local: str | None = None
        try:
            store = None if hasattr(source, "read") else open_store(source)
            if store is None:
                self.file = pq.ParquetFile(source, pre_buffer=True)
            elif store.os_paths:  # mapped one row group at a time (`_read_group`)
                self._local = str(store.path)
                self.file = pq.ParquetFile(self._local, pre_buffer=False)
            else:
                self._handle = store.open()
                self.file = pq.ParquetFile(self._handle, pre_buffer=True)
            schema = self.file.schema_arrow
            info = json.loads((schema.metadata or {}).get(b"neuco-io", b"{}"))
            check_format_version(info.get("format_version") if isinstance(info, dict) else None)
        except ShardError:
            self.close()
            raise
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... on damaged files
            self.close()
            raise _error(shard, exc) from None
        self.schema = schema
        self.arrays = [f.name for f in schema if _is_array_field(f)]
        if "record" not in schema.names:
            self.close()
            raise ShardError(shard, "no `record` column: not a neuco-io Parquet shard")

    def close(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ParquetShard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_rows(self) -> int:
        return self.file.metadata.num_rows

    def rows(self, names: Sequence[str] | None = None, wanted: Callable[[int], bool] | None = None,
             last: int | None = None) -> Iterator[ParquetRow]:
        """The rows (all, or those `wanted` up to `last`), reading only the `record` and the `names` columns.

        A row's arrays are valid while the next row group is not yet read.
        """
        columns = ["record", *(n for n in (self.arrays if names is None else names) if n in self.schema.names)]
        start = 0
        for group in range(self.file.num_row_groups):
            try:
                count = self.file.metadata.row_group(group).num_rows
            except Exception as exc:
                raise _error(self.shard, exc) from None
            numbers = [start + i for i in range(count) if wanted is None or wanted(start + i)]
            numbers = [n for n in numbers if last is None or n <= last]
            first, start = start, start + count
            if not numbers:
                if last is not None and first > last:
                    return
                continue
            try:
                table = self._read_group(group, list(dict.fromkeys(columns)))
                records = table.column("record").to_pylist()
            except Exception as exc:
                raise _error(self.shard, exc) from None
            for number in numbers:
                yield ParquetRow(number, self._record(records[number - first], number), self.shard, table,
                                 number - first)

    def _read_group(self, group: int, columns: list[str]) -> Any:
        """One thread: a reader is one core, like a DataLoader worker. A local file is mapped for this row group
        only: its pages are decoded where they lie (no read, no copy), and unmapping them afterwards keeps the
        resident memory to one row group however large the shard."""
        if self._local is None:
            return self.file.read_row_group(group, columns=columns, use_threads=False)
        import pyarrow.parquet as pq

        mapped = pq.ParquetFile(self._local, memory_map=True, pre_buffer=False, metadata=self.file.metadata)
        try:
            return mapped.read_row_group(group, columns=columns, use_threads=False)
        finally:
            mapped.close()

    def _record(self, text: Any, number: int) -> dict[str, Any]:
        where = f"row {number}"
        if not isinstance(text, str):
            raise ShardError(self.shard, f"{where}: no JSON record")
        if len(text) > MAX_RECORD_CHARS:
            raise ShardError(self.shard, f"{where}: JSON record of {len(text)} characters")
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ShardError(self.shard, f"{where}: JSON record: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("id"), str):
            raise ShardError(self.shard, f"{where}: the JSON record is not an object with an `id`")
        check_record(meta, self.shard, meta["id"])
        return meta


def open_parquet_shard(path: Any, shard: str | None = None) -> ParquetShard:
    return ParquetShard(path, shard or getattr(path, "name", str(path)))


def iter_parquet_records(source: Any, shard: str = "?", columns: list[str] | None = None
                         ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(JSON record, arrays) per row, every array (or those in `columns`) decoded and checked."""
    with ParquetShard(source, shard) as reader:
        names = None if columns is None else [c for c in columns if c != "record"]
        for row in reader.rows(names):
            yield row.meta, row.arrays(names)
