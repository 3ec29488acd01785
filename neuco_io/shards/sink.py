"""A write-only file wrapper that hashes and counts: a shard's sha256 and size without reading it again."""

from __future__ import annotations

import hashlib

__all__ = ["HashingSink"]


class HashingSink:
    """A binary file that hashes and counts what is written to it: no second pass to hash a shard."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    _write = write

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def sha256(self) -> str:
        return self.sha.hexdigest()

    def close(self) -> None:
        """Closing the sink leaves the file to its owner (pyarrow closes what it is given)."""
        self.closed = True
