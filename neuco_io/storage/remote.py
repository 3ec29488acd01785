"""Object stores and http(s) through fsspec."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from neuco_io.errors import UsageError
from neuco_io.storage.base import Entry
from neuco_io.storage.options import error_text
from neuco_io.storage.paths import read_only

SPOOL_IN_MEMORY = 64 << 20


def _open_http_seekable(path: Path) -> IO[bytes]:
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


@contextlib.contextmanager
def upload_atomic(final: Path) -> Iterator[Path]:
    """A local temporary file to write; uploaded to `final` (one PUT) when the block succeeds."""
    if read_only(final):
        raise UsageError(f"{final}: this storage is read-only")
    fd, name = tempfile.mkstemp(prefix=".neuco-", suffix=".partial")
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        final.fs.put_file(str(temp), final.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


class _RemoteTree:
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
