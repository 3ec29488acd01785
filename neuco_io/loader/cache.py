"""A local cache of remote shards (`cache_dir=`, `cache_limit=`): least recently used shards are evicted.

Safe with several DataLoader workers and several processes on one machine:
a shard is fetched by one process at a time (a lock file per shard), into a
temporary file whose size is reserved first under a cache-wide lock (so the
files and the fills in progress never add up to more than the limit), checked
against the manifest's sha256 and renamed into place (a reader never sees a
half-written shard). Using a shard touches it (its mtime orders eviction); a
reader holds its shard open, so an eviction by another process never breaks
a read. A cached shard is hashed again the first time a dataset object opens
it: a corrupted copy is fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from neuco_io.errors import ShardError, UsageError
from neuco_io.sizes import parse_size
from neuco_io.storage import open_read

__all__ = ["ShardCache", "check_cache_options"]

PARTIAL = ".partial"
LOCK = ".lock"
CHUNK = 1 << 22


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock (flock) on `path`, across processes, released when the block ends."""
    import fcntl

    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def check_cache_options(folder: str | os.PathLike[str], limit: int | str | None) -> int | None:
    """The limit in bytes (None: no limit); a UsageError for a limit that is not a size or a folder that
    exists as something else (checked without creating anything)."""
    try:
        size = None if limit is None else parse_size(limit)
    except ValueError as exc:
        raise UsageError(f"cache_limit: {exc}") from None
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"cache_dir {folder}: exists and is not a folder")
    return size


class ShardCache:
    """Shards of one source kept in `folder`, at most `limit` bytes in all (files and fills in progress)."""

    def __init__(self, folder: str | os.PathLike[str], limit: int | str | None) -> None:
        self.folder = Path(folder)
        self.limit = check_cache_options(folder, limit)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cache_dir {self.folder}: cannot create it: {exc.strerror or exc}") from None
        self._verified: set[tuple[str, int, int]] = set()
        """(name, inode, size) of copies this object hashed: checked once per dataset object."""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_verified": set()}  # every worker checks for itself

    def name_for(self, url: str, name: str) -> str:
        """The cache's file name of a shard: its name, prefixed by a hash of its URL (two datasets may both
        have a shard-000000.tar)."""
        return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"

    def cached(self, url: str, name: str, sha256: str) -> Path | None:
        """The verified local copy of a shard, touched as just used; None when it is not (or no longer) there."""
        path = self.folder / self.name_for(url, name)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (path.name, st.st_ino, st.st_size)
        if key not in self._verified:
            if _sha256(path) != sha256:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # corrupted: fetched again by the caller
                return None
            self._verified.add(key)
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)
        return path

    def open(self, remote: Any, name: str, size: int, sha256: str) -> IO[bytes]:
        """A local copy of the shard at `remote`, opened for reading: from the cache, or fetched into it (one
        process fetches, the others wait for it). A shard larger than the whole limit is streamed, not cached.
        """
        url = str(remote)
        if self.limit is not None and size > self.limit:
            return open_read(remote, sequential=True)
        path = self.folder / self.name_for(url, name)
        with _locked(path.with_name(path.name + LOCK)):
            local = self.cached(url, name, sha256)
            if local is None:
                self._fill(remote, path, size, sha256)
                local = path
                self._verified.add((path.name, path.stat().st_ino, size))
            return open(local, "rb")  # open before the lock is released: an eviction cannot take it away

    def _fill(self, remote: Any, path: Path, size: int, sha256: str) -> None:
        partial = path.with_name(f"{path.name}.{os.getpid()}{PARTIAL}")
        self._reserve(partial, size)
        try:
            digest = hashlib.sha256()
            written = 0
            with open_read(remote, sequential=True) as src, open(partial, "r+b") as dst:
                while block := src.read(CHUNK):
                    digest.update(block)
                    dst.write(block)
                    written += len(block)
                    if written > size:
                        break
            if written != size or digest.hexdigest() != sha256:
                raise ShardError(getattr(remote, "name", str(remote)),
                                 f"fetched {written} bytes with sha256 {digest.hexdigest()[:12]}..., the manifest "
                                 f"says {size} bytes with {sha256[:12]}... (changed or corrupted on the way); "
                                 f"not cached")
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    def _reserve(self, partial: Path, size: int) -> None:
        """Make room for `size` bytes (evicting the least recently used shards) and claim it with a file of
        that size, all under the cache-wide lock."""
        with _locked(self.folder / LOCK):
            if self.limit is not None:
                entries = []
                for entry in os.scandir(self.folder):
                    if entry.name == LOCK or entry.name.endswith(LOCK) or not entry.is_file():
                        continue
                    st = entry.stat()
                    entries.append((st.st_mtime, entry.path, st.st_size, entry.name.endswith(PARTIAL)))
                used = sum(e[2] for e in entries)
                for _, victim, victim_size, filling in sorted(entries):
                    if used + size <= self.limit:
                        break
                    if filling:  # another process is fetching it: its room is taken
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(victim)
                        used -= victim_size
                if used + size > self.limit:
                    raise OSError(f"cache_dir {self.folder}: no room for {size} bytes within cache_limit "
                                  f"{self.limit} (other processes are filling it)")
            with open(partial, "wb") as fh:
                fh.truncate(size)
            now = time.time()
            os.utime(partial, (now, now))
