"""One file named by its path (a Path or UPath), for callers that hold paths: each asks the store at that path
(a store's name "" is its root itself, so no folder and name are split and joined again)."""

from __future__ import annotations

from typing import IO, Any

from neuco_io.storage.paths import open_store

__all__ = ["file_size", "glob_files", "open_read", "sha256_file", "signature", "size_or_zero"]


def open_read(path: Any, *, sequential: bool = False) -> IO[bytes]:
    """A binary file for reading (`Store.open`): locally only regular files, on object stores by range requests."""
    return open_store(path).open(sequential=sequential)


def sha256_file(path: Any) -> str:
    return open_store(path).sha256()


def signature(path: Any) -> list:
    return open_store(path).signature()


def file_size(path: Any) -> int | None:
    """Bytes of a file, or None when it does not exist."""
    return open_store(path).size()


def size_or_zero(path: Any) -> int:
    """Bytes of a file for summaries: 0 when it is absent or cannot be asked about."""
    try:
        return file_size(path) or 0
    except OSError:
        return 0


def glob_files(pattern: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Paths (or URLs) matching a glob pattern, sorted."""
    return open_store(pattern, storage_options).glob("")
