"""`verify(root, out)`: prove a conversion is complete and lossless.

Every shard's size and sha256 are checked against the manifest, every record
is decoded and compared bit for bit with the source cubes, and labels are
compared with the label files. Findings name the shard, the id and the
member; nothing is trusted that was not re-read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io.cube.pool import CubePool
from neuco_io.cube.reader import Cube
from neuco_io.errors import CubeError, ShardError, UsageError
from neuco_io.execution import Executor, Progress, make_executor
from neuco_io.findings import Finding, Report
from neuco_io.shards.labels import read_labels_parquet
from neuco_io.shards.manifest import MANIFEST, Manifest
from neuco_io.shards.reader import read_shard
from neuco_io.shards.record import data_errors
from neuco_io.storage import as_path, file_size, open_store, sha256_file
from neuco_io.tasks.labels import LabelFileError, read_task_labels

__all__ = ["VerifyReport", "verify"]

_RECORD_CODES = frozenset({"verify.source-unreadable", "verify.array-mismatch", "verify.wrong-source",
                           "verify.label-mismatch", "verify.label-file"})
"""Findings that compare records with the source: noise when ROOT is not the source at all."""


def _mismatch(code: str, shard: str, message: str, id: str | None = None, member: str | None = None) -> Finding:
    """A `verify.*` finding: the shard (or manifest, labels.parquet) it is in, and the id and member."""
    return Finding(code, shard, message, id=id, member=member)


@dataclass
class VerifyReport(Report):
    """`verify`'s findings; its JSON keeps the shape it always had (`shard` where findings say `path`)."""

    checks: tuple[str, ...] = ("verify",)

    def to_dict(self) -> dict[str, Any]:
        errors = [{"code": f.code, "shard": f.path, "message": f.message, "id": f.id, "member": f.member}
                  for f in self.findings]
        return {"ok": self.ok, "errors": [{k: v for k, v in e.items() if v is not None} for e in errors],
                "summary": self.summary}


@dataclass(frozen=True)
class _ShardCheck:
    root: Any
    out: Any
    shard: dict
    fmt: str
    tasks: dict[str, dict]
    expected_ids: list[str]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class _Sources:
    """Source cubes and label files, opened once per shard check."""

    def __init__(self, root: Path, tasks: dict[str, dict]) -> None:
        self.root = as_path(root)
        self.cubes: CubePool[Cube] = CubePool()
        """Source cubes; `cubes.opened` counts those found: none at all means ROOT is not this conversion's source."""
        self.labels: dict[str, dict[str, float]] = {}
        self.label_errors: dict[str, str] = {}
        for task, info in tasks.items():
            try:
                self.labels[task] = read_task_labels(root / info["file"])
            except LabelFileError as exc:
                self.label_errors[task] = str(exc)

    def cube(self, rel: str) -> Cube:
        return self.cubes.get(self.root / rel)

    def close(self) -> None:
        self.cubes.close()


def _compare(meta: dict, arrays: dict[str, np.ndarray], sources: _Sources, shard: str) -> list[Finding]:
    loc_id = meta.get("id")
    found = []
    sample = int(meta.get("sample_index", 0))
    wanted = {m: (m, "bands") for m in meta.get("modalities", [])}
    wanted.update({n: (a["source"], a["variable"]) for n, a in meta.get("arrays", {}).items()})
    for name, (modality, variable) in wanted.items():
        rel = meta.get("source", {}).get(modality)
        if name not in arrays:
            found.append(_mismatch("verify.missing-member", shard, f"no {name} array", loc_id, name))
            continue
        try:
            cube = sources.cube(rel)
            expected = cube.read(variable, (sample,))
            if variable == "bands" and cube.sample_ids[sample] != loc_id:
                found.append(_mismatch("verify.wrong-source", shard, f"sample {sample} of {rel} is "
                                      f"{cube.sample_ids[sample]!r}", loc_id, name))
        except (CubeError, IndexError, TypeError) as exc:
            reason = exc.message if isinstance(exc, CubeError) else str(exc)  # its str() repeats the path
            found.append(_mismatch("verify.source-unreadable", shard, f"{rel}: {reason}", loc_id, name))
            continue
        if not _same(arrays[name], expected):
            found.append(_mismatch("verify.array-mismatch", shard, f"{name} differs from {rel} (sample {sample})",
                                  loc_id, name))
    labels = meta.get("labels", {})
    for task, values in sources.labels.items():
        want = values.get(loc_id)
        got = labels.get(task)
        if want != got:
            found.append(_mismatch("verify.label-mismatch", shard, f"label {task}: shard has {got}, label file "
                                  f"has {want}", loc_id, task))
    return found


def _check_shard(check: _ShardCheck) -> tuple[list[Finding], int, int]:
    """The shard's mismatches, its record count, and how many source cubes were found for it."""
    name = check.shard["name"]
    path = as_path(check.out) / name
    size = file_size(path)
    if size is None:
        return [_mismatch("verify.missing-shard", name, f"{path} does not exist")], 0, 0
    found: list[Finding] = []
    if size != check.shard["bytes"]:
        found.append(_mismatch("verify.size", name, f"{size} bytes, manifest says {check.shard['bytes']}"))
    elif sha256_file(path) != check.shard["sha256"]:
        found.append(_mismatch("verify.sha256", name, "sha256 differs from the manifest"))
    sources = _Sources(check.root, check.tasks)
    for task, error in sources.label_errors.items():
        found.append(_mismatch("verify.label-file", name, error, member=task))
    seen: list[str] = []

    def compare(meta: dict, decode: Callable[[], dict[str, np.ndarray]], key: str) -> None:
        try:
            with data_errors(name, key):
                found.extend(_compare(meta, decode(), sources, name))
        except ShardError as exc:
            found.append(_mismatch("verify.unreadable-record", name, str(exc), seen[-1]))

    try:
        for record in read_shard(path, check.fmt, name):
            seen.append(record.id)
            compare(record.meta, record.arrays, record.id)
    except ShardError as exc:
        found.append(_mismatch("verify.unreadable-shard", name, str(exc), exc.key))
    except OSError as exc:
        found.append(_mismatch("verify.unreadable-shard", name, f"cannot read: {exc}"))
    finally:
        sources.close()
    opened = sources.cubes.opened
    if len(seen) != check.shard["records"]:
        found.append(_mismatch("verify.records", name, f"holds {len(seen)} records, the manifest says "
                              f"{check.shard['records']}"))
    if seen != check.expected_ids:
        missing = sorted(set(check.expected_ids) - set(seen))
        extra = sorted(set(seen) - set(check.expected_ids))
        detail = f"missing {missing[:5]}" if missing else ""
        detail += f"{'; ' if detail and extra else ''}unexpected {extra[:5]}" if extra else ""
        found.append(_mismatch("verify.records", name, f"records differ from the manifest: {detail or 'order'}"))
    return found, len(seen), opened


def verify(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    storage_options: dict[str, Any] | None = None,
    scheduler: str | None = None,
) -> VerifyReport:
    source = open_store(root, storage_options)
    root, out = source.path, as_path(out, storage_options)
    if source.supports_listing and not source.is_dir():
        raise UsageError(f"{root}: no such directory")
    manifest = Manifest.load(out)
    checks = [_ShardCheck(root, out, shard, manifest.format, manifest.tasks, manifest.ids(shard))
              for shard in manifest.shards]
    report = VerifyReport(str(out))
    if on_start:
        on_start(len(checks))
    records = opened = 0
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(make_executor(jobs, len(checks), scheduler, places=(root, out)))
        for found, n, found_sources in executor.map(_check_shard, checks, names=[c.shard["name"] for c in checks]):
            report.extend(found)
            records += n
            opened += found_sources
            if progress:
                progress(1)
    wrong_source = records > 0 and opened == 0
    if wrong_source:  # one finding, not one per array and label of every record
        report.findings = [m for m in report.findings if m.code not in _RECORD_CODES]
        report.add(_mismatch("verify.wrong-source", MANIFEST, f"none of the source cubes is in {root}; "
                                          f"this conversion was made from {manifest.get('source', {}).get('root')}"))
    elif manifest.get("labels"):
        report.extend(_check_labels_file(root, manifest.labels_path, manifest))
    claimed = sum(shard["records"] for shard in manifest["shards"])
    if manifest.get("records", claimed) != claimed or len(manifest.get("index", {})) != claimed:
        report.add(_mismatch("verify.records", MANIFEST, f"the manifest's record count "
                                          f"({manifest.get('records')}), its shards' ({claimed}) and its index's "
                                          f"({len(manifest.get('index', {}))}) disagree"))
    report.summary = {"out": str(out), "root": str(root), "format": manifest.format, "shards": len(checks),
                      "records": records, "manifest_records": manifest.get("records"),
                      "skipped_in_conversion": len(manifest.get("skipped", []))}
    return report


def _check_labels_file(root: Path, path: Path, manifest: Manifest) -> list[Finding]:
    try:
        table = read_labels_parquet(path)
    except Exception as exc:
        return [_mismatch("verify.labels-parquet", path.name, f"unreadable: {exc}")]
    found = []
    ids = table.get("id", [])
    if sorted(ids) != sorted(manifest["index"]):
        found.append(_mismatch("verify.labels-parquet", path.name, "ids differ from the manifest index"))
    for task, info in manifest.tasks.items():
        try:
            labels = read_task_labels(root / info["file"])
        except LabelFileError as exc:
            found.append(_mismatch("verify.label-file", path.name, str(exc), member=task))
            continue
        column = table.get(task)
        if column is None:
            found.append(_mismatch("verify.labels-parquet", path.name, f"no column {task}", member=task))
            continue
        for loc_id, value in zip(ids, column):
            if labels.get(loc_id) != value:
                found.append(_mismatch("verify.label-mismatch", path.name, f"label {task}: {value} vs "
                                      f"{labels.get(loc_id)} in the label file", loc_id, task))
    return found

