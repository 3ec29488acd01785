"""Atomic file writes: a file appears under its final name complete, or not at all.

Every writer in neuco-io (cubes, shards, manifests, CSVs) goes through
`atomic_path`: it hands out a temporary name in the target's folder, and only
on success fsyncs and renames it over the final name. An exception, SIGINT
or SIGKILL leaves at most a `.*.partial` file that `--resume` ignores and
cleans.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Collection, Iterator
from pathlib import Path

from neuco_io.errors import NO_SPACE, OutOfSpaceError

PARTIAL_SUFFIX = ".partial"

__all__ = ["PARTIAL_SUFFIX", "atomic_path", "fsync_dir", "is_partial", "partial_target", "remove_partials"]


_PARTIAL_NAME = re.compile(r"\.(.+)\.\d+-[0-9a-f]{8}" + re.escape(PARTIAL_SUFFIX))


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def is_partial(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, overwrite: bool = True, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `final` when the block succeeds.

    With `overwrite=False` an existing `final` raises FileExistsError before
    any work is done.
    """
    final = Path(final)
    if not overwrite and final.exists():
        raise FileExistsError(f"{final} exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_name(final)
    try:
        yield temp
        if fsync:
            with open(temp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(temp, final)
        if fsync:
            fsync_dir(final.parent)
    except OSError as exc:
        if exc.errno in NO_SPACE and not isinstance(exc, OutOfSpaceError):
            raise OutOfSpaceError(exc.errno, exc.strerror, str(final)) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def partial_target(path: Path) -> str | None:
    """The final name a temporary file of `atomic_path` was written for, or None if it is not one."""
    match = _PARTIAL_NAME.fullmatch(path.name)
    return match.group(1) if match else None


def remove_partials(folder: str | os.PathLike[str], finals: Collection[str] | None = None) -> int:
    """Delete temporary files a killed writer left in `folder`; how many were removed. With `finals`, only
    the temporary files written for those final names (so a user's own `.x.partial` files are kept)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        target = partial_target(path)
        if target is not None and (finals is None or target in finals):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
