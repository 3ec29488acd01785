"""Label file checks for `validate`: the file name, encoding and header by hand, then the rows
(`tasks.rules`, pandera schemas)."""

from __future__ import annotations

from pathlib import Path

from neuco_io import spec
from neuco_io.findings import MAX_LISTED, Finding, listed
from neuco_io.tasks.labels import LabelFileError, parse_task_name, read_label_table
from neuco_io.tasks.rules import check_label_rows


def check_label_file(path: Path, data_ids: frozenset[str] | None) -> tuple[list[Finding], dict]:
    """Findings for one label file and its summary entry (rows, labelled, skipped)."""
    findings: list[Finding] = []
    name = parse_task_name(path)
    where = str(path)
    summary: dict = {"file": path.name}
    if name is None:
        findings.append(Finding("labels.file-name", where, "not named <task>__<type>.csv; types: "
                                f"{', '.join(spec.TASK_TYPES)}"))
    elif name.kind is None:
        findings.append(Finding("labels.task-type", where, name.type_problem(), got=name.type,
                                expected=name.accepted_type or list(spec.TASK_TYPES)))
    # the rows are checked with the kind the name means, even when the evaluator refuses its spelling
    kind = spec.task_kind(name.accepted_type or "") if name else None
    summary.update(task=name.task if name else None, type=name.type if name else None, kind=kind)
    try:
        table = read_label_table(path)
    except LabelFileError as exc:
        findings.append(Finding("labels.unreadable", where, exc.message, row=exc.line))
        return findings, summary
    if table.bom:
        findings.append(Finding("labels.bom", where, "file starts with a UTF-8 BOM; the evaluator's csv.DictReader "
                                "then sees a column named '\\ufeffid' and no `id`; `neuco-io labels fix` removes it"))
    missing = [c for c in ("id", "label") if c not in table.header]
    if missing:
        findings.append(Finding("labels.columns", where, f"header [{listed(table.header)}] lacks "
                                f"{', '.join(missing)}", expected=["id", "label"], got=table.header[:MAX_LISTED]))
        return findings, summary
    extra = [c for c in table.header if c not in ("id", "label")]
    if extra:
        findings.append(Finding("labels.extra-column", where, f"{len(extra):,} extra column(s): {listed(extra)}",
                                got=extra[:MAX_LISTED]))
    summary.update(rows=len(table.rows), labelled=len(table.labelled), skipped=table.skipped)
    findings.extend(check_label_rows(where, table, kind, data_ids))
    return findings, summary


def check_labels(label_files: list[Path], data_ids: frozenset[str] | None) -> tuple[list[Finding], list[dict]]:
    findings, summaries = [], []
    for path in sorted(label_files):
        file_findings, summary = check_label_file(path, data_ids)
        findings.extend(file_findings)
        summaries.append(summary)
    return findings, summaries
