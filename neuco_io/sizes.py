"""Byte sizes as people write them: `200GB`, `500MB`, `2GiB`, or a plain number of bytes."""

from __future__ import annotations

__all__ = ["SIZE_UNITS", "parse_size"]

SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(value: int | str) -> int:
    """Bytes of `value`; ValueError (with examples) when it is not a positive size."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        text = str(value).strip().upper().replace(" ", "")
        number = text.rstrip("KMGTIB")
        try:
            size = int(float(number) * SIZE_UNITS[text[len(number):]])
        except (KeyError, ValueError, OverflowError):  # OverflowError: inf, 1e400
            raise ValueError(f"{value!r} is not a size (examples: 1GB, 500MB, 2GiB, 1000000)") from None
    if size <= 0:
        raise ValueError(f"{value!r}: a size must be positive")
    return size
