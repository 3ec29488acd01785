"""Names read from files a stranger may have written (manifests, records, archives), confined to their folder.

A manifest names its shards and label files, a record names its source cubes:
joined to a folder, a name like `/etc/passwd`, `../x` or `a\\b` would reach
outside it. Each reader checks a name here first and refuses the file (naming
it) when the name is not a plain file name, or a relative path of plain names.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "name_problem", "relative_path_problem"]

MAX_NAME_BYTES = 255
"""The longest file name common file systems accept (ext4, APFS, NTFS: 255)."""
MAX_PATH_BYTES = 4096


def _text_problem(text: object, limit: int) -> str | None:
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not a string"
    if not text:
        return "is empty"
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        return f"is longer than {limit} bytes"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        return "contains control characters"
    if "\\" in text:
        return "contains '\\' (a Windows path separator)"
    return None


def name_problem(name: object) -> str | None:
    """Why `name` is not a plain file name (no folders, not `.`/`..`), or None when it is one."""
    problem = _text_problem(name, MAX_NAME_BYTES)
    if problem:
        return problem
    if "/" in name:  # type: ignore[operator]
        return "contains '/' (a plain file name is needed)"
    if name in (".", ".."):
        return "is '.' or '..'"
    return None


def relative_path_problem(path: object) -> str | None:
    """Why `path` is not a relative path of plain names (`data/s1/part-000000/x.zarr.zip`), or None."""
    problem = _text_problem(path, MAX_PATH_BYTES)
    if problem:
        return problem
    if path.startswith("/"):  # type: ignore[union-attr]
        return "is absolute"
    for part in path.split("/"):  # type: ignore[union-attr]
        problem = name_problem(part)
        if problem:
            return f"has a part that {problem}"
    return None
