"""One file named by its path (a Path or UPath), for callers that hold paths: each asks the file's store."""

from __future__ import annotations

from typing import IO, Any

from neuco_io.storage.paths import as_path, file_store

__all__ = ["file_size", "glob_files", "open_read", "sha256_file", "signature", "size_or_zero"]


def open_read(path: Any, *, sequential: bool = False) -> IO[bytes]:
    """A binary file for reading (`Store.open`): locally only regular files, on object stores by range requests."""
    store, name = file_store(path)
    return store.open(name, sequential=sequential)


def sha256_file(path: Any) -> str:
    store, name = file_store(path)
    return store.sha256(name)


def signature(path: Any) -> list:
    store, name = file_store(path)
    return store.signature(name)


def file_size(path: Any) -> int | None:
    """Bytes of a file, or None when it does not exist."""
    store, name = file_store(path)
    return store.size(name)


def size_or_zero(path: Any) -> int:
    """Bytes of a file for summaries: 0 when it is absent or cannot be asked about."""
    try:
        return file_size(path) or 0
    except OSError:
        return 0


def glob_files(pattern: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Paths (or URLs) matching a glob pattern, sorted."""
    store, name = file_store(as_path(pattern, storage_options))
    return store.glob(name)
