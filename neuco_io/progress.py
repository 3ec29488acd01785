"""A small progress bar for the CLI: drawn on a terminal stream only, silent otherwise."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """`bar.start(total)`, then `bar(n)` as units finish, then `bar.close()`.

    Draws nothing unless `stream` is a terminal and `enabled`, so logs and
    pipes stay clean. Redraws at most ten times a second.
    """

    def __init__(self, label: str, stream: TextIO, *, enabled: bool = True, unit: str = "files") -> None:
        self.label = label
        self.stream = stream
        self.unit = unit
        self.enabled = enabled and _isatty(stream)
        self.total: int | None = None
        self.done = 0
        self._started = time.monotonic()
        self._last_draw = 0.0

    def start(self, total: int | None) -> None:
        self.total = total
        self._started = time.monotonic()
        self._draw(force=True)

    def __call__(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1 and self.done != self.total:
            return
        self._last_draw = now
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
            eta = (self.total - self.done) / rate if rate > 0 else 0
            text = f"{self.label} [{bar}] {self.done}/{self.total} {self.unit} {rate:.1f}/s eta {eta:.0f}s"
        else:
            text = f"{self.label} {self.done} {self.unit} {rate:.1f}/s"
        self.stream.write("\r" + text + "\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
