"""Parquet shards: one row per location, each array one value of a column; written and read here.

Two array layouts (`--parquet-arrays`):

- `binary` (default): one binary value per array. With the default codec the
  value is the `.blosc` container a WebDataset shard holds (the source's own
  Blosc chunks, passed through: about the source's bytes, nothing
  re-encoded); with `--codec none` it is the array's raw little-endian bytes
  (C order) in zstd-compressed pages, which pyarrow alone turns back into the
  array:

      field = table.schema.field("s2l1c").metadata   # dtype, shape, bands, encoding
      np.frombuffer(table["s2l1c"][0].as_buffer(), field[b"dtype"].decode()).reshape(json.loads(field[b"shape"]))

- `tensor`: Arrow's `fixed_shape_tensor` in the native dtype, which DuckDB and
  polars read as nested lists. Parquet encodes those element by element:
  several times slower to write and read (see the README).

Labels are one nullable float64 column per task (`label_<task>`), the full
JSON record is in `record`, and v1.1 locations get `center_lat`,
`center_lon`, `crs` columns. Dictionaries and statistics are written for the
`id` column only: on arrays they cost time and say nothing.

Reading: a local shard is memory-mapped (its pages are decoded where they
lie); from a file object or a URL, a row group's columns are fetched
together (pyarrow's pre-buffering joins the column chunks a read needs into
one positioned read, one range request on object stores). Row groups holding
no wanted row are not read at all. Binary values are decoded from pyarrow's
buffers without copying them: `.blosc` containers straight into the output
array (only the timestamps asked for), raw bytes as a read-only view. Every
row gets the checks a tar record gets (`shards.record`): anything wrong is a
ShardError naming the shard and the id. pyarrow is imported when a shard is
opened or written, not with this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuco_io.errors import ShardError
from neuco_io.shards.codecs import (
    BLOSC_EXT,
    MAX_ARRAY_BYTES,
    _check_dtype,
    blosc_member_parts,
    decode_member,
    encode_blosc_array,
)
from neuco_io.shards.record import (
    FORMAT_VERSION,
    Record,
    check_array,
    check_format_version,
    data_errors,
    decode_arrays,
    parse_record,
    record_json,
)
from neuco_io.storage import open_store

__all__ = ["DEFAULT_ROW_GROUP_SIZE", "ParquetRow", "ParquetShard", "ParquetShardWriter", "array_encoding",
           "count_parquet_records", "iter_parquet_records", "label_column", "open_parquet_shard"]

DEFAULT_ROW_GROUP_SIZE = 2
"""Rows per row group: small groups bound the memory of readers and writers (`--row-group-size`)."""

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
        def decode(name: str, column: str, expected: tuple[str, list[int]] | None) -> np.ndarray:
            if column == "record" or column not in self._table.column_names:
                raise ShardError(self.shard, f"array {name} is missing", key=self.id)
            return self._decode(name, column, expected, take)

        return decode_arrays(self.meta, self.shard, self.id, names, take, decode, "column")

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
            if chunk.type.value_type.byte_width * int(np.prod(chunk.type.shape)) > MAX_ARRAY_BYTES:
                raise ShardError(self.shard, f"column {column}: arrays exceed the format's {MAX_ARRAY_BYTES}-byte "
                                             "limit", key=key)
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
        if count * dtype.itemsize > MAX_ARRAY_BYTES:  # the limit tar members have
            raise ShardError(self.shard, f"array {name} of {count * dtype.itemsize} bytes exceeds the format's "
                                         f"{MAX_ARRAY_BYTES}-byte limit", key=key)
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
        meta = parse_record(text, self.shard, None, f"{where}: ")
        if not isinstance(meta.get("id"), str):
            raise ShardError(self.shard, f"{where}: the JSON record is not an object with an `id`")
        return meta


def open_parquet_shard(path: Any, shard: str | None = None) -> ParquetShard:
    return ParquetShard(path, shard or getattr(path, "name", str(path)))


def count_parquet_records(path: Any) -> int:
    """Rows of a Parquet shard, from its footer (the shard is opened and checked as any other read)."""
    with open_parquet_shard(path) as shard:
        return shard.num_rows


def iter_parquet_records(source: Any, shard: str = "?", columns: list[str] | None = None
                         ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(JSON record, arrays) per row, every array (or those in `columns`) decoded and checked."""
    with ParquetShard(source, shard) as reader:
        names = None if columns is None else [c for c in columns if c != "record"]
        for row in reader.rows(names):
            yield row.meta, row.arrays(names)


# Writing

def label_column(task: str) -> str:
    return f"label_{task}"


def array_encoding(layout: str, codec: str) -> str:
    """How an array value is stored: `blosc` (the container), `raw` (bytes) or `tensor` (fixed_shape_tensor)."""
    if layout == "tensor":
        return "tensor"
    return "raw" if codec == "none" else "blosc"


def _array_field(name: str, record: Record, encoding: str) -> Any:
    import pyarrow as pa

    dtype, shape = record.specs[name]
    dtype = np.dtype(dtype)
    bands = record.meta.get("bands", {}).get(name)
    metadata = {"dtype": dtype.str, "shape": json.dumps([int(n) for n in shape]), "encoding": encoding}
    if bands is not None:
        metadata["bands"] = json.dumps(bands)
    typ = pa.fixed_shape_tensor(pa.from_numpy_dtype(dtype), list(shape)) if encoding == "tensor" else pa.binary()
    return pa.field(name, typ, metadata=metadata)


class _ValueBuffers:
    """Reused buffers for the values of a row group: joining a value's pieces into memory already mapped costs
    a third of joining them into a fresh bytes object (whose pages fault in)."""

    def __init__(self) -> None:
        self.pool: dict[tuple[int, str], np.ndarray] = {}

    def join(self, slot: tuple[int, str], parts: list[bytes]) -> Any:
        import pyarrow as pa

        total = sum(len(p) for p in parts)
        buf = self.pool.get(slot)
        if buf is None or buf.size < total:
            buf = self.pool[slot] = np.empty(total, dtype=np.uint8)
        offset = 0
        for part in parts:
            buf[offset:offset + len(part)] = np.frombuffer(part, dtype=np.uint8)
            offset += len(part)
        return pa.py_buffer(buf[:total])


def _binary_array(record: Record, name: str, encoding: str, buffers: _ValueBuffers, row: int) -> Any:
    """One row's value as a one-element binary array: the raw array viewed (no copy), or the blosc pieces."""
    import pyarrow as pa

    if encoding == "raw":
        array = np.ascontiguousarray(record.array(name))
        data = pa.py_buffer(array.reshape(-1).view(np.uint8)) if array.size else pa.py_buffer(b"")
    else:
        frames = record.frames.get(name)
        dtype, shape = record.specs[name]
        if frames is None:  # a source chunked otherwise: compress the decoded array
            data = pa.py_buffer(encode_blosc_array(record.array(name)))
        else:
            data = buffers.join((row, name), blosc_member_parts(dtype, shape, frames))
    offsets = pa.py_buffer(np.array([0, data.size], dtype=np.int32))
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, data])


def _column(rows: list[Record], field: Any, buffers: _ValueBuffers) -> Any:
    import pyarrow as pa

    encoding = field.metadata[b"encoding"].decode()
    if encoding == "tensor":
        stacked = np.ascontiguousarray(np.stack([r.array(field.name) for r in rows]))
        return pa.chunked_array([pa.FixedShapeTensorArray.from_numpy_ndarray(stacked)], field.type)
    # One chunk per row: no copy of a row's bytes into a common buffer, and no 2 GiB limit per row group.
    return pa.chunked_array([_binary_array(r, field.name, encoding, buffers, i) for i, r in enumerate(rows)],
                            field.type)


class ParquetShardWriter:
    """Rows of records into one Parquet shard, a row group at a time (`row_group_size` records each)."""

    def __init__(self, path: Any, *, codec: str, arrays: str, row_group_size: int, tasks: dict[str, dict],
                 layout: str, modalities: list[str]) -> None:
        self.path = path
        """A file name, or a writable binary file (such as a HashingSink)."""
        self.codec = codec
        self.arrays = arrays
        """`binary` (one value per array) or `tensor` (fixed_shape_tensor columns)."""
        self.row_group_size = row_group_size
        self.tasks = tasks
        self.layout = layout
        self.modalities = modalities
        self.encoding = array_encoding(arrays, codec)
        self.rows: list[Record] = []
        self.writer: Any = None
        self.schema: Any = None
        self.buffers = _ValueBuffers()
        """Reused once a row group is written (its table is gone by then)."""

    def add(self, record: Record) -> None:
        self.rows.append(record)
        if len(self.rows) >= self.row_group_size:
            self.flush()

    def _table(self, rows: list[Record]) -> Any:
        import pyarrow as pa

        # The record and the small columns come first, the arrays last: the record plus any leading run of
        # arrays is one contiguous byte range of a row group, fetched with one read.
        fields = [pa.field("id", pa.string()), pa.field("record", pa.string())]
        columns: list = [pa.array([r.id for r in rows], pa.string()),
                         pa.array([record_json(r, self.codec, self.arrays).decode() for r in rows],
                                  pa.string())]
        for task in self.tasks:
            fields.append(pa.field(label_column(task), pa.float64()))
            columns.append(pa.array([r.meta.get("labels", {}).get(task) for r in rows], pa.float64()))
        for name, typ in (("center_lat", pa.float64()), ("center_lon", pa.float64()), ("crs", pa.int64())):
            if name in rows[0].meta:
                fields.append(pa.field(name, typ))
                columns.append(pa.array([r.meta.get(name) for r in rows], typ))
        for name in rows[0].specs:
            fields.append(_array_field(name, rows[0], self.encoding))
            columns.append(_column(rows, fields[-1], self.buffers))
        meta = {"neuco-io": json.dumps({"format_version": FORMAT_VERSION, "layout": self.layout,
                                        "modalities": self.modalities, "tasks": self.tasks,
                                        "parquet_arrays": self.arrays, "codec": self.codec})}
        return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=meta))

    def _open(self, schema: Any) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tensor = self.encoding == "tensor"
        # Page settings are given per Parquet leaf column: a tensor column's leaf is `<name>.list.element`.
        arrays = {f.name: f"{f.name}.list.element" if tensor else f.name for f in schema
                  if f.metadata and b"encoding" in f.metadata}
        options: dict = {"use_dictionary": ["id"], "write_statistics": ["id"]}
        if tensor:
            # Byte-stream split makes float16/float32 elements compress better (S1: 0.81x instead of 0.93x).
            floats = [leaf for f in schema for name, leaf in arrays.items()
                      if f.name == name and pa.types.is_floating(f.type.value_type)]
            options["use_byte_stream_split"] = floats or False
            compressed = self.codec != "none"
        else:
            # Blosc values are compressed already; raw bytes (--codec none) get zstd-1 pages.
            compressed = self.encoding == "raw"
        compression = {f.name: "zstd" for f in schema if f.name not in arrays}
        compression.update({leaf: "zstd" if compressed else "none" for leaf in arrays.values()})
        levels = {name: 1 for name, codec in compression.items() if codec == "zstd"}
        return pq.ParquetWriter(self.path, schema, compression=compression, compression_level=levels, **options)

    def flush(self) -> None:
        if not self.rows:
            return
        table = self._table(self.rows)
        if self.writer is None:
            self.schema = table.schema
            self.writer = self._open(table.schema)
        elif not table.schema.equals(self.schema, check_metadata=True):
            raise ValueError(f"{self.path}: record schema changed within a shard ({table.schema} vs {self.schema})")
        self.writer.write_table(table, row_group_size=len(self.rows))
        self.rows = []

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        if self.writer is None:  # an empty shard still is a valid Parquet file
            empty = pa.table({"id": pa.array([], pa.string())})
            pq.write_table(empty, self.path)
        else:
            self.writer.close()

    def __enter__(self) -> ParquetShardWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        elif self.writer is not None:
            self.writer.close()

