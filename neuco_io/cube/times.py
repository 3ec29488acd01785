"""CF-encoded times (`units: "days since ..."`) decoded as xarray decodes them, mostly without xarray."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["decode_times"]

_CF_TIME = re.compile(r"(days|hours|minutes|seconds|milliseconds|microseconds) since "
                      r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?))?")
_CF_UNITS = {"days": "D", "hours": "h", "minutes": "m", "seconds": "s", "milliseconds": "ms", "microseconds": "us"}
_CF_MASKING = ("_FillValue", "missing_value", "scale_factor", "add_offset", "_Unsigned")


def _decode_simple(raw: np.ndarray, attrs: dict[str, Any]) -> np.ndarray | None:
    """The common case (integer offsets from a plain ISO date, Gregorian calendar, no masking) in numpy;
    None for anything else. Spares each worker importing xarray and pandas (most of a second)."""
    match = _CF_TIME.fullmatch(str(attrs.get("units", "")).strip())
    calendar = str(attrs.get("calendar", "standard")).lower()
    if match is None or raw.dtype.kind not in "iu" or any(key in attrs for key in _CF_MASKING):
        return None
    if calendar not in ("proleptic_gregorian", "standard", "gregorian") or not 1678 <= int(match[2][:4]) <= 2261:
        return None  # other calendars, and dates outside datetime64[ns], need cftime
    reference = np.datetime64(match[2] + (f"T{match[3]}" if match[3] else ""), "ns")
    unit = int(np.timedelta64(1, _CF_UNITS[match[1]]).astype("timedelta64[ns]").astype(np.int64))
    if raw.size:  # bounds in Python integers first: numpy's datetime arithmetic wraps around silently
        start = int(reference.astype(np.int64))
        lowest, highest = (int(np.datetime64(day, "ns").astype(np.int64)) for day in ("1678-01-01", "2262-01-01"))
        if start + int(raw.min()) * unit < lowest or start + int(raw.max()) * unit > highest:
            return None
    return reference + raw.astype(np.int64) * np.timedelta64(unit, "ns")


def decode_times(name: str, raw: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """CF-encoded times (`units: "days since ..."`) as datetime64[ns], exactly as xarray decodes them."""
    if "since" not in str(attrs.get("units", "")):
        return raw
    simple = _decode_simple(raw, attrs)
    if simple is not None:
        return simple
    import xarray as xr

    dims = [f"d{i}" for i in range(raw.ndim)]
    decoded = xr.decode_cf(xr.Dataset({name: (dims, raw, dict(attrs))}))
    return decoded[name].values
