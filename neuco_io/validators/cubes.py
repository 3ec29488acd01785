"""Cube checks: one file at a time, so they run in worker processes.

`check_cube` opens one cube, runs every metadata check on its `CubeInfo`
(no image chunk decoded), optionally decodes one timestamp to vote on the S2
offset, and with `deep` decodes every chunk of every array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from neuco_io import spec
from neuco_io.cube.reader import Cube, CubeInfo
from neuco_io.errors import CubeError, CubeFormatError, CubeReadError
from neuco_io.findings import CODES, MAX_LISTED, Finding, listed
from neuco_io.layout import CubeFile


@dataclass(frozen=True)
class CubeTask:
    cube: CubeFile
    layout: str
    deep: bool = False
    probe_offset: bool = False


@dataclass
class CubeResult:
    cube: CubeFile
    findings: list[Finding] = field(default_factory=list)
    sample_ids: list[str] | None = None
    offset_vote: str | None = None
    """"offset", "none" or None (undecided / not examined): what the S2 values look like."""
    decoded_bytes: int = 0
    size: int | None = None
    """File bytes as the worker found them on opening (None when the cube did not open)."""


@dataclass(frozen=True)
class _Ctx:
    cube: CubeFile
    layout: str
    info: CubeInfo

    @property
    def modality(self) -> spec.Modality:
        return spec.MODALITIES[self.cube.modality]

    @property
    def downstream(self) -> bool:
        return self.layout == "downstream"

    def finding(self, code: str, message: str, **kw) -> Finding:
        kw.setdefault("id", self.cube.stem if self.downstream else None)
        return Finding(code, str(self.cube.path), message, **kw)


# -- metadata checks ----------------------------------------------------------
def check_zip(ctx: _Ctx) -> Iterator[Finding]:
    if not ctx.info.consolidated:
        yield ctx.finding("cubes.not-consolidated", "no consolidated metadata (.zmetadata)")
    if ctx.info.zip_compressed:
        yield ctx.finding("cubes.zip-compressed", "zip members are deflated; the public cubes use a stored zip")


def check_bands(ctx: _Ctx) -> Iterator[Finding]:
    bands = ctx.info.bands
    modality = ctx.modality
    if bands is None:
        yield ctx.finding("cubes.missing-bands", "no `bands` variable")
        return
    if bands.dims != spec.DIMS:
        yield ctx.finding("cubes.dims", f"`bands` dims are {bands.dims}, expected {spec.DIMS}",
                          expected=list(spec.DIMS), got=list(bands.dims))
    if len(bands.shape) == len(spec.DIMS):
        n_samples, n_times, n_bands, height, width = bands.shape
        problems = []
        if n_times != spec.N_TIMES:
            problems.append(f"{n_times} timestamps, expected {spec.N_TIMES}")
        if n_bands != modality.n_bands:
            problems.append(f"{n_bands} bands, expected {modality.n_bands} for {modality.name}")
        if (height, width) != (spec.SIZE, spec.SIZE):
            problems.append(f"{height}x{width} pixels, expected {spec.SIZE}x{spec.SIZE}")
        if ctx.downstream and n_samples != 1:
            problems.append(f"{n_samples} samples, expected 1 in a downstream cube")
        if n_samples < 1:
            problems.append("no samples")
        if problems:
            yield ctx.finding("cubes.shape", "`bands` has " + "; ".join(problems), got=list(bands.shape))
        if len(bands.chunks) == len(spec.DIMS) and bands.chunks[1] > 1 and n_times > 1:
            yield ctx.finding("cubes.chunking", f"`bands` chunks {bands.chunks} span {bands.chunks[1]} timestamps",
                              got=list(bands.chunks))
    elif bands.dims == spec.DIMS:  # dims attribute right but array rank wrong
        yield ctx.finding("cubes.shape", f"`bands` has shape {bands.shape}", got=list(bands.shape))
    if bands.dtype not in modality.dtypes:
        yield ctx.finding("cubes.dtype", f"`bands` is {bands.dtype}; {modality.name} accepts "
                          f"{', '.join(modality.dtypes)}", expected=list(modality.dtypes), got=bands.dtype)


def check_band_names(ctx: _Ctx) -> Iterator[Finding]:
    if "band" not in ctx.info.coords:
        yield ctx.finding("cubes.band-names", "no 1-D `band` coordinate")
        return
    names = ctx.info.band_names
    expected = list(ctx.modality.bands)
    if names != expected:
        yield ctx.finding("cubes.band-names", f"band names {names} differ from {expected}",
                          expected=expected, got=names)


def check_samples(ctx: _Ctx) -> Iterator[Finding]:
    if "sample" not in ctx.info.coords:
        yield ctx.finding("cubes.sample-id", "no 1-D `sample` coordinate")
        return
    samples = ctx.info.sample_ids
    bands = ctx.info.bands
    if bands is not None and bands.shape and len(samples) != bands.shape[0]:
        yield ctx.finding("cubes.sample-id", f"`sample` has {len(samples)} values for {bands.shape[0]} samples")
    if ctx.downstream:
        if samples != [ctx.cube.stem]:
            yield ctx.finding("cubes.sample-id", f"sample coordinate {samples} differs from the file's id",
                              expected=[ctx.cube.stem], got=samples)
    else:
        seen: set[str] = set()
        for sample in samples:
            if sample in seen:
                yield ctx.finding("cubes.duplicate-sample", f"sample id {sample!r} appears twice", id=sample)
            seen.add(sample)


def _is_index(values: list) -> bool:
    return values == list(range(len(values)))


def _is_map_coordinate(value: object) -> bool:
    """A finite real number far outside the pixel range (a coordinate may hold any type in a crafted cube)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and abs(value) > 10 * spec.SIZE


def check_coords(ctx: _Ctx) -> Iterator[Finding]:
    for name in ("time", "y", "x"):
        values = ctx.info.coords.get(name)
        if values is None:
            yield ctx.finding("cubes.coords", f"no 1-D `{name}` coordinate")
        elif not _is_index(values):
            looks_geographic = name in ("x", "y") and any(_is_map_coordinate(v) for v in values)
            if ctx.downstream and looks_geographic:
                yield ctx.finding("cubes.georef", f"`{name}` holds map coordinates "
                                  f"({values[0]} .. {values[-1]}), not pixel indices: it leaks the location")
            else:
                yield ctx.finding("cubes.coords", f"`{name}` is not 0..{len(values) - 1}",
                                  got=[values[0], values[-1]] if values else [])


def check_variables(ctx: _Ctx) -> Iterator[Finding]:
    if not ctx.downstream:
        return
    known = {spec.BANDS_VAR, *spec.COORDINATES}
    for name in sorted(ctx.info.arrays):
        if name in known:
            continue
        if name.lower() in spec.GEOREF_VARIABLES:
            yield ctx.finding("cubes.georef", f"variable `{name}` is georeferencing: it leaks the location",
                              got=name)
        else:
            yield ctx.finding("cubes.extra-variable", f"unexpected variable `{name}`", got=name)
    attr_sets = [("group", ctx.info.group_attrs)] + [(f"`{n}`", a.attrs) for n, a in sorted(ctx.info.arrays.items())]
    for where, attrs in attr_sets:
        leaks = sorted(k for k in attrs if k.lower() in spec.GEOREF_ATTRS)
        if leaks:
            yield ctx.finding("cubes.georef", f"{where} attributes {leaks} are georeferencing: they leak the location",
                              got=leaks)


METADATA_CHECKS: tuple[Callable[[_Ctx], Iterable[Finding]], ...] = (
    check_zip, check_bands, check_band_names, check_samples, check_coords, check_variables,
)


# -- values -------------------------------------------------------------------
def offset_vote(image: np.ndarray) -> str | None:
    """Does one S2 timestamp (band, y, x) look offset by +1000? "offset", "none" or None.

    Without the offset, dark surfaces and the cirrus band sit far below 1000 DN;
    with it, nothing valid does (0 is no-data). Every 4th pixel is enough.
    """
    if image.dtype.kind not in "iu":
        return None
    sub = image[..., ::4, ::4]
    valid = sub[sub > 0]
    if valid.size < 100:
        return None
    below = np.count_nonzero(valid < spec.S2_OFFSET) / valid.size
    if below < 0.002:
        return "offset"
    if below > 0.02:
        return "none"
    return None


def majority(votes: Iterable[str | None]) -> str | None:
    decided = [v for v in votes if v]
    if not decided:
        return None
    offset = decided.count("offset")
    return "offset" if offset * 2 > len(decided) else "none" if offset * 2 < len(decided) else None


def _is_empty(image: np.ndarray) -> bool:
    """All zero or all NaN. A sparse look first: real images show a value within a few pixels."""
    probe = image[..., ::16, ::16]
    if image.dtype.kind == "f":
        if (probe[~np.isnan(probe)] != 0).any():
            return False
        return bool(np.isnan(image).all() or not np.nan_to_num(image).any())
    return not probe.any() and not image.any()


def deep_scan(cube: Cube, ctx: _Ctx, result: CubeResult) -> None:
    """Decode every stored chunk of every array; check each `bands` timestamp.

    Coordinates were decoded by `Cube.info` already; the offset vote looks at
    the first timestamp of each sample, as the metadata-level probe does.
    Only the chunks the zip holds are decoded (an absent one is the fill
    value), so the work is bounded by the file, not by the shape it claims.
    """
    missing, corrupt, empty, nonfinite, votes = [], [], [], [], []
    sample_ids = ctx.info.sample_ids
    is_s2 = ctx.modality.s2
    for name in cube.array_names:
        if name in ctx.info.coords:
            continue
        if name == spec.BANDS_VAR:  # elsewhere an absent chunk is a legitimate fill value
            missing.extend(_absent_chunks(cube, name))
        for index in cube.stored_chunks(name):
            key = cube.chunk_key(name, index)
            try:
                chunk = cube.read_chunk(name, index)
            except CubeError:
                corrupt.append(key)
                continue
            result.decoded_bytes += chunk.nbytes
            if name != spec.BANDS_VAR or chunk.ndim != 5:
                continue
            for s, t, image in _timestamps(chunk, index, cube.chunks(name), cube.shape(name)):
                label = f"({sample_ids[s] if s < len(sample_ids) else s}, time {t})"
                if _is_empty(image):
                    empty.append(label)
                elif is_s2 and image.dtype.kind == "f" and not np.isfinite(image).all():
                    nonfinite.append(label)
                if is_s2 and t == 0:
                    votes.append(offset_vote(image))
    if corrupt:
        result.findings.append(ctx.finding("cubes.corrupt-chunk", f"{len(corrupt)} chunk(s) do not decode: "
                                           f"{listed(corrupt)}", got=corrupt[:MAX_LISTED]))
    if missing:
        result.findings.append(ctx.finding("cubes.missing-chunk", f"{len(missing)} chunk(s) absent (read as fill "
                                           f"value): {listed(missing)}", got=missing[:MAX_LISTED]))
    if empty:
        result.findings.append(ctx.finding("cubes.empty-timestamp", f"{len(empty)} timestamp(s) all zero or NaN: "
                                           f"{listed(empty)}", got=empty[:MAX_LISTED]))
    if nonfinite:
        result.findings.append(ctx.finding("cubes.nonfinite", f"NaN or infinity in S2 values at {listed(nonfinite)}",
                                           got=nonfinite[:MAX_LISTED]))
    if is_s2:
        result.offset_vote = majority(votes)


def _absent_chunks(cube: Cube, name: str) -> list[str]:
    """Keys of the chunks of `name` the zip lacks (the grid is at most zarrv2.MAX_CHUNKS)."""
    return [cube.chunk_key(name, index) for index in np.ndindex(*cube.chunk_grid(name))
            if not cube.has_chunk(name, index)]


def _timestamps(chunk: np.ndarray, index: tuple[int, ...], chunks: tuple[int, ...], shape: tuple[int, ...]):
    """(sample, time, image) for each in-bounds timestamp of a `bands` chunk."""
    s0, t0 = index[0] * chunks[0], index[1] * chunks[1]
    for ds in range(min(chunks[0], shape[0] - s0)):
        for dt in range(min(chunks[1], shape[1] - t0)):
            yield s0 + ds, t0 + dt, chunk[ds, dt]


# -- entry point --------------------------------------------------------------
ERROR_CODES = {"codec": "cubes.codec", "too-large": "cubes.too-large"}
"""CubeError reasons that have a finding code of their own."""


def error_finding(exc: CubeError, cube_file: CubeFile, layout: str, default: str) -> Finding:
    """The finding for a cube that raised: its reason's own code, else `default`."""
    own_id = cube_file.stem if layout == "downstream" else None
    return Finding(ERROR_CODES.get(exc.reason, default), str(cube_file.path), exc.message, id=own_id, got=exc.reason)


def metadata_findings(cube: Cube, cube_file: CubeFile, layout: str) -> tuple[CubeInfo | None, list[Finding]]:
    """The metadata-level checks of an open cube (no image chunk decoded)."""
    try:
        info = cube.info()
    except CubeError as exc:
        return None, [error_finding(exc, cube_file, layout, "cubes.corrupt-chunk")]
    ctx = _Ctx(cube_file, layout, info)
    return info, [finding for check in METADATA_CHECKS for finding in check(ctx)]


def blocking(findings: Iterable[Finding]) -> Finding | None:
    """The first finding that makes the cube unusable, if any."""
    return next((f for f in findings if CODES[f.code].blocking), None)


def require_usable(cube: Cube, cube_file: CubeFile, layout: str) -> CubeInfo:
    """The cube's info when no blocking finding applies; else CubeFormatError naming the finding.

    What converters and the loader run before reading values: a cube whose metadata is wrong (a
    claimed 15000x15000 image, the wrong bands) is refused before anything is allocated for it.
    """
    info, findings = metadata_findings(cube, cube_file, layout)
    bad = blocking(findings)
    if bad is not None:
        raise CubeFormatError(cube_file.path, f"{bad.code}: {bad.message}", reason=bad.code)
    return info


def check_cube(task: CubeTask) -> CubeResult:
    """All checks of one cube. Never raises for a bad file: problems become findings."""
    result = CubeResult(task.cube)
    try:
        cube = Cube(task.cube.path)
    except CubeError as exc:
        default = "cubes.unreadable" if isinstance(exc, CubeReadError) else "cubes.not-zarr"
        result.findings.append(error_finding(exc, task.cube, task.layout, default))
        return result
    result.size = cube.size
    with cube:
        info, findings = metadata_findings(cube, task.cube, task.layout)
        result.findings.extend(findings)
        if info is None:
            return result
        ctx = _Ctx(task.cube, task.layout, info)
        if "sample" in info.coords:
            result.sample_ids = info.sample_ids
        # a cube with a blocking finding (a claimed 15000x15000 image...) gets no value read: only --deep
        # reads it, chunk by stored chunk, each decode capped by the chunk size its metadata declares
        usable = info.bands is not None and blocking(findings) is None
        if task.deep:
            deep_scan(cube, ctx, result)
        elif task.probe_offset and usable and ctx.modality.s2:
            try:
                result.offset_vote = offset_vote(cube.read(spec.BANDS_VAR, (0, 0)))
            except CubeError as exc:
                result.findings.append(ctx.finding("cubes.corrupt-chunk", exc.message))
    return result


def check_cubes(tasks: list[CubeTask]) -> list[CubeResult]:
    """A batch of cubes: the unit of work sent to a worker process."""
    return [check_cube(task) for task in tasks]
