"""Plan a conversion: which locations, in which order, into which shards.

The plan is computed from metadata alone (no image chunk decoded) and is a
pure function of the source and the options, so shard boundaries are known
before anything is written: shards can be written in any order, by any
worker, and `--resume` can tell which ones are still owed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neuco_io import spec
from neuco_io.errors import NeucoError, UsageError
from neuco_io.execution import Executor, batched
from neuco_io.findings import CODES, and_more
from neuco_io.layout import Dataset
from neuco_io.storage import file_size, signature
from neuco_io.tasks.tasklist import dataset_tasks
from neuco_io.validators.cubes import CubeResult, CubeTask, blocking, check_cubes

RECORD_OVERHEAD = 4096
"""Tar headers and the JSON record, per location (a v1.1 record's metadata is larger)."""


@dataclass(frozen=True)
class Source:
    """One location to convert."""

    id: str
    files: dict[str, str]
    """modality -> cube path relative to ROOT (posix)."""
    sample: int
    group: str
    est_bytes: int


@dataclass(frozen=True)
class Skipped:
    """A location or cube left out, and why (recorded in the manifest)."""

    path: str
    reason: str
    id: str | None = None
    code: str | None = None
    """Its `convert.*` code (None in a manifest written before codes were recorded)."""

    def __post_init__(self) -> None:
        if self.code is not None and self.code not in CODES:
            raise ValueError(f"unregistered code {self.code!r}")


@dataclass
class ShardSpec:
    index: int
    name: str
    sources: list[Source] = field(default_factory=list)


@dataclass
class Plan:
    layout: str
    modalities: list[str]
    tasks: dict[str, dict]
    """task name -> {"type", "kind", "file"}."""
    labels: dict[str, dict[str, float]]
    """task name -> {id: label}."""
    shards: list[ShardSpec]
    skipped: list[Skipped]
    fingerprint: str

    @property
    def n_records(self) -> int:
        return sum(len(s.sources) for s in self.shards)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _check_all(ds: Dataset, cubes: list, executor: Executor) -> dict[str, CubeResult]:
    tasks = [CubeTask(c, ds.layout) for c in cubes]
    results: dict[str, CubeResult] = {}
    # Only v1.1 files are checked at planning; they are large (64 samples): small batches keep the workers
    # evenly loaded.
    for batch in executor.map(check_cubes, batched(tasks, 4)):
        for result in batch:
            results[str(result.cube.path)] = result
    return results


def _blocking(result: CubeResult) -> str | None:
    bad = blocking(result.findings)
    return f"{bad.code}: {bad.message}" if bad else None


def _downstream_sources(ds: Dataset, modalities: list[str], skipped: list[Skipped], codec: str) -> list[Source]:
    sources = []
    for loc_id, files in ds.downstream_files(modalities).items():
        missing = [m for m in modalities if m not in files]
        if missing:
            where = next(iter(files.values())).path
            skipped.append(Skipped(_rel(where, ds.root), f"no {', '.join(missing)} cube for this id", loc_id,
                                   "convert.missing-modality"))
            continue
        group = files[modalities[0]].group
        sources.append(Source(loc_id, {m: _rel(files[m].path, ds.root) for m in modalities}, 0, group,
                              _estimate([files[m] for m in modalities], 1, codec)))
    return sources


def _estimate(files: list, n_samples: int, codec: str) -> int:
    """Bytes one location will take in a shard: source bytes (blosc) or decoded bytes (none)."""
    total = RECORD_OVERHEAD
    for cube in files:
        if codec == "none":
            # the (time, band, y, x) decoded size of one sample, from the modality's spec
            mod = spec.MODALITIES[cube.modality]
            total += spec.N_TIMES * mod.n_bands * spec.SIZE * spec.SIZE * mod.dtype.itemsize
        else:
            total += (file_size(cube.path) or 0) // max(n_samples, 1)
    return total


def _v11_sources(ds: Dataset, modalities: list[str], results: dict[str, CubeResult],
                 skipped: list[Skipped], codec: str) -> list[Source]:
    sources = []
    for (split, _), files in ds.v11_file_groups(modalities):
        missing = [m for m in modalities if m not in files]
        first = next(iter(files.values()))
        if missing:
            skipped.append(Skipped(_rel(first.path, ds.root), f"no {', '.join(missing)} file with this name",
                                   code="convert.missing-modality"))
            continue
        bad = [(files[m], _blocking(results[str(files[m].path)])) for m in modalities]
        bad = [(f, r) for f, r in bad if r]
        if bad:
            skipped.extend(Skipped(_rel(f.path, ds.root), r, code="convert.invalid-cube") for f, r in bad)
            continue
        samples = {m: results[str(files[m].path)].sample_ids for m in modalities}
        reference = samples[modalities[0]]
        if any(s != reference for s in samples.values()):
            skipped.append(Skipped(_rel(first.path, ds.root), "modalities hold different samples or orders",
                                   code="convert.sample-mismatch"))
            continue
        ordered = [files[m] for m in modalities]
        est = _estimate(ordered, len(reference), codec)
        rel = {m: _rel(files[m].path, ds.root) for m in modalities}
        sources.extend(Source(sid, rel, i, split, est) for i, sid in enumerate(reference))
    seen: set[str] = set()
    unique = []
    for source in sources:
        if source.id in seen:
            skipped.append(Skipped(source.files[modalities[0]], "sample id already converted from an earlier file",
                                   source.id, "convert.duplicate-sample"))
            continue
        seen.add(source.id)
        unique.append(source)
    return unique


def read_labels(ds: Dataset, tasks: list[str] | None) -> tuple[dict[str, dict], dict[str, dict[str, float]]]:
    """Every task's labels (strictly read: a bad label file stops the conversion)."""
    if ds.layout != "downstream":
        if tasks:
            raise UsageError("--tasks: v1.1 datasets have no label files")
        return {}, {}
    found = dataset_tasks(ds, tasks, option="--tasks")
    # a type the evaluator refuses but that plainly means one (`reg`) is carried as written: `labels export`
    # then refuses it or, with --rename-types, writes the accepted spelling
    infos = {task: {"type": f.name.type, "kind": spec.task_kind(f.name.accepted_type or ""),
                    "file": f"labels/{f.path.name}"} for task, f in found.items()}
    labels = {task: f.labels() for task, f in found.items()}
    return infos, labels


def choose_modalities(ds: Dataset, requested: list[str] | None) -> list[str]:
    """The modalities to convert, in spec order: all the layout has, or the requested subset."""
    available = list(spec.DOWNSTREAM_MODALITIES) if ds.layout == "downstream" else ds.modalities
    if requested is None:
        return available
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise UsageError(f"--modalities: {', '.join(unknown)} not available in this {ds.layout} dataset "
                         f"(available: {', '.join(available)})")
    return [m for m in spec.MODALITIES if m in requested]


def make_plan(ds: Dataset, *, modalities: list[str], tasks: list[str] | None, codec: str, fmt: str,
              shard_size: int, max_records: int | None, prefix: str, skip_invalid: bool,
              executor: Executor) -> Plan:
    task_infos, labels = read_labels(ds, tasks)
    skipped: list[Skipped] = []
    if ds.layout == "downstream":
        # One cube per location per modality: its checks run when the shard writer opens it.
        sources = _downstream_sources(ds, modalities, skipped, codec)
    else:
        # v1.1 files are opened here already: their sample ids decide the records.
        cubes = sorted((c for c in ds.cubes if c.modality in modalities), key=lambda c: str(c.path))
        sources = _v11_sources(ds, modalities, _check_all(ds, cubes, executor), skipped, codec)
    if skipped and not skip_invalid:
        first = skipped[0]
        raise InvalidSourceError(f"{first.path}: {first.reason}{and_more(len(skipped) - 1, parens=True)}"
                                 f"{INVALID_HINT}")
    ext = "tar" if fmt == "webdataset" else "parquet"
    shards: list[ShardSpec] = []
    current: ShardSpec | None = None
    size = 0
    for source in sources:
        full = current is not None and (
            (size + source.est_bytes > shard_size) or (max_records is not None and len(current.sources) >= max_records))
        if current is None or full:
            current = ShardSpec(len(shards), f"{prefix}-{len(shards):06d}.{ext}")
            shards.append(current)
            size = 0
        current.sources.append(source)
        size += source.est_bytes
    fingerprint = _fingerprint(ds, modalities, task_infos, labels, shards, codec, fmt, skipped)
    return Plan(ds.layout, modalities, task_infos, labels, shards, skipped, fingerprint)


class InvalidSourceError(NeucoError):
    """A cube or location cannot be converted (and --skip-invalid was not given)."""


INVALID_HINT = "; fix it, or pass --skip-invalid to leave such locations out (they are listed in the manifest)"


def _fingerprint(ds: Dataset, modalities, task_infos, labels, shards, codec, fmt, skipped) -> str:
    """Identity of the output: what a resumed run must match to reuse finished shards.

    Source file contents are not part of it: each finished shard records the
    size and mtime of the files it read, and is redone if any of them changed.
    """
    payload = {
        "layout": ds.layout, "modalities": modalities, "codec": codec, "format": fmt, "tasks": task_infos,
        "labels": labels,
        "shards": [[s.name, [[src.id, src.files, src.sample, src.group] for src in s.sources]] for s in shards],
        "skipped": [asdict(s) for s in skipped],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def file_stats(root: Path, shard: ShardSpec) -> dict[str, list]:
    """Size and modification time (or ETag) of every source file of a shard, to tell later whether it changed."""
    stats: dict[str, list] = {}
    for source in shard.sources:
        for rel in source.files.values():
            if rel not in stats:
                stats[rel] = signature(root / rel)
    return stats
