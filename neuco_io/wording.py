"""Wording shared by every message, so counts read the same everywhere (and nothing imports the renderers)."""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 error`, `2 errors` (`words` for irregular plurals: `plural(2, "mismatch", "mismatches")`)."""
    return f"{n} {word if n == 1 else words or word + 's'}"
