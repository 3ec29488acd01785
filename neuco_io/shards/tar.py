"""Read neuco-io shards record by record: WebDataset tars and Parquet files, sequentially.

Shared by `verify` and the streaming loader. A tar is read as a stream (no
seeking), so it works on pipes and remote files; members of one record are
contiguous. Nothing is unpickled: only `.json`, `.npy` (allow_pickle=False)
and `.blosc` members are decoded, and other members are ignored.
"""

from __future__ import annotations

import contextlib
import json
import struct
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from neuco_io.errors import ShardError
from neuco_io.names import name_problem, relative_path_problem
from neuco_io.shards.codecs import BLOSC_EXT, MAX_ARRAY_BYTES, check_format_version, decode_key, decode_member

__all__ = ["RawRecord", "check_array", "check_record", "count_tar_records", "data_errors", "decode_record",
           "expected_specs", "iter_parquet_records", "iter_tar_records"]

MAX_JSON_BYTES = 16 << 20
MAX_MEMBER_BYTES = MAX_ARRAY_BYTES + (1 << 20)
"""The largest array member the format allows (its array, plus the Blosc container's header and frames)."""
MAX_EXTENDED_HEADER_BYTES = 1 << 20
"""PAX and GNU long-name headers: a path and a few fields, never more."""
_DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
                MemoryError, EOFError, OSError, UnicodeError, struct.error, tarfile.TarError)
"""What malformed data makes Python, numpy, json or tarfile raise; readers turn them into ShardError."""


@dataclass
class RawRecord:
    """One record as stored: its key, JSON record, and undecoded array members."""

    key: str
    shard: str
    meta: dict[str, Any] = field(default_factory=dict)
    members: dict[str, bytes | memoryview] = field(default_factory=dict)
    """suffix (e.g. `s2l1c.blosc`) -> its bytes (a writable buffer when read from a tar)."""
    offset: int = 0

    @property
    def id(self) -> str:
        return str(self.meta.get("id", decode_key(self.key)))


@contextlib.contextmanager
def data_errors(shard: str, key: str | None = None, what: str = "corrupt record") -> Iterator[None]:
    """Turn any exception malformed data can cause into a ShardError naming shard and key."""
    try:
        yield
    except ShardError:
        raise
    except _DATA_ERRORS as exc:
        raise ShardError(shard, f"{what}: {type(exc).__name__}: {str(exc)[:300]}", key=key) from None


def _split(name: str) -> tuple[str, str]:
    key, dot, suffix = name.partition(".")
    return key, suffix.lower() if dot else ""


class _TarStream:
    """Sequential tar reading with every size bounded: headers parsed by the standard library, data in one
    read per member.

    tarfile's own stream mode copies data in 10 KB pieces, which costs more
    than decoding; this reads each member whole (into a writable buffer, so
    arrays can be views of it) and skips what it does not need. It is the
    only tar reader in neuco-io (the loader, `verify` and record counting).
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.fh = fileobj
        self.offset = 0
        self._pool: dict[str, np.ndarray] = {}

    def _read(self, n: int, reuse: str | None = None) -> memoryview:
        """n bytes; with `reuse`, into that name's buffer from the previous call (no fresh pages to fault in)."""
        buf = self._pool.get(reuse) if reuse else None
        if buf is None or buf.size < n:
            buf = np.empty(n, dtype=np.uint8)  # writable, and not zero-filled first like a bytearray
            if reuse:
                self._pool[reuse] = buf
        view = memoryview(buf)[:n]
        got = 0
        while got < n:
            chunk = self.fh.readinto(view[got:]) if hasattr(self.fh, "readinto") else None
            if chunk is None:
                data = self.fh.read(n - got)
                chunk = len(data)
                view[got:got + chunk] = data
            if not chunk:
                raise EOFError(f"unexpected end of data ({got} of {n} bytes)")
            got += chunk
        self.offset += n
        return view

    def _skip(self, n: int) -> None:
        if n <= 0:
            return
        if hasattr(self.fh, "seek") and getattr(self.fh, "seekable", lambda: False)():
            self.fh.seek(n, 1)
            self.offset += n
        else:
            while n:
                step = min(n, 1 << 20)
                self._read(step, reuse="skip")
                n -= step

    def members(self, wanted: Callable[[str], bool], reuse: Callable[[str], str | None] = lambda name: None
                ) -> Iterator[tuple[str, int, int, memoryview | None]]:
        """(name, offset of the header, size, data or None when not wanted), for regular files.

        `reuse(name)` names a buffer to read the member into again and again
        (its data is then only valid until the next member of that name).
        Raises ValueError or EOFError (or tarfile.HeaderError) on malformed
        input; every size is checked before anything is read or allocated.
        """
        long_name: str | None = None
        pax: dict[str, str] = {}
        while True:
            start = self.offset
            header = self._read(tarfile.BLOCKSIZE)
            if not any(header):
                return
            info = tarfile.TarInfo.frombuf(bytes(header), "utf-8", "surrogateescape")  # checks the checksum
            size = _pax_size(pax["size"]) if "size" in pax else info.size
            if size < 0:
                raise ValueError(f"member {info.name!r}: negative size {size}")
            padded = size + (-size % tarfile.BLOCKSIZE)
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME):
                if size > MAX_EXTENDED_HEADER_BYTES:
                    raise ValueError(f"extended header of {size} bytes")
                data = bytes(self._read(padded)[:size])
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif info.type == tarfile.XHDTYPE:
                    pax = _parse_pax(data)
                continue
            name = pax.get("path") or long_name or info.name
            long_name, pax = None, {}
            if not info.isfile():
                self._skip(padded)
                continue
            problem = name_problem(name)
            if problem:
                raise ValueError(f"member name {name!r} {problem}")
            if wanted(name):
                limit = _size_limit(name)
                if size > limit:
                    raise ValueError(f"member {name!r} of {size} bytes exceeds the format's {limit}-byte limit")
                yield name, start, size, self._read(padded, reuse(name))[:size]
            else:
                self._skip(padded)
                yield name, start, size, None


def _pax_size(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise ValueError(f"PAX size {text[:30]!r} is not a decimal number")
    return int(text)


def _parse_pax(data: bytes) -> dict[str, str]:
    """PAX records: `<length> <key>=<value>\n`, where length counts the whole record. Each record must
    advance (a length of 0 would loop forever) and end inside the header."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if not data[pos:].strip(b"\0"):
            break  # zero padding after the last record
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise ValueError(f"malformed PAX record at byte {pos}")
        length = int(digits)
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1:end] != b"\n":
            raise ValueError(f"PAX record at byte {pos} has an impossible length {length}")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq:
            raise ValueError(f"PAX record at byte {pos} has no '='")
        out[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


def _size_limit(name: str) -> int:
    return MAX_JSON_BYTES if _split(name)[1] == "json" else MAX_MEMBER_BYTES


def _wanted(name: str) -> bool:
    _, suffix = _split(name)
    return suffix == "json" or suffix.endswith((f".{BLOSC_EXT}", ".npy")) or suffix in (BLOSC_EXT, "npy")


def _json_only(name: str) -> bool:
    return _split(name)[1] == "json"


def _blosc_buffer(name: str) -> str | None:
    _, suffix = _split(name)
    return suffix if suffix.endswith(f".{BLOSC_EXT}") else None


def iter_tar_records(fileobj: IO[bytes], shard: str = "?", *, reuse_buffers: bool = False,
                     arrays: bool = True) -> Iterator[RawRecord]:
    """Records of a tar stream, in order. Raises ShardError (naming shard and key) on corrupt input.

    Only `.json`, `.npy` and `.blosc` members are read; anything else
    (pickles, torch files, unknown extensions) is skipped unread. With
    `reuse_buffers`, `.blosc` members of a record are only valid until the
    next record is requested (decode them first): the reads then reuse memory.
    With `arrays=False` only the JSON records are read (to count records).
    """
    current: RawRecord | None = None
    reuse = _blosc_buffer if reuse_buffers else (lambda name: None)
    try:
        for name, offset, _size, data in _TarStream(fileobj).members(_wanted if arrays else _json_only, reuse):
            key, suffix = _split(name)
            if current is not None and key != current.key:
                yield _finish(current)
                current = None
            if current is None:
                current = RawRecord(key, shard, offset=offset)
            if data is None:
                continue
            if suffix == "json":
                if current.meta:
                    raise ShardError(shard, "record has two JSON members", key=key)
                current.meta = json.loads(bytes(data))
                check_record(current.meta, shard, key)
            else:
                if suffix in current.members:
                    raise ShardError(shard, f"member {suffix} appears twice", key=key)
                current.members[suffix] = data
        if current is not None:
            yield _finish(current)
    except ShardError:
        raise
    except _DATA_ERRORS as exc:
        key = current.key if current is not None else None
        raise ShardError(shard, f"corrupt or truncated tar: {type(exc).__name__}: {str(exc)[:300]}",
                         key=key) from None


def count_tar_records(fileobj: IO[bytes], shard: str = "?") -> int:
    """Records in a tar stream (JSON members read, arrays skipped). ShardError when it is corrupt."""
    return sum(1 for _ in iter_tar_records(fileobj, shard, arrays=False))


def _finish(record: RawRecord) -> RawRecord:
    if not record.meta:
        raise ShardError(record.shard, "record has no JSON member", key=record.key)
    return record


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 8 and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ARRAY_BYTES for n in value)


def check_record(meta: Any, shard: str, key: str | None) -> None:
    """The fields of a JSON record the readers use must have the types the format gives them."""

    def refuse(message: str) -> None:
        raise ShardError(shard, f"JSON record: {message}", key=key)

    if not isinstance(meta, dict):
        refuse(f"a {type(meta).__name__}, not an object")
    if "id" in meta and (not isinstance(meta["id"], str) or not meta["id"]):
        refuse(f"id {str(meta['id'])[:100]!r} is not a string")
    members = meta.get("members", {})
    if not isinstance(members, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in members.items()):
        refuse("`members` is not an object of names")
    modalities = meta.get("modalities", [])
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        refuse("`modalities` is not a list of names")
    for table in ("dtypes", "shapes", "labels", "arrays", "source"):
        if not isinstance(meta.get(table, {}), dict):
            refuse(f"`{table}` is not an object")
    if not all(isinstance(d, str) for d in meta.get("dtypes", {}).values()) or \
            not all(_is_shape(s) for s in meta.get("shapes", {}).values()):
        refuse("`dtypes`/`shapes` are not dtype names and lists of sizes")
    if not all(isinstance(a, dict) and isinstance(a.get("dtype"), str) and _is_shape(a.get("shape"))
               for a in meta.get("arrays", {}).values()):
        refuse("`arrays` entries lack a dtype and shape")
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
               for v in meta.get("labels", {}).values()):
        refuse("`labels` are not numbers")
    for modality, rel in meta.get("source", {}).items():
        problem = relative_path_problem(rel)
        if problem:
            refuse(f"source of {str(modality)[:50]} {str(rel)[:200]!r} {problem}")
    if "sample_index" in meta and not (isinstance(meta["sample_index"], int) and meta["sample_index"] >= 0):
        refuse("`sample_index` is not a non-negative integer")


def expected_specs(meta: dict[str, Any], shard: str, key: str | None) -> dict[str, tuple[str, list[int]]]:
    """Array name -> (dtype, shape) as the JSON record states them; ShardError when it cannot say."""
    try:
        expected = {**{m: (meta["dtypes"][m], meta["shapes"][m]) for m in meta.get("modalities", [])},
                    **{n: (a["dtype"], a["shape"]) for n, a in meta.get("arrays", {}).items()}}
        return {name: (str(dtype), [int(n) for n in shape]) for name, (dtype, shape) in expected.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ShardError(shard, f"JSON record lacks dtypes/shapes ({exc})", key=key) from None


def check_array(array: np.ndarray, expected: tuple[str, list[int]] | None, where: str, shard: str,
                key: str | None, take: Sequence[int] | None = None) -> None:
    """The decoded array must have the dtype and shape the JSON record states (`take`: timestamps kept)."""
    if expected is None:
        return
    dtype, shape = expected
    want = list(shape) if take is None else [len(take), *shape[1:]]
    if str(array.dtype) != dtype or list(array.shape) != want:
        raise ShardError(shard, f"{where} is {array.dtype} {list(array.shape)}; the JSON record says {dtype} {shape}",
                         key=key)


def check_record_version(meta: dict[str, Any], shard: str, key: str | None) -> None:
    try:
        check_format_version(meta.get("format_version"))
    except ValueError as exc:
        raise ShardError(shard, f"record: {exc}", key=key) from None


def decode_record(record: RawRecord, names: list[str] | None = None,
                  take: list[int] | None = None) -> dict[str, np.ndarray]:
    """Decode the array members the JSON record lists (or just `names`); check dtypes and shapes against it.

    `take` selects timestamps (first axis); `.blosc` members decode only those frames.
    """
    with data_errors(record.shard, record.key):
        return _decode_record(record, names, take)


def _decode_record(record: RawRecord, names: list[str] | None, take: list[int] | None) -> dict[str, np.ndarray]:
    meta = record.meta
    check_record_version(meta, record.shard, record.key)
    members = meta.get("members")
    if not isinstance(members, dict):
        raise ShardError(record.shard, "JSON record lacks `members`", key=record.key)
    expected = expected_specs(meta, record.shard, record.key)
    arrays = {}
    for name in names if names is not None else list(members):
        member = members.get(name)
        data = record.members.get(member) if isinstance(member, str) else None
        if data is None:
            raise ShardError(record.shard, f"array {name} is missing", key=record.key)
        array = decode_member(member, data, shard=record.shard, key=record.key, take=take)
        check_array(array, expected.get(name), f"member {member}", record.shard, record.key, take)
        arrays[name] = array
    return arrays


def iter_parquet_records(source: Any, shard: str = "?", columns: list[str] | None = None
                         ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(JSON record, arrays) per row of a neuco-io Parquet shard (either array layout), one row group at a time."""
    from neuco_io.shards.parquet import iter_parquet_records as parquet_records

    yield from parquet_records(source, shard, columns)
