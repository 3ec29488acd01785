"""Human-readable renderings of results. Pure functions: they return text, the CLI prints it."""

from __future__ import annotations

import os
import unicodedata
from typing import TYPE_CHECKING

from neuco_io import spec
from neuco_io.findings import CHECKS, Finding, Report, and_more
from neuco_io.wording import plural

if TYPE_CHECKING:
    from neuco_io.converters.plan import Skipped
    from neuco_io.tasks.importer import Refusal
    from neuco_io.tasks.labelfix import LabelFix

__all__ = ["finding_line", "findings_lines", "human_bytes", "label_fix_line", "more_line", "plural", "printable",
           "refusal_line", "skip_line", "validation_text"]

_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """Text safe for a terminal: control characters (ESC sequences, CR, BEL, NUL), bidi overrides and line
    separators from ids, file names or labels shown as `\\x1b`/`\\u202e` escapes; newlines between lines kept.

    Every text output of the CLI goes through this (JSON output is escaped by `json.dumps` already).
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape(c) if c != "\n" and (c in _BIDI or unicodedata.category(c) in ("Cc", "Zl", "Zp"))
                   else c for c in text)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _relative(path: str, root: str) -> str:
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def finding_line(finding: Finding, root: str) -> str:
    where = _relative(finding.path, root)
    if finding.row is not None:
        where += f":{finding.row}"
    if finding.column is not None and finding.code.startswith("submission."):
        where += f" col {finding.column}"
    if finding.id is not None and f"{finding.id}{spec.CUBE_SUFFIX}" != os.path.basename(finding.path):
        where += f" [{finding.id}]"  # (a cube's file name already says it)
    if finding.member is not None:
        where += f" {finding.member}"
    return f"  {finding.severity.value:<7} {finding.code:<26} {where}: {finding.message}"


def more_line(n: int, *, option: bool = True, per_code: int | None = None) -> str:
    """The one "... and N more" line under a list of findings cut short, saying how to see the rest."""
    json = f"--format json for the first {per_code:,} of each code" if per_code else "--format json for all"
    return f"  ...{and_more(n)} ({'--max-findings, or ' if option else ''}{json})"


def findings_lines(findings: list[Finding], root: str, *, max_findings: int, report: Report | None = None,
                   check: str | None = None, option: bool = True) -> list[str]:
    """The first `max_findings` findings, one line each, then how many more there are: those listed beyond
    `max_findings`, and those `report` only counted (of one `check`, or all)."""
    lines = [finding_line(f, root) for f in findings[:max_findings]]
    unlisted = report.hidden(check) if report is not None else 0
    hidden = max(len(findings) - max_findings, 0) + unlisted
    if hidden:
        lines.append(more_line(hidden, option=option, per_code=report.listed_per_code if unlisted else None))
    return lines


def validation_text(report: Report, *, max_findings: int = 10) -> str:
    s = report.summary
    what = [plural(s.get("cubes", 0), "cube")]
    if "locations" in s:
        what.append(plural(s["locations"], "location"))
    if "samples" in s:
        what.append(plural(s["samples"], "sample"))
    if s.get("labels"):
        what.append(plural(len(s["labels"]), "label file"))
    mode = "deep" if s.get("deep") else "metadata"
    lines = [f"{report.root}: {report.layout} layout, {', '.join(what)}, {human_bytes(s.get('bytes', 0))} "
             f"({mode} check)"]
    by_check: dict[str, list[Finding]] = {c: [] for c in CHECKS}
    for finding in report.findings:
        by_check[finding.check].append(finding)
    for check in CHECKS:
        found = by_check[check]
        if check == "splits" and report.layout != "v1.1":
            continue
        if check == "labels" and report.layout != "downstream":
            continue
        counts = report.counts()[check]
        errors, warnings = counts["errors"], counts["warnings"] + counts["notes"]
        status = "ok" if not (errors or warnings) else ", ".join(
            p for p in (plural(errors, "error") if errors else "", plural(warnings, "warning") if warnings else "")
            if p)
        lines.append(f"{check:<8} {status}")
        ordered = sorted(found, key=lambda f: (f.severity.value != "error", f.sort_key()))
        lines.extend(findings_lines(ordered, report.root, max_findings=max_findings, report=report, check=check))
        if check == "labels":
            lines.extend(f"  task {t.get('task')} ({t.get('kind') or 'unknown type'}): {t['labelled']} labelled, "
                         f"{t['skipped']} empty (skipped)" for t in s.get("labels") or [] if "rows" in t)
    totals = report.totals()
    lines.append(f"{verdict(report)}: {plural(totals['error'], 'error')}, {plural(totals['warning'], 'warning')}")
    return "\n".join(lines)


def skip_line(skipped: Skipped, verb: str) -> str:
    """`  skipped data/s1/part-000000/x.zarr.zip [x]: zero-byte file` (convert; `would skip` for --dry-run)."""
    return f"  {verb} {skipped.path}{f' [{skipped.id}]' if skipped.id else ''}: {skipped.reason}"


def refusal_line(refusal: Refusal, verb: str) -> str:
    """`  refused plot_7 (plots/plot_7/s1_fall.tif): why` (task import; `flagged` for an id at risk)."""
    return f"  {verb} {refusal.id or '?'}{f' ({refusal.path})' if refusal.path else ''}: {refusal.reason}"


def verdict(report: Report) -> str:
    return "OK" if report.ok else "FAILED"


def label_fix_line(fix: LabelFix, dry_run: bool) -> str:
    """`fixed labels/x.csv: a UTF-8 BOM, 4 CRLF/CR line endings` (or why the file could not be fixed)."""
    if fix.error:
        return f"  {'error':<9} {fix.path}: {fix.error}"
    if not fix.changed:
        return f"  {'ok':<9} {fix.path}: nothing to fix"
    changes = ["a UTF-8 BOM"] if fix.bom else []
    if fix.line_endings:
        changes.append(f"{plural(fix.line_endings, 'CRLF/CR line ending')}")
    if fix.suffixed_ids:
        changes.append(f"{plural(len(fix.suffixed_ids), 'id')} with a .zarr.zip/.zarr suffix "
                       f"(e.g. {fix.suffixed_ids[0]})")
    return f"  {'would fix' if dry_run else 'fixed':<9} {fix.path}: {', '.join(changes)}"
