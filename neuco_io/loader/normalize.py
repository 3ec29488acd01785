"""`normalize=`: per-band standardization, `(x - mean) / std`, from published or measured statistics.

Three spellings: the name of published statistics (`"ssl4eo-s12"`, from
`spec.REFERENCE_STATISTICS`), the path of a stats.json written by
`neuco-io stats --out`, or a mapping `{"s2l2a": (means, stds), "s1": None}`
(None leaves a modality as it is). Means and stds are in the modality's stored
band order (`spec.MODALITIES[m].bands`); band selection picks from them by name.

S2 offset: published and measured statistics say whether their S2 values
include ESA's +1000 offset. The loader standardizes in *their* convention,
whatever the layout the data comes from and whatever `shift_s2` says, so
v1.1 cubes, downstream cubes and their shards give the same normalized values
for the same reflectance. Statistics given as a mapping carry no convention:
they apply to the values as the loader delivers them (after `shift_s2`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.errors import UsageError
from neuco_io.storage.local import require_regular_file

__all__ = ["Normalization", "resolve_normalize"]

MAX_STATS_BYTES = 16 * 2**20
"""A stats.json is a few kB; a larger file is refused before it is parsed (bounded memory)."""

STATS_FORMAT = "neuco-io.stats"
"""stats.json's `format` (neuco_io.stats writes it; the loader does not import the stats machinery)."""


@dataclass
class Normalization:
    """Per-band means and stds for the modalities a loader reads, and the S2 convention they were taken in."""

    source: str
    """Where the numbers come from, for messages."""
    stats: dict[str, tuple[np.ndarray, np.ndarray] | None]
    """modality -> (means, stds) in stored band order, float64; None: not normalized."""
    s2_offset: bool | None
    """True/False: the S2 statistics include / exclude +1000; None: they describe the delivered values."""
    _cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def center_and_scale(self, modality: str, bands: Sequence[int], source_offset: bool, shifted: bool
                         ) -> tuple[np.ndarray, np.ndarray] | None:
        """float32 (center, 1/std) per picked band, to apply to the *stored* values (before any shift):
        `(stored - center) * scale`. `source_offset`: the stored S2 values include +1000; `shifted`: the
        loader adds +1000 to them (`shift_s2`). None for a modality left as it is."""
        key = (modality, tuple(bands), source_offset, shifted)
        if key not in self._cache:
            entry = self.stats.get(modality)
            if entry is None:
                return None
            means, stds = entry[0][list(bands)], entry[1][list(bands)]
            if spec.MODALITIES[modality].s2:
                if self.s2_offset is None:  # statistics of the delivered values
                    means = means - spec.S2_OFFSET * shifted
                else:  # statistics of one convention: bring the stored values into it
                    means = means - spec.S2_OFFSET * self.s2_offset + spec.S2_OFFSET * source_offset
            self._cache[key] = (means.astype(np.float32), (1.0 / stds).astype(np.float32))
        return self._cache[key]


def _vector(values: Any, modality: str, what: str, where: str) -> np.ndarray:
    n = spec.MODALITIES[modality].n_bands
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"normalize ({where}): {modality} {what} must be {n} numbers, got {values!r}") from None
    if array.shape != (n,):
        raise UsageError(f"normalize ({where}): {modality} {what} must be {n} numbers, one per band "
                         f"({', '.join(spec.MODALITIES[modality].bands)}), got {array.size}")
    if not np.isfinite(array).all():
        raise UsageError(f"normalize ({where}): {modality} {what} holds a value that is not a finite number")
    return array


def _pair(value: Any, modality: str, where: str) -> tuple[np.ndarray, np.ndarray] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = (value.get("mean"), value.get("std"))
    if not isinstance(value, Sequence) or len(value) != 2:
        raise UsageError(f"normalize ({where}): {modality} needs (means, stds), got {value!r}")
    means = _vector(value[0], modality, "means", where)
    stds = _vector(value[1], modality, "stds", where)
    if (stds <= 0).any():
        bad = spec.MODALITIES[modality].bands[int(np.argmax(stds <= 0))]
        raise UsageError(f"normalize ({where}): {modality} band {bad} has std {stds.min()}; a std must be > 0")
    return means, stds


def _from_stats_file(path: str) -> tuple[dict[str, Any], bool | None]:
    try:
        require_regular_file(path)
        with open(path, "rb") as fh:
            data = fh.read(MAX_STATS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"normalize: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_STATS_BYTES:
        raise UsageError(f"normalize: {path} is over {MAX_STATS_BYTES // 2**20} MiB: not a stats.json "
                         f"(`neuco-io stats --out` writes a few kB)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"normalize: {path} is not JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(doc, dict) or doc.get("format") != STATS_FORMAT or not isinstance(doc.get("modalities"), dict):
        raise UsageError(f"normalize: {path} is not a stats.json written by `neuco-io stats --out` "
                         f"(no \"format\": \"{STATS_FORMAT}\" with \"modalities\")")
    stats: dict[str, Any] = {}
    for modality, entry in doc["modalities"].items():
        if modality not in spec.MODALITIES or not isinstance(entry, dict):
            continue
        known = spec.MODALITIES[modality].bands
        names = entry.get("bands") or list(known)
        means, stds = entry.get("mean"), entry.get("std")
        if not isinstance(means, list) or not isinstance(stds, list) or len(means) != len(names) \
                or len(stds) != len(names) or sorted(map(str, names)) != sorted(known):
            raise UsageError(f"normalize: {path}: {modality} needs a mean and a std for each of its bands "
                             f"({', '.join(known)})")
        order = [list(names).index(b) for b in known]
        missing = [known[i] for i, j in enumerate(order) if means[j] is None or stds[j] is None]
        if missing:
            raise UsageError(f"normalize: {path}: {modality} band {missing[0]} has no statistics (no finite value "
                             f"was measured)")
        stats[modality] = ([means[j] for j in order], [stds[j] for j in order])
    offset = doc.get("s2_offset")
    if offset is not None and not isinstance(offset, bool):  # "false" would otherwise read as True
        raise UsageError(f"normalize: {path}: s2_offset must be true, false or null, got {offset!r}")
    if offset is None and doc.get("layout") in ("v1.1", "downstream"):
        offset = doc["layout"] == "v1.1"
    return stats, offset if offset is None else bool(offset)


def resolve_normalize(normalize: Any, modalities: Sequence[str]) -> Normalization | None:
    """The `normalize=` option, checked against the modalities read (each needs statistics or an explicit
    None): a UsageError says which are missing and what is known."""
    if normalize is None or normalize is False:
        return None
    offset: bool | None
    if isinstance(normalize, Mapping):
        where, raw, offset = "custom statistics", dict(normalize), None
    elif isinstance(normalize, str) and normalize in spec.REFERENCE_STATISTICS:
        ref = spec.REFERENCE_STATISTICS[normalize]
        where, raw, offset = normalize, dict(ref.bands), ref.s2_offset
    elif isinstance(normalize, (str, os.PathLike)) and os.fspath(normalize).endswith(".json"):
        where = os.fspath(normalize)
        raw, offset = _from_stats_file(where)
    else:
        raise UsageError(f"normalize: expected one of {', '.join(map(repr, spec.REFERENCE_STATISTICS))}, the path "
                         f"of a stats.json (`neuco-io stats --out`) or a mapping modality -> (means, stds); "
                         f"got {normalize!r}")
    unknown = [m for m in raw if m not in spec.MODALITIES]
    if unknown:
        raise UsageError(f"normalize ({where}): unknown modality {unknown[0]!r}; known: {', '.join(spec.MODALITIES)}")
    missing = [m for m in modalities if m not in raw]
    if missing:
        have = ", ".join(m for m in raw if raw[m] is not None) or "none"
        raise UsageError(f"normalize ({where}): no statistics for {', '.join(missing)} (it has {have}); "
                         f"give them, or map the modality to None to leave it as it is")
    stats = {m: _pair(raw[m], m, where) for m in modalities}
    return Normalization(where, stats, offset)


