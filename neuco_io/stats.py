"""`neuco-io stats`: per-band statistics of a dataset (cubes or converted shards), streamed and mergeable.

Every unit of work (a few locations, a v1.1 file or a shard) counts its
values into exact histograms (`sketch.ValueHistogram`) per modality, band and
season; the parts are merged by adding integer counts, so `--jobs`,
`--scheduler` and the order of the parts cannot change a single number. The
cube reader, layout discovery and shard reader do the reading.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuco_io import __version__, spec
from neuco_io.cube.reader import Cube
from neuco_io.errors import NeucoError, UsageError
from neuco_io.execution import Executor, Progress, make_executor
from neuco_io.layout import Layout, discover
from neuco_io.shards.manifest import is_shard_source
from neuco_io.shards.reader import read_shard
from neuco_io.sketch import PERCENTILES, ValueHistogram, add_bands, summarize

__all__ = ["STATS_FORMAT", "DatasetStats", "Partial", "choose_sample", "dataset_stats"]

STATS_FORMAT = "neuco-io.stats"
STATS_FORMAT_VERSION = 1
LOCATIONS_PER_UNIT = 4
"""Downstream locations per unit of work: fixed, so the parts do not depend on --jobs."""
FIELDS: tuple[str, ...] = ("count", "mean", "std", "min", "max", *(f"p{q:g}" for q in PERCENTILES),
                           "zero_fraction", "nan_fraction")


class StatsError(NeucoError, ValueError):
    """Data that cannot be summarized together (band names or dtypes differ between files)."""


# -- what a unit returns ------------------------------------------------------------------------
@dataclass
class Partial:
    """Histograms per (modality, band index, time index), and what is known about each modality."""

    histograms: dict[tuple[str, int, int], ValueHistogram] = field(default_factory=dict)
    bands: dict[str, list[str]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    locations: dict[str, int] = field(default_factory=dict)
    s2_offset: set[bool] = field(default_factory=set)
    """The `s2_offset` of the shard records read (empty for cubes: the layout decides)."""
    stride: int = 1
    """Count every `stride`-th row of pixels (1: every value)."""

    def add(self, modality: str, array: np.ndarray, bands: Sequence[str], where: str) -> None:
        """Count one location's (time, band, y, x) array."""
        self._describe(modality, list(bands), str(array.dtype), where)
        if self.stride > 1:  # whole rows: copying them is a memcpy each, where a 2-D stride gathers values
            array = array[..., ::self.stride, :]
        for t in range(array.shape[0]):
            add_bands([self._histogram(modality, b, t, array.dtype) for b in range(array.shape[1])], array[t])
        self.locations[modality] = self.locations.get(modality, 0) + 1

    def _histogram(self, modality: str, band: int, time: int, dtype: np.dtype) -> ValueHistogram:
        key = (modality, band, time)
        hist = self.histograms.get(key)
        if hist is None:
            hist = self.histograms[key] = ValueHistogram.for_values(dtype)
        return hist

    def _describe(self, modality: str, bands: list[str], dtype: str, where: str) -> None:
        known = self.bands.setdefault(modality, bands)
        if known != bands:
            raise StatsError(f"{where}: {modality} bands {bands} differ from {known} in other files; "
                             "run `neuco-io validate` to find the odd files")
        seen = self.dtypes.setdefault(modality, dtype)
        if seen != dtype and ValueHistogram.for_values(seen).dtype != ValueHistogram.for_values(dtype).dtype:
            raise StatsError(f"{where}: {modality} is {dtype} here and {seen} in other files")

    def merge(self, other: Partial) -> None:
        for modality, bands in other.bands.items():
            self._describe(modality, bands, other.dtypes[modality], "merging results")
        for key, hist in other.histograms.items():
            self.histograms.setdefault(key, ValueHistogram(hist.dtype)).merge(hist)
        for modality, n in other.locations.items():
            self.locations[modality] = self.locations.get(modality, 0) + n
        self.s2_offset |= other.s2_offset

    def compact(self) -> Partial:
        """Trim empty bins before the part travels back from a worker."""
        self.histograms = {k: h.compact() for k, h in self.histograms.items()}
        return self


# -- units of work ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CubeUnit:
    """Cube files to read: (modality, path, sample indices or None for every sample)."""

    files: tuple[tuple[str, Any, tuple[int, ...] | None], ...]
    stride: int = 1


@dataclass(frozen=True)
class ShardUnit:
    path: Any
    format: str
    rows: tuple[int, ...] | None
    modalities: tuple[str, ...] | None
    stride: int = 1


def _cube_bands(cube: Cube, modality: str) -> list[str]:
    try:
        return cube.band_names
    except NeucoError:  # no `band` coordinate: the spec's order
        return list(spec.MODALITIES[modality].bands)


def _portable_errors(collect: Callable[[Any], Partial]) -> Callable[[Any], Partial]:
    """Errors leave a worker process as StatsError (one message argument: it survives pickling)."""

    @functools.wraps(collect)
    def run(unit: Any) -> Partial:
        try:
            return collect(unit)
        except StatsError:
            raise
        except NeucoError as exc:
            raise StatsError(str(exc)) from None

    return run


@_portable_errors
def collect_cubes(unit: CubeUnit) -> Partial:
    """Count every chunk of `bands` of the unit's cubes (the sample(s) asked for)."""
    part = Partial(stride=unit.stride)
    for modality, path, samples in unit.files:
        with Cube(path) as cube:
            bands = _cube_bands(cube, modality)
            for sample in samples if samples is not None else range(cube.n_samples):
                part.add(modality, cube.read_location(sample), bands, str(path))
    return part.compact()


@_portable_errors
def collect_shard(unit: ShardUnit) -> Partial:
    """Count the arrays of a shard's records (the rows asked for, or all)."""
    part = Partial(stride=unit.stride)
    wanted = set(unit.rows) if unit.rows is not None else None
    for row, (meta, arrays) in enumerate(_shard_records(unit)):
        if wanted is not None and row not in wanted:
            continue
        where = f"{unit.path} [{meta.get('id')}]"
        if "s2_offset" in meta:
            part.s2_offset.add(bool(meta["s2_offset"]))
        for modality, array in arrays.items():
            bands = (meta.get("bands") or {}).get(modality) or list(spec.MODALITIES[modality].bands)
            part.add(modality, array, bands, where)
    return part.compact()


def _shard_records(unit: ShardUnit) -> Iterator[tuple[dict, dict[str, np.ndarray]]]:
    last = max(unit.rows) if unit.rows else None
    for record in read_shard(unit.path, unit.format, names=unit.modalities, last=last, reuse_buffers=True):
        yield record.meta, record.arrays(list(record.meta.get("modalities", [])))


# -- planning -----------------------------------------------------------------------------------
def choose_sample(total: int, sample: int | None, seed: int) -> list[int] | None:
    """Sorted indices of `sample` of `total` items, seeded; None for all."""
    if sample is None or sample >= total:
        return None
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(total, size=sample, replace=False))


@dataclass
class _Plan:
    units: list[Any]
    names: list[str]
    sizes: list[int]
    """Progress steps per unit (locations, or files for whole v1.1 files)."""
    collect: Callable[[Any], Partial]
    layout: str | None
    s2_offset: bool | None
    locations: int
    places: tuple = ()


def _plan_cubes(root: Any, layout: Layout | None, sample: int | None, seed: int,
                storage_options: dict | None, skip: frozenset[str] = frozenset(), stride: int = 1) -> _Plan:
    ds = discover(root, layout, storage_options)
    ds.cubes = [c for c in ds.cubes if str(c.path) not in skip]
    if ds.layout == "downstream":
        files = ds.downstream_files(ds.modalities or None)
        ids = list(files)
        picked = choose_sample(len(ids), sample, seed)
        ids = ids if picked is None else [ids[i] for i in picked]
        units, names, sizes = [], [], []
        for start in range(0, len(ids), LOCATIONS_PER_UNIT):
            batch = ids[start:start + LOCATIONS_PER_UNIT]
            units.append(CubeUnit(tuple((m, f.path, None) for i in batch for m, f in sorted(files[i].items())),
                                  stride))
            names.append(f"locations {batch[0]}..")
            sizes.append(len(batch))
        return _Plan(units, names, sizes, collect_cubes, ds.layout, False, len(ids), (ds.root,))
    groups = ds.v11_file_groups()
    counts: list[int] = []
    if sample is not None:
        for _, group in groups:
            with Cube(next(iter(group.values())).path) as cube:
                counts.append(cube.n_samples)
    picked = choose_sample(sum(counts), sample, seed) if sample is not None else None
    units, names, sizes = [], [], []
    offset = 0
    for n, ((split, name), group) in enumerate(groups):
        samples = None
        if picked is not None:
            samples = tuple(i - offset for i in picked if offset <= i < offset + counts[n])
            offset += counts[n]
            if not samples:
                continue
        units.append(CubeUnit(tuple((m, f.path, samples) for m, f in sorted(group.items())), stride))
        names.append(f"{split}/{name}")
        sizes.append(len(samples) if samples is not None else 1)
    total = len(picked) if picked is not None else len(groups)
    return _Plan(units, names, sizes, collect_cubes, ds.layout, True, total, (ds.root,))


def _plan_shards(source: Any, sample: int | None, seed: int, storage_options: dict | None, stride: int = 1
                 ) -> _Plan:
    from neuco_io.loader.sources import resolve_shards

    shards = resolve_shards(source, storage_options)
    manifest = shards.manifest or {}
    modalities = tuple(manifest["modalities"]) if manifest.get("modalities") else None
    picked = choose_sample(sum(shards.counts), sample, seed)
    units, names, sizes = [], [], []
    start = 0
    for path, count in zip(shards.paths, shards.counts):
        rows = None
        if picked is not None:
            rows = tuple(i - start for i in picked if start <= i < start + count)
        start += count
        if rows == ():
            continue
        units.append(ShardUnit(path, shards.format, rows, modalities, stride))
        names.append(getattr(path, "name", str(path)))
        sizes.append(len(rows) if rows is not None else count)
    offset = manifest.get("s2_offset")
    layout = (manifest.get("source") or {}).get("layout")
    return _Plan(units, names, sizes, collect_shard, layout, offset, sum(sizes), tuple(shards.paths))


# -- results ------------------------------------------------------------------------------------
def _season_name(t: int) -> str:
    return spec.SEASONS[t] if t < spec.N_TIMES else f"t{t}"


def _fields(hist: ValueHistogram) -> dict[str, Any]:
    s = summarize(hist)
    total = int(s["count"]) + int(s["nan"])
    return {**{k: s[f"{k}"] for k in FIELDS if k in s},
            "zero_fraction": s["zeros"] / total if total else None,
            "nan_fraction": s["nan"] / total if total else None}


@dataclass
class DatasetStats:
    """Statistics of a dataset: per modality and band, over all seasons and per season."""

    source: str
    input: str
    """"cubes" or "shards"."""
    layout: str | None
    s2_offset: bool | None
    sample: dict[str, int] | None
    partial: Partial
    stride: int = 1

    @property
    def modalities(self) -> list[str]:
        known = [m for m in spec.MODALITIES if m in self.partial.bands]
        return known + sorted(m for m in self.partial.bands if m not in known)

    def band_stats(self, modality: str, season: int | None = None) -> list[dict[str, Any]]:
        """Per band, the fields of FIELDS (over every season, or one season index)."""
        out = []
        for b in range(len(self.partial.bands[modality])):
            keys = [k for k in self.partial.histograms if k[0] == modality and k[1] == b
                    and (season is None or k[2] == season)]
            hist = ValueHistogram.for_values(self.partial.dtypes[modality])
            for key in sorted(keys):
                hist.merge(self.partial.histograms[key])
            out.append(_fields(hist))
        return out

    def seasons(self, modality: str) -> list[int]:
        return sorted({t for m, _, t in self.partial.histograms if m == modality})

    def to_dict(self) -> dict[str, Any]:
        """The stats.json document (see the README: its fields are what `normalize=` reads)."""
        modalities = {}
        for m in self.modalities:
            overall = self.band_stats(m)
            entry: dict[str, Any] = {"dtype": self.partial.dtypes[m], "bands": self.partial.bands[m],
                                     "locations": self.partial.locations.get(m, 0)}
            entry.update({k: [b[k] for b in overall] for k in FIELDS})
            entry["seasons"] = {}
            for t in self.seasons(m):
                per = self.band_stats(m, t)
                entry["seasons"][_season_name(t)] = {k: [b[k] for b in per] for k in FIELDS}
            modalities[m] = entry
        return {
            "format": STATS_FORMAT,
            "format_version": STATS_FORMAT_VERSION,
            "tool_version": __version__,
            "source": self.source,
            "input": self.input,
            "layout": self.layout,
            "s2_offset": self.s2_offset,
            "sample": self.sample,
            "stride": self.stride,
            "percentiles": list(PERCENTILES),
            "std": "population (ddof=0), over every finite value",
            "modalities": modalities,
        }


def dataset_stats(
    source: str | os.PathLike[str] | Sequence[str],
    *,
    layout: Layout | None = None,
    sample: int | None = None,
    seed: int = 0,
    jobs: int | None = None,
    scheduler: str | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    storage_options: dict | None = None,
    skip: Collection[str] = (),
    stride: int = 1,
) -> DatasetStats:
    """Statistics of a dataset ROOT (either layout) or of converted shards (folder, paths or pattern).

    `sample` reads that many locations (records), chosen with `seed`; the same
    seed picks the same locations. `skip` leaves out cube files (paths as text), such as those
    `validate` found unusable. `stride` > 1 counts every stride-th row of pixels only: `stride` times
    less counting, for statistics of those rows instead of every value.
    """
    if sample is not None and sample < 1:
        raise UsageError(f"--sample must be at least 1, got {sample}")
    if stride < 1:
        raise UsageError(f"--stride must be at least 1, got {stride}")
    shards = is_shard_source(source, storage_options)
    if shards:
        plan = _plan_shards(source, sample, seed, storage_options, stride)
    else:
        plan = _plan_cubes(source, layout, sample, seed, storage_options, frozenset(skip), stride)
    if not plan.units:
        raise UsageError(f"{source}: no cubes or records to read")
    if on_start:
        on_start(sum(plan.sizes))
    total = Partial(stride=stride)
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(make_executor(jobs, len(plan.units), scheduler, places=plan.places))
        for size, part in zip(plan.sizes, executor.map(plan.collect, plan.units, names=plan.names)):
            total.merge(part)
            if progress:
                progress(size)
    offset = plan.s2_offset
    if offset is None and len(total.s2_offset) == 1:
        offset = next(iter(total.s2_offset))
    return DatasetStats(str(source), "shards" if shards else "cubes", plan.layout, offset,
                        {"locations": plan.locations, "seed": seed} if sample is not None else None, total, stride)
