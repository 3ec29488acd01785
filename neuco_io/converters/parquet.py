"""Parquet shards: one row per location, arrays as fixed-shape tensor columns.

Each array column is Arrow's `fixed_shape_tensor` extension type in the
array's native dtype, so pyarrow alone gets the arrays back:

    pq.read_table(path, columns=["s2l1c"])["s2l1c"].combine_chunks().to_numpy_ndarray()
    # -> (rows, time, band, 264, 264) int16

DuckDB and polars read the same columns as fixed-size arrays. Labels are one
nullable float64 column per task (`label_<task>`), the full JSON record is in
`record`, and v1.1 locations get `center_lat`, `center_lon`, `crs` columns.
Row groups hold `row_group_size` rows, so memory stays bounded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..shardformat import FORMAT_VERSION
from .records import Record
from .shards import ShardJob, record_json

__all__ = ["ParquetShardWriter", "label_column", "tensor_column"]


def label_column(task: str) -> str:
    return f"label_{task}"


def tensor_column(arrays: list[np.ndarray]) -> pa.Array:
    stacked = np.ascontiguousarray(np.stack(arrays))
    return pa.FixedShapeTensorArray.from_numpy_ndarray(stacked)


class ParquetShardWriter:
    def __init__(self, path: Path, job: ShardJob) -> None:
        self.path = path
        self.job = job
        self.rows: list[Record] = []
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None

    def add(self, record: Record) -> None:
        self.rows.append(record)
        if len(self.rows) >= self.job.row_group_size:
            self.flush()

    def _table(self, rows: list[Record]) -> pa.Table:
        columns: dict[str, pa.Array] = {"id": pa.array([r.id for r in rows], pa.string())}
        for name in rows[0].specs:
            columns[name] = tensor_column([r.array(name) for r in rows])
        for task in self.job.tasks:
            columns[label_column(task)] = pa.array([r.meta.get("labels", {}).get(task) for r in rows], pa.float64())
        for name, typ in (("center_lat", pa.float64()), ("center_lon", pa.float64()), ("crs", pa.int64())):
            if name in rows[0].meta:
                columns[name] = pa.array([r.meta.get(name) for r in rows], typ)
        columns["record"] = pa.array([record_json(r, "parquet").decode() for r in rows], pa.string())
        table = pa.table(columns)
        meta = {"neuco-io": json.dumps({"format_version": FORMAT_VERSION, "layout": self.job.layout,
                                        "modalities": self.job.modalities, "tasks": self.job.tasks})}
        return table.replace_schema_metadata(meta)

    def flush(self) -> None:
        if not self.rows:
            return
        table = self._table(self.rows)
        if self.writer is None:
            self.schema = table.schema
            codec = {"compression": "zstd", "compression_level": 1} if self.job.codec != "none" else \
                {"compression": "none"}
            self.writer = pq.ParquetWriter(self.path, table.schema, use_dictionary=["id"], write_statistics=["id"],
                                           **codec)
        elif not table.schema.equals(self.schema):
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
