"""The `Store` interface: a folder of files, local or behind fsspec, with declared capabilities.

Modelled on zarr-python 3's `zarr.abc.store.Store`: one interface, files
addressed by `/`-separated names relative to the store's root, and what a
backend can or cannot do declared as attributes (`read_only`,
`positioned_reads`, `atomic_rename`...) so callers ask the store instead of
branching on local vs remote. `open_store` (in `neuco_io.storage`) turns a
path or URL into a store once, at the entry of a command.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from neuco_io.errors import UsageError

__all__ = ["Entry", "FileInfo", "Store", "Tree"]


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    is_dir: bool


@dataclass(frozen=True)
class FileInfo:
    """What a stat says about one name."""

    size: int
    is_dir: bool
    kind: str | None = None
    """None for a regular file (every object of an object store is one); else "a FIFO", "a socket"..."""


class Tree(Protocol):
    """Folder listings under a store's root (`Store.tree`), for discovering a dataset."""

    def entries(self, folder: Path) -> list[Entry]: ...

    def is_dir(self, path: Path) -> bool: ...

    def is_file(self, path: Path) -> bool: ...


class Store(ABC):
    """A folder of files. Names are relative to `path`; "" is `path` itself, so a store rooted at one file
    (`open_store(cube_path)`) reads that file without splitting and joining paths.

    Writes go through `writing(name)`, which yields a local temporary file;
    the file appears under its name only when complete, by a rename in place
    (`atomic_rename`) or by one upload of the finished file (object stores,
    which never show a partial object).
    """

    read_only: bool = False
    """Nothing can be written (http(s))."""
    positioned_reads: bool = False
    """An open file has an OS descriptor for os.pread: threads read at offsets without sharing a position."""
    os_paths: bool = False
    """Files have OS paths other libraries can open themselves (zarr's ZipStore, the xarray view)."""
    in_process_only: bool = False
    """The files exist only in this process (memory://): worker processes would not see them."""
    atomic_rename: bool = False
    """Writes are renamed into place (and may leave `.*.partial` files when killed); else staged, then uploaded."""
    supports_listing: bool = True
    """Folders can be listed reliably (`names`, `tree`, `glob`, `is_dir`); http(s) only scrapes index pages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __truediv__(self, name: str) -> Store:
        """The store of a sub-folder."""
        return type(self)(self.location(name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and str(other.path) == str(self.path)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, str(self.path)))

    def location(self, name: str = "") -> Path:
        """The path (or UPath) of a name in the store."""
        return self.path / name if name else self.path

    def check_writable(self) -> None:
        if self.read_only:
            raise UsageError(f"{self.path}: this storage is read-only")

    # -- reading ------------------------------------------------------------------------------------------------

    @abstractmethod
    def info(self, name: str = "") -> FileInfo:
        """Size and kind of a name; FileNotFoundError when absent, OSError when it cannot be asked about."""

    @abstractmethod
    def size(self, name: str = "") -> int | None:
        """Bytes of a file, or None when there is none."""

    def has(self, name: str = "") -> bool:
        return self.size(name) is not None

    @abstractmethod
    def exists(self, name: str = "") -> bool:
        """True when a file or folder is there (on object stores, folders are implicit: the root always is)."""

    def is_dir(self, name: str = "") -> bool:
        return self.location(name).is_dir()

    def is_file(self, name: str = "") -> bool:
        return self.location(name).is_file()

    @abstractmethod
    def signature(self, name: str = "") -> list:
        """What tells whether a file changed: size and modification time (or an ETag); [-1, -1] when unknown."""

    @abstractmethod
    def open(self, name: str = "", *, sequential: bool = False) -> IO[bytes]:
        """A binary file for reading; `sequential` when it is read front to back once (may stream)."""

    def read_ranges(self, name: str, spans: Sequence[tuple[int, int]]) -> Iterator[bytes]:
        """The bytes of each (start, end) span of a file, in order, through one open file."""
        with self.open(name) as fh:
            for start, end in spans:
                fh.seek(start)
                yield fh.read(end - start)

    def read_text(self, name: str) -> str:
        with self.open(name, sequential=True) as fh:
            return fh.read().decode("utf-8")

    def sha256(self, name: str = "") -> str:
        """The hex SHA-256 of a file, read front to back in 4 MiB blocks."""
        digest = hashlib.sha256()
        with self.open(name, sequential=True) as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
        return digest.hexdigest()

    # -- listing ------------------------------------------------------------------------------------------------

    @abstractmethod
    def names(self, name: str = "") -> list[str]:
        """The entries directly in a folder, sorted (empty when it does not exist)."""

    @abstractmethod
    def tree(self) -> Tree:
        """Listings of everything under the root; UsageError when the root is no readable folder."""

    @abstractmethod
    def glob(self, pattern: str) -> list[str]:
        """Paths (URLs for object stores) matching a glob pattern relative to the root, sorted."""

    # -- writing ------------------------------------------------------------------------------------------------

    @abstractmethod
    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """A local temporary file to write; it appears as `name` only when the block succeeds."""

    def write_text(self, name: str, text: str) -> None:
        with self.writing(name) as temp:
            temp.write_text(text, encoding="utf-8")

    @abstractmethod
    def create(self, name: str, text: str) -> bool:
        """Write a small file unless `name` exists; False when it does. Exclusive where the backend allows
        (O_EXCL locally); on object stores a check then a write (two writers in the same instant both win)."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove a file or a folder (recursively); nothing if absent."""

    @abstractmethod
    def mkdir(self, name: str = "") -> None:
        """Create a folder and its parents (object stores have none to create)."""

    @abstractmethod
    def remove_if_empty(self, name: str = "") -> None:
        """Remove a folder only when empty, so a user's own files are kept (object stores have none)."""

    def remove_partials(self, name: str = "", finals: set[str] | None = None) -> int:
        """Delete the `.*.partial` files killed writers left in a folder (only renaming stores leave them)."""
        return 0

    def describe(self) -> str:
        """The root as recorded in manifests: an absolute path, or the URL."""
        return str(self.path)
