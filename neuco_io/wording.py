"""Wording shared by every message, so counts read the same everywhere (and nothing imports the renderers)."""

from __future__ import annotations

__all__ = ["first_few", "plural"]


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 error`, `2 errors` (`words` for irregular plurals: `plural(2, "mismatch", "mismatches")`)."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def first_few(items: list, n: int = 5) -> str:
    """`'a', 'b', 'c' and 7 more`: the first items of a list for a message."""
    return ", ".join(repr(i) for i in items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
