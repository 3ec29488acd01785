"""A contribution bundle of one custom task (`task pack`): its labels, its cubes, a data card and a manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuco_io import __version__, spec
from neuco_io.errors import NeucoError, UsageError
from neuco_io.findings import Finding, Report
from neuco_io.layout import discover
from neuco_io.storage import sha256_file
from neuco_io.storage.atomic import atomic_path
from neuco_io.tasks.labels import TaskName
from neuco_io.tasks.tasklist import dataset_tasks
from neuco_io.tasks.usertable import label_statistics

__all__ = ["PackRefused", "PackResult", "pack_task"]


class PackRefused(NeucoError):
    """The dataset has errors: nothing was packed."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        first = findings[0]
        super().__init__(f"refusing to pack: {len(findings)} error(s), first {first.code} in {first.path}: "
                         f"{first.message} (run `neuco-io validate` for all of them)")


@dataclass
class PackResult:
    bundle: Path
    files: int
    bytes: int
    locations: int

    def to_dict(self) -> dict[str, Any]:
        """What `task pack --format json` prints."""
        return {"ok": True, "bundle": str(self.bundle), "files": self.files, "bytes": self.bytes,
                "locations": self.locations}


def _data_card(name: str, task: TaskName, labels: dict[str, float], modalities: list[str], description: str,
               source: str, licence: str) -> str:
    task_type, kind = task.type, task.kind
    stats = label_statistics(list(labels.values()), kind or "regression")
    stat_lines = "\n".join(f"- {k}: {v:.6g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in stats.items())
    return f"""# NeuCo-Bench task: {name}

{description or "(no description given)"}

- Task type: {kind} (`{name}__{task_type}.csv`)
- Locations: {len(labels)}
- Modalities: {", ".join(modalities)} (four seasons each: {", ".join(spec.SEASONS)})
- Source: {source or "(not given)"}
- Licence: {licence or "(not given)"}
- Written by neuco-io {__version__}; `manifest.json` lists every file with its sha256.

## Label statistics
{stat_lines}

## Layout
Cubes follow the SSL4EO-S12-downstream format: `data/<modality>/part-NNNNNN/<id>.zarr.zip`
(Zarr format 2 in a stored zip, variable `bands` with dims (sample, time, band, y, x)), and the labels
`labels/{name}__{task_type}.csv` (`id,label`). The cubes carry no georeferencing.
"""


def pack_task(root: str | os.PathLike[str], task: str, out: str | os.PathLike[str], *, validation: Report,
              description: str = "", source: str = "", licence: str = "", overwrite: bool = False) -> PackResult:
    """A contribution bundle (folder, or `.zip`) of one task of a dataset that passed validation.

    `validation` is `validate(root, layout="downstream")`'s report: a bundle is only written from a dataset
    with no error, and the gate is the caller's so that the validation's progress and parallelism are too.
    """
    root, out = Path(root), Path(out)
    if Path(validation.root).resolve() != root.resolve() or validation.layout != "downstream":
        raise UsageError(f"the validation report is of {validation.root} ({validation.layout}), "
                         f"not of {root} (downstream)")
    if validation.errors:
        raise PackRefused(validation.errors)
    ds = discover(root, "downstream")
    task_file = dataset_tasks(ds, [task], strict=False, option="--task")[task]
    label_file, task_name = task_file.path, task_file.name
    labels = task_file.labels()
    files_by_id = ds.downstream_files()
    members: list[tuple[str, Path]] = [(f"labels/{label_file.name}", label_file)]
    for loc_id in sorted(labels):
        for modality in spec.DOWNSTREAM_MODALITIES:
            cube = files_by_id[loc_id][modality].path
            members.append((cube.relative_to(root).as_posix(), cube))
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --overwrite)")
    card = _data_card(task, task_name, labels, list(spec.DOWNSTREAM_MODALITIES), description, source, licence)
    listing = []
    for rel, path in members:
        listing.append({"path": rel, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    card_bytes = card.encode()
    listing.append({"path": "README.md", "bytes": len(card_bytes), "sha256": hashlib.sha256(card_bytes).hexdigest()})
    manifest = {"format": "neuco-io.task-bundle", "format_version": 1, "tool_version": __version__, "task": task,
                "type": task_name.type, "kind": task_name.kind,
                "locations": len(labels), "description": description, "source": source, "licence": licence,
                "files": listing}
    manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    if out.suffix == ".zip":
        with atomic_path(out, overwrite=True) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as zf:
            for rel, path in members:
                zf.write(path, rel)
            zf.writestr("README.md", card_bytes)
            zf.writestr("manifest.json", manifest_bytes)
    else:
        temp = out.with_name(f".{out.name}.partial")
        shutil.rmtree(temp, ignore_errors=True)
        try:
            for rel, path in members:
                target = temp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            (temp / "README.md").write_bytes(card_bytes)
            (temp / "manifest.json").write_bytes(manifest_bytes)
            if out.exists():
                shutil.rmtree(out)
            os.replace(temp, out)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    total = sum(e["bytes"] for e in listing) + len(manifest_bytes)
    return PackResult(out, len(listing) + 1, total, len(labels))
