"""Write one shard (WebDataset tar or Parquet) from a list of sources, atomically and deterministically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuco_io.converters.plan import INVALID_HINT, InvalidSourceError, ShardSpec, Skipped, file_stats
from neuco_io.converters.records import RecordBuilder
from neuco_io.errors import CubeError
from neuco_io.shards.parquet import DEFAULT_ROW_GROUP_SIZE, ParquetShardWriter
from neuco_io.shards.sink import HashingSink
from neuco_io.shards.tar import TarShardWriter
from neuco_io.storage import open_store

__all__ = ["ShardJob", "ShardResult", "write_shard"]


@dataclass(frozen=True)
class ShardJob:
    root: Any
    """The dataset root: a Path, or a UPath (which carries its storage options to the workers)."""
    out: Any
    fmt: str
    codec: str
    layout: str
    modalities: list[str]
    tasks: dict[str, dict]
    labels: dict[str, dict[str, float]]
    """Only the labels of this shard's ids."""
    spec: ShardSpec
    skip_invalid: bool
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE
    parquet_arrays: str = "binary"
    """Parquet: `binary` (one value per array) or `tensor` (fixed_shape_tensor columns)."""


@dataclass
class ShardResult:
    name: str
    records: int
    bytes: int
    sha256: str
    index: list[list[Any]] = field(default_factory=list)
    """Per record: [id, row, offset, size] (tar: byte range of the record's members; Parquet: offset = -1)."""
    skipped: list[Skipped] = field(default_factory=list)
    sources: dict[str, list[int]] = field(default_factory=dict)
    """Size and mtime of each source file read, when the shard was written."""


def _relative(path: str, root: Any) -> str:
    prefix = str(root).rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def _records(job: ShardJob, result: ShardResult):
    # Pass-through shards keep the source chunks compressed (decoded once to prove them sound, not re-encoded).
    decode = not (job.codec == "blosc" and (job.fmt == "webdataset" or job.parquet_arrays == "binary"))
    with RecordBuilder(job.root, job.layout, job.modalities, job.tasks, job.labels, decode=decode) as builder:
        for source in job.spec.sources:
            try:
                yield builder.build(source)
            except CubeError as exc:
                if not job.skip_invalid:
                    raise InvalidSourceError(f"{exc.path}: {exc.message}{INVALID_HINT}") from None
                result.skipped.append(Skipped(_relative(exc.path, job.root), exc.message, source.id,
                                             "convert.invalid-cube"))


def _write_tar(job: ShardJob, temp: Path, result: ShardResult) -> None:
    with open(temp, "wb", buffering=0) as fh:
        tar = TarShardWriter(fh, job.codec)
        for row, record in enumerate(_records(job, result)):
            result.index.append([record.id, row, *tar.add(record)])
        tar.close()
    result.bytes, result.sha256 = tar.size, tar.sha256


def _write_parquet(job: ShardJob, temp: Path, result: ShardResult) -> None:
    with open(temp, "wb", buffering=0) as fh:
        sink = HashingSink(fh)
        with ParquetShardWriter(sink, codec=job.codec, arrays=job.parquet_arrays, row_group_size=job.row_group_size,
                                tasks=job.tasks, layout=job.layout, modalities=job.modalities) as writer:
            for row, record in enumerate(_records(job, result)):
                writer.add(record)
                result.index.append([record.id, row, -1, -1])
    result.bytes, result.sha256 = sink.size, sink.sha256


def write_shard(job: ShardJob) -> ShardResult:
    """Write the shard under a temporary name and rename it into place when complete."""
    result = ShardResult(job.spec.name, 0, 0, "", sources=file_stats(job.root, job.spec))
    with open_store(job.out).writing(job.spec.name) as temp:
        (_write_tar if job.fmt == "webdataset" else _write_parquet)(job, temp, result)
        result.records = len(result.index)
    return result
