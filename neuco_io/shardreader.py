"""Read neuco-io shards record by record: WebDataset tars and Parquet files, sequentially.

Shared by `verify` and the streaming loader. A tar is read as a stream (no
seeking), so it works on pipes and remote files; members of one record are
contiguous. Nothing is unpickled: only `.json`, `.npy` (allow_pickle=False)
and `.blosc` members are decoded, and other members are ignored.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from .errors import ShardError
from .shardformat import BLOSC_EXT, decode_key, decode_member

__all__ = ["RawRecord", "decode_record", "iter_parquet_records", "iter_tar_records"]

MAX_MEMBER_BYTES = 1 << 31
MAX_JSON_BYTES = 16 << 20


@dataclass
class RawRecord:
    """One record as stored: its key, JSON record, and undecoded array members."""

    key: str
    shard: str
    meta: dict[str, Any] = field(default_factory=dict)
    members: dict[str, bytes] = field(default_factory=dict)
    """suffix (e.g. `s2l1c.blosc`) -> bytes."""
    offset: int = 0

    @property
    def id(self) -> str:
        return str(self.meta.get("id", decode_key(self.key)))


def _split(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    if "." not in base:
        return base, ""
    key, suffix = base.split(".", 1)
    return key, suffix.lower()


def iter_tar_records(fileobj: IO[bytes], shard: str = "?") -> Iterator[RawRecord]:
    """Records of a tar stream, in order. Raises ShardError (naming shard and key) on corrupt input."""
    current: RawRecord | None = None
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, suffix = _split(info.name)
                if current is not None and key != current.key:
                    yield _finish(current)
                    current = None
                if current is None:
                    current = RawRecord(key, shard, offset=info.offset)
                if suffix == "json":
                    if info.size > MAX_JSON_BYTES:
                        raise ShardError(shard, f"JSON record of {info.size} bytes", key=key)
                    current.meta = json.loads(tar.extractfile(info).read())
                elif suffix.endswith((f".{BLOSC_EXT}", ".npy")) or suffix in (BLOSC_EXT, "npy"):
                    if info.size > MAX_MEMBER_BYTES:
                        raise ShardError(shard, f"member {suffix} of {info.size} bytes", key=key)
                    if suffix in current.members:
                        raise ShardError(shard, f"member {suffix} appears twice", key=key)
                    current.members[suffix] = tar.extractfile(info).read()
                # anything else (pickles, torch files, unknown extensions) is never read
            if current is not None:
                yield _finish(current)
    except ShardError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeDecodeError) as exc:
        key = current.key if current is not None else None
        raise ShardError(shard, f"corrupt or truncated tar: {type(exc).__name__}: {exc}", key=key) from None


def _finish(record: RawRecord) -> RawRecord:
    if not record.meta:
        raise ShardError(record.shard, "record has no JSON member", key=record.key)
    return record


def decode_record(record: RawRecord, names: list[str] | None = None,
                  take: list[int] | None = None) -> dict[str, np.ndarray]:
    """Decode the array members the JSON record lists (or just `names`); check dtypes and shapes against it.

    `take` selects timestamps (first axis); `.blosc` members decode only those frames.
    """
    meta = record.meta
    members = meta.get("members")
    if not isinstance(members, dict):
        raise ShardError(record.shard, "JSON record lacks `members`", key=record.key)
    try:
        expected = {**{m: (meta["dtypes"][m], meta["shapes"][m]) for m in meta.get("modalities", [])},
                    **{n: (a["dtype"], a["shape"]) for n, a in meta.get("arrays", {}).items()}}
    except (KeyError, TypeError) as exc:
        raise ShardError(record.shard, f"JSON record lacks dtypes/shapes ({exc})", key=record.key) from None
    arrays = {}
    for name in names if names is not None else list(members):
        member = members.get(name)
        data = record.members.get(member) if member else None
        if data is None:
            raise ShardError(record.shard, f"array {name} is missing", key=record.key)
        array = decode_member(member, data, shard=record.shard, key=record.key, take=take)
        if name in expected:
            dtype, shape = expected[name]
            want = list(shape) if take is None else [len(take), *shape[1:]]
            if str(array.dtype) != dtype or list(array.shape) != want:
                raise ShardError(record.shard, f"member {member} is {array.dtype} {list(array.shape)}; the JSON "
                                 f"record says {dtype} {shape}", key=record.key)
        arrays[name] = array
    return arrays


def iter_parquet_records(source: Any, shard: str = "?", columns: list[str] | None = None
                         ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(JSON record, arrays) per row of a neuco-io Parquet shard, one row group at a time."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source)
        for group in range(pf.num_row_groups):
            table = pf.read_row_group(group, columns=columns)
            records = [json.loads(v) for v in table.column("record").to_pylist()]
            array_columns = {}
            for name in records[0].get("members", {}) if records else []:
                if name in table.column_names:
                    array_columns[name] = table.column(name).combine_chunks().to_numpy_ndarray()
            for row, meta in enumerate(records):
                yield meta, {name: values[row] for name, values in array_columns.items()}
    except ShardError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... on damaged files
        raise ShardError(shard, f"unreadable Parquet shard: {type(exc).__name__}: {exc}") from None
