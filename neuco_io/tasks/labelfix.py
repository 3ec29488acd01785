"""`neuco-io labels fix`: repair the harmless-looking defects that make the evaluator misread a label file.

A byte-order mark (Excel's "CSV UTF-8") hides the `id` column from `csv.DictReader`, and ids written as
file names (`<id>.zarr.zip`) match no location. Both are mechanical to repair, so the tool does it
instead of only refusing: the file is rewritten atomically, values untouched, and every change reported.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from neuco_io import spec
from neuco_io.errors import NeucoError, UsageError
from neuco_io.storage.atomic import atomic_path
from neuco_io.storage.local import require_regular_file
from neuco_io.tasks.labels import BOM, LabelFileError

__all__ = ["LabelFix", "fix_label_file", "fix_labels", "label_files"]


@dataclass
class LabelFix:
    """What was (or, in a dry run, would be) changed in one file."""

    path: Path
    bom: bool = False
    line_endings: int = 0
    """CRLF or CR line endings turned into LF."""
    suffixed_ids: list[str] = field(default_factory=list)
    """Ids that lost a .zarr.zip / .zarr suffix (as they were written)."""
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.bom or self.line_endings > 0 or bool(self.suffixed_ids)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "changed": self.changed, "bom": self.bom, "line_endings": self.line_endings,
                "suffixed_ids": len(self.suffixed_ids), "error": self.error}


def _strip_id_suffixes(text: str) -> tuple[str, list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or "id" not in rows[0]:
        return text, []
    column = rows[0].index("id")
    suffixed = []
    for row in rows[1:]:
        if column < len(row) and spec.strip_cube_suffix(row[column]) != row[column]:
            suffixed.append(row[column])
            row[column] = spec.strip_cube_suffix(row[column])
    if not suffixed:
        return text, []
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue(), suffixed


def fix_label_file(path: str | os.PathLike[str], *, dry_run: bool = False) -> LabelFix:
    """Fix one label file in place (atomically); an unreadable one comes back with `error` set."""
    path = Path(path)
    fix = LabelFix(path)
    try:
        require_regular_file(path)
        data = path.read_bytes()
        fix.bom = data.startswith(BOM)
        text = data[len(BOM):].decode("utf-8") if fix.bom else data.decode("utf-8")
        fix.line_endings = text.count("\r")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text, fix.suffixed_ids = _strip_id_suffixes(text)
    except OSError as exc:
        fix.error = f"cannot read: {exc.strerror or exc}"
        return fix
    except UnicodeDecodeError as exc:
        fix.error = f"not UTF-8 text (byte {exc.start}); save it as UTF-8 first"
        return fix
    except csv.Error as exc:
        fix.error = str(LabelFileError(path, f"malformed CSV: {exc}"))
        return fix
    if fix.changed and not dry_run:
        with atomic_path(path, overwrite=True) as temp:
            temp.write_bytes(text.encode("utf-8"))
    return fix


def label_files(target: str | os.PathLike[str]) -> list[Path]:
    """A CSV file, the CSV files of a folder, or those of a dataset's labels/ folder."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        try:
            require_regular_file(target)  # names a FIFO or a device, or nothing at all
        except FileNotFoundError:
            raise UsageError(f"{target}: no such file or folder") from None
        except OSError as exc:
            raise UsageError(f"{target}: {exc.strerror}") from None
    folder = target / "labels" if (target / "labels").is_dir() else target
    files = sorted(p for p in folder.glob("*.csv") if p.is_file())
    if not files:
        raise NeucoError(f"{folder}: no .csv label files")
    return files


def fix_labels(target: str | os.PathLike[str], *, dry_run: bool = False) -> list[LabelFix]:
    return [fix_label_file(path, dry_run=dry_run) for path in label_files(target)]
