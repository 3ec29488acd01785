"""Locations: a local `pathlib.Path`, or a `upath.UPath` for an fsspec URL."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

from neuco_io.errors import UsageError
from neuco_io.storage.options import _with_timeouts

AnyPath = Path  # a pathlib.Path or an upath.UPath (which follows the same API)
READ_ONLY = ("http", "https")


def _is_upath(value: Any) -> bool:
    return type(value).__module__.startswith("upath")


def is_remote(path: Any) -> bool:
    """True for a remote UPath, or a URL string other than file://."""
    if isinstance(path, PurePath):
        return False  # pathlib paths, and UPath's own local ones
    if _is_upath(path):
        return True
    if isinstance(path, str):
        return "://" in path and not path.startswith("file://")
    return False


def as_path(value: Any, storage_options: dict[str, Any] | None = None) -> Path:
    """A local Path, or a UPath for a URL (with the storage options bound to it)."""
    if isinstance(value, PurePath):
        return Path(value)
    if _is_upath(value):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{value!r} is not a path or URL")
    text = os.fspath(value)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if "://" in text:
        try:
            from upath import UPath
        except ImportError:
            raise UsageError(f"{text}: URLs need universal-pathlib and fsspec: pip install 'neuco-io[remote]'") \
                from None
        try:
            return UPath(text, **_with_timeouts(text, storage_options or {}))
        except (ValueError, ImportError) as exc:
            raise UsageError(f"{text}: {exc}") from None
    return Path(text)


def in_process_only(path: Any) -> bool:
    """memory:// files exist only in this process: worker processes would not see them."""
    return is_remote(path) and getattr(path, "protocol", "") == "memory"


def read_only(path: Any) -> bool:
    return is_remote(path) and getattr(path, "protocol", "") in READ_ONLY
