"""Write one shard (WebDataset tar or Parquet) from a list of sources, atomically and deterministically."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuco_io.converters.plan import INVALID_HINT, InvalidSourceError, ShardSpec, Skipped, file_stats
from neuco_io.converters.records import Record, RecordBuilder
from neuco_io.errors import CubeError
from neuco_io.shards.codecs import blosc_member_parts, encode_blosc_array, encode_npy, member_name
from neuco_io.storage import open_store

__all__ = ["ShardJob", "ShardResult", "write_shard"]

TAR_MTIME = 0
"""Fixed header fields: the same input gives byte-identical shards."""


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
    row_group_size: int = 2
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


class _HashingSink:
    """A binary file that hashes and counts what is written to it: no second pass to hash a shard."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    _write = write

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """Closing the sink leaves the file to its owner (pyarrow closes what it is given)."""
        self.closed = True


class _TarSink(_HashingSink):
    """A deterministic tar writer that hashes and counts as it writes.

    Headers come from the standard library (`TarInfo.tobuf`, PAX format, so
    long ids work); each member's data is written in one call, which is what
    keeps a multi-GB shard cheap to write.
    """

    def add(self, name: str, parts: list[bytes]) -> None:
        size = sum(len(p) for p in parts)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = TAR_MTIME
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        for part in parts:
            self._write(part)
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._write(b"\0" * pad)

    def close(self) -> None:
        """End-of-archive: two zero blocks, then zeros up to a whole record, as tarfile writes it."""
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))
        pad = -self.size % tarfile.RECORDSIZE
        if pad:
            self._write(b"\0" * pad)


def record_json(record: Record, codec: str, parquet_arrays: str | None = None) -> bytes:
    """The JSON record; `members` names where each array is: a tar member, or (Parquet) a column."""
    meta = dict(record.meta, codec=codec)
    if parquet_arrays is not None:
        meta["parquet_arrays"] = parquet_arrays
        meta["members"] = {name: name for name in record.specs}
    else:
        meta["members"] = {name: member_name(name, codec) for name in record.specs}
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def array_member_parts(record: Record, name: str, codec: str) -> list[bytes]:
    """An array member's bytes, as pieces (a pass-through member is its header plus the source chunks)."""
    if codec == "none":
        return [encode_npy(record.array(name))]
    frames = record.frames.get(name)
    if frames is not None:
        dtype, shape = record.specs[name]
        return blosc_member_parts(dtype, shape, frames)
    return [encode_blosc_array(record.array(name))]


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
        tar = _TarSink(fh)
        for row, record in enumerate(_records(job, result)):
            start = tar.size
            tar.add(f"{record.key}.json", [record_json(record, job.codec)])
            for name in record.specs:
                tar.add(f"{record.key}.{member_name(name, job.codec)}", array_member_parts(record, name, job.codec))
            result.index.append([record.id, row, start, tar.size - start])
        tar.close()
        result.bytes, result.sha256 = tar.size, tar.sha.hexdigest()


def _write_parquet(job: ShardJob, temp: Path, result: ShardResult) -> None:
    from neuco_io.converters.parquet import ParquetShardWriter

    with open(temp, "wb", buffering=0) as fh:
        sink = _HashingSink(fh)
        with ParquetShardWriter(sink, job) as writer:
            for row, record in enumerate(_records(job, result)):
                writer.add(record)
                result.index.append([record.id, row, -1, -1])
    result.bytes, result.sha256 = sink.size, sink.sha.hexdigest()


def write_shard(job: ShardJob) -> ShardResult:
    """Write the shard under a temporary name and rename it into place when complete."""
    result = ShardResult(job.spec.name, 0, 0, "", sources=file_stats(job.root, job.spec))
    with open_store(job.out).writing(job.spec.name) as temp:
        (_write_tar if job.fmt == "webdataset" else _write_parquet)(job, temp, result)
        result.records = len(result.index)
    return result
