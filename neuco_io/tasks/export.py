"""`labels export`: the label folder NeuCo-Bench's evaluator reads, from a dataset root or a `convert` output."""

from __future__ import annotations

import os
from pathlib import Path

from neuco_io import spec
from neuco_io.errors import NeucoError, UsageError
from neuco_io.findings import and_more
from neuco_io.shards.labels import read_labels_parquet
from neuco_io.shards.manifest import MANIFEST, Manifest, is_convert_output
from neuco_io.tasks.labels import LabelFileError, TaskName, parse_task_name, write_label_file
from neuco_io.tasks.tasklist import check_tasks, dataset_tasks

__all__ = ["export_labels"]


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


Tables = dict[str, tuple[str, list[tuple[str, float]]]]
"""task -> (the type it is exported with, its (id, label) rows)."""


def _tables_from_output(source: Path, tasks: list[str] | None, rename_types: bool) -> Tables:
    """The tasks of a `convert` output: the manifest names them, `labels.parquet` holds their labels."""
    manifest = Manifest.load(source)  # checked: task names and types make plain file names
    tasks_in = manifest.tasks
    if tasks is not None:
        check_tasks(tasks, list(tasks_in), source / MANIFEST, "--tasks")
    labels_path = manifest.labels_path
    tables: Tables = {}
    try:
        columns = read_labels_parquet(labels_path) if labels_path else {}
        for task, info in tasks_in.items():
            if tasks is not None and task not in tasks:
                continue
            task_type = _export_type(manifest.path(MANIFEST), task, info["type"], rename_types)
            rows = [(str(i), float(v)) for i, v in zip(columns["id"], columns.get(task, [])) if v is not None]
            tables[task] = (task_type, rows)
    except LabelFileError:
        raise
    except Exception as exc:  # pyarrow's errors, a missing id column, labels that are not numbers
        raise LabelFileError(labels_path, f"unreadable: {type(exc).__name__}: {str(exc)[:300]}") from None
    return tables


def _tables_from_dataset(source: Path, tasks: list[str] | None, rename_types: bool) -> Tables:
    """The tasks of a dataset root: its `labels/` folder, strictly read."""
    labels_dir = source / "labels"
    is_dataset = any((source / d).is_dir() for d in (*spec.DOWNSTREAM_DATA_DIRS, *spec.DOWNSTREAM_MODALITIES))
    if not labels_dir.is_dir() and not is_dataset:
        raise UsageError(f"{source}: neither a dataset root with labels/ nor a convert output with manifest.json")
    tables: Tables = {}
    for task, task_file in dataset_tasks(labels_dir, tasks, option="--tasks").items():
        task_type = _export_type(task_file.path, task, task_file.name.type, rename_types)
        tables[task] = (task_type, list(task_file.labels().items()))
    return tables


def export_labels(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, tasks: list[str] | None = None,
                  overwrite: bool = False, rename_types: bool = False) -> list[Path]:
    """The label folder the NeuCo-Bench evaluation reads, from a dataset root or a `convert` output.

    Refuses (LabelFileError, nothing written) a task type the evaluator does not accept, unless
    `rename_types` writes the accepted spelling it means (`reg` -> `regr`), and an OUT_DIR that already holds
    CSV files the evaluator would stop on or mix into a task.
    """
    source, out_dir = Path(source), Path(out_dir)
    if is_convert_output(source):
        tables = _tables_from_output(source, tasks, rename_types)
    else:
        tables = _tables_from_dataset(source, tasks, rename_types)
    if not tables and tasks is None:
        raise NeucoError(f"{source} has no tasks: no label files to export (a dataset keeps them in labels/)")
    targets = {task: out_dir / TaskName(task, task_type, None).file_name for task, (task_type, _) in tables.items()}
    bad = _unreadable_for_evaluator(out_dir, targets)
    if bad:
        path, why = bad[0]
        raise LabelFileError(path, f"{why}; the evaluator reads every *.csv in {out_dir}: remove it, or export "
                             f"to an empty folder{and_more(len(bad) - 1, parens=True)}; nothing was written")
    if not overwrite:
        clash = [target for target in targets.values() if target.exists()]
        if clash:
            raise UsageError(f"{clash[0]} exists (use --overwrite)")
    return [write_label_file(targets[task], rows, overwrite=True) for task, (_, rows) in sorted(tables.items())]
