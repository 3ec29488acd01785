"""A label file from a user's table (`task labels`): ids mapped, every label rule checked, written canonically."""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from neuco_io import evaluator, spec
from neuco_io.errors import UsageError
from neuco_io.findings import LISTED_PER_CODE, Finding, Report, Severity
from neuco_io.layout import discover
from neuco_io.tasks.importer import mapping_path, read_mapping
from neuco_io.tasks.labels import (
    LabelRow,
    LabelTable,
    TaskName,
    parse_label,
    parse_task_name,
    write_label_file,
)

__all__ = ["LabelsResult", "label_statistics", "make_task_labels"]


@dataclass
class LabelsResult:
    path: Path | None
    """The label file written, or None when there were errors."""
    report: Report

    @property
    def findings(self) -> list[Finding]:
        return self.report.findings

    @property
    def summary(self) -> dict[str, Any]:
        return self.report.summary

    @property
    def ok(self) -> bool:
        return self.report.ok


def _user_rows(path: Path, id_col: str, label_col: str) -> list[tuple[int, str, str]]:
    """(line, id, label text) rows of a user's CSV (BOM and CRLF tolerated: this is input, not output)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read as UTF-8 text: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    for col in (id_col, label_col):
        if col not in header:
            raise UsageError(f"{path}: no column {col!r} (columns: {', '.join(header)}); use --id-col/--label-col")
    i, j = header.index(id_col), header.index(label_col)
    rows = []
    line = reader.line_num + 1
    for record in reader:
        if record:
            rows.append((line, record[i].strip() if i < len(record) else "",
                         record[j].strip() if j < len(record) else ""))
        line = reader.line_num + 1
    return rows


def make_task_labels(root: str | os.PathLike[str], name: str, task_type: str, source: str | os.PathLike[str], *,
                     id_col: str = "id", label_col: str = "label", mapping: str | os.PathLike[str] | None = None,
                     overwrite: bool = False) -> LabelsResult:
    """Write ROOT/labels/NAME__<type>.csv in canonical form from a user's table, if every rule holds."""
    from neuco_io.tasks.rules import check_label_rows  # pandera: loaded only when labels are checked

    root, source = Path(root), Path(source)
    kind = spec.task_kind(task_type)
    if kind is None:
        raise UsageError(f"--type {task_type!r}: the evaluator accepts exactly {', '.join(spec.TASK_TYPES)}")
    if not name or "__" in name or not spec.ID_RE.match(name):
        raise UsageError(f"task name {name!r}: letters, digits, _-. and no double underscore")
    ds = discover(root, "downstream")
    data_ids = {c.stem for c in ds.cubes}
    mapping_file = Path(mapping) if mapping else mapping_path(root)
    id_map = read_mapping(mapping_file)
    rows = _user_rows(source, id_col, label_col)
    where = str(source)
    findings: list[Finding] = []
    first_line: dict[str, tuple[int, str]] = {}
    canonical: list[LabelRow] = []
    yours: dict[str, str] = {}  # location id -> the id as the user wrote it: findings show theirs
    skipped = duplicates = 0
    for line, raw_id, raw_label in rows:
        loc_id = id_map.get(raw_id, raw_id)
        if raw_label == "":
            skipped += 1
            continue
        if loc_id in first_line:
            prev_line, prev_label = first_line[loc_id]
            if _same_label(prev_label, raw_label):
                duplicates += 1
                continue
            findings.append(Finding("labels.duplicate-id", where, f"conflicting labels: {prev_label!r} on line "
                                    f"{prev_line}, {raw_label!r} here", id=raw_id, row=line, got=raw_label))
            continue
        first_line[loc_id] = (line, raw_label)
        yours[loc_id] = raw_id
        canonical.append(LabelRow(line, loc_id, raw_label))
    table = LabelTable(source, header=list(spec.LABEL_COLUMNS), rows=canonical)
    findings.extend(replace(f, id=yours.get(f.id, f.id), got=yours.get(f.got, f.got) if f.column == "id" else f.got)
                    for f in check_label_rows(where, table, kind, frozenset(data_ids)))  # ids as you wrote them
    # the label file is right; the ids themselves may not survive a submission: say so, write the file anyway
    labelled = {r.id for r in canonical}
    for loc_id, read in sorted(evaluator.ids_at_risk(data_ids).items()):
        if loc_id in labelled:
            findings.append(Finding("ids.evaluator-changes", where, evaluator.risk_message(loc_id, read),
                                    id=yours.get(loc_id, loc_id), got=read, level=Severity.WARNING))
    report = Report(where, "downstream", checks=("labels", "ids"), listed_per_code=LISTED_PER_CODE)
    report.extend(findings)
    result = LabelsResult(None, report)
    values = [v for r in canonical if (v := parse_label(r.raw)) is not None]
    report.summary = {"rows": len(rows), "labelled": len(canonical), "skipped_empty": skipped,
                      "identical_duplicates": duplicates, "mapped_ids": sum(1 for _, i, _ in rows if i in id_map),
                      "statistics": label_statistics(values, kind)}
    if not result.ok:
        return result
    target = root / "labels" / TaskName(name, task_type, kind).file_name
    others = [p for p in ds.label_files if (t := parse_task_name(p)) and t.task == name and p != target]
    if others:
        raise UsageError(f"task {name!r} already has a label file: {others[0]}")
    if target.exists() and not overwrite:
        raise UsageError(f"{target} exists (use --overwrite)")
    result.path = write_label_file(target, [(r.id, float(r.raw)) for r in canonical], overwrite=True)
    return result


def _same_label(a: str, b: str) -> bool:
    x, y = parse_label(a), parse_label(b)
    return a == b or (x is not None and y is not None and x == y)


def label_statistics(values: list[float], kind: str) -> dict[str, Any]:
    """Class counts or min/max/mean/std of the finite labels: what `task labels` reports and a data card lists."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {}
    if kind == "classification":
        return {"class_0": sum(1 for v in finite if v == 0), "class_1": sum(1 for v in finite if v == 1)}
    return {"min": min(finite), "max": max(finite), "mean": statistics.fmean(finite),
            "std": statistics.pstdev(finite) if len(finite) > 1 else 0.0}
