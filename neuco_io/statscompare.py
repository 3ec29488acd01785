"""Set a dataset's statistics against published ones: catch offset, scaling and band-order errors.

Convention-aware: the reference's S2 means are moved by 1000 when the
dataset's S2 convention (`s2_offset`) differs from the reference's, so a
downstream dataset (no offset) is compared fairly with the v1.1 numbers.
Three diagnoses, from the strongest evidence to the weakest:

- `stats.offset` (error): the S2 means sit about 1000 DN from where the
  dataset's convention puts them (median shift over the bands is closer to
  +-1000 than to 0): S2 written with the offset where the convention has
  none, or without it where it has one.
- `stats.band-order` (error): exchanging two bands (or reversing them all)
  brings the means and stds much closer to the reference.
- `stats.mean` / `stats.std` (warning): one band's mean is more than
  MEAN_TOLERANCE reference stds away, or its std off by more than STD_FACTOR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.errors import UsageError
from neuco_io.stats import DatasetStats

__all__ = ["Comparison", "Flag", "compare"]

MEAN_TOLERANCE = 3.0
"""A band's mean this many reference stds away is flagged."""
STD_FACTOR = 5.0
"""A band's std this many times larger or smaller than the reference's is flagged."""
SWAP_GAIN = 2.0
"""How much a band exchange must lower the misfit (sum of squared z-scores and log std ratios)..."""
SWAP_RATIO = 4.0
"""...and by what factor the misfit of the bands involved must drop, to call the order wrong..."""
SWAP_MISFIT = 0.5
"""...when the mean of each band involved is off by at least sqrt(this) reference stds as it is (one odd band
is not an exchange)."""


@dataclass(frozen=True)
class Flag:
    code: str
    severity: str
    modality: str
    message: str
    bands: tuple[str, ...] = ()
    expected: Any = None
    got: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "severity": self.severity, "modality": self.modality, "message": self.message,
               "bands": list(self.bands)}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.got is not None:
            out["got"] = self.got
        return out


@dataclass
class Comparison:
    reference: str
    source: str
    reference_s2_offset: bool
    data_s2_offset: bool
    bands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """modality -> per band: mean, reference mean (convention-adjusted), z, std, reference std, ratio."""
    flags: list[Flag] = field(default_factory=list)

    @property
    def errors(self) -> list[Flag]:
        return [f for f in self.flags if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "source": self.source,
                "reference_s2_offset": self.reference_s2_offset, "data_s2_offset": self.data_s2_offset,
                "bands": self.bands, "flags": [f.to_dict() for f in self.flags]}


def _misfit(mean: float, std: float, ref_mean: float, ref_std: float) -> float:
    z = (mean - ref_mean) / ref_std
    ratio = math.log(max(std, 1e-9) / ref_std)
    return z * z + ratio * ratio


def _order_flag(modality: str, names: list[str], means: np.ndarray, stds: np.ndarray, ref_means: np.ndarray,
                ref_stds: np.ndarray) -> Flag | None:
    """The best single exchange of two bands (or a reversal), when it fits the reference much better."""
    n = len(names)
    cost = np.array([[_misfit(means[i], stds[i], ref_means[j], ref_stds[j]) for j in range(n)] for i in range(n)])
    z2 = ((means - ref_means) / ref_stds) ** 2
    identity = float(np.trace(cost))
    best: tuple[float, float, tuple[str, ...], str] | None = None
    for i in range(n):
        for j in range(i + 1, n):
            before = cost[i, i] + cost[j, j]
            after = cost[i, j] + cost[j, i]
            plausible = min(z2[i], z2[j]) >= SWAP_MISFIT
            if plausible and before - after >= SWAP_GAIN and before >= SWAP_RATIO * after and (
                    best is None or before - after > best[0]):
                best = (before - after, after, (names[i], names[j]), "exchanged")
    reversed_cost = float(sum(cost[i, n - 1 - i] for i in range(n)))
    reversal_fits = identity - reversed_cost >= SWAP_GAIN and identity >= SWAP_RATIO * reversed_cost
    if n > 2 and float(z2.mean()) >= SWAP_MISFIT and reversal_fits and (
            best is None or identity - reversed_cost > best[0]):
        best = (identity - reversed_cost, reversed_cost, tuple(names), "reversed")
    if best is None:
        return None
    _, _, bands, how = best
    if how == "reversed":
        message = f"{modality} bands look reversed: in reverse order they fit the reference much better"
    else:
        message = (f"{modality} bands {bands[0]} and {bands[1]} look exchanged: swapped back, their means and "
                   f"stds fit the reference much better")
    return Flag("stats.band-order", "error", modality, message, bands)


def compare(stats: DatasetStats, reference: str = "ssl4eo-s12") -> Comparison:
    """Compare per-band means and stds over all seasons with a published reference (spec.REFERENCE_STATISTICS)."""
    ref = spec.REFERENCE_STATISTICS.get(reference)
    if ref is None:
        raise UsageError(f"--compare {reference!r}: known references are {', '.join(spec.REFERENCE_STATISTICS)}")
    data_offset = bool(stats.s2_offset) if stats.s2_offset is not None else stats.layout == "v1.1"
    result = Comparison(ref.name, ref.source, ref.s2_offset, data_offset)
    for modality in stats.modalities:
        if modality not in ref.bands:
            continue
        ref_means, ref_stds = (np.array(v, dtype=np.float64) for v in ref.bands[modality])
        shift = spec.S2_OFFSET * (int(data_offset) - int(ref.s2_offset)) if spec.MODALITIES[modality].s2 else 0
        ref_means = ref_means + shift
        spec_bands = list(spec.MODALITIES[modality].bands)
        names = stats.partial.bands[modality]
        overall = stats.band_stats(modality)
        pairs = [(i, spec_bands.index(name)) for i, name in enumerate(names) if name in spec_bands]
        if not pairs or any(overall[i]["mean"] is None for i, _ in pairs):
            continue
        means = np.array([overall[i]["mean"] for i, _ in pairs])
        stds = np.array([overall[i]["std"] for i, _ in pairs])
        rm = ref_means[[j for _, j in pairs]]
        rs = ref_stds[[j for _, j in pairs]]
        band_names = [names[i] for i, _ in pairs]
        result.bands[modality] = [
            {"band": b, "mean": float(m), "reference_mean": float(r), "z": float((m - r) / s), "std": float(sd),
             "reference_std": float(s), "std_ratio": float(sd / s)}
            for b, m, r, sd, s in zip(band_names, means, rm, stds, rs)]
        if spec.MODALITIES[modality].s2:
            delta = float(np.median(means - rm))
            if abs(delta) > spec.S2_OFFSET / 2:
                sign = "+" if delta > 0 else "-"
                what = ("written with the +1000 offset, which this dataset's convention does not include"
                        if delta > 0 else "written without the +1000 offset, which this dataset's convention "
                        "includes")
                result.flags.append(Flag(
                    "stats.offset", "error", modality,
                    f"{modality} means sit {sign}{abs(delta):.0f} DN from the reference ({ref.name}, adjusted to "
                    f"s2_offset={str(data_offset).lower()}): S2 looks {what}",
                    tuple(band_names), expected=0, got=round(delta, 1)))
                rm = rm + spec.S2_OFFSET * round(delta / spec.S2_OFFSET)  # judge the order past the offset
        order = _order_flag(modality, band_names, means, stds, rm, rs)
        if order is not None:
            result.flags.append(order)
        for b, m, r, sd, s in zip(band_names, means, rm, stds, rs):
            if abs(m - r) > MEAN_TOLERANCE * s:
                result.flags.append(Flag("stats.mean", "warning", modality,
                                         f"{modality} {b}: mean {m:.4g} is {abs(m - r) / s:.1f} reference stds "
                                         f"from {r:.4g}", (b,), expected=round(float(r), 3), got=round(float(m), 3)))
            if not 1 / STD_FACTOR <= sd / s <= STD_FACTOR:
                result.flags.append(Flag("stats.std", "warning", modality,
                                         f"{modality} {b}: std {sd:.4g} is {sd / s:.2g}x the reference's {s:.4g}",
                                         (b,), expected=round(float(s), 3), got=round(float(sd), 3)))
    return result
