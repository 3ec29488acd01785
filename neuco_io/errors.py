"""Exceptions raised when work cannot go on.

A bad file inside a dataset is a finding, not an exception; these are for the
callers of the library (open one cube, read one shard) and for the CLI, which
maps them to messages and exit codes. Each also inherits the builtin it
resembles so generic handlers keep working.
"""

from __future__ import annotations

import errno

__all__ = [
    "CubeError",
    "CubeFormatError",
    "CubeReadError",
    "ManifestError",
    "NeucoError",
    "OutOfSpaceError",
    "ShardError",
    "UsageError",
]


class NeucoError(Exception):
    """Base class of every neuco-io error."""


def _rebuild(cls: type, args: tuple, kwargs: dict) -> NeucoError:
    return cls(*args, **kwargs)


class UsageError(NeucoError, ValueError):
    """The caller asked for something impossible (bad option, unreadable root)."""


class CubeError(NeucoError):
    """A `.zarr.zip` cube cannot be used. `reason` is a short machine tag."""

    reason = "cube"

    def __init__(self, path: object, message: str, *, reason: str | None = None) -> None:
        self.path = str(path)
        self.message = message
        if reason:
            self.reason = reason
        super().__init__(f"{self.path}: {message}")

    def __reduce__(self):  # keyword-only arguments: a worker's error reaches the caller whole
        return _rebuild, (type(self), (self.path, self.message), {"reason": self.reason})


class CubeReadError(CubeError, OSError):
    """The file cannot be read at all: missing, a directory, no permission, not a zip."""

    reason = "unreadable"


class CubeFormatError(CubeError, ValueError):
    """The file reads but is not a Zarr format-2 cube of the expected shape."""

    reason = "format"


class ShardError(NeucoError, ValueError):
    """A converted shard is corrupt, truncated or does not match its record."""

    def __init__(self, shard: object, message: str, *, key: str | None = None) -> None:
        self.shard = str(shard)
        self.key = key
        self.message = message
        where = f"{self.shard} [{key}]" if key else self.shard
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # keyword-only arguments: a worker's error reaches the caller whole
        return _rebuild, (type(self), (self.shard, self.message), {"key": self.key})


class ManifestError(ShardError):
    """A `manifest.json` is corrupt, too large, or names something outside its folder."""


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Disk full, quota exceeded, file size limit: the output does not fit, which is no bug."""


class OutOfSpaceError(NeucoError, OSError):
    """Writing an output ran out of space. Raised as `OutOfSpaceError(errno, strerror, path)`; the
    temporary file was removed, so nothing is left under the final name."""

    def __str__(self) -> str:
        code = errno.errorcode.get(self.errno or 0, "?")
        return f"{self.filename}: {self.strerror} ({code}); nothing was written under that name"
