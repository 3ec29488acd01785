"""A zip's directory checked before it is trusted.

Cubes are zips from strangers: the central directory could claim millions
of entries (zipfile would build them all in memory), members could overlap
(one compressed payload read as thousands of members: a "quine" bomb), and a
member's local header could disagree with the directory. These checks run on
the directory alone, before any member is read; errors are
`zipfile.BadZipFile`, which callers already report as a damaged zip.

`ZipMembers` opens a cube's zip after these checks and reads its members,
bounded by what the caller allows and (for stored members of a local file)
with one positioned read confined to the member's byte range.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from neuco_io.errors import CubeReadError
from neuco_io.storage import Store, open_store

__all__ = ["MAX_MEMBERS", "ZIP_READ_ERRORS", "MemberTooLarge", "ZipMembers", "check_entry_count", "check_layout",
           "stored_data_offset"]

MAX_MEMBERS = 100_000
"""A 64-sample v1.1 cube has about 600 members."""

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
LOCAL_HEADER = struct.Struct("<4s5H3I2H")
"""A zip local file header: signature, version, flags, method ... file name length, extra length (APPNOTE 4.3.7)."""
ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error,
                   lzma.LZMAError)
"""What zipfile raises on a damaged member (a flipped method field makes a stored member "deflated"...)."""


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


class MemberTooLarge(Exception):
    """A member whose directory entry claims more bytes than the caller allows (nothing was read)."""

    def __init__(self, key: str, claimed: int) -> None:
        super().__init__(f"{key} claims {claimed:,} bytes")
        self.key = key
        self.claimed = claimed


def _size_or_raise(store: Store) -> int:
    """The size of the file at the store's root; CubeReadError when it is missing, a directory, not a regular
    file or empty."""
    path = store.path
    try:
        info = store.info()
    except FileNotFoundError:
        raise CubeReadError(path, "file not found", reason="missing") from None
    except PermissionError:
        raise CubeReadError(path, "permission denied", reason="permission") from None
    except OSError as exc:
        raise CubeReadError(path, f"cannot stat: {exc.strerror or exc}", reason="io") from None
    except Exception as exc:  # object-store backends raise their own errors
        raise CubeReadError(path, f"cannot stat: {type(exc).__name__}: {exc}", reason="io") from None
    if info.is_dir:
        raise CubeReadError(path, "is a directory, not a zip file", reason="directory")
    if info.kind is not None:
        raise CubeReadError(path, f"is not a regular file ({info.kind})", reason="not-regular")
    if info.size == 0:
        raise CubeReadError(path, "zero-byte file", reason="empty")
    return info.size


def _open_zip(store: Store, size: int) -> tuple[zipfile.ZipFile, IO[bytes]]:
    """The zip and its open file (with `positioned_reads`, its descriptor serves reads of stored members)."""
    path = store.path
    fh = None
    try:
        fh = store.open()  # closed by ZipMembers.close
        check_entry_count(fh, size)
        zf = zipfile.ZipFile(fh)
        check_layout(zf.infolist(), size)
        return zf, fh
    except PermissionError:
        raise CubeReadError(path, "permission denied", reason="permission") from None
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:  # zipfile raises ValueError on some damage
        fh.close()
        raise CubeReadError(path, f"not a valid zip archive ({exc}); truncated or corrupt?", reason="not-zip") from None
    except OSError as exc:
        if fh is not None:
            fh.close()
        raise CubeReadError(path, f"cannot read: {exc.strerror or exc}", reason="io") from None


class ZipMembers:
    """The members of one zip file (a regular file, or an object in a store), its directory checked first.

    Raises CubeReadError naming the file when it is missing, not a regular
    file, empty or not a sound zip. The directory (`infos`) stays readable
    after `close()`; reads do not.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        store = open_store(path)  # the file itself is the store's root
        self.size = _size_or_raise(store)
        self._zip: zipfile.ZipFile | None
        self._zip, self._fh = _open_zip(store, self.size)
        self._fd: int | None = self._fh.fileno() if store.positioned_reads else None
        self.infos: dict[str, zipfile.ZipInfo] = {info.filename: info for info in self._zip.infolist()}

    def __contains__(self, key: object) -> bool:
        return key in self.infos

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    @property
    def compressed(self) -> bool:
        """True when any member is deflated (the public files are stored)."""
        return any(info.compress_type != zipfile.ZIP_STORED for info in self.infos.values())

    def read(self, key: str, limit: int) -> bytes:
        """A member's bytes. MemberTooLarge when its directory entry claims more than `limit` bytes (read or
        stored); on damage, one of ZIP_READ_ERRORS."""
        info = self.infos[key]
        claimed = max(info.file_size, info.compress_size)
        if claimed > limit:
            raise MemberTooLarge(key, claimed)
        if self._fd is not None and info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
            return self._read_stored(info)
        return self._zip.read(key)

    def _read_stored(self, info: zipfile.ZipInfo) -> bytes:
        """A stored member with one positioned read, CRC-32 checked like zipfile does.

        zipfile's reader copies each member several times through its buffers;
        the public cubes are stored zips, so their members are plain byte ranges.
        """
        header = os.pread(self._fd, LOCAL_HEADER.size + len(info.orig_filename.encode()), info.header_offset)
        start = stored_data_offset(header[:LOCAL_HEADER.size], header[LOCAL_HEADER.size:], info)
        data = os.pread(self._fd, info.compress_size, start)
        if len(data) != info.compress_size:
            raise EOFError(f"{info.filename}: truncated ({len(data)} of {info.compress_size} bytes)")
        if zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC-32 for {info.filename}")
        return data

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
            self._fh.close()
            self._fd = None
