"""Locations: a local `pathlib.Path`, or a `upath.UPath` for an fsspec URL; `open_store` makes either a Store.

Credentials come from the usual environment (AWS_*, GOOGLE_*, HF_TOKEN...)
and from storage options (`--storage-option key=value` on the command line),
bound to the UPath.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

from neuco_io.errors import UsageError
from neuco_io.storage.base import Store
from neuco_io.storage.local import LOCAL_PATH, LocalStore
from neuco_io.storage.options import _with_timeouts
from neuco_io.storage.remote import FsspecStore

AnyPath = Path  # a pathlib.Path or an upath.UPath (which follows the same API)


def is_upath(value: Any) -> bool:
    return type(value).__module__.startswith("upath")


def is_remote(path: Any) -> bool:
    """True for a remote UPath, or a URL string other than file://."""
    if isinstance(path, PurePath):
        return False  # pathlib paths, and UPath's own local ones
    if is_upath(path):
        return True
    if isinstance(path, str):
        return "://" in path and not path.startswith("file://")
    return False


def as_path(value: Any, storage_options: dict[str, Any] | None = None) -> Path:
    """A local Path, or a UPath for a URL (with the storage options bound to it)."""
    if type(value) is LOCAL_PATH:
        return value  # the common case, kept cheap: cubes are opened by the thousand
    if isinstance(value, PurePath):
        return Path(value)
    if is_upath(value):
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


def open_store(location: Any, storage_options: dict[str, Any] | None = None) -> Store:
    """The store of a folder: a path, a URL (with the storage options bound to it) or a Store (kept)."""
    if isinstance(location, Store):
        return location
    path = as_path(location, storage_options)
    return FsspecStore(path) if is_remote(path) else LocalStore(path)
