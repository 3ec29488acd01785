"""Local files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO

from neuco_io.storage.base import Entry


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _open_regular(path: Path) -> IO[bytes]:
    """Open a local file only if it is a regular file: a FIFO or device named like a data file would
    block the reader forever (or never end). Opened non-blocking, so a FIFO cannot hang the open itself."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({file_kind(mode)})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _LocalTree:
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
