"""Parquet shards: one row per location, each array one value of a column.

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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from neuco_io.converters.records import Record
from neuco_io.converters.shards import ShardJob, record_json
from neuco_io.shards.codecs import FORMAT_VERSION, blosc_member_parts

__all__ = ["ParquetShardWriter", "array_encoding", "label_column"]


def label_column(task: str) -> str:
    return f"label_{task}"


def array_encoding(layout: str, codec: str) -> str:
    """How an array value is stored: `blosc` (the container), `raw` (bytes) or `tensor` (fixed_shape_tensor)."""
    if layout == "tensor":
        return "tensor"
    return "raw" if codec == "none" else "blosc"


def _array_field(name: str, record: Record, encoding: str) -> pa.Field:
    dtype, shape = record.specs[name]
    dtype = np.dtype(dtype)
    bands = record.meta.get("bands", {}).get(name)
    metadata = {"dtype": dtype.str, "shape": json.dumps([int(n) for n in shape]), "encoding": encoding}
    if bands is not None:
        metadata["bands"] = json.dumps(bands)
    if encoding == "tensor":
        typ: pa.DataType = pa.fixed_shape_tensor(pa.from_numpy_dtype(dtype), list(shape))
    else:
        typ = pa.binary()
    return pa.field(name, typ, metadata=metadata)


class _ValueBuffers:
    """Reused buffers for the values of a row group: joining a value's pieces into memory already mapped costs
    a third of joining them into a fresh bytes object (whose pages fault in)."""

    def __init__(self) -> None:
        self.pool: dict[tuple[int, str], np.ndarray] = {}

    def join(self, slot: tuple[int, str], parts: list[bytes]) -> pa.Buffer:
        total = sum(len(p) for p in parts)
        buf = self.pool.get(slot)
        if buf is None or buf.size < total:
            buf = self.pool[slot] = np.empty(total, dtype=np.uint8)
        offset = 0
        for part in parts:
            buf[offset:offset + len(part)] = np.frombuffer(part, dtype=np.uint8)
            offset += len(part)
        return pa.py_buffer(buf[:total])


def _binary_value(record: Record, name: str, encoding: str, buffers: _ValueBuffers, row: int) -> pa.Array:
    """One row's value as a one-element binary array: the raw array viewed (no copy), or the blosc pieces."""
    if encoding == "raw":
        array = np.ascontiguousarray(record.array(name))
        data = pa.py_buffer(array.reshape(-1).view(np.uint8)) if array.size else pa.py_buffer(b"")
    else:
        frames = record.frames.get(name)
        dtype, shape = record.specs[name]
        if frames is None:  # a source chunked otherwise: compress the decoded array
            from neuco_io.shards.codecs import encode_blosc_array

            data = pa.py_buffer(encode_blosc_array(record.array(name)))
        else:
            data = buffers.join((row, name), blosc_member_parts(dtype, shape, frames))
    offsets = pa.py_buffer(np.array([0, data.size], dtype=np.int32))
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, data])


def _column(rows: list[Record], field: pa.Field, buffers: _ValueBuffers) -> pa.ChunkedArray:
    encoding = field.metadata[b"encoding"].decode()
    if encoding == "tensor":
        stacked = np.ascontiguousarray(np.stack([r.array(field.name) for r in rows]))
        return pa.chunked_array([pa.FixedShapeTensorArray.from_numpy_ndarray(stacked)], field.type)
    # One chunk per row: no copy of a row's bytes into a common buffer, and no 2 GiB limit per row group.
    return pa.chunked_array([_binary_value(r, field.name, encoding, buffers, i) for i, r in enumerate(rows)],
                            field.type)


class ParquetShardWriter:
    def __init__(self, path: Path | BinaryIO, job: ShardJob) -> None:
        self.path = path
        """A file name, or a writable binary file."""
        self.job = job
        self.encoding = array_encoding(job.parquet_arrays, job.codec)
        self.rows: list[Record] = []
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.buffers = _ValueBuffers()
        """Reused once a row group is written (its table is gone by then)."""

    def add(self, record: Record) -> None:
        self.rows.append(record)
        if len(self.rows) >= self.job.row_group_size:
            self.flush()

    def _table(self, rows: list[Record]) -> pa.Table:
        # The record and the small columns come first, the arrays last: the record plus any leading run of
        # arrays is one contiguous byte range of a row group, fetched with one read.
        fields = [pa.field("id", pa.string()), pa.field("record", pa.string())]
        columns: list = [pa.array([r.id for r in rows], pa.string()),
                         pa.array([record_json(r, self.job.codec, self.job.parquet_arrays).decode() for r in rows],
                                  pa.string())]
        for task in self.job.tasks:
            fields.append(pa.field(label_column(task), pa.float64()))
            columns.append(pa.array([r.meta.get("labels", {}).get(task) for r in rows], pa.float64()))
        for name, typ in (("center_lat", pa.float64()), ("center_lon", pa.float64()), ("crs", pa.int64())):
            if name in rows[0].meta:
                fields.append(pa.field(name, typ))
                columns.append(pa.array([r.meta.get(name) for r in rows], typ))
        for name in rows[0].specs:
            fields.append(_array_field(name, rows[0], self.encoding))
            columns.append(_column(rows, fields[-1], self.buffers))
        meta = {"neuco-io": json.dumps({"format_version": FORMAT_VERSION, "layout": self.job.layout,
                                        "modalities": self.job.modalities, "tasks": self.job.tasks,
                                        "parquet_arrays": self.job.parquet_arrays, "codec": self.job.codec})}
        return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=meta))

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
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
            compressed = self.job.codec != "none"
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
