"""A zip's directory checked before it is trusted.

Cubes are zips from strangers: the central directory could claim millions
of entries (zipfile would build them all in memory), members could overlap
(one compressed payload read as thousands of members: a "quine" bomb), and a
member's local header could disagree with the directory. These checks run on
the directory alone, before any member is read; errors are
`zipfile.BadZipFile`, which callers already report as a damaged zip.
"""

from __future__ import annotations

import struct
import zipfile
from typing import IO

__all__ = ["MAX_MEMBERS", "check_entry_count", "check_layout", "stored_data_offset"]

MAX_MEMBERS = 100_000
"""A 64-sample v1.1 cube has about 600 members."""

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
LOCAL_HEADER = struct.Struct("<4s5H3I2H")
"""A zip local file header: signature, version, flags, method ... file name length, extra length (APPNOTE 4.3.7)."""


def _read_at(fh: IO[bytes], offset: int, size: int) -> bytes:
    fh.seek(offset)
    return fh.read(size)


def check_entry_count(fh: IO[bytes], size: int) -> None:
    """Refuse a directory that claims more than MAX_MEMBERS entries, before zipfile parses it."""
    tail_size = min(size, _EOCD.size + _ZIP64_LOCATOR.size)  # a zip without a comment ends with its EOCD
    tail = _read_at(fh, size - tail_size, tail_size)
    if tail[-_EOCD.size:-_EOCD.size + 4] != b"PK\x05\x06":
        tail_size = min(size, _EOCD.size + 0xFFFF)  # else it is within the last 64 KiB (the comment's limit)
        tail = _read_at(fh, size - tail_size, tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return  # not a zip: zipfile says so in its own words
    entries, cd_size = _EOCD.unpack_from(tail, at)[4:6]
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # zip64: the real counts are in the zip64 record
        locator_at = at - _ZIP64_LOCATOR.size
        if locator_at >= 0 and tail[locator_at:locator_at + 4] == b"PK\x06\x07":
            offset = _ZIP64_LOCATOR.unpack_from(tail, locator_at)[2]
            record = _read_at(fh, offset, _ZIP64_EOCD.size) if offset < size else b""
            if len(record) == _ZIP64_EOCD.size and record[:4] == b"PK\x06\x06":
                entries, cd_size = _ZIP64_EOCD.unpack(record)[7:9]
    if entries > MAX_MEMBERS:
        raise zipfile.BadZipFile(f"the directory claims {entries:,} members, more than {MAX_MEMBERS:,}")
    if cd_size > size:
        raise zipfile.BadZipFile(f"the directory claims {cd_size:,} bytes in a {size:,}-byte file")


def check_layout(infos: list[zipfile.ZipInfo], size: int) -> None:
    """Members must lie inside the file, one after the other, never overlapping."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None]):
        end = info.header_offset + LOCAL_HEADER.size + info.compress_size
        if info.header_offset < 0 or end > size:
            raise zipfile.BadZipFile(f"member {info.filename!r} claims bytes beyond the end of the file")
        if following is not None and end > following.header_offset:
            raise zipfile.BadZipFile(f"members {info.filename!r} and {following.filename!r} overlap")


def stored_data_offset(header: bytes, name: bytes, info: zipfile.ZipInfo) -> int:
    """Where a stored member's data starts, after checking its local header agrees with the directory."""
    if len(header) != LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    fields = LOCAL_HEADER.unpack(header)
    method, name_len, extra_len = fields[3], fields[-2], fields[-1]
    if method != zipfile.ZIP_STORED:
        raise zipfile.BadZipFile(f"local header of {info.filename} says compression method {method}, the "
                                 "directory says stored")
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"  # as zipfile decodes it
    if name[:name_len].decode(encoding, "replace") != info.orig_filename:
        raise zipfile.BadZipFile(f"local header names {name[:name_len]!r}, the directory {info.orig_filename!r}")
    return info.header_offset + LOCAL_HEADER.size + name_len + extra_len
