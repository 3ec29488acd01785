"""Label checks: file names, encoding and header by hand, the rows with pandera schemas.

The schema for a task is built from (code, check) pairs; pandera collects
every failure lazily and each failure case maps back to its code through the
check's position, so one run reports every bad row of every rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from neuco_io import spec
from neuco_io.findings import LISTED_PER_CODE, MAX_LISTED, Finding, listed
from neuco_io.tasks.labels import (
    LabelFileError,
    LabelTable,
    lost_leading_zeros,
    parse_label,
    parse_task_name,
    read_label_table,
)


@dataclass(frozen=True)
class _Rule:
    code: str
    check: pa.Check
    message: str


def _id_rules(data_ids: frozenset[str] | None) -> list[_Rule]:
    rules = [
        _Rule("labels.id-format", pa.Check(lambda s: s.str.len() > 0), "empty id"),
        _Rule("labels.id-format", pa.Check(lambda s: s.str.strip() == s), "id has surrounding spaces"),
        _Rule("labels.id-format", pa.Check(lambda s: ~s.str.endswith((".zarr.zip", ".zarr"))),
              "id ends with .zarr.zip / .zarr (the evaluator matches label ids as written; `neuco-io labels fix` "
              "drops the suffix)"),
        _Rule("labels.id-format", pa.Check(lambda s: s.str.endswith((".zarr.zip", ".zarr"))
                                           | ~s.str.contains(".zarr", regex=False)),
              "id holds .zarr: the evaluator removes it from submission ids wherever it occurs, so no embedding "
              "can match this label"),
    ]
    if data_ids is not None:
        rules.append(_Rule("labels.unknown-id", pa.Check(lambda s: s.isin(data_ids)), "id has no cube in the data"))
    return rules


def _label_rules(kind: str | None) -> list[_Rule]:
    finite = pa.Check(lambda s: np.isfinite(s), ignore_na=False)
    rules = [_Rule("labels.not-finite", finite, "label is NaN or infinite")]
    if kind == "classification":
        rules.append(_Rule("labels.class-value", pa.Check(lambda s: s.isin([0.0, 1.0]) | ~np.isfinite(s)),
                           "classification label is not 0 or 1"))
    return rules


def _frame_rules(kind: str | None) -> list[_Rule]:
    # Rows with invalid values have findings of their own; these look at the valid ones.
    if kind == "classification":
        return [_Rule("labels.single-class",
                      pa.Check(lambda df: df.loc[df["label"].isin([0.0, 1.0]), "label"].nunique() != 1),
                      "only one class present; the evaluator needs both 0 and 1")]
    if kind == "regression":
        return [_Rule("labels.constant",
                      pa.Check(lambda df: df.loc[np.isfinite(df["label"]), "label"].nunique() != 1),
                      "every label has the same value; the evaluator min-max normalizes regression labels")]
    return []


def _schema(kind: str | None, data_ids: frozenset[str] | None):
    id_rules, label_rules, frame_rules = _id_rules(data_ids), _label_rules(kind), _frame_rules(kind)
    schema = pa.DataFrameSchema(
        {
            "id": pa.Column(str, [r.check for r in id_rules], unique=True, report_duplicates="all"),
            "label": pa.Column(float, [r.check for r in label_rules], nullable=True),
        },
        checks=[r.check for r in frame_rules],
    )
    lookup = {("id", i): r for i, r in enumerate(id_rules)}
    lookup.update({("label", i): r for i, r in enumerate(label_rules)})
    lookup.update({(None, i): r for i, r in enumerate(frame_rules)})
    return schema, lookup


def _row_findings(path: str, frame: pd.DataFrame, kind: str | None,
                  data_ids: frozenset[str] | None) -> Iterator[Finding]:
    schema, lookup = _schema(kind, data_ids)
    try:
        schema.validate(frame, lazy=True)
        return
    except SchemaErrors as exc:
        cases = exc.failure_cases
    counts: dict[str, int] = {}
    lost: dict[str, str] | None = None
    for case in cases.itertuples(index=False):
        column = case.column if isinstance(case.column, str) else None
        line = int(case.index) if case.index is not None and not pd.isna(case.index) else None
        if case.check == "field_uniqueness":
            code, message = "labels.duplicate-id", "id labelled more than once"
        else:
            number = int(case.check_number) if case.check_number is not None and not pd.isna(case.check_number) \
                else -1
            rule = lookup.get((column, number))
            if rule is None:
                raise RuntimeError(f"unmapped pandera failure: {case}")
            code, message = rule.code, rule.message
        counts[code] = counts.get(code, 0) + 1
        if counts[code] > LISTED_PER_CODE:  # counted, not listed (`Report.add`): spare the lookups
            yield Finding(code, path, message)
            continue
        row_id = frame.at[line, "id"] if line is not None else None
        if code == "labels.unknown-id" and data_ids is not None and row_id is not None:
            if lost is None:
                lost = lost_leading_zeros(frame["id"], data_ids)
            if row_id in lost:
                message = (f"id has no cube in the data, but {lost[row_id]} has: a spreadsheet dropped its leading "
                           "zeros (keep the id column as text)")
        yield Finding(code, path, message, id=row_id, row=line, column=column,
                      got=None if line is None else _plain(case.failure_case))


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value.item() if hasattr(value, "item") else value


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


def check_label_rows(where: str, table: LabelTable, kind: str | None,
                data_ids: frozenset[str] | None) -> Iterator[Finding]:
    labelled = table.labelled
    if not labelled:
        yield Finding("labels.no-labels", where, f"no labelled row among {len(table.rows)}")
        return
    numeric = []
    for row in labelled:
        value = parse_label(row.raw)
        if value is None:
            yield Finding("labels.not-numeric", where, f"label {row.raw!r} is not a number", id=row.id, row=row.line,
                          column="label", got=row.raw)
        else:
            numeric.append((row.line, row.id, value))
    if not numeric:
        return
    frame = pd.DataFrame({"id": np.array([r[1] for r in numeric], dtype=object),
                          "label": np.array([r[2] for r in numeric], dtype=np.float64)},
                         index=pd.Index([r[0] for r in numeric], name="line"))
    yield from _row_findings(where, frame, kind, data_ids)


def check_labels(label_files: list[Path], data_ids: frozenset[str] | None) -> tuple[list[Finding], list[dict]]:
    findings, summaries = [], []
    for path in sorted(label_files):
        file_findings, summary = check_label_file(path, data_ids)
        findings.extend(file_findings)
        summaries.append(summary)
    return findings, summaries
