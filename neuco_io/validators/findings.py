"""Findings and reports: what checks return, as data. Nothing here prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .codes import CHECKS, CODES, Severity

__all__ = ["MAX_LISTED", "Finding", "Report", "listed"]

MAX_LISTED = 5
"""How many items (chunk keys, timestamps, columns) one message lists."""


def listed(items: list[str], limit: int = MAX_LISTED, width: int = 60) -> str:
    """The first few items, each cut to `width` characters, and how many more: messages stay short."""
    shown = [item if len(item) <= width else item[:width] + "..." for item in map(str, items[:limit])]
    more = f" and {len(items) - limit:,} more" if len(items) > limit else ""
    return ", ".join(shown) + more


@dataclass(frozen=True)
class Finding:
    """One problem found in one place. `code` is stable; messages may change."""

    code: str
    path: str
    message: str
    id: str | None = None
    row: int | None = None
    """Line number in a CSV file (the header is line 1)."""
    column: str | None = None
    expected: Any = None
    got: Any = None
    level: Severity | None = None
    """Overrides the code's default severity (a stricter profile makes some warnings errors)."""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered finding code {self.code!r}")

    @property
    def severity(self) -> Severity:
        return self.level or CODES[self.code].severity

    @property
    def check(self) -> str:
        return CODES[self.code].check

    def sort_key(self) -> tuple:
        rank = CHECKS.index(self.check) if self.check in CHECKS else len(CHECKS)
        return (rank, self.path, self.id or "", self.row or 0, self.code, self.message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "severity": self.severity.value, "check": self.check,
                               "path": self.path, "message": self.message}
        for key in ("id", "row", "column", "expected", "got"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Report:
    """The outcome of a check (`validate`, `submission check`): findings plus a summary."""

    root: str
    layout: str
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checks: tuple[str, ...] = CHECKS
    strict: bool = False
    """Warnings fail too (`--strict`): `ok`, the verdict and the exit code then agree."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.NOTE]

    @property
    def ok(self) -> bool:
        return not self.errors and not (self.strict and self.warnings)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per check: how many errors and warnings."""
        tally = Counter((f.check, f.severity.value) for f in self.findings)
        return {check: {"errors": tally[(check, "error")], "warnings": tally[(check, "warning")],
                        "notes": tally[(check, "note")]}
                for check in self.checks}

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "notes": [f.to_dict() for f in self.notes],
            "summary": {"root": self.root, "layout": self.layout, **self.summary, "checks": self.counts()},
        }
