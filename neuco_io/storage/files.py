"""Files, local or remote: open, size, signature, digest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

from neuco_io.storage.local import _open_regular
from neuco_io.storage.options import error_text
from neuco_io.storage.paths import is_remote, read_only
from neuco_io.storage.remote import _open_http_seekable


def open_read(path: Path, *, sequential: bool = False) -> IO[bytes]:
    """A binary file for reading. On object stores, reads fetch blocks by range requests (never the whole
    object first); with `sequential` over http(s) the response is streamed, which also works with servers
    that ignore Range. Local paths open only when they are regular files (see `_open_regular`)."""
    try:
        if read_only(path):
            return path.fs.open(path.path, "rb", block_size=0) if sequential else _open_http_seekable(path)
        return path.open("rb") if is_remote(path) else _open_regular(path)
    except TimeoutError as exc:
        raise OSError(f"{path}: {error_text(exc)}") from exc
    except OSError:
        raise
    except Exception as exc:  # fsspec backends raise their own errors for missing buckets, auth...
        raise OSError(f"{path}: {type(exc).__name__}: {exc}") from exc


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, local or remote, read front to back in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open_read(path, sequential=True) as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def signature(path: Path) -> list:
    """What tells whether a file changed: size and modification time (or an object store's ETag)."""
    try:
        if not is_remote(path):
            st = path.stat()
            return [st.st_size, st.st_mtime_ns]
        info = path.fs.info(path.path)
        return [int(info.get("size") or 0), str(info.get("ETag") or info.get("LastModified") or info.get("mtime")
                                                or info.get("created") or "")]
    except OSError:
        return [-1, -1]


def file_size(path: Path) -> int | None:
    """Bytes of a file, or None when it does not exist."""
    try:
        if is_remote(path):
            return int(path.fs.info(path.path).get("size") or 0)
        return path.stat().st_size if path.is_file() else None
    except FileNotFoundError:
        return None


def size_or_zero(path: Path) -> int:
    """Bytes of a file for summaries: 0 when it is absent or cannot be asked about."""
    try:
        return file_size(path) or 0
    except OSError:
        return 0
