"""`convert(root, out, to=...)`: zarr.zip cubes to WebDataset or Parquet shards, lossless and resumable.

How a run is kept safe:
- the plan (which location goes to which shard) is a pure function of the
  source and the options, and its fingerprint is saved in `OUT/.neuco-io/`
  before any shard is written;
- each shard is written under a temporary name and renamed when complete;
  then a small state file records its size and sha256;
- `manifest.json` is written last, and only then is the state folder removed.
An interrupted run therefore leaves complete shards and no truncated one, and
`resume=True` writes only the shards that have no state file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, spec
from ..atomic import remove_partials
from ..errors import UsageError
from ..execution import Executor, Progress, make_executor
from ..layout import Layout, discover
from ..manifest import MANIFEST, read_manifest
from ..shardformat import CODECS, FORMAT_VERSION
from ..storage import Folder, as_path, file_size, is_remote
from .plan import Plan, Skipped, choose_modalities, file_stats, make_plan
from .shards import ShardJob, ShardResult, write_shard

__all__ = ["FORMATS", "ConvertResult", "VerifyReport", "convert", "load_manifest", "refuse_interrupted", "verify"]

FORMATS = ("webdataset", "parquet")
STATE_DIR = ".neuco-io"
LABELS = "labels.parquet"
DEFAULT_SHARD_SIZE = 1_000_000_000


@dataclass
class ConvertResult:
    out: Path
    format: str
    records: int
    shards: int
    bytes: int
    written: int
    """Shards written by this run (the others were finished by an earlier, interrupted run)."""
    skipped: list[Skipped] = field(default_factory=list)
    manifest: Path | None = None


def load_manifest(out: Any, storage_options: dict | None = None) -> dict[str, Any]:
    """OUT's manifest, bounded and checked (`neuco_io.manifest`): ManifestError when unusable."""
    folder = out.path if isinstance(out, Folder) else as_path(out, storage_options)
    try:
        return read_manifest(folder)
    except UsageError:  # there is none: an interrupted conversion says so
        refuse_interrupted(folder)
        raise


def refuse_interrupted(folder: Any) -> None:
    """Raise a UsageError saying so if `folder` holds a conversion that was stopped before its manifest."""
    if file_size(folder / STATE_DIR / "plan.json") is not None and file_size(folder / MANIFEST) is None:
        raise UsageError(f"{folder} holds an interrupted conversion (no manifest yet): finish it with "
                         "`neuco-io convert ROOT OUT --resume`")


def index_by_shard(manifest: dict[str, Any]) -> dict[int, list[list]]:
    """The manifest's id -> [shard, row, offset, size] map turned around: shard -> its [id, row, offset,
    size] entries in row order (one pass, however many shards)."""
    by_shard: dict[int, list[list]] = {}
    for loc_id, (shard, *place) in manifest["index"].items():
        by_shard.setdefault(shard, []).append([loc_id, *place])
    for entries in by_shard.values():
        entries.sort(key=lambda entry: entry[1])
    return by_shard


def _own_files(names: list[str], prefix: str) -> list[str]:
    """What a conversion writes in OUT (of the folder's `names`): only these are ever removed by --overwrite."""
    return [name for name in names
            if name in (MANIFEST, LABELS, STATE_DIR)
            or (name.startswith(f"{prefix}-") and name.endswith((".tar", ".parquet")))
            or (name.startswith(".") and name.endswith(".partial"))]


def _prepare_out(out: Folder, prefix: str, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if not out.remote and out.exists() and not out.is_dir():
        raise UsageError(f"{out.path}: exists and is not a directory")
    names = out.names()
    state = STATE_DIR in names
    finished = MANIFEST in names
    if overwrite:
        for name in _own_files(names, prefix):
            out.remove(name)
        return
    if resume:
        if not state and not finished:
            raise UsageError(f"{out.path}: nothing to resume (no interrupted conversion here)")
        return
    if state:
        raise UsageError(f"{out.path}: holds an interrupted conversion; pass --resume to finish it or --overwrite "
                         "to start again")
    if finished:
        raise UsageError(f"{out.path}: holds a finished conversion; pass --overwrite to replace it")
    if _own_files(names, prefix):
        raise UsageError(f"{out.path}: holds shards of another run; pass --overwrite to replace them")


def _options(**options: Any) -> dict[str, Any]:
    """The options that shape the output (not --jobs, --resume...), as recorded in the manifest."""
    return {k: v for k, v in options.items() if v is not None}


def convert(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    to: str = "webdataset",
    layout: Layout | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_records: int | None = None,
    modalities: list[str] | None = None,
    tasks: list[str] | None = None,
    codec: str = "blosc",
    prefix: str = "shard",
    row_group_size: int = 2,
    jobs: int | None = None,
    executor: Executor | None = None,
    resume: bool = False,
    overwrite: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    storage_options: dict[str, Any] | None = None,
    scheduler: str | None = None,
) -> ConvertResult:
    """Convert a dataset root to shards in `out` (either may be an fsspec URL). See the module docstring."""
    if to not in FORMATS:
        raise UsageError(f"--to must be one of {', '.join(FORMATS)}")
    if codec not in CODECS:
        raise UsageError(f"--codec must be one of {', '.join(CODECS)}")
    if shard_size <= 0 or (max_records is not None and max_records <= 0) or row_group_size <= 0:
        raise UsageError("--shard-size, --max-records and --row-group-size must be positive")
    if not prefix or "/" in prefix or prefix.startswith("."):
        raise UsageError(f"--prefix {prefix!r}: a plain file name prefix is needed")
    out = Folder(out, storage_options)
    ds = discover(root, layout, storage_options)
    _prepare_out(out, prefix, resume, overwrite)
    chosen = choose_modalities(ds, modalities)
    with contextlib.ExitStack() as stack:
        # Pushed first, so it runs last: after the workers were stopped.
        stack.push(lambda exc_type, *_: _clean_partials_on_error(out, exc_type))
        if executor is None:
            executor = stack.enter_context(make_executor(jobs, scheduler=scheduler, places=(ds.root, out.path)))
        plan = make_plan(ds, modalities=chosen, tasks=tasks, codec=codec, fmt=to, shard_size=shard_size,
                         max_records=max_records, prefix=prefix, skip_invalid=skip_invalid, executor=executor)
        options = _options(to=to, codec=codec, shard_size=shard_size, max_records=max_records,
                           modalities=chosen, tasks=sorted(plan.tasks), prefix=prefix,
                           row_group_size=row_group_size if to == "parquet" else None, skip_invalid=skip_invalid)
        return _run(ds.root, out, plan, options, executor, skip_invalid, row_group_size, progress, on_start)


def _clean_partials_on_error(out: Folder, exc_type: type | None) -> bool:
    """After a failure or Ctrl-C, remove the temporary files the stopped workers left (local OUT only:
    remote shards are staged in local temporary files that clean up after themselves)."""
    if exc_type is not None and not out.remote:
        remove_partials(out.path)
    return False


def _state_name(name: str) -> str:
    return f"{STATE_DIR}/shards/{name}.json"


def _load_state(root: Path, out: Folder, plan: Plan) -> dict[str, ShardResult]:
    """Shards finished by an earlier run of the same plan."""
    done: dict[str, ShardResult] = {}
    plan_name = f"{STATE_DIR}/plan.json"
    if out.has(MANIFEST) and not out.has(plan_name):
        previous = load_manifest(out)
        if previous.get("fingerprint") != plan.fingerprint:
            raise UsageError(f"{out.path}: the finished conversion there came from other data or options; "
                             "use --overwrite")
        by_shard = index_by_shard(previous)
        for shard in previous["shards"]:
            if out.size(shard["name"]) != shard["bytes"]:
                continue  # deleted or replaced since: write it again
            done[shard["name"]] = ShardResult(shard["name"], shard["records"], shard["bytes"], shard["sha256"],
                                              index=by_shard.get(shard["index"], []),
                                              skipped=[Skipped(**s) for s in shard.get("skipped", [])])
        return done
    if out.has(plan_name):
        saved = json.loads(out.read_text(plan_name))
        if saved.get("fingerprint") != plan.fingerprint:
            raise UsageError(f"{out.path}: the source or the options changed since the interrupted run; use "
                             "--overwrite to start again")
    for shard in plan.shards:
        if not out.has(_state_name(shard.name)):
            continue
        data = json.loads(out.read_text(_state_name(shard.name)))
        unchanged = data.get("sources") == file_stats(root, shard)
        if out.size(shard.name) == data["bytes"] and unchanged:
            data["skipped"] = [Skipped(**s) for s in data.get("skipped", [])]
            done[shard.name] = ShardResult(**data)
    return done


def _run_job(job: ShardJob) -> ShardResult:
    result = write_shard(job)
    Folder(job.out).write_text(_state_name(result.name), json.dumps(asdict(result), sort_keys=True))
    return result


def _run(root: Path, out: Folder, plan: Plan, options: dict, executor: Executor, skip_invalid: bool,
         row_group_size: int, progress: Progress | None, on_start: Callable[[int], None] | None) -> ConvertResult:
    out.mkdir()
    if not out.remote:
        remove_partials(out.path)
    done = _load_state(root, out, plan)
    if not out.has(MANIFEST) or len(done) != len(plan.shards):
        out.write_text(f"{STATE_DIR}/plan.json", json.dumps({"fingerprint": plan.fingerprint, "options": options},
                                                            sort_keys=True))
    if on_start:
        on_start(plan.n_records)
    if progress:
        progress(sum(len(s.sources) for s in plan.shards if s.name in done))
    if plan.tasks and executor.jobs > 1:
        # The main process waits while workers write shards: import pyarrow (and the pandas it pulls
        # in) for labels.parquet meanwhile, instead of after the last shard.
        threading.Thread(target=_warm_pyarrow, daemon=True).start()
    jobs = [
        ShardJob(root, out.path, options["to"], options["codec"], plan.layout, plan.modalities, plan.tasks,
                 {task: {s.id: labels[s.id] for s in shard.sources if s.id in labels}
                  for task, labels in plan.labels.items()},
                 shard, skip_invalid, row_group_size)
        for shard in plan.shards if shard.name not in done
    ]
    sizes = {s.name: len(s.sources) for s in plan.shards}
    for result in executor.map(_run_job, jobs, names=[job.spec.name for job in jobs]):
        done[result.name] = result
        if progress:
            progress(sizes[result.name])
    results = [done[s.name] for s in plan.shards]
    skipped = list(plan.skipped) + [s for r in results for s in r.skipped]
    if plan.tasks:
        _write_labels(out, plan, results)
    if not out.remote:
        remove_partials(out.path)  # a worker killed mid-shard (and retried elsewhere) may leave one
    manifest = _manifest(root, plan, options, results, skipped)
    out.write_text(MANIFEST, json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n")
    out.remove(STATE_DIR)
    return ConvertResult(out.path, options["to"], sum(r.records for r in results), len(results),
                         sum(r.bytes for r in results), len(jobs), skipped, out.path / MANIFEST)


def _warm_pyarrow() -> None:
    import pyarrow as pa

    pa.array([0.0])


def _write_labels(out: Folder, plan: Plan, results: list[ShardResult]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [entry[0] for r in results for entry in r.index]
    columns = {"id": pa.array(ids, pa.string())}
    for task, labels in plan.labels.items():
        columns[task] = pa.array([labels.get(i) for i in ids], pa.float64())
    table = pa.table(columns).replace_schema_metadata({"neuco-io": json.dumps({"tasks": plan.tasks})})
    with out.writing(LABELS) as temp:
        pq.write_table(table, temp, compression="zstd")


def _manifest(root: Path, plan: Plan, options: dict, results: list[ShardResult], skipped: list[Skipped]) -> dict:
    index = {}
    shards = []
    for number, result in enumerate(results):
        for loc_id, row, offset, size in result.index:
            index[loc_id] = [number, row, offset, size]
        entry = {"index": number, "name": result.name, "records": result.records, "bytes": result.bytes,
                 "sha256": result.sha256}
        if result.index:
            entry["first_id"], entry["last_id"] = result.index[0][0], result.index[-1][0]
        shards.append(entry)
    return {
        "format": "neuco-io.manifest",
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "output_format": options["to"],
        "codec": options["codec"],
        "options": options,
        "source": {"root": str(root if is_remote(root) else root.resolve()), "layout": plan.layout},
        "modalities": plan.modalities,
        "bands": {m: list(spec.MODALITIES[m].bands) for m in plan.modalities},
        "seasons": list(spec.SEASONS),
        "s2_offset": plan.layout == "v1.1",
        "key_scheme": "__key__ is the id with '%' and '.' percent-encoded; the JSON record holds the true id",
        "tasks": plan.tasks,
        "labels": LABELS if plan.tasks else None,
        "records": sum(r.records for r in results),
        "shards": shards,
        "index": index,
        "index_fields": ["shard", "row", "offset", "size"],
        "skipped": [asdict(s) for s in skipped],
        "fingerprint": plan.fingerprint,
    }


from .verify import VerifyReport, verify  # noqa: E402  (verify imports constants defined above)
