"""Write one shard (WebDataset tar or Parquet) from a list of sources, atomically and deterministically."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import CubeError
from ..shardformat import encode_blosc_array, encode_blosc_frames, encode_npy, member_name
from .plan import ShardSpec, Skipped
from .records import Record, RecordBuilder

__all__ = ["ShardJob", "ShardResult", "write_shard"]

TAR_MTIME = 0
"""Fixed header fields: the same input gives byte-identical shards."""


@dataclass(frozen=True)
class ShardJob:
    root: str
    out: str
    fmt: str
    codec: str
    layout: str
    modalities: list[str]
    tasks: dict[str, dict]
    labels: dict[str, dict[str, float]]
    """Only the labels of this shard's ids."""
    spec: ShardSpec
    skip_invalid: bool
    row_group_size: int = 8


@dataclass
class ShardResult:
    name: str
    records: int
    bytes: int
    sha256: str
    index: list[list[Any]] = field(default_factory=list)
    """Per record: [id, row, offset, size] (tar: byte range of the record's members; Parquet: offset = -1)."""
    skipped: list[Skipped] = field(default_factory=list)


class _HashingWriter(io.RawIOBase):
    """File wrapper that hashes and counts what is written through it."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def record_json(record: Record, codec: str) -> bytes:
    """The JSON record; `members` names where each array is: a tar member, or (Parquet) a column."""
    meta = dict(record.meta, codec=codec)
    meta["members"] = {name: name if codec == "parquet" else member_name(name, codec) for name in record.arrays}
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def encode_array_member(record: Record, name: str, codec: str) -> bytes:
    if codec == "none":
        return encode_npy(record.arrays[name])
    frames = record.frames.get(name)
    array = record.arrays[name]
    if frames is not None:
        return encode_blosc_frames(array.dtype, array.shape, frames)
    return encode_blosc_array(array)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _records(job: ShardJob, result: ShardResult):
    with RecordBuilder(job.root, job.layout, job.modalities, job.tasks, job.labels) as builder:
        for source in job.spec.sources:
            try:
                yield builder.build(source)
            except CubeError as exc:
                if not job.skip_invalid:
                    raise
                result.skipped.append(Skipped(exc.path, exc.message, source.id))


def _write_tar(job: ShardJob, temp: Path, result: ShardResult) -> None:
    with open(temp, "wb") as fh:
        sink = _HashingWriter(fh)
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for row, record in enumerate(_records(job, result)):
                start = sink.size
                _add(tar, f"{record.key}.json", record_json(record, job.codec))
                for name in record.arrays:
                    _add(tar, f"{record.key}.{member_name(name, job.codec)}", encode_array_member(record, name,
                                                                                                  job.codec))
                result.index.append([record.id, row, start, sink.size - start])
        result.bytes, result.sha256 = sink.size, sink.sha.hexdigest()


def _write_parquet(job: ShardJob, temp: Path, result: ShardResult) -> None:
    from .parquet import ParquetShardWriter

    with ParquetShardWriter(temp, job) as writer:
        for row, record in enumerate(_records(job, result)):
            writer.add(record)
            result.index.append([record.id, row, -1, -1])
    result.bytes = temp.stat().st_size
    sha = hashlib.sha256()
    with open(temp, "rb") as fh:
        while block := fh.read(1 << 22):
            sha.update(block)
    result.sha256 = sha.hexdigest()


def write_shard(job: ShardJob) -> ShardResult:
    """Write the shard under a temporary name and rename it into place when complete."""
    result = ShardResult(job.spec.name, 0, 0, "")
    final = Path(job.out) / job.spec.name
    with atomic_path(final) as temp:
        (_write_tar if job.fmt == "webdataset" else _write_parquet)(job, temp, result)
        result.records = len(result.index)
    return result
