"""Local files: `LocalStore`, with the fast os-level paths (scandir, pread, O_EXCL, fsync + rename)."""

from __future__ import annotations

import contextlib
import errno
import glob as globbing
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from neuco_io.errors import UsageError
from neuco_io.storage.atomic import atomic_path, remove_partials
from neuco_io.storage.base import Entry, FileInfo, Store

__all__ = ["LOCAL_PATH", "LocalStore", "LocalTree", "file_kind", "require_regular_file"]

LOCAL_PATH = type(Path())
"""PosixPath or WindowsPath: a path of this exact type needs no conversion (checked per cube opened)."""


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _refuse_irregular(mode: int, path: str | os.PathLike[str]) -> None:
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, f"not a regular file ({file_kind(mode)})", os.fspath(path))


def require_regular_file(path: str | os.PathLike[str]) -> int:
    """Refuse a local input that is not a regular file (OSError naming it) before it is opened: a FIFO or a
    device named as a CSV, id list or statistics file would block its reader forever. Returns its size."""
    st = os.stat(path)
    _refuse_irregular(st.st_mode, path)
    return st.st_size


def _open_regular(path: Path) -> IO[bytes]:
    """Open a local file only if it is a regular file: a FIFO or device named like a data file would
    block the reader forever (or never end). Opened non-blocking, so a FIFO cannot hang the open itself."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _refuse_irregular(os.fstat(fd).st_mode, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class LocalTree:
    """Folder listings from the local filesystem (os.scandir: one system call per folder)."""

    def entries(self, folder: Path) -> list[Entry]:
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
        return [Entry(e.name, Path(e.path), _entry_is_dir(e)) for e in items]

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def is_file(self, path: Path) -> bool:
        return path.is_file()


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


class LocalStore(Store):
    """A local folder."""

    positioned_reads = True
    os_paths = True
    atomic_rename = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path if type(path) is LOCAL_PATH else Path(path))

    def info(self, name: str = "") -> FileInfo:
        st = self.location(name).stat()
        regular = stat.S_ISREG(st.st_mode)
        return FileInfo(st.st_size, stat.S_ISDIR(st.st_mode), None if regular else file_kind(st.st_mode))

    def size(self, name: str = "") -> int | None:
        path = self.location(name)
        try:
            return path.stat().st_size if path.is_file() else None
        except FileNotFoundError:
            return None

    def exists(self, name: str = "") -> bool:
        return self.location(name).exists()

    def signature(self, name: str = "") -> list:
        try:
            st = self.location(name).stat()
        except OSError:
            return [-1, -1]
        return [st.st_size, st.st_mtime_ns]

    def open(self, name: str = "", *, sequential: bool = False) -> IO[bytes]:
        return _open_regular(self.location(name))

    def names(self, name: str = "") -> list[str]:
        folder = self.location(name)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def tree(self) -> LocalTree:
        if not self.path.exists():
            raise UsageError(f"{self.path}: no such directory")
        if not self.path.is_dir():
            raise UsageError(f"{self.path}: not a directory")
        return LocalTree()

    def glob(self, pattern: str) -> list[str]:
        return sorted(globbing.glob(str(self.location(pattern))))

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        with atomic_path(self.location(name)) as temp:
            yield temp

    def create(self, name: str, text: str) -> bool:
        try:
            fd = os.open(self.location(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True

    def remove(self, name: str) -> None:
        target = self.location(name)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()

    def mkdir(self, name: str = "") -> None:
        self.location(name).mkdir(parents=True, exist_ok=True)

    def remove_if_empty(self, name: str = "") -> None:
        with contextlib.suppress(OSError):
            self.location(name).rmdir()

    def remove_partials(self, name: str = "", finals: set[str] | None = None) -> int:
        return remove_partials(self.location(name), finals)

    def describe(self) -> str:
        return str(self.path.resolve())
