"""An exact, mergeable histogram of 8- and 16-bit values: the sketch behind `neuco-io stats`.

The cubes hold int16/uint16 (S2), float16 (S1) and uint8 (S2RGB) values: at
most 65,536 distinct values per band. One bin per possible value (one
`np.bincount` over the values' bit patterns) is therefore exact, and so is
everything derived from it: count, mean, standard deviation, min, max, any
percentile, zeros and NaNs. Merging two histograms adds integer counts, so
results do not depend on how the data was split between workers or in which
order the parts are merged. Only float32/float64 input is rounded (to float16,
relative error at most 2**-11) before counting.

Sums are taken as Python integers (float16 values are multiples of 2**-24, so
they are scaled to integers first): no floating-point accumulation anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from neuco_io.errors import NeucoError

__all__ = ["PERCENTILES", "UnsupportedDtype", "ValueHistogram", "add_bands", "summarize"]

PERCENTILES: tuple[float, ...] = (1.0, 50.0, 99.0)
"""Percentiles `stats` reports (numpy's default linear interpolation between order statistics)."""

_FLOAT16_SCALE = 1 << 24
"""Every finite float16 value times 2**24 is an integer (the smallest subnormal is 2**-24)."""


SMALL_CODES = 4096
"""Bit patterns below this are counted from 0 (S2 DNs); higher ones (float16 dB, offsets) from their minimum."""


class UnsupportedDtype(NeucoError, TypeError):
    """Values of a dtype the exact histogram cannot count (wider than 16 bits and not float)."""


def _code_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a histogram counts in: the values' own 8/16-bit type; wider floats become float16."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float16)
    if dtype.kind in "iub" and dtype.itemsize <= 2:
        return dtype
    raise UnsupportedDtype(f"statistics cover 8- and 16-bit integers and floats, not {dtype}")


def _codes(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Unsigned bit patterns of the values (uint8 or uint16), flattened."""
    if values.dtype != dtype:
        values = values.astype(dtype)
    unsigned = np.uint16 if dtype.itemsize == 2 else np.uint8
    return np.ascontiguousarray(values).view(unsigned).reshape(-1)


@dataclass
class ValueHistogram:
    """Counts of every value seen, over a contiguous range of bit patterns `lo .. lo + len(counts) - 1`."""

    dtype: str
    lo: int = 0
    counts: np.ndarray | None = None

    @classmethod
    def for_values(cls, dtype: np.dtype | str) -> ValueHistogram:
        return cls(str(_code_dtype(np.dtype(dtype))))

    @property
    def empty(self) -> bool:
        return self.counts is None

    def add(self, values: np.ndarray) -> None:
        """Count every value of an array (any shape)."""
        codes = _codes(values, np.dtype(self.dtype))
        if codes.size:
            lo = int(codes.min())
            self._add_counts(lo, np.bincount(codes - codes.dtype.type(lo)))

    def _add_counts(self, lo: int, counts: np.ndarray) -> None:
        if self.counts is None:
            self.lo, self.counts = lo, np.array(counts, dtype=np.int64)  # never share another's counts
            return
        start = min(self.lo, lo)
        stop = max(self.lo + len(self.counts), lo + len(counts))
        if start != self.lo or stop != self.lo + len(self.counts):
            grown = np.zeros(stop - start, dtype=np.int64)
            grown[self.lo - start:self.lo - start + len(self.counts)] = self.counts
            self.lo, self.counts = start, grown
        self.counts[lo - self.lo:lo - self.lo + len(counts)] += counts

    def merge(self, other: ValueHistogram) -> None:
        """Add another histogram's counts (exact: integer addition)."""
        if other.dtype != self.dtype:
            raise UnsupportedDtype(f"cannot merge {other.dtype} counts into {self.dtype} counts")
        if other.counts is not None:
            self._add_counts(other.lo, other.counts)

    def compact(self) -> ValueHistogram:
        """The same counts with empty bins trimmed from both ends (smaller to send between processes)."""
        if self.counts is None:
            return self
        nonzero = np.flatnonzero(self.counts)
        if not nonzero.size:
            return ValueHistogram(self.dtype)
        first, last = int(nonzero[0]), int(nonzero[-1])
        return ValueHistogram(self.dtype, self.lo + first, self.counts[first:last + 1].copy())

    def values_and_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, counts) of the non-empty bins, in the histogram's dtype, unsorted."""
        if self.counts is None:
            return np.empty(0, dtype=self.dtype), np.empty(0, dtype=np.int64)
        nonzero = np.flatnonzero(self.counts)
        unsigned = np.uint16 if np.dtype(self.dtype).itemsize == 2 else np.uint8
        codes = (nonzero + self.lo).astype(unsigned)
        return codes.view(self.dtype), self.counts[nonzero]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValueHistogram):
            return NotImplemented
        a, b = self.compact(), other.compact()
        return a.dtype == b.dtype and a.lo == b.lo and (
            (a.counts is None and b.counts is None)
            or (a.counts is not None and b.counts is not None and np.array_equal(a.counts, b.counts)))


def add_bands(histograms: Sequence[ValueHistogram], image: np.ndarray) -> None:
    """Count a (band, y, x) image into one histogram per band (the minimum of every band in one pass)."""
    codes = _codes(image, np.dtype(histograms[0].dtype)).reshape(image.shape[0], -1)
    if not codes.shape[1]:
        return
    for hist, row, lo in zip(histograms, codes, codes.min(axis=1).tolist()):
        if lo < SMALL_CODES:  # counting from 0 costs a few bins and saves a pass over the values
            hist._add_counts(0, np.bincount(row))
        else:
            hist._add_counts(lo, np.bincount(row - codes.dtype.type(lo)))


def _order_statistic(sorted_values: np.ndarray, cumulative: np.ndarray, rank: int) -> float:
    """The value at 0-based position `rank` of the sorted data."""
    return float(sorted_values[int(np.searchsorted(cumulative, rank, side="right"))])


def _percentile(sorted_values: np.ndarray, cumulative: np.ndarray, q: float) -> float:
    """numpy's default ('linear') percentile, from the exact counts."""
    n = int(cumulative[-1])
    position = (n - 1) * q / 100.0
    below = math.floor(position)
    low = _order_statistic(sorted_values, cumulative, below)
    high = _order_statistic(sorted_values, cumulative, min(below + 1, n - 1))
    fraction = position - below
    # numpy's lerp: exact at both ends
    return low + (high - low) * fraction if fraction < 0.5 else high - (high - low) * (1 - fraction)


def summarize(hist: ValueHistogram, percentiles: Sequence[float] = PERCENTILES) -> dict[str, float | int | None]:
    """count, mean, std (population), min, max, percentiles, zeros and NaN (not finite) of a histogram."""
    values, counts = hist.values_and_counts()
    is_float = values.dtype.kind == "f"
    finite = np.isfinite(values) if is_float else np.ones(values.shape, dtype=bool)
    n_nonfinite = int(counts[~finite].sum())
    values, counts = values[finite], counts[finite]
    n = int(counts.sum())
    out: dict[str, float | int | None] = {"count": n, "nan": n_nonfinite,
                                          "zeros": int(counts[values == 0].sum())}
    keys = ("mean", "std", "min", "max", *(f"p{q:g}" for q in percentiles))
    if n == 0:
        out.update(dict.fromkeys(keys))
        return out
    if is_float:
        ints, scale = (values.astype(np.float64) * _FLOAT16_SCALE).astype(np.int64), _FLOAT16_SCALE
    else:
        ints, scale = values.astype(np.int64), 1
    total = sum(c * v for c, v in zip(counts.tolist(), ints.tolist()))
    squares = sum(c * v * v for c, v in zip(counts.tolist(), ints.tolist()))
    mean = Fraction(total, n * scale)
    variance = Fraction(squares * n - total * total, n * n * scale * scale)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order].astype(np.float64)
    cumulative = np.cumsum(counts[order])
    out["mean"] = float(mean)
    out["std"] = math.sqrt(variance)
    out["min"], out["max"] = float(sorted_values[0]), float(sorted_values[-1])
    for q in percentiles:
        out[f"p{q:g}"] = _percentile(sorted_values, cumulative, q)
    return out
