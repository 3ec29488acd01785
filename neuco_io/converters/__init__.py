"""`convert(root, out, to=...)`: zarr.zip cubes to WebDataset or Parquet shards, lossless and resumable.

How a run is kept safe:
- every option, the source and OUT are checked before anything in OUT
  changes, and OUT is locked (`.neuco-io.lock`) while the run writes;
- the plan (which location goes to which shard) is a pure function of the
  source and the options; it is saved in the journal `OUT/.neuco-io/plan.json`
  (fingerprint, and the shard names it will write) before any shard is written;
- each shard is written under a temporary name and renamed when complete;
  then a small state file records its size, sha256 and the source files' stats;
- `manifest.json` is written last (with a digest of each shard's source stats),
  and only then is the journal removed;
- replacing a finished output (`overwrite=True`) writes the new shards to
  `OUT/.neuco-io/staging/` and swaps them in only when all are written.
An interrupted run therefore leaves complete shards and no truncated one,
`resume=True` writes only the shards that are owed or whose sources changed,
and only files a manifest or journal lists are ever removed (see `outdir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from neuco_io import spec
from neuco_io.converters.card import CARD, dataset_card, is_our_card
from neuco_io.converters.estimate import ConvertEstimate, estimate_seconds, measure_rate, parallelism_note
from neuco_io.converters.outdir import (
    JOURNAL,
    LABELS,
    STAGING,
    OutputLock,
    OutState,
    check_location,
    inspect,
    remove_finished,
    remove_journal,
    remove_state,
    state_name,
)
from neuco_io.converters.outdir import (
    STATE_DIR as STATE_DIR,
)
from neuco_io.converters.plan import Plan, Skipped, choose_modalities, file_stats, make_plan
from neuco_io.converters.shards import ShardJob, ShardResult, write_shard
from neuco_io.converters.verify import VerifyReport, verify
from neuco_io.errors import UsageError
from neuco_io.execution import Executor, Progress, RunSettings
from neuco_io.findings import Finding, Report
from neuco_io.layout import Layout, discover
from neuco_io.shards.codecs import CODECS, PARQUET_ARRAYS
from neuco_io.shards.labels import write_labels_parquet
from neuco_io.shards.manifest import MANIFEST, Manifest
from neuco_io.shards.parquet import DEFAULT_ROW_GROUP_SIZE
from neuco_io.shards.record import format_stamp
from neuco_io.storage import Store, open_store

__all__ = ["FORMATS", "ConvertEstimate", "ConvertResult", "VerifyReport", "convert", "verify"]

FORMATS = ("webdataset", "parquet")
DEFAULT_SHARD_SIZE = 1_000_000_000
MAX_PREFIX_BYTES = 200
"""Shard names and their temporary names must fit the 255-byte file name limit of common file systems."""
HOLD_SHARD_ENV = "NEUCO_IO_TEST_HOLD_SHARD"
"""Tests only: the worker about to write the shard of this name waits for a signal (a deterministic
interruption point)."""


@dataclass
class ConvertResult:
    out: Path
    format: str
    records: int
    shards: int
    bytes: int
    written: int
    """Shards written by this run (the others were kept: finished by an earlier run and unchanged)."""
    skipped: list[Skipped] = field(default_factory=list)
    manifest: Path | None = None
    reused_from: str | None = None
    """Where kept shards came from: "interrupted" (an unfinished run) or "finished" (a finished output
    checked against the source again); None when every shard was written by this run."""
    notes: list[str] = field(default_factory=list)

    @property
    def report(self) -> Report:
        """The skips as findings (their `convert.*` codes), in the one `Report` every command returns."""
        report = Report(str(self.out), checks=("convert",))
        report.extend(Finding(s.code or "convert.invalid-cube", s.path, s.reason, id=s.id) for s in self.skipped)
        return report

    def to_dict(self) -> dict[str, Any]:
        """What `convert --format json` prints."""
        return {"out": str(self.out), "format": self.format, "records": self.records, "shards": self.shards,
                "bytes": self.bytes, "written": self.written, "reused_from": self.reused_from,
                "manifest": str(self.manifest), "skipped": [vars(s) for s in self.skipped], "notes": self.notes}


def _check_prefix(prefix: str) -> None:
    if not prefix or "/" in prefix or "\\" in prefix or prefix.startswith(".") or not prefix.isprintable():
        raise UsageError(f"--prefix {prefix!r}: a plain file name prefix is needed (no '/', no leading '.', "
                         "printable characters)")
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise UsageError(f"--prefix is {len(prefix.encode())} bytes long; at most {MAX_PREFIX_BYTES} (shard file "
                         "names must fit the file system's 255-byte limit)")


def _has_our_card(out: Store, names: list[str]) -> bool:
    if CARD not in names or not out.is_file(CARD):
        return False  # absent, a folder, a FIFO...: not a card of ours
    try:
        return is_our_card(out.read_text(CARD)[:1 << 16])
    except (OSError, UnicodeDecodeError):
        return False


def _check_card(out: Store) -> None:
    """convert --to parquet writes README.md (the dataset card): never over a file of the user's."""
    names = out.names() if out.exists() else []
    if CARD in names and not _has_our_card(out, names):
        raise UsageError(f"{out.path / CARD}: exists and is not a dataset card neuco-io wrote; move it away "
                         "(convert --to parquet writes the dataset card there)")


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
    row_group_size: int | None = None,
    parquet_arrays: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    skip_invalid: bool = False,
    dry_run: bool = False,
    on_note: Callable[[str], None] | None = None,
    run: RunSettings | None = None,
    **run_options: Any,
) -> ConvertResult | ConvertEstimate:
    """Convert a dataset root to shards in `out` (either may be an fsspec URL). See the module docstring.

    Every option, the source and OUT are checked before anything in OUT changes. With `dry_run` nothing is
    written and a `ConvertEstimate` is returned. `on_note` receives advice while the run goes on (a stale
    lock taken over, workers left idle by too few shards). `run` (or its fields as keywords: `jobs=1`) says how
    the work runs: see `RunSettings`.
    """
    run = RunSettings.of(run, run_options)
    if to not in FORMATS:
        raise UsageError(f"--to must be one of {', '.join(FORMATS)}")
    if codec not in CODECS:
        raise UsageError(f"--codec must be one of {', '.join(CODECS)}")
    if to != "parquet" and (row_group_size is not None or parquet_arrays is not None):
        raise UsageError("--row-group-size and --parquet-arrays apply to --to parquet only")
    row_group_size = DEFAULT_ROW_GROUP_SIZE if row_group_size is None else row_group_size
    parquet_arrays = parquet_arrays or "binary"
    if parquet_arrays not in PARQUET_ARRAYS:
        raise UsageError(f"--parquet-arrays must be one of {', '.join(PARQUET_ARRAYS)}")
    if shard_size <= 0 or (max_records is not None and max_records <= 0) or row_group_size <= 0:
        raise UsageError("--shard-size, --max-records and --row-group-size must be positive")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    _check_prefix(prefix)
    out = open_store(out, run.storage_options)
    out.check_writable()
    ds = discover(root, layout, run.storage_options)
    check_location(ds.store, out)
    if to == "parquet":
        _check_card(out)
    chosen = choose_modalities(ds, modalities)
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        if on_note:
            on_note(text)

    with contextlib.ExitStack() as stack:
        if not dry_run:
            # Entered in this order so that they end in reverse: workers stopped, lock released, then
            # the clean-up after a failure.
            existed = out.exists()
            stack.push(lambda exc_type, *_: _after_failure(out, exc_type, existed))
            lock = stack.enter_context(OutputLock(out))
            for text in lock.notes:
                note(text)
        executor = stack.enter_context(run.pool(places=(ds.store, out)))
        plan = make_plan(ds, modalities=chosen, tasks=tasks, codec=codec, fmt=to, shard_size=shard_size,
                         max_records=max_records, prefix=prefix, skip_invalid=skip_invalid, executor=executor)
        parquet = to == "parquet"
        options = _options(to=to, codec=codec, shard_size=shard_size, max_records=max_records,
                           modalities=chosen, tasks=sorted(plan.tasks), prefix=prefix,
                           row_group_size=row_group_size if parquet else None,
                           parquet_arrays=parquet_arrays if parquet else None, skip_invalid=skip_invalid)
        if parquet:  # the Parquet settings shape the shards too: a resumed run must use the same
            plan = replace(plan, fingerprint=hashlib.sha256(
                f"{plan.fingerprint}/{parquet_arrays}/{row_group_size}".encode()).hexdigest())
        advice = parallelism_note(plan, executor.jobs, max_records)
        if dry_run:
            return _dry_run(ds.root, out, plan, options, executor.jobs, resume, overwrite, skip_invalid,
                            row_group_size, [advice] if advice else [])
        if advice:
            note(advice)
        result = _run(ds.root, out, plan, options, executor, skip_invalid, row_group_size, resume, overwrite,
                      run.progress, run.on_start)
        result.notes = notes
        return result


def _after_failure(out: Store, exc_type: type | None, existed: bool) -> bool:
    """After a failure or Ctrl-C: remove the temporary files the stopped workers left, and if the run
    finished no shard, everything it wrote (OUT is left as it was found)."""
    if exc_type is None:
        return False
    try:
        state = inspect(out) if out.exists() else OutState([])
    except (UsageError, OSError):
        return False  # OUT is not ours to clean (the run stopped for that very reason)
    if state.journal is not None and state.journal.get("run") == os.getpid() and not state.finished_shards:
        remove_journal(out, state)
    else:
        names = state.planned() | {LABELS, MANIFEST}
        out.remove_partials("", names)
        out.remove_partials(STAGING, names)
    if not existed:
        out.remove_if_empty()  # created by this run, and empty again
    return False


def _decide(out: Store, state: OutState, plan: Plan, resume: bool, overwrite: bool) -> str:
    """What this run does in OUT: "new" (nothing there, or a replaceable unfinished plan), "resume", or
    "replace" (a finished output, kept until the new one is complete). Refuses what would lose data."""
    if resume:
        if state.journal is None and state.manifest is None:
            raise UsageError(f"{out.path}: nothing to resume (no interrupted conversion here)")
        action = "resume"
    else:
        if state.journal is not None and state.finished_shards and not overwrite:
            raise UsageError(f"{out.path}: holds an interrupted conversion ({len(state.finished_shards)} shards "
                             "finished); pass --resume to finish it or --overwrite to start again")
        if state.manifest is not None and not overwrite:
            raise UsageError(f"{out.path}: holds a finished conversion; pass --overwrite to replace it")
        action = "replace" if state.manifest is not None else "new"
    wanted = [s.name for s in plan.shards] + ([LABELS] if plan.tasks else []) + [MANIFEST]
    owned = state.owned()
    foreign = [name for name in wanted if name in state.names and name not in owned]
    if foreign:
        raise UsageError(f"{out.path / foreign[0]}: exists and was not written by a conversion here (no manifest "
                         "or journal lists it); move it away, or choose another OUT or --prefix")
    return action


def _dry_run(root: Path, out: Store, plan: Plan, options: dict, jobs: int, resume: bool, overwrite: bool,
             skip_invalid: bool, row_group_size: int, notes: list[str]) -> ConvertEstimate:
    state = inspect(out) if out.exists() else OutState([])
    action = _decide(out, state, plan, resume, overwrite)
    total = sum(src.est_bytes for s in plan.shards for src in s.sources)
    rate = measure_rate(_shard_jobs(root, out.path, plan, options, skip_invalid, row_group_size, set())[0]) \
        if plan.shards else None
    return ConvertEstimate(out.path, options["to"], plan.n_records, len(plan.shards), total, jobs, rate,
                           estimate_seconds(total, rate, jobs, len(plan.shards)), action, list(plan.skipped), notes)


def _shard_jobs(root: Path, target: Any, plan: Plan, options: dict, skip_invalid: bool, row_group_size: int,
                done: set[str]) -> list[ShardJob]:
    return [
        ShardJob(root, target, options["to"], options["codec"], plan.layout, plan.modalities, plan.tasks,
                 {task: {s.id: labels[s.id] for s in shard.sources if s.id in labels}
                  for task, labels in plan.labels.items()},
                 shard, skip_invalid, row_group_size, options.get("parquet_arrays", "binary"))
        for shard in plan.shards if shard.name not in done
    ]


def _sources_digest(stats: dict[str, list]) -> str:
    """One digest of the size and mtime (or ETag) of every source file of a shard (`file_stats`)."""
    return hashlib.sha256(json.dumps(stats, sort_keys=True).encode()).hexdigest()


def _reuse_finished(root: Path, out: Store, plan: Plan, data: dict) -> dict[str, ShardResult]:
    """The shards of a finished output that still match the source (same plan, same source files, same
    bytes in OUT): --resume on a finished output re-checks all of it."""
    manifest = Manifest(data, out.path)  # checked: names, counts and index entries are what they claim
    if manifest.get("fingerprint") != plan.fingerprint:
        raise UsageError(f"{out.path}: the finished conversion there came from other data or options; "
                         "use --overwrite")
    specs = {s.name: s for s in plan.shards}
    done: dict[str, ShardResult] = {}
    for shard in manifest.shards:
        spec_ = specs.get(shard["name"])
        if spec_ is None or out.size(shard["name"]) != shard["bytes"]:
            continue  # deleted or replaced since: write it again
        stats = file_stats(root, spec_)
        if shard.get("sources") != _sources_digest(stats):
            continue  # a source file changed (or an older manifest without the digest): write it again
        done[shard["name"]] = ShardResult(shard["name"], shard["records"], shard["bytes"], shard["sha256"],
                                          index=manifest.by_shard.get(shard["index"], []),
                                          skipped=[Skipped(**s) for s in shard.get("skipped", [])],
                                          sources=stats)
    return done


def _load_state(root: Path, out: Store, plan: Plan, state: OutState, shard_dir: str) -> dict[str, ShardResult]:
    """Shards finished by an earlier, interrupted run of the same plan, whose sources did not change."""
    if state.journal is None:
        return {}
    if state.journal.get("fingerprint") != plan.fingerprint:
        raise UsageError(f"{out.path}: the source or the options changed since the interrupted run; use "
                         "--overwrite to start again")
    done: dict[str, ShardResult] = {}
    for shard in plan.shards:
        if shard.name not in state.finished_shards:
            continue
        data = json.loads(out.read_text(state_name(shard.name)))
        unchanged = data.get("sources") == file_stats(root, shard)
        if out.size(f"{shard_dir}{shard.name}") == data["bytes"] and unchanged:
            data["skipped"] = [Skipped(**s) for s in data.get("skipped", [])]
            done[shard.name] = ShardResult(**data)
    return done


@dataclass(frozen=True)
class _Unit:
    """One shard to write, and the OUT folder its state file goes to (shards may go to the staging area)."""

    job: ShardJob
    out: Any


def _hold_for_tests(name: str) -> None:
    if os.environ.get(HOLD_SHARD_ENV) == name:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        while True:  # until a signal's handler raises (Ctrl-C, SIGTERM) or the process is killed
            time.sleep(3600)


def _run_job(unit: _Unit) -> ShardResult:
    _hold_for_tests(unit.job.spec.name)
    result = write_shard(unit.job)
    open_store(unit.out).write_text(state_name(result.name), json.dumps(asdict(result), sort_keys=True))
    return result


def _journal(plan: Plan, options: dict, staging: bool, fresh: bool) -> str:
    """The journal of an unfinished run: what it plans to write (all --overwrite may remove), and, for a
    fresh run, its pid (a fresh run that fails before finishing a shard removes its journal again)."""
    return json.dumps({"fingerprint": plan.fingerprint, "options": options, "files": [s.name for s in plan.shards],
                       "staging": staging, "run": os.getpid() if fresh else None}, sort_keys=True)


def _run(root: Path, out: Store, plan: Plan, options: dict, executor: Executor, skip_invalid: bool,
         row_group_size: int, resume: bool, overwrite: bool, progress: Progress | None,
         on_start: Callable[[int], None] | None) -> ConvertResult:
    state = inspect(out)
    action = _decide(out, state, plan, resume, overwrite)
    if action != "resume":
        remove_journal(out, state)  # an unfinished run being replaced: only what it planned
    reused_from = None
    if action == "resume" and state.journal is not None:
        staging = bool(state.journal.get("staging"))
        done = _load_state(root, out, plan, state, f"{STAGING}/" if staging else "")
        reused_from = "interrupted"
    elif action == "resume":
        staging = False
        done = _reuse_finished(root, out, plan, state.manifest or {})
        reused_from = "finished"
    else:
        # Replacing a finished output: the new shards go to a staging area until all are written, and the
        # old output stays usable meanwhile. On an object store (no cheap rename) the old output is removed
        # now, after every check passed.
        staging = action == "replace" and out.atomic_rename
        if action == "replace" and not out.atomic_rename:
            remove_finished(out, state)
        done = {}
    shard_dir = f"{STAGING}/" if staging else ""
    if len(done) != len(plan.shards) or state.manifest is None:
        if action == "resume" and state.journal is None:
            for name, result in done.items():  # keep the re-checked shards resumable
                out.write_text(state_name(name), json.dumps(asdict(result), sort_keys=True))
            remove_finished(out, state, keep=set(done) | {LABELS})
        out.write_text(JOURNAL, _journal(plan, options, staging, fresh=action != "resume"))
    if on_start:
        on_start(plan.n_records)
    if progress:
        progress(sum(len(s.sources) for s in plan.shards if s.name in done))
    if plan.tasks and executor.jobs > 1:
        # The main process waits while workers write shards: import pyarrow (and the pandas it pulls
        # in) for labels.parquet meanwhile, instead of after the last shard.
        threading.Thread(target=_warm_pyarrow, daemon=True).start()
    jobs = _shard_jobs(root, out.path / shard_dir if shard_dir else out.path, plan, options, skip_invalid,
                       row_group_size, set(done))
    sizes = {s.name: len(s.sources) for s in plan.shards}
    units = [_Unit(job, out.path) for job in jobs]
    for result in executor.map(_run_job, units, names=[job.spec.name for job in jobs]):
        done[result.name] = result
        if progress:
            progress(sizes[result.name])
    results = [done[s.name] for s in plan.shards]
    skipped = list(plan.skipped) + [s for r in results for s in r.skipped]
    if plan.tasks:
        _write_labels(out, shard_dir + LABELS, plan, results)
    names = {s.name for s in plan.shards}
    out.remove_partials("", names | {LABELS, MANIFEST})  # a worker killed mid-shard may leave one
    if staging:
        _swap_in(out, state, names | ({LABELS} if plan.tasks else set()))
    elif action == "resume" and state.manifest is not None and state.journal is not None:
        remove_finished(out, state, keep=names | {LABELS})  # an interrupted replace, finished in place
    manifest = _manifest(root, plan, options, results, skipped)
    if options["to"] == "parquet":
        manifest["card"] = CARD
        out.write_text(CARD, dataset_card(manifest, _shard_schema(out, results)))
    out.write_text(MANIFEST, json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n")
    remove_state(out, names)
    written = len(jobs)
    return ConvertResult(out.path, options["to"], sum(r.records for r in results), len(results),
                         sum(r.bytes for r in results), written, skipped, out.path / MANIFEST,
                         reused_from if written < len(results) else None)


def _swap_in(out: Store, old: OutState, new: set[str]) -> None:
    """Replace the finished output with the staged one: the old manifest first (from then on OUT is an
    unfinished run that --resume completes), then the staged files, then old files not rewritten."""
    remove_finished(out, old, keep=new)
    for name in sorted(new):
        os.replace(out.path / STAGING / name, out.path / name)


def _shard_schema(out: Store, results: list[ShardResult]) -> Any:
    """The Arrow schema of the first non-empty shard (None when every shard is empty)."""
    import pyarrow.parquet as pq

    for result in results:
        if result.records:
            with out.open(result.name) as fh:
                return pq.read_schema(fh)
    return None


def _warm_pyarrow() -> None:
    import pyarrow as pa

    pa.array([0.0])


def _write_labels(out: Store, name: str, plan: Plan, results: list[ShardResult]) -> None:
    ids = [entry[0] for r in results for entry in r.index]
    with out.writing(name) as temp:
        write_labels_parquet(temp, ids, plan.labels, plan.tasks)


def _manifest(root: Path, plan: Plan, options: dict, results: list[ShardResult], skipped: list[Skipped]) -> dict:
    index = {}
    shards = []
    for number, result in enumerate(results):
        for loc_id, row, offset, size in result.index:
            index[loc_id] = [number, row, offset, size]
        entry = {"index": number, "name": result.name, "records": result.records, "bytes": result.bytes,
                 "sha256": result.sha256, "sources": _sources_digest(result.sources)}
        if result.index:
            entry["first_id"], entry["last_id"] = result.index[0][0], result.index[-1][0]
        shards.append(entry)
    return {
        **format_stamp("manifest"),
        "output_format": options["to"],
        "codec": options["codec"],
        "options": options,
        "source": {"root": open_store(root).describe(), "layout": plan.layout},
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

