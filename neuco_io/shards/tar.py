"""Tar shards (WebDataset): write them deterministically, and read them record by record.

A tar is read as a stream (no seeking), so it works on pipes and remote
files; members of one record are contiguous. Nothing is unpickled: only
`.json`, `.npy` (allow_pickle=False) and `.blosc` members are decoded, and
other members are ignored. This is the only tar reader and writer in
neuco-io (`convert`, `verify`, the loader, stats and record counting).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from neuco_io.errors import ShardError
from neuco_io.names import name_problem
from neuco_io.shards.codecs import (
    BLOSC_EXT,
    MAX_ARRAY_BYTES,
    blosc_member_parts,
    decode_key,
    decode_member,
    encode_blosc_array,
    encode_npy,
    member_name,
)
from neuco_io.shards.record import (
    DATA_ERRORS,
    MAX_JSON_BYTES,
    Record,
    data_errors,
    decode_arrays,
    parse_record,
    record_json,
)
from neuco_io.shards.sink import HashingSink
from neuco_io.storage import as_path, open_read

__all__ = ["RawRecord", "TarShardWriter", "count_tar_records", "decode_record", "iter_tar_records", "read_tar_range"]

MAX_MEMBER_BYTES = MAX_ARRAY_BYTES + (1 << 20)
"""The largest array member the format allows (its array, plus the Blosc container's header and frames)."""
MAX_EXTENDED_HEADER_BYTES = 1 << 20
"""PAX and GNU long-name headers: a path and a few fields, never more."""
TAR_MTIME = 0
"""Fixed header fields: the same input gives byte-identical shards."""


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

    def arrays(self, names: list[str] | None = None, take: list[int] | None = None) -> dict[str, np.ndarray]:
        """The arrays the record lists (or `names`), decoded and checked (`decode_record`)."""
        return decode_record(self, names, take)


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
                current.meta = parse_record(bytes(data), shard, key)
            else:
                if suffix in current.members:
                    raise ShardError(shard, f"member {suffix} appears twice", key=key)
                current.members[suffix] = data
        if current is not None:
            yield _finish(current)
    except ShardError:
        raise
    except DATA_ERRORS as exc:
        key = current.key if current is not None else None
        raise ShardError(shard, f"corrupt or truncated tar: {type(exc).__name__}: {str(exc)[:300]}",
                         key=key) from None


def read_tar_range(data: bytes | memoryview, shard: str = "?") -> RawRecord:
    """The one record of a byte range the manifest's index gives (its members, without the archive's end):
    ShardError when the range holds anything else."""
    records = list(iter_tar_records(io.BytesIO(b"".join((data, b"\0" * (2 * tarfile.BLOCKSIZE)))), shard))
    if len(records) != 1:
        raise ShardError(shard, f"a byte range from the manifest's index holds {len(records)} records, not 1 "
                                "(shard and manifest disagree)")
    return records[0]


def count_tar_records(source: Any, shard: str | None = None) -> int:
    """Records in a tar shard (a path or URL, or a stream): JSON members read, arrays skipped. ShardError when
    it is corrupt or unreadable."""
    if hasattr(source, "read"):
        return sum(1 for _ in iter_tar_records(source, shard or "?", arrays=False))
    try:
        with open_read(as_path(source), sequential=True) as fh:
            return count_tar_records(fh, shard or getattr(source, "name", str(source)))
    except OSError as exc:
        raise ShardError(source, f"cannot count records: {exc}") from None


def _finish(record: RawRecord) -> RawRecord:
    if not record.meta:
        raise ShardError(record.shard, "record has no JSON member", key=record.key)
    return record


def decode_record(record: RawRecord, names: list[str] | None = None,
                  take: list[int] | None = None) -> dict[str, np.ndarray]:
    """Decode the array members the JSON record lists (or just `names`); check dtypes and shapes against it.

    `take` selects timestamps (first axis); `.blosc` members decode only those frames.
    """
    with data_errors(record.shard, record.key):
        return _decode_record(record, names, take)


def _decode_record(record: RawRecord, names: list[str] | None, take: list[int] | None) -> dict[str, np.ndarray]:
    def decode(name: str, member: str, expected: Any) -> np.ndarray:
        data = record.members.get(member)
        if data is None:
            raise ShardError(record.shard, f"array {name} is missing", key=record.key)
        return decode_member(member, data, shard=record.shard, key=record.key, take=take)

    return decode_arrays(record.meta, record.shard, record.key, names, take, decode, "member")


def array_member_parts(record: Record, name: str, codec: str) -> list[bytes]:
    """An array member's bytes, as pieces (a pass-through member is its header plus the source chunks)."""
    if codec == "none":
        return [encode_npy(record.array(name))]
    frames = record.frames.get(name)
    if frames is not None:
        dtype, shape = record.specs[name]
        return blosc_member_parts(dtype, shape, frames)
    return [encode_blosc_array(record.array(name))]


class TarShardWriter(HashingSink):
    """A deterministic tar shard writer that hashes and counts as it writes.

    Headers come from the standard library (`TarInfo.tobuf`, PAX format, so
    long ids work); each member's data is written in one call, which is what
    keeps a multi-GB shard cheap to write.
    """

    def __init__(self, fh, codec: str) -> None:
        super().__init__(fh)
        self.codec = codec

    def add(self, record: Record) -> tuple[int, int]:
        """Write a record's JSON and array members; its (offset, size) in the tar."""
        start = self.size
        self.add_member(f"{record.key}.json", [record_json(record, self.codec)])
        for name in record.specs:
            self.add_member(f"{record.key}.{member_name(name, self.codec)}",
                            array_member_parts(record, name, self.codec))
        return start, self.size - start

    def add_member(self, name: str, parts: list[bytes]) -> None:
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
