"""The dataset formats as data.

Every fact about SSL4EO-S12 v1.1 and SSL4EO-S12-downstream that code depends
on lives here once (described for users in docs/format.md): validators, converters, the loader and the
sample writer all read it instead of repeating literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

SIZE = 264
"""Height and width of every cube, in pixels."""

SEASONS: tuple[str, ...] = ("spring", "summer", "fall", "winter")
"""Order of the `time` axis: spring (Mar-May), summer, fall, winter (Dec-Feb)."""

SEASON_ALIASES: dict[str, str] = {"autumn": "fall"}
N_TIMES = len(SEASONS)
DIMS: tuple[str, ...] = ("sample", "time", "band", "y", "x")
BANDS_VAR = "bands"
S2_OFFSET = 1000
"""ESA's +1000 DN offset: included in v1.1, absent in the downstream data."""


@dataclass(frozen=True)
class Modality:
    """One sensor product: its names in both layouts, bands and accepted dtypes."""

    name: str
    v11_folder: str
    bands: tuple[str, ...]
    dtypes: tuple[str, ...]
    """Accepted dtypes, the one the public files use first."""
    s2: bool = False
    """True for Sentinel-2 DN products, the ones `shift_s2` and the offset check apply to."""
    downstream: bool = True

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtypes[0])


_L1C = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality("s1", "S1GRD", ("vv", "vh"), ("float16", "float32")),
        Modality("s2l1c", "S2L1C", _L1C, ("int16", "uint16"), s2=True),
        Modality("s2l2a", "S2L2A", tuple(b for b in _L1C if b != "B10"), ("int16", "uint16"), s2=True),
        Modality("s2rgb", "S2RGB", ("R", "G", "B"), ("uint8",), downstream=False),
    )
}
DOWNSTREAM_MODALITIES: tuple[str, ...] = tuple(m for m, spec in MODALITIES.items() if spec.downstream)
V11_FOLDERS: dict[str, str] = {spec.v11_folder: name for name, spec in MODALITIES.items()}
"""v1.1 folder name -> modality name (S1GRD -> s1)."""
V11_REQUIRED: tuple[str, ...] = ("S1GRD", "S2L1C", "S2L2A")

DOWNSTREAM_DATA_DIRS: tuple[str, ...] = ("data", "data_dev", "data_eval")
V11_SPLITS: tuple[str, ...] = ("train", "val")
MAX_FILES_PER_PART = 1000
CUBE_SUFFIX = ".zarr.zip"

PART_RE = re.compile(r"^part-\d{6}$")
ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
"""Ids of custom tasks: letters, digits and `_-.` (public ids are 64 hex characters)."""
PUBLIC_ID_RE = re.compile(r"^[0-9a-f]{64}$")
V11_FILE_RE = re.compile(r"^ssl4eos12_(?P<split>[a-z]+)_seasonal_data_(?P<number>\d{6})\.zarr\.zip$")


def v11_file_name(split: str, number: int) -> str:
    return f"ssl4eos12_{split}_seasonal_data_{number:06d}{CUBE_SUFFIX}"


def v11_split_list(split: str) -> str:
    """Name of the split file under `splits/` that lists a split's cube files."""
    return f"ssl4eos12_{split}.txt"


# Variables that reveal where a location is: v1.1 carries them on purpose, the
# downstream set must not (the benchmark hides locations).
GEOREF_VARIABLES = frozenset(
    {"center_lat", "center_lon", "lat", "lon", "latitude", "longitude", "crs", "spatial_ref", "x_", "y_",
     "transform", "geotransform", "epsg", "utm_zone", "geometry", "bounds", "bbox"}
)
GEOREF_ATTRS = frozenset({"crs", "transform", "geotransform", "spatial_ref", "epsg", "crs_wkt", "proj4", "bounds"})
V11_METADATA_VARIABLES: tuple[str, ...] = (
    "center_lat", "center_lon", "crs", "file_id", "sample_id", "time_", "x_", "y_", "cloud_mask",
)
COORDINATES: tuple[str, ...] = ("sample", "time", "band", "y", "x")

# Task types, as data. NeuCo-Bench's probes (benchmark/evaluation/probes/linear.py, svm.py) accept exactly
# these four spellings; any other raises `Unsupported task_type` and stops the whole evaluation.
TASK_TYPES: dict[str, str] = {
    "regression": "regression",
    "regr": "regression",
    "classification": "classification",
    "cls": "classification",
}
"""Task type (the `<type>` of `<task>__<type>.csv`) the evaluator accepts -> its kind."""
TASK_TYPE_RENAMES: dict[str, str] = {"reg": "regr"}
"""Spellings the evaluator refuses that plainly mean a type it accepts (a public listing showed `random_reg__reg`):
`labels export --rename-types` writes the accepted one. Other case variants of an accepted type map to it too."""
LABEL_COLUMNS: tuple[str, str] = ("id", "label")


def season_index(text: str) -> int:
    """A season given by name (`spring`...) or index (`0`-`3`) -> its index; ValueError otherwise."""
    value = SEASON_ALIASES.get(text.strip().lower(), text.strip().lower())
    if value in SEASONS:
        return SEASONS.index(value)
    if value.isdigit() and 0 <= int(value) < N_TIMES:
        return int(value)
    raise ValueError(f"season {text!r}: use {', '.join(SEASONS)} (autumn = fall) or 0-{N_TIMES - 1}")


def task_kind(task_type: str) -> str | None:
    """`regression`, `classification`, or None for a type the evaluator does not accept (spelled exactly)."""
    return TASK_TYPES.get(task_type)


def accepted_task_type(task_type: str) -> str | None:
    """The accepted spelling a type means: itself, `reg` -> `regr`, `REGR` -> `regr`; None for an unknown type."""
    if task_type in TASK_TYPES:
        return task_type
    folded = task_type.lower()
    return folded if folded in TASK_TYPES else TASK_TYPE_RENAMES.get(folded)


def strip_cube_suffix(name: str) -> str:
    """`<id>.zarr.zip` or `<id>.zarr` -> `<id>`, as the evaluator does."""
    for suffix in (CUBE_SUFFIX, ".zarr"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# -- published normalization statistics -------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceStatistics:
    """Per-band mean and std that a field normalizes with, and the S2 convention they were computed in."""

    name: str
    source: str
    s2_offset: bool
    """True when the S2 means include ESA's +1000 offset."""
    bands: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    """modality -> (means, stds), in `MODALITIES[modality].bands` order."""


REFERENCE_STATISTICS: dict[str, ReferenceStatistics] = {
    r.name: r
    for r in (
        ReferenceStatistics(
            "ssl4eo-s12",
            "SSL4EO-S12 v1.1 per-band normalization statistics, published with the dataset and used by the "
            "NeuCo-Bench reference loader (embed2scale/NeuCo-Bench, generate_embeddings/data/dataset.py: "
            "S2L1C_MEAN, S2L2A_MEAN, S1GRD_MEAN and their _STD); S2 with the +1000 offset",
            True,
            {
                "s2l1c": ((2607.345, 2393.068, 2320.225, 2373.963, 2562.536, 3110.071, 3392.832, 3321.154, 3583.77,
                           1838.712, 1021.753, 3205.112, 2545.798),
                          (786.523, 849.702, 875.318, 1143.578, 1126.248, 1161.98, 1273.505, 1246.79, 1342.755,
                           576.795, 45.626, 1340.347, 1145.036)),
                "s2l2a": ((1793.243, 1924.863, 2184.553, 2340.936, 2671.402, 3240.082, 3468.412, 3563.244, 3627.704,
                           3711.071, 3416.714, 2849.625),
                          (1160.144, 1201.092, 1219.943, 1397.225, 1400.035, 1373.136, 1429.17, 1485.025, 1447.836,
                           1652.703, 1471.002, 1365.307)),
                "s1": ((-12.577, -20.265), (5.179, 5.872)),
                "s2rgb": ((100.708, 87.489, 61.932), (68.550, 47.647, 40.592)),
            },
        ),
        ReferenceStatistics(
            "ssl4eo-s12-downstream",
            "SSL4EO-S12-downstream (the embed2scale challenge / NeuCo-Bench data) per-band statistics, published "
            "with the challenge data; S2 without the offset",
            False,
            {
                "s2l1c": ((1635.299, 1402.885, 1289.505, 1281.272, 1534.981, 2272.474, 2630.972, 2587.956, 2889.274,
                           976.031, 20.369, 2109.307, 1350.051),
                          (1123.963, 1187.2, 1128.715, 1322.882, 1285.925, 1250.079, 1325.492, 1294.318, 1343.536,
                           636.232, 27.82, 1023.855, 834.773)),
                "s2l2a": ((802.067, 917.472, 1130.01, 1210.515, 1587.985, 2355.781, 2650.339, 2787.571, 2860.466,
                           2921.651, 2221.172, 1549.952),
                          (1563.348, 1604.422, 1553.908, 1622.652, 1593.07, 1523.264, 1556.785, 1618.961, 1532.417,
                           1653.532, 1183.218, 1025.306)),
                "s1": ((-11.834, -19.243), (4.305, 5.479)),
            },
        ),
    )
}
"""Published statistics `neuco-io stats --compare NAME` checks a dataset against."""
