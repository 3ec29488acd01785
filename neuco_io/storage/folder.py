"""An output folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from neuco_io.errors import UsageError
from neuco_io.storage.files import file_size
from neuco_io.storage.paths import as_path, is_remote, read_only
from neuco_io.storage.remote import upload_atomic


class Folder:
    """An output folder, local or on an object store, with the writes neuco-io needs.

    `writing(name)` yields a local temporary file: locally it is fsynced and
    renamed into place, remotely it is uploaded in one PUT. Either way the
    file appears under its name only when complete.
    """

    def __init__(self, path: Any, storage_options: dict[str, Any] | None = None) -> None:
        self.path = as_path(path, storage_options)
        self.remote = is_remote(self.path)
        if read_only(self.path):
            raise UsageError(f"{self.path}: http(s) storage is read-only")

    def exists(self) -> bool:
        return self.path.exists()

    def is_dir(self) -> bool:
        return self.path.is_dir()

    def names(self) -> list[str]:
        """The entries directly in the folder (empty when it does not exist)."""
        if self.remote:
            try:
                return sorted(entry.rstrip("/").rpartition("/")[2] for entry in self.path.fs.ls(self.path.path,
                                                                                                 detail=False))
            except FileNotFoundError:
                return []
        return sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []

    def has(self, name: str) -> bool:
        return file_size(self.path / name) is not None

    def size(self, name: str) -> int | None:
        return file_size(self.path / name)

    def read_text(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        final = self.path / name
        if self.remote:
            with upload_atomic(final) as temp:
                yield temp
        else:
            from neuco_io.storage.atomic import atomic_path

            with atomic_path(final) as temp:
                yield temp

    def write_text(self, name: str, text: str) -> None:
        with self.writing(name) as temp:
            temp.write_text(text, encoding="utf-8")

    def remove(self, name: str) -> None:
        """Remove a file or a folder (recursively); nothing if absent."""
        target = self.path / name
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                target.fs.rm(target.path, recursive=True)
            return
        import shutil

        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()

    def mkdir(self) -> None:
        if not self.remote:
            self.path.mkdir(parents=True, exist_ok=True)
