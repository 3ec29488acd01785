"""`neuco-io sample`: a small synthetic dataset that follows the format (docs/format.md) exactly.

Each location gets a smooth random landscape (water, forest, cropland,
grassland, bare soil, built-up) from a few octaves of interpolated noise;
per-class spectra with seasonal vegetation cycles give the S2 bands, the
same classes give S1 backscatter with speckle, and fine texture makes the
cubes compress like real ones. Some S2 timestamps carry a cloud. Labels are
derived from the landscape, so a good embedding can actually predict them.
Everything is a function of the seed: the same seed writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.cube.writer import CubeWriter
from neuco_io.errors import UsageError
from neuco_io.storage.atomic import atomic_path

__all__ = ["SampleSummary", "write_sample"]

N = spec.SIZE
CLASSES = ("water", "forest", "cropland", "grassland", "bare", "built")
WATER, FOREST, CROP, GRASS, BARE, BUILT = range(len(CLASSES))

# Surface reflectance x 10000 for the 12 L2A bands (B01..B12 without B10), summer.
_L2A = np.array([
    [300, 350, 300, 200, 180, 150, 130, 110, 100, 60, 30, 20],                   # water
    [250, 300, 500, 300, 800, 2600, 3100, 3300, 3400, 3400, 1500, 700],          # forest
    [400, 500, 800, 600, 1200, 2800, 3400, 3600, 3700, 3700, 2200, 1200],        # cropland
    [450, 550, 850, 800, 1300, 2300, 2700, 2900, 3000, 3000, 2500, 1600],        # grassland
    [900, 1100, 1500, 1900, 2200, 2500, 2700, 2800, 2900, 3000, 3500, 3000],     # bare
    [1000, 1200, 1400, 1500, 1600, 1800, 1900, 2000, 2000, 2100, 2300, 2100],    # built
], dtype=np.float32)
# How much of a class's red-edge/NIR vegetation signal remains per season (spring, summer, fall, winter).
_GREENNESS = np.array([
    [1.0, 1.0, 1.0, 1.0],
    [0.8, 1.0, 0.8, 0.55],
    [0.45, 1.0, 0.5, 0.15],
    [0.8, 1.0, 0.75, 0.5],
    [1.0, 1.0, 1.0, 1.0],
    [1.0, 1.0, 1.0, 1.0],
], dtype=np.float32)


def _seasonal_spectra() -> np.ndarray:
    """(season, class, band) L2A reflectance: summer spectra blended toward soil by lost greenness."""
    senescence = (1 - _GREENNESS.T)[:, :, None] * 0.8                   # (season, class, 1)
    return _L2A[None] * (1 - senescence) + _L2A[BARE][None, None] * senescence


# Top-of-atmosphere path radiance added for L1C, per L1C band (B10 is the cirrus band).
_L1C_PATH = np.array([900, 650, 450, 300, 250, 200, 180, 150, 140, 90, 15, 40, 20], dtype=np.float32)
# S1 backscatter (dB) per class: VV, VH.
_S1 = np.array([[-21, -28], [-7.5, -13], [-10, -17], [-11, -18], [-14, -22], [-3, -10]], dtype=np.float32)


@dataclass
class SampleSummary:
    root: Path
    layout: str
    locations: int
    files: int
    bytes: int
    tasks: list[str]

    def to_dict(self) -> dict[str, Any]:
        """What `sample --format json` prints."""
        return {"root": str(self.root), "layout": self.layout, "locations": self.locations, "files": self.files,
                "bytes": self.bytes, "tasks": self.tasks}


def _interp_matrix(n_coarse: int) -> np.ndarray:
    """(N, n_coarse) linear interpolation weights: coarse grid -> N pixels."""
    pos = np.linspace(0, n_coarse - 1, N, dtype=np.float32)
    lo = np.minimum(pos.astype(int), n_coarse - 2)
    frac = pos - lo
    w = np.zeros((N, n_coarse), dtype=np.float32)
    w[np.arange(N), lo] = 1 - frac
    w[np.arange(N), lo + 1] = frac
    return w


_INTERP = {n: _interp_matrix(n) for n in (3, 5, 9, 17, 34)}


def smooth_field(rng: np.random.Generator, octaves: tuple[int, ...] = (3, 5, 9, 17), decay: float = 0.55) -> np.ndarray:
    """A smooth (N, N) field with zero mean and unit std: interpolated noise of several scales."""
    field = np.zeros((N, N), dtype=np.float32)
    amplitude = 1.0
    for n in octaves:
        w = _INTERP[n]
        field += amplitude * (w @ rng.standard_normal((n, n)).astype(np.float32) @ w.T)
        amplitude *= decay
    field -= field.mean()
    return field / (field.std() + 1e-6)


def landscape(rng: np.random.Generator) -> np.ndarray:
    """(N, N) class map: low ground is water, high ground forest/bare, the rest farmland, some built-up."""
    height = smooth_field(rng)
    wetness = smooth_field(rng)
    urban = smooth_field(rng, (5, 9, 17))
    water_level = rng.uniform(-2.2, -0.6)
    classes = np.full((N, N), GRASS, dtype=np.uint8)
    classes[wetness > rng.uniform(-0.8, 0.8)] = CROP
    classes[height > rng.uniform(0.0, 1.3)] = FOREST
    classes[(height > 1.4) & (wetness < -0.3)] = BARE
    classes[urban > rng.uniform(1.2, 2.4)] = BUILT
    classes[height < water_level] = WATER
    return classes


def _cloud(rng: np.random.Generator) -> np.ndarray:
    """(N, N) cloud opacity in [0, 1]."""
    field = smooth_field(rng, (3, 5, 9, 17, 34), 0.6)
    return np.clip((field - rng.uniform(0.3, 1.3)) * 1.5, 0, 1)


@dataclass
class Location:
    id: str
    classes: np.ndarray
    s1: np.ndarray
    s2l1c: np.ndarray
    s2l2a: np.ndarray
    clouds: np.ndarray
    """(time, y, x) cloud opacity."""


def location_clouds(seed: int, index: int) -> np.ndarray:
    """(time, y, x) cloud opacity of a location: about one S2 timestamp in five is cloudy."""
    rng = np.random.default_rng([seed, index, 7])
    clouds = np.zeros((spec.N_TIMES, N, N), dtype=np.float32)
    for t in range(spec.N_TIMES):
        if rng.random() < 0.2:
            clouds[t] = _cloud(rng)
    return clouds


def make_location(loc_id: str, seed: int, index: int, *, offset: bool) -> Location:
    rng = np.random.default_rng([seed, index])
    classes = landscape(rng)
    texture = 1 + 0.04 * rng.standard_normal((spec.N_TIMES, 1, N, N)).astype(np.float32)
    clouds = location_clouds(seed, index)
    # L2A reflectance (time, band, y, x): out of season, vegetation drifts toward bare soil.
    spectra = _seasonal_spectra()                                        # (season, class, band)
    l2a = spectra[:, classes].transpose(0, 3, 1, 2) * texture            # (time, band, y, x)
    brightness = 1 + 0.15 * smooth_field(rng, (3, 5))
    l2a *= brightness[None, None]
    cloud = clouds[:, None]
    l2a = l2a * (1 - cloud) + cloud * rng.uniform(5000, 8000)
    l1c = np.insert(l2a, 10, 0.0, axis=1) + _L1C_PATH[None, :, None, None]
    l1c[:, 10] += cloud[:, 0] * 1200 + rng.uniform(0, 30)              # cirrus band sees clouds
    shift = spec.S2_OFFSET if offset else 0
    s2l2a = np.clip(np.round(l2a) + shift, 1, 32767).astype(np.int16)
    s2l1c = np.clip(np.round(l1c) + shift, 1, 32767).astype(np.int16)
    speckle = 10 * np.log10(rng.gamma(4.0, 0.25, size=(spec.N_TIMES, 2, N, N)).astype(np.float32))
    season_wet = np.array([0.5, 0.0, 0.8, 1.2], dtype=np.float32)[:, None, None, None]
    s1 = _S1[classes].transpose(2, 0, 1)[None] + season_wet + speckle + 0.8 * smooth_field(rng, (5, 9))[None, None]
    return Location(loc_id, classes, s1.astype(np.float16), s2l1c, s2l2a, clouds)


# -- labels ------------------------------------------------------------------
def location_stats(loc: Location) -> dict[str, float | None]:
    """What the labels are made of: class fractions and the clear-sky summer NDVI."""
    red = loc.s2l2a[1, 3].astype(np.float32)
    nir = loc.s2l2a[1, 7].astype(np.float32)
    clear = loc.clouds[1] < 0.1
    ndvi = float(np.mean(((nir - red) / (nir + red + 1e-6))[clear])) if clear.mean() >= 0.6 else None
    return {
        "forest": float(np.mean(loc.classes == FOREST)),
        "water": float(np.mean(loc.classes == WATER)),
        "crop": float(np.mean(loc.classes == CROP)),
        "ndvi": ndvi,
    }


def _task_values(stats: list[dict[str, float | None]]) -> dict[str, list[float | None]]:
    """Tasks derived from the landscapes: two regressions (one a subset) and one binary classification."""
    forest = [round(100 * s["forest"], 3) for s in stats]
    water_fraction = [s["water"] for s in stats]
    threshold = float(np.median(water_fraction))
    water = [1.0 if w > threshold else 0.0 for w in water_fraction]
    if len(set(water)) < 2:  # tiny datasets: keep both classes present
        water[int(np.argmax(water_fraction))] = 1.0
        water[int(np.argmin(water_fraction))] = 0.0
    # A subset task: cloudy summers and every 5th location have no label (empty cells).
    ndvi = [None if s["ndvi"] is None or (len(stats) >= 5 and i % 5 == 4) else round(s["ndvi"], 4)
            for i, s in enumerate(stats)]
    if len({v for v in ndvi if v is not None}) < 2:
        ndvi = [round(s["crop"], 4) for s in stats]
    return {"forest_cover__regr": forest, "water_presence__cls": water, "summer_ndvi__regr": ndvi}


def _write_labels(root: Path, ids: list[str], tasks: dict[str, list[float | None]]) -> list[Path]:
    paths = []
    for name, values in tasks.items():
        lines = ["id,label"] + [f"{i},{'' if v is None else _fmt(v)}" for i, v in zip(ids, values)]
        paths.append(root / "labels" / f"{name}.csv")
        with atomic_path(paths[-1], fsync=False) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# -- layouts -------------------------------------------------------------------
def _downstream(root: Path, n: int, seed: int, tick: Callable[[int], None]) -> list[Path]:
    """Write the downstream sample; returns every file written."""
    ids = [hashlib.sha256(f"neuco-io sample {seed} {i}".encode()).hexdigest() for i in range(n)]
    order = sorted(range(n), key=lambda i: ids[i])
    stats: dict[str, dict] = {}
    written: list[Path] = []
    for rank, i in enumerate(order):
        loc = make_location(ids[i], seed, i, offset=False)
        part = f"part-{rank // spec.MAX_FILES_PER_PART:06d}"
        for modality in spec.DOWNSTREAM_MODALITIES:
            path = root / "data" / modality / part / f"{loc.id}{spec.CUBE_SUFFIX}"
            with CubeWriter(path, modality, [loc.id], overwrite=True, fsync=False) as writer:
                writer.write_sample(0, getattr(loc, modality))
            written.append(path)
        stats[loc.id] = location_stats(loc)
        tick(1)
    by_id = sorted(stats)
    written += _write_labels(root, by_id, _task_values([stats[i] for i in by_id]))
    written.append(root / "README.md")
    written[-1].write_text(
        f"# neuco-io sample dataset (downstream layout)\n\nSynthetic: {n} locations, seed {seed}. "
        "Written by `neuco-io sample`; follows the SSL4EO-S12-downstream format.\n", encoding="utf-8")
    return written


def _v11_metadata(rng: np.random.Generator, ids: list[str], clouds: list[np.ndarray], modality: str) -> dict:
    n = len(ids)
    lat = rng.uniform(-55, 70, n).round(5)
    lon = rng.uniform(-179, 179, n).round(5)
    zone = ((lon + 180) // 6 + 1).astype(np.int64)
    crs = np.where(lat >= 0, 32600 + zone, 32700 + zone).astype(np.int64)
    days = np.array([75, 167, 259, 350])  # mid-season days of year
    start = np.datetime64("2020-01-01T10:30:00", "ns")
    times = np.array([[start + np.timedelta64(int(d + rng.integers(-20, 20)), "D") for d in days] for _ in ids],
                     dtype="datetime64[ns]")
    product = "S1A_IW_GRDH_1SDV" if modality == "s1" else "T32UNE"
    file_id = np.array([[f"{product}_{str(t)[:10].replace('-', '')}T103021" for t in row] for row in times])
    x0 = rng.uniform(2e5, 8e5, n)[:, None]
    y0 = rng.uniform(1e6, 9e6, n)[:, None]
    meta = {
        "center_lat": (("sample",), lat, {}),
        "center_lon": (("sample",), lon, {}),
        "crs": (("sample",), crs, {}),
        "file_id": (("sample", "time"), file_id, {}),
        "sample_id": (("sample", "time"), np.array([[f"{i}_{t}" for t in range(spec.N_TIMES)] for i in ids]), {}),
        "time_": (("sample", "time"), times, {}),
        "x_": (("sample", "x"), x0 + 10.0 * np.arange(N)[None], {}),
        "y_": (("sample", "y"), y0 - 10.0 * np.arange(N)[None], {}),
    }
    if modality == "s2l2a":
        meta["cloud_mask"] = (("sample", "time", "y", "x"), np.stack([(c > 0.1).astype(np.uint8) for c in clouds]), {})
    return meta


def _rgb(s2l2a: np.ndarray) -> np.ndarray:
    """S2RGB as in v1.1: B04, B03, B02 (with offset) scaled to uint8."""
    rgb = s2l2a[:, [3, 2, 1]].astype(np.float32) - spec.S2_OFFSET
    return np.clip(rgb / 3000 * 255, 0, 255).astype(np.uint8)


def _v11(root: Path, n: int, seed: int, per_file: int, tick: Callable[[int], None]) -> list[Path]:
    """Write the v1.1 sample; returns every file written."""
    rng = np.random.default_rng([seed, 11])
    sample_ids = [f"{v:07d}" for v in rng.choice(250_000, size=n, replace=False)]
    n_val = max(1, n // 10)
    splits = {"train": sample_ids[: n - n_val], "val": sample_ids[n - n_val:]}
    written: list[Path] = []
    index = 0
    for split, ids in splits.items():
        names = []
        for number, start in enumerate(range(0, len(ids), per_file), start=1):
            chunk = ids[start:start + per_file]
            indices = range(index, index + len(chunk))
            index += len(chunk)
            name = spec.v11_file_name(split, number)
            names.append(name)
            clouds = [location_clouds(seed, i) for i in indices]
            meta_rng_seed = [seed, 13, number, spec.V11_SPLITS.index(split)]
            writers = {}
            for modality in ("s1", "s2l1c", "s2l2a", "s2rgb"):
                folder = root / split / spec.MODALITIES[modality].v11_folder
                meta = _v11_metadata(np.random.default_rng(meta_rng_seed), chunk, clouds, modality)
                writers[modality] = CubeWriter(folder / name, modality, chunk, extra=meta, overwrite=True, fsync=False)
            for s, (sid, i) in enumerate(zip(chunk, indices)):
                loc = make_location(sid, seed, i, offset=True)
                writers["s1"].write_sample(s, loc.s1)
                writers["s2l1c"].write_sample(s, loc.s2l1c)
                writers["s2l2a"].write_sample(s, loc.s2l2a)
                writers["s2rgb"].write_sample(s, _rgb(loc.s2l2a))
                tick(1)
            for writer in writers.values():
                writer.close()
            written += [root / split / spec.MODALITIES[m].v11_folder / name for m in writers]
        written.append(root / "splits" / spec.v11_split_list(split))
        with atomic_path(written[-1], fsync=False) as tmp:
            tmp.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return written


def write_sample(
    out: str | os.PathLike[str],
    *,
    layout: str = "downstream",
    locations: int = 24,
    seed: int = 0,
    samples_per_file: int = 64,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SampleSummary:
    """Write a sample dataset to `out` (which must be empty or absent unless `overwrite`)."""
    out = Path(out)
    if locations < 2:
        raise UsageError("--locations must be at least 2 (a classification task needs both classes)")
    if layout not in ("downstream", "v1.1"):
        raise UsageError(f"unknown layout {layout!r}")
    if samples_per_file < 1:
        raise UsageError("--samples-per-file must be at least 1")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} exists and is not empty (use --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    tick = progress or (lambda n: None)
    previous = _recorded_files(out)
    if layout == "downstream":
        written = _downstream(out, locations, seed, tick)
    else:
        written = _v11(out, locations, seed, samples_per_file, tick)
    _remove_stale(out, previous - {p.relative_to(out).as_posix() for p in written})
    _record_files(out, written)
    cubes = [p for p in written if p.name.endswith(spec.CUBE_SUFFIX)]
    tasks = sorted(p.stem for p in written if p.parent.name == "labels")
    return SampleSummary(out, layout, locations, len(cubes), sum(p.stat().st_size for p in written), tasks)


_RECORD = ".neuco-io-sample.json"
"""What the last `sample` wrote into OUT, so `--overwrite` removes exactly that (and nothing of the user's)."""


def _recorded_files(out: Path) -> set[str]:
    try:
        return set(json.loads((out / _RECORD).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _record_files(out: Path, written: list[Path]) -> None:
    with atomic_path(out / _RECORD, overwrite=True, fsync=False) as tmp:
        tmp.write_text(json.dumps({"files": sorted(p.relative_to(out).as_posix() for p in written)}, indent=1),
                       encoding="utf-8")


def _remove_stale(out: Path, stale: set[str]) -> None:
    """Delete files a previous sample wrote that this one did not, then the folders that became empty."""
    for rel in sorted(stale):
        path = out / rel
        if ".." in Path(rel).parts or not path.is_file():
            continue
        path.unlink()
        for parent in path.parents:
            if parent == out or any(parent.iterdir()):
                break
            parent.rmdir()
