"""`neuco-io task import`: a user's imagery -> downstream-layout cubes for a custom NeuCo-Bench task.

Sources are one file per location, modality and season, listed in a CSV
(`id,modality,season,path`) or found under a folder with a pattern such as
`{id}/{modality}_{season}.tif`. Every location must bring all three
modalities and four seasons, with the modality's band count, 264x264 pixels
(or `resample`). Cubes are written exactly like the public ones, with no
georeferencing; that can be kept in a separate private file. Ids are the
user's own (`ids="keep"`) or content hashes (`ids="hash"`, 64 hex characters
like the public ids) with the mapping written outside ROOT. A location that
cannot be imported is reported and the others go on. Writes are atomic and
a rerun skips the cubes already written.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import evaluator, spec
from neuco_io.cube.rasters import RESAMPLING, RasterError, fit_dtype, read_raster, resample
from neuco_io.cube.writer import CubeWriter
from neuco_io.errors import UsageError
from neuco_io.execution import Executor, Progress, make_executor
from neuco_io.findings import CODES, Finding, Report
from neuco_io.storage.atomic import atomic_path
from neuco_io.storage.local import require_regular_file

__all__ = ["ImportResult", "Refusal", "import_task", "mapping_path", "read_mapping"]


@dataclass(frozen=True)
class Refusal:
    """A location (or source row) that was not imported, and why."""

    id: str | None
    reason: str
    path: str | None = None
    code: str = field(kw_only=True)
    """Its registered code (`import.*`; `ids.evaluator-changes` for a flagged id)."""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered code {self.code!r}")


@dataclass
class ImportResult:
    root: Path
    imported: list[str] = field(default_factory=list)
    """Ids whose cubes this run wrote."""
    skipped: list[str] = field(default_factory=list)
    """Ids already complete in ROOT (a rerun)."""
    refused: list[Refusal] = field(default_factory=list)
    flagged: list[Refusal] = field(default_factory=list)
    """Ids imported (or already there) that NeuCo-Bench's evaluator may read as something else in a submission:
    rename them (`validate` reports them as ids.evaluator-changes)."""
    mapping: Path | None = None
    locations: Path | None = None

    @property
    def report(self) -> Report:
        """Refused and flagged locations as findings (`import.*`, `ids.evaluator-changes`) in the one `Report`."""
        report = Report(str(self.root), checks=("import", "ids"))
        report.extend(Finding(r.code, r.path or str(self.root), r.reason, id=r.id)
                      for r in [*self.refused, *self.flagged])
        return report

    def to_dict(self) -> dict[str, Any]:
        """What `task import --format json` prints."""
        return {"root": str(self.root), "imported": len(self.imported), "skipped": len(self.skipped),
                "refused": [vars(r) for r in self.refused], "flagged": [vars(r) for r in self.flagged],
                "ids": self.imported, "mapping": str(self.mapping) if self.mapping else None,
                "locations": str(self.locations) if self.locations else None}


MAX_ID_BYTES = 200
"""`<id>.zarr.zip`, and the temporary name it is written under first, must fit a 255-byte file name."""


def mapping_path(root: Path) -> Path:
    """Where `ids="hash"` keeps the id mapping by default: beside ROOT, never inside it."""
    root = root.resolve()
    return root.parent / f"{root.name}.ids.csv"


def _from_table(table: Path) -> tuple[dict[str, dict[str, dict[int, str]]], list[Refusal]]:
    sources: dict[str, dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
    refused: list[Refusal] = []
    try:
        require_regular_file(table)
        with table.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"id", "modality", "season", "path"} - set(reader.fieldnames or [])
            if missing:
                raise UsageError(f"{table}: the source table needs columns id, modality, season, path "
                                 f"(missing {', '.join(sorted(missing))})")
            for line, row in enumerate(reader, start=2):
                loc_id, modality = (row["id"] or "").strip(), (row["modality"] or "").strip().lower()
                path = (row["path"] or "").strip()
                try:
                    season = spec.season_index(row["season"] or "")
                except ValueError as exc:
                    refused.append(Refusal(loc_id or None, f"line {line}: {exc}", path, code="import.table-row"))
                    continue
                if modality not in spec.DOWNSTREAM_MODALITIES:
                    refused.append(Refusal(loc_id or None, f"line {line}: modality {modality!r} is not one of "
                                           f"{', '.join(spec.DOWNSTREAM_MODALITIES)}", path, code="import.table-row"))
                    continue
                resolved = Path(path) if Path(path).is_absolute() else table.parent / path
                if season in sources[loc_id][modality]:
                    refused.append(Refusal(loc_id, f"line {line}: a second file for {modality} {spec.SEASONS[season]}",
                                           str(resolved), code="import.duplicate-file"))
                    continue
                sources[loc_id][modality][season] = str(resolved)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{table}: cannot read the source table: {exc}") from None
    return sources, refused


def _pattern_regex(pattern: str) -> re.Pattern:
    parts = re.split(r"(\{id\}|\{modality\}|\{season\})", pattern)
    tokens = {"{id}": r"(?P<id>[^/]+?)", "{modality}": f"(?P<modality>{'|'.join(spec.DOWNSTREAM_MODALITIES)})",
              "{season}": f"(?P<season>{'|'.join((*spec.SEASONS, *spec.SEASON_ALIASES))}|[0-3])"}
    if not all(t in pattern for t in tokens):
        raise UsageError(f"--pattern {pattern!r} must contain {{id}}, {{modality}} and {{season}}")
    return re.compile("^" + "".join(tokens.get(p, re.escape(p)) for p in parts) + "$", re.IGNORECASE)


def _from_folder(folder: Path, pattern: str) -> tuple[dict[str, dict[str, dict[int, str]]], list[Refusal]]:
    regex = _pattern_regex(pattern)
    sources: dict[str, dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
    refused: list[Refusal] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        match = regex.match(path.relative_to(folder).as_posix())
        if not match:
            continue
        loc_id, modality = match["id"], match["modality"].lower()
        season = spec.season_index(match["season"])
        if season in sources[loc_id][modality]:
            refused.append(Refusal(loc_id, f"two files for {modality} {spec.SEASONS[season]}", str(path),
                                   code="import.duplicate-file"))
            continue
        sources[loc_id][modality][season] = str(path)
    return sources, refused


@dataclass(frozen=True)
class _Unit:
    source_id: str
    files: dict[str, dict[int, str]]
    resample: str | None


@dataclass
class _Loaded:
    source_id: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    georef: dict[str, dict[str, Any]] = field(default_factory=dict)
    refusal: Refusal | None = None
    content_id: str | None = None


def _resampled(modality: str, data: np.ndarray, method: str) -> np.ndarray:
    """Resampled to the cube size; interpolated S2 is rounded back to integer DNs, S1 kept in float."""
    out = resample(data, method)
    if method == "nearest":
        return out
    if spec.MODALITIES[modality].s2:
        return np.round(out)
    return out.astype(data.dtype if data.dtype.kind == "f" else np.float32)


def _load(unit: _Unit, *, hash_pixels: bool = False) -> _Loaded:
    """Read, check and convert one location's files (all or nothing); `hash_pixels`: also compute its content id."""
    loaded = _Loaded(unit.source_id)
    missing = [f"{m} {spec.SEASONS[s]}" for m in spec.DOWNSTREAM_MODALITIES for s in range(spec.N_TIMES)
               if s not in unit.files.get(m, {})]
    if missing:
        loaded.refusal = Refusal(unit.source_id, f"missing {', '.join(missing)}", code="import.missing-file")
        return loaded
    digest = hashlib.sha256() if hash_pixels else None
    for modality in spec.DOWNSTREAM_MODALITIES:
        mod = spec.MODALITIES[modality]
        seasons = []
        for season in range(spec.N_TIMES):
            path = unit.files[modality][season]
            try:
                raster = read_raster(path)
                data = raster.data
                if data.shape[0] != mod.n_bands:
                    raise RasterError(f"{data.shape[0]} bands; {modality} has {mod.n_bands} "
                                      f"({', '.join(mod.bands)})")
                if data.shape[1:] != (spec.SIZE, spec.SIZE):
                    if unit.resample is None:
                        raise RasterError(f"{data.shape[1]}x{data.shape[2]} pixels; cubes are "
                                          f"{spec.SIZE}x{spec.SIZE} (or pass --resample nearest|bilinear)")
                    data = _resampled(modality, data, unit.resample)
                seasons.append(fit_dtype(modality, data))
                if raster.georef:
                    loaded.georef.setdefault(modality, {})[spec.SEASONS[season]] = raster.georef
            except RasterError as exc:
                loaded.refusal = Refusal(unit.source_id, f"{modality} {spec.SEASONS[season]}: {exc}", path,
                                         code="import.bad-image")
                return loaded
        dtype = np.result_type(*seasons)
        stack = np.stack([s.astype(dtype) for s in seasons])
        if mod.s2 and dtype == np.int32:  # int16 and uint16 seasons mixed
            stack = fit_dtype(modality, stack)
        loaded.arrays[modality] = stack
        if digest is not None:
            digest.update(f"{modality}|{stack.dtype.str}|{stack.shape}|".encode())
            digest.update(stack.tobytes())
    if digest is not None:
        loaded.content_id = digest.hexdigest()
    return loaded


@dataclass(frozen=True)
class _WriteJob:
    unit: _Unit
    target_id: str
    paths: dict[str, str]
    """modality -> cube path."""


def _content_id(unit: _Unit) -> _Loaded:
    """Phase one of `ids="hash"`: read and check a location, keep only its content id (or refusal)."""
    loaded = _load(unit, hash_pixels=True)
    loaded.arrays = {}
    return loaded


def _write(job: _WriteJob) -> tuple[_Loaded, str | None]:
    """Load and write one location (the cubes not written yet); returns (loaded, final id)."""
    loaded = _load(job.unit)
    if loaded.refusal is not None:
        return loaded, None
    final_id = job.target_id
    for modality, target in job.paths.items():
        path = Path(target)
        if path.is_file():
            continue
        with CubeWriter(path, modality, [final_id], dtype=loaded.arrays[modality].dtype, overwrite=True) as writer:
            writer.write_sample(0, loaded.arrays[modality])
    loaded.arrays = {}  # do not send the pixels back to the main process
    return loaded, final_id


def _existing(root: Path) -> tuple[dict[str, dict[str, Path]], dict[str, int]]:
    """Cubes already in ROOT/data: id -> modality -> path; and files per part folder."""
    cubes: dict[str, dict[str, Path]] = defaultdict(dict)
    parts: dict[str, int] = defaultdict(int)
    for modality in spec.DOWNSTREAM_MODALITIES:
        folder = root / "data" / modality
        if not folder.is_dir():
            continue
        for part in sorted(folder.iterdir()):
            if part.is_dir() and spec.PART_RE.match(part.name):
                found = list(part.glob(f"*{spec.CUBE_SUFFIX}"))
                for cube in found:
                    cubes[spec.strip_cube_suffix(cube.name)][modality] = cube
                if found:  # a part folder's size counts every file in it, listed once
                    parts[part.name] = max(parts[part.name], sum(1 for _ in part.iterdir()))
    return cubes, parts


class _PartAllocator:
    """New cubes fill the last part folder to 1,000 files, then open the next one."""

    def __init__(self, parts: dict[str, int]) -> None:
        self.index = max((int(p.split("-")[1]) for p in parts), default=0)
        self.used = parts.get(f"part-{self.index:06d}", 0)

    def next(self) -> str:
        if self.used >= spec.MAX_FILES_PER_PART:
            self.index += 1
            self.used = 0
        self.used += 1
        return f"part-{self.index:06d}"


def _read_locations(path: Path) -> dict:
    """The georeferences a previous import saved in `--locations` (empty when there is none)."""
    if not path.exists():
        return {}
    try:
        require_regular_file(path)
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--locations {path}: cannot read it as JSON: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if not isinstance(previous, dict):
        raise UsageError(f"--locations {path}: not a JSON object of locations")
    return previous


def read_mapping(path: Path) -> dict[str, str]:
    """source id -> id, from the private mapping file of `--ids hash` (empty when there is none)."""
    if not path.exists():
        return {}
    try:
        require_regular_file(path)
    except OSError as exc:
        raise UsageError(f"--mapping {path}: {exc.strerror}") from None
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["source_id"]: row["id"] for row in csv.DictReader(fh)}


def import_task(
    src: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    pattern: str | None = None,
    ids: str = "keep",
    mapping: str | os.PathLike[str] | None = None,
    locations: str | os.PathLike[str] | None = None,
    resample_method: str | None = None,
    jobs: int | None = 1,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import SRC (a CSV table, or a folder with `pattern`) into ROOT's downstream layout."""
    src, root = Path(src), Path(root)
    if ids not in ("keep", "hash"):
        raise UsageError("--ids must be keep or hash")
    if resample_method is not None and resample_method not in RESAMPLING:
        raise UsageError(f"--resample must be one of {', '.join(RESAMPLING)}")
    if src.is_dir():
        if not pattern:
            raise UsageError(f"{src} is a folder: pass --pattern, e.g. '{{id}}/{{modality}}_{{season}}.tif'")
        sources, refused = _from_folder(src, pattern)
    elif src.exists():
        sources, refused = _from_table(src)  # a FIFO or device is refused there, named
    else:
        raise UsageError(f"{src}: no such file or folder")
    mapping_file = Path(mapping) if mapping else mapping_path(root) if ids == "hash" else None
    for private, what in ((mapping_file, "--mapping"), (Path(locations) if locations else None, "--locations")):
        if private is not None and root.resolve() in private.resolve().parents:
            raise UsageError(f"{what} {private} is inside ROOT: it would publish what the benchmark hides")
    result = ImportResult(root, refused=list(refused), mapping=mapping_file,
                          locations=Path(locations) if locations else None)
    known = read_mapping(mapping_file) if mapping_file else {}
    existing, parts = _existing(root)
    allocator = _PartAllocator(parts)
    units = {sid: _Unit(sid, {m: dict(s) for m, s in sources[sid].items()}, resample_method)
             for sid in sorted(sources)}
    georefs: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(make_executor(jobs, len(units)))
        targets: dict[str, str] = {}
        if ids == "keep":
            for sid in units:
                if not sid or not spec.ID_RE.match(sid):
                    result.refused.append(Refusal(sid, "id may hold only letters, digits and _-.",
                                                  code="import.bad-id"))
                elif (why := evaluator.unusable_id(sid)) is not None:
                    result.refused.append(Refusal(sid, why, code="import.bad-id"))
                elif len(sid.encode()) > MAX_ID_BYTES:
                    result.refused.append(Refusal(f"{sid[:40]}...", f"id is {len(sid.encode())} bytes long; at most "
                                                  f"{MAX_ID_BYTES} (its cube file name must fit the file system's "
                                                  "255-byte limit)", code="import.bad-id"))
                else:
                    targets[sid] = sid
        else:
            # Content ids first (the id decides the part folder), then the writes.
            todo = [u for sid, u in units.items() if sid not in known]
            targets.update({sid: known[sid] for sid in units if sid in known})
            owner: dict[str, str] = {v: k for k, v in known.items()}
            for loaded in executor.map(_content_id, todo):
                if loaded.refusal is not None:
                    result.refused.append(loaded.refusal)
                elif loaded.content_id in owner and owner[loaded.content_id] != loaded.source_id:
                    result.refused.append(Refusal(loaded.source_id, f"identical imagery to "
                                                  f"{owner[loaded.content_id]!r}: same content id",
                                                  code="import.duplicate-imagery"))
                else:
                    owner[loaded.content_id] = loaded.source_id
                    targets[loaded.source_id] = known[loaded.source_id] = loaded.content_id
        jobs_list: list[_WriteJob] = []
        for sid, target in targets.items():
            if all(m in existing.get(target, {}) for m in spec.DOWNSTREAM_MODALITIES):
                result.skipped.append(target)
                continue
            # a new id fills the current part folder; an id partly written keeps its folder
            part = next((p.parent.name for p in existing.get(target, {}).values()), None) or allocator.next()
            paths = {m: str(root / "data" / m / part / f"{target}{spec.CUBE_SUFFIX}")
                     for m in spec.DOWNSTREAM_MODALITIES}
            jobs_list.append(_WriteJob(units[sid], target, paths))
        for loaded, final_id in executor.map(_write, jobs_list):
            if progress:
                progress(1)
            if loaded.refusal is not None:
                result.refused.append(loaded.refusal)
                continue
            result.imported.append(final_id)
            if loaded.georef:
                georefs[final_id] = {"source_id": loaded.source_id, **loaded.georef}
    if ids == "keep":
        ours = set(result.imported) | set(result.skipped)
        risky = evaluator.ids_at_risk(ours | set(existing))
        result.flagged = [Refusal(i, evaluator.risk_message(i, read), code="ids.evaluator-changes")
                          for i, read in sorted(risky.items()) if i in ours]
    if ids == "hash" and mapping_file is not None:
        rows = sorted(known.items())
        with atomic_path(mapping_file) as temp, temp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["source_id", "id"])
            writer.writerows(rows)
    if locations is not None and georefs:
        previous = _read_locations(Path(locations))
        previous.update(georefs)
        with atomic_path(locations) as temp:
            temp.write_text(json.dumps(previous, indent=1, sort_keys=True), encoding="utf-8")
    return result
