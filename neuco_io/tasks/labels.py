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

__all__ = ["LabelRow", "LabelTable", "TaskName", "export_labels", "format_label", "parse_task_name", "read_label_table",
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


def _export_type(where: object, task: str, task_type: str, rename_types: bool) -> str:
    """The type a task is exported with: its own when the evaluator accepts it, else (--rename-types) the
    accepted one it means; otherwise LabelFileError, since the evaluator would stop on the file."""
    name = TaskName(task, task_type, spec.task_kind(task_type))
    problem = name.type_problem()
    if problem is None:
        return task_type
    if rename_types and name.accepted_type is not None:
        return name.accepted_type
    fix = " (or pass --rename-types)" if name.accepted_type else ""
    raise LabelFileError(where, f"{problem}{fix}; nothing was written")


def _unreadable_for_evaluator(out_dir: Path, targets: dict[str, Path]) -> list[tuple[Path, str]]:
    """CSV files already in OUT_DIR that would make the evaluator (which reads every *.csv there) fail or mix
    a task: a name without a known type, or another file of a task being written."""
    if not out_dir.is_dir():
        return []
    written = {p.name for p in targets.values()}
    bad = []
    for path in sorted(out_dir.glob("*.csv")):
        if path.name in written:
            continue
        name = parse_task_name(path)
        if name is None:
            bad.append((path, "not named <task>__<type>.csv: the evaluator stops on it"))
        elif name.kind is None:
            bad.append((path, name.type_problem() or ""))
        elif name.task in targets:
            bad.append((path, f"a second label file of task {name.task!r}: the evaluator would merge both"))
    return bad


def export_labels(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, tasks: list[str] | None = None,
                  overwrite: bool = False, rename_types: bool = False) -> list[Path]:
    """The label folder the NeuCo-Bench evaluation reads, from a dataset root or a `convert` output.

    Refuses (LabelFileError, nothing written) a task type the evaluator does not accept, unless
    `rename_types` writes the accepted spelling it means (`reg` -> `regr`), and an OUT_DIR that already holds
    CSV files the evaluator would stop on or mix into a task.
    """
    from neuco_io.errors import NeucoError, UsageError
    from neuco_io.shards.manifest import MANIFEST, Manifest, is_convert_output
    from neuco_io.shards.parquet import read_labels_table

    source, out_dir = Path(source), Path(out_dir)
    tables: dict[str, tuple[str, list[tuple[str, float]]]] = {}
    if is_convert_output(source):
        manifest = Manifest.load(source)  # checked: task names and types make plain file names
        labels_path = manifest.labels_path
        try:
            columns = read_labels_table(labels_path) if labels_path else {"id": []}
            for task, info in manifest.tasks.items():
                if tasks is not None and task not in tasks:
                    continue
                task_type = _export_type(manifest.path(MANIFEST), task, info["type"], rename_types)
                rows = [(str(i), float(v)) for i, v in zip(columns["id"], columns.get(task, [])) if v is not None]
                tables[task] = (task_type, rows)
        except LabelFileError:
            raise
        except (ValueError, TypeError) as exc:  # unreadable, or labels that are not numbers
            raise LabelFileError(labels_path, str(exc) if str(exc).startswith("unreadable") else
                                 f"unreadable: {type(exc).__name__}: {str(exc)[:300]}") from None
    else:
        labels_dir = source / "labels"
        is_dataset = any((source / d).is_dir() for d in (*spec.DOWNSTREAM_DATA_DIRS, *spec.DOWNSTREAM_MODALITIES))
        if not labels_dir.is_dir() and not is_dataset:
            raise UsageError(f"{source}: neither a dataset root with labels/ nor a convert output with manifest.json")
        for path in sorted(labels_dir.glob("*.csv")):
            name = parse_task_name(path)
            if name is None:
                if tasks is not None:
                    continue
                raise LabelFileError(path, "not named <task>__<type>.csv (pass --tasks to leave it out)")
            if tasks is not None and name.task not in tasks:
                continue
            if name.task in tables:
                raise LabelFileError(path, f"task {name.task!r} appears twice")
            task_type = _export_type(path, name.task, name.type, rename_types)
            tables[name.task] = (task_type, list(read_task_labels(path).items()))
    if not tables and tasks is None:
        raise NeucoError(f"{source} has no tasks: no label files to export (a dataset keeps them in labels/)")
    if tasks is not None:
        unknown = sorted(set(tasks) - set(tables))
        if unknown:
            raise UsageError(f"--tasks: no labels for {', '.join(unknown)} in {source}")
    targets = {task: out_dir / TaskName(task, task_type, None).file_name for task, (task_type, _) in tables.items()}
    bad = _unreadable_for_evaluator(out_dir, targets)
    if bad:
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise LabelFileError(path, f"{why}; the evaluator reads every *.csv in {out_dir}: remove it, or export "
                             f"to an empty folder{more}; nothing was written")
    if not overwrite:
        clash = [target for target in targets.values() if target.exists()]
        if clash:
            raise UsageError(f"{clash[0]} exists (use --overwrite)")
    return [write_label_file(targets[task], rows, overwrite=True) for task, (_, rows) in sorted(tables.items())]
