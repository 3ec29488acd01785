"""A dataset's tasks: which label file holds which task.

`convert`, `labels export`, `task pack`, the loaders and the submission check all start from a label folder;
they differ only in how strict they are, so the folder is read here once.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neuco_io.errors import UsageError
from neuco_io.layout import Dataset
from neuco_io.tasks.labels import LabelFileError, TaskName, parse_task_name, read_task_labels

__all__ = ["TaskFile", "check_tasks", "dataset_tasks"]


@dataclass(frozen=True)
class TaskFile:
    """One task of a label folder: its name (task and type, from the file name) and its file."""

    name: TaskName
    path: Path

    @property
    def task(self) -> str:
        return self.name.task

    def labels(self) -> dict[str, float]:
        """id -> label of the labelled rows; LabelFileError for anything the evaluator would choke on."""
        return read_task_labels(self.path)


def dataset_tasks(dataset: Dataset | str | os.PathLike[str], wanted: Sequence[str] | None = None, *,
                  strict: bool = True, option: str = "tasks") -> dict[str, TaskFile]:
    """task -> its label file, in file-name order, for a dataset (its `labels/`) or a bare label folder.

    `strict` (what is written for the evaluator: convert, export): every file must be a task the evaluator can
    score, `<task>__<type>.csv` with a type it accepts or plainly means (`reg`); a task must have one file.
    Otherwise LabelFileError naming the file, except for files of tasks `wanted` leaves out. Not `strict`
    (what is only read: loaders, submission ids): any `<task>__<type>.csv` is a task, other files are passed
    over and the first file of a task wins.
    `wanted`: only these tasks; one without a label file is a UsageError naming the closest known task
    (`option` is how the caller's user asked for them: `tasks`, `--tasks`).
    """
    if isinstance(dataset, Dataset):
        folder, paths = dataset.root / "labels", list(dataset.label_files)
    else:
        folder = Path(dataset)
        paths = list(folder.glob("*.csv"))
    found: dict[str, TaskFile] = {}
    named: dict[str, None] = {}  # every task the folder names, for the hint
    for path in sorted(paths):
        name = parse_task_name(path)
        if name is not None:
            named.setdefault(name.task)
        if wanted is not None and (name is None or name.task not in wanted):
            continue
        if name is None or name.accepted_type is None:
            if strict:
                problem = name.type_problem() if name else "not named <task>__<type>.csv"
                raise LabelFileError(path, f"{problem}; pass {option} to leave it out")
            if name is None:
                continue
        if name.task in found:
            if strict:
                raise LabelFileError(path, f"task {name.task!r} also comes from {found[name.task].path.name}")
            continue
        found[name.task] = TaskFile(name, path)
    if wanted is not None:
        check_tasks(wanted, list(named), folder, option)
    return found


def check_tasks(tasks: Sequence[str], known: Sequence[str], where: object, option: str = "tasks") -> None:
    """An unknown task is an error (never a column of NaN labels): name the known ones and the closest."""
    unknown = [t for t in tasks if t not in known]
    if not unknown:
        return
    hints = []
    for task in unknown:
        close = difflib.get_close_matches(task, list(known), n=1)
        hints.append(f"{task!r} (did you mean {close[0]!r}?)" if close else repr(task))
    listed = ", ".join(sorted(known)) if known else "none"
    raise UsageError(f"{option}: unknown task {', '.join(hints)} in {where}; known tasks: {listed}")
