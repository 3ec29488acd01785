"""Read a shard of either format record by record: one loop for every reader (`verify`, `stats`).

Each record read has `.id`, `.meta` (its checked JSON record) and
`.arrays(names, take)` (decoded and checked against the record), whether it
came from a tar (`shards.tar.RawRecord`) or a Parquet row
(`shards.parquet.ParquetRow`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from neuco_io.shards.parquet import open_parquet_shard
from neuco_io.shards.tar import iter_tar_records
from neuco_io.storage import open_read

__all__ = ["StoredRecord", "read_shard"]


class StoredRecord(Protocol):
    meta: dict[str, Any]

    @property
    def id(self) -> str: ...

    def arrays(self, names: Sequence[str] | None = None, take: Sequence[int] | None = None
               ) -> dict[str, np.ndarray]: ...


def read_shard(path: Any, fmt: str, shard: str | None = None, *, names: Sequence[str] | None = None,
               last: int | None = None, reuse_buffers: bool = False) -> Iterator[StoredRecord]:
    """The records of shard `path` (`fmt`: webdataset or parquet) in order, up to row `last`.

    `names`: the arrays that will be asked for (a Parquet shard reads only those columns). With
    `reuse_buffers` a tar record's arrays must be decoded before the next record is requested.
    Raises ShardError (naming the shard) on corrupt input, OSError when the file cannot be read.
    """
    shard = shard or getattr(path, "name", str(path))
    if fmt == "parquet":
        with open_parquet_shard(path, shard) as reader:
            yield from reader.rows(names, last=last)
        return
    with open_read(path, sequential=True) as fh:
        for row, record in enumerate(iter_tar_records(fh, shard, reuse_buffers=reuse_buffers)):
            if last is not None and row > last:
                return
            yield record
