"""Object stores and http(s) through fsspec: `FsspecStore`.

Writes stay atomic without renames: a file is written locally first and then
uploaded in one PUT, so it appears under its final name only when complete
(S3 and the others never show a partial object).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from neuco_io.errors import UsageError
from neuco_io.storage.base import Entry, FileInfo, Store
from neuco_io.storage.options import error_text

__all__ = ["READ_ONLY", "FsspecStore", "RemoteTree"]

READ_ONLY = ("http", "https")
SPOOL_IN_MEMORY = 64 << 20


def _open_http_seekable(path: Any) -> IO[bytes]:
    """Random access over http(s): range requests when the server honours them; otherwise the file is
    streamed once into a spooled temporary file (memory up to 64 MiB, then disk), so readers that seek
    (Parquet) still work against simple servers."""
    fh = path.fs.open(path.path, "rb")
    try:
        size = fh.size or 0
        if size > 1:
            fh.seek(size - 1)  # a request that does not start at 0 shows whether ranges are honoured
            fh.read(1)
            fh.seek(0)
        return fh
    except ValueError as exc:
        if "range" not in str(exc).lower():
            raise
        fh.close()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned open
    with path.fs.open(path.path, "rb", block_size=0) as stream:
        while block := stream.read(1 << 22):
            spool.write(block)
    spool.seek(0)
    return spool


class FsspecStore(Store):
    """A folder on an object store (s3://, gs://, az://, hf://, memory://) or behind http(s), as a UPath."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        protocol = getattr(path, "protocol", "")
        self.read_only = protocol in READ_ONLY
        self.supports_listing = not self.read_only  # http(s) "folders" are index pages, listed best effort
        self.in_process_only = protocol == "memory"

    def _key(self, name: str) -> str:
        return self.location(name).path

    @property
    def fs(self) -> Any:
        return self.path.fs

    def info(self, name: str = "") -> FileInfo:
        info = self.fs.info(self._key(name))
        return FileInfo(int(info.get("size") or 0), info.get("type") == "directory")

    def size(self, name: str = "") -> int | None:
        try:
            return int(self.fs.info(self._key(name)).get("size") or 0)
        except FileNotFoundError:
            return None

    def exists(self, name: str = "") -> bool:
        return not name or self.location(name).exists()

    def signature(self, name: str = "") -> list:
        try:
            info = self.fs.info(self._key(name))
        except OSError:
            return [-1, -1]
        return [int(info.get("size") or 0), str(info.get("ETag") or info.get("LastModified") or info.get("mtime")
                                                or info.get("created") or "")]

    def open(self, name: str = "", *, sequential: bool = False) -> IO[bytes]:
        """Reads fetch blocks by range requests (never the whole object first); with `sequential` over
        http(s) the response is streamed, which also works with servers that ignore Range."""
        path = self.location(name)
        try:
            if not self.read_only:
                return path.open("rb")
            return self.fs.open(path.path, "rb", block_size=0) if sequential else _open_http_seekable(path)
        except TimeoutError as exc:
            raise OSError(f"{path}: {error_text(exc)}") from exc
        except OSError:
            raise
        except Exception as exc:  # fsspec backends raise their own errors for missing buckets, auth...
            raise OSError(f"{path}: {type(exc).__name__}: {exc}") from exc

    def read_ranges(self, name: str, spans: Sequence[tuple[int, int]]) -> Iterator[bytes]:
        """One range request per span (never the whole object), unless the server ignores Range (the stdlib's
        and some simple servers do) and sends the whole object: then the spans are cut from that one copy."""
        key = self._key(name)
        whole: bytes | None = None
        for start, end in spans:
            data = whole if whole is not None else self.fs.cat_file(key, start=start, end=end)
            if len(data) > end - start and len(data) >= end:  # the whole object, from byte 0
                whole = data
                data = data[start:end]
            yield data

    def names(self, name: str = "") -> list[str]:
        try:
            return sorted(entry.rstrip("/").rpartition("/")[2] for entry in self.fs.ls(self._key(name), detail=False))
        except FileNotFoundError:
            return []

    def tree(self) -> RemoteTree:
        return RemoteTree(self.path)

    def glob(self, pattern: str) -> list[str]:
        protocol = str(self.path).split("://", 1)[0]
        return sorted(f"{protocol}://{p}" for p in self.fs.glob(self._key(pattern)))

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        self.check_writable()
        fd, temp_name = tempfile.mkstemp(prefix=".neuco-", suffix=".partial")
        os.close(fd)
        temp = Path(temp_name)
        try:
            yield temp
            self.fs.put_file(str(temp), self._key(name))
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def create(self, name: str, text: str) -> bool:
        if self.has(name):
            return False
        self.write_text(name, text)
        return True

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._key(name), recursive=True)

    def mkdir(self, name: str = "") -> None:
        """Nothing: object stores have no folders, only names with slashes."""

    def remove_if_empty(self, name: str = "") -> None:
        """Nothing: a folder of an object store vanishes with its last object."""


class RemoteTree:
    """Folder listings of an object store, from one recursive listing of ROOT (not a request per folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        base = root.path.rstrip("/")
        try:
            listing = root.fs.find(root.path, withdirs=True, detail=True)
        except FileNotFoundError:
            raise UsageError(f"{root}: no such directory") from None
        except Exception as exc:  # auth, network, unknown bucket: the backend's own errors
            raise UsageError(f"{root}: cannot list: {error_text(exc)}") from None
        self.kinds: dict[str, bool] = {"": True}
        self.children: dict[str, list[str]] = defaultdict(list)
        for name, info in listing.items():
            rel = name.rstrip("/")[len(base):].strip("/")
            if not rel:
                continue
            is_dir = info.get("type") == "directory"
            self.kinds[rel] = is_dir
            parts = rel.split("/")
            for depth in range(1, len(parts)):  # object stores list keys; their prefixes are folders
                self.kinds.setdefault("/".join(parts[:depth]), True)
        for rel in self.kinds:
            if rel:
                parent, _, _ = rel.rpartition("/")
                self.children[parent].append(rel)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix().strip("/") if path != self.root else ""

    def entries(self, folder: Path) -> list[Entry]:
        rel = self._rel(folder)
        return [Entry(child.rpartition("/")[2], self.root / child, self.kinds[child])
                for child in sorted(self.children.get(rel, []))]

    def is_dir(self, path: Path) -> bool:
        return self.kinds.get(self._rel(path)) is True

    def is_file(self, path: Path) -> bool:
        return self.kinds.get(self._rel(path)) is False
