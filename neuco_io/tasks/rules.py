"""The label rules: a task's rows checked with pandera schemas (ids, numbers, the kind's values).

`task labels` checks a user's table with them before writing; `validators.labels` checks the label files
of a dataset (names, encoding and header by hand, then these rows). The schema for a task is built from
(code, check) pairs; pandera collects every failure lazily and each failure case maps back to its code
through the check's position, so one run reports every bad row of every rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from neuco_io.findings import LISTED_PER_CODE, Finding
from neuco_io.tasks.labels import (
    LabelTable,
    lost_leading_zeros,
    parse_label,
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
