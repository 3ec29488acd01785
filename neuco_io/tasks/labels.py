"""Label files (`labels/<task>__<type>.csv`), read the way the evaluator reads them.

The NeuCo-Bench evaluator opens each file as UTF-8 text with `csv.DictReader`,
skips rows whose label is empty, and calls `float()` on the rest; ids stay
strings. This module reads with the same rules so a file that passes here
means the same thing to the evaluator; `validators.labels` checks the rules.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from neuco_io import spec
from neuco_io.errors import NeucoError
from neuco_io.storage import as_path, open_read

__all__ = ["LabelRow", "LabelTable", "TaskName", "format_label", "parse_task_name", "read_label_table",
           "read_task_labels", "write_label_file"]

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TaskName:
    task: str
    type: str
    kind: str | None
    """`regression`, `classification`, or None for an unknown type."""

    @property
    def file_name(self) -> str:
        return f"{self.task}__{self.type}.csv"

    @property
    def accepted_type(self) -> str | None:
        """The type the evaluator accepts that this one means (`reg` -> `regr`), None when unknown."""
        return spec.accepted_task_type(self.type)

    def type_problem(self) -> str | None:
        """Why the evaluator cannot score this file as named (None when it can)."""
        if self.kind is not None:
            return None
        accepted = ", ".join(spec.TASK_TYPES)
        hint = f"; rename it {self.task}__{self.accepted_type}.csv" if self.accepted_type else ""
        return (f"task type {self.type!r}: NeuCo-Bench's evaluator accepts exactly {accepted} and stops the whole "
                f"evaluation on any other{hint}")


def parse_task_name(path: str | os.PathLike[str]) -> TaskName | None:
    """`biomass__regr.csv` -> TaskName; None when the name has no `__`."""
    stem = as_path(path).name
    if not stem.endswith(".csv"):
        return None
    stem = stem[: -len(".csv")]
    if "__" not in stem:
        return None
    task, task_type = stem.split("__", 1)
    if not task:
        return None
    return TaskName(task, task_type, spec.task_kind(task_type))


@dataclass(frozen=True)
class LabelRow:
    line: int
    """Line number in the file where the row starts (the header is line 1)."""
    id: str
    raw: str
    """The label text as written; empty means skipped."""


@dataclass
class LabelTable:
    path: Path
    header: list[str]
    rows: list[LabelRow] = field(default_factory=list)
    bom: bool = False

    @property
    def labelled(self) -> list[LabelRow]:
        return [r for r in self.rows if r.raw.strip() != ""]

    @property
    def skipped(self) -> int:
        return len(self.rows) - len(self.labelled)


class LabelFileError(NeucoError, ValueError):
    def __init__(self, path: object, message: str, *, line: int | None = None) -> None:
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}{f':{line}' if line else ''}: {message}")


def read_label_table(path: str | os.PathLike[str]) -> LabelTable:
    """Rows as the evaluator's DictReader sees them; a BOM is noted and stripped.

    Raises LabelFileError when the file cannot be read or is not UTF-8.
    """
    path = as_path(path)
    try:
        with open_read(path, sequential=True) as fh:  # locally: regular files only (a FIFO would hang)
            data = fh.read()
    except OSError as exc:
        raise LabelFileError(path, f"cannot read: {exc.strerror or exc}") from None
    bom = data.startswith(BOM)
    try:
        text = data[len(BOM):].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelFileError(path, f"not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        table = LabelTable(path, header=header, bom=bom)
        id_col = header.index("id") if "id" in header else None
        label_col = header.index("label") if "label" in header else None
        line = reader.line_num + 1
        for record in reader:
            if record:  # DictReader skips blank lines too
                loc_id = record[id_col] if id_col is not None and id_col < len(record) else ""
                raw = record[label_col] if label_col is not None and label_col < len(record) else ""
                table.rows.append(LabelRow(line, loc_id, raw))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise LabelFileError(path, f"malformed CSV: {exc}", line=reader.line_num) from None
    return table


def lost_leading_zeros(ids: Iterable[str], known: Iterable[str]) -> dict[str, str]:
    """Ids that are known ids without their leading zeros (`7` for `007`) -> the known id.

    A spreadsheet that reads an id column as numbers does that; it deserves one clear hint, not an
    unknown id plus a missing one.
    """
    known = set(known)
    padded = {k.lstrip("0"): k for k in known if k[:1] == "0" and k.isdigit()}
    return {i: padded[i] for i in ids if i.isdigit() and i in padded and i not in known}


def parse_label(raw: str) -> float | None:
    """The evaluator's `float(label)`; None when it would raise."""
    try:
        return float(raw)
    except ValueError:
        return None


def read_task_labels(path: str | os.PathLike[str]) -> dict[str, float]:
    """id -> label for the labelled rows of a valid file (empty labels skipped).

    Raises LabelFileError for anything the evaluator would choke on or score
    wrongly: run `validate` for the full list of problems.
    """
    table = read_label_table(path)
    if table.bom:
        raise LabelFileError(path, "starts with a UTF-8 BOM")
    if "id" not in table.header or "label" not in table.header:
        raise LabelFileError(path, f"header {table.header} lacks `id` or `label`")
    out: dict[str, float] = {}
    for row in table.labelled:
        value = parse_label(row.raw)
        if value is None or not math.isfinite(value):
            raise LabelFileError(path, f"label {row.raw!r} of id {row.id!r} is not a finite number", line=row.line)
        if row.id in out:
            raise LabelFileError(path, f"id {row.id!r} labelled twice", line=row.line)
        out[row.id] = value
    return out


def format_label(value: float) -> str:
    """Canonical text of a label: `1`, `0`, `12.5` (shortest round-trip for non-integers)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def write_label_file(path: str | os.PathLike[str], rows: list[tuple[str, float]], *, overwrite: bool = False) -> Path:
    """Write `id,label` rows in canonical form (UTF-8, no BOM, LF), atomically."""
    from neuco_io.storage.atomic import atomic_path

    path = Path(path)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(spec.LABEL_COLUMNS)
    for loc_id, value in rows:
        writer.writerow([loc_id, format_label(value)])
    with atomic_path(path, overwrite=overwrite) as temp:
        temp.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return path
