"""Write cubes exactly like the public ones: Zarr format 2 in a stored zip.

xarray and zarr (2.18 or 3) write the metadata documents and the small variables
(coordinates, v1.1 metadata with CF-encoded times) into an in-memory store,
with Blosc-lz4 and `_ARRAY_DIMENSIONS` as the original writer stack did;
zarr declares `bands` there too. The `bands` chunks, one per (sample, time)
as in the public files, are then encoded with the array's own numcodecs codec
and streamed into the zip as they are written, so a 64-sample v1.1 cube never
sits in memory whole. The consolidated `.zmetadata` goes last, and the zip is
renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np

from neuco_io import spec
from neuco_io.cube.zarrcompat import format2_metadata
from neuco_io.storage.atomic import atomic_path

__all__ = ["BLOSC_LZ4", "CubeWriter", "write_cube"]

BLOSC_LZ4 = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
"""zarr 2's default compressor, which the public cubes use for every array."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _fill_value(dtype: np.dtype) -> Any:
    """What xarray 2025.1 + zarr 2.18 wrote: NaN for floats, none for integers."""
    return np.nan if dtype.kind == "f" else None


class CubeWriter:
    """Write one cube sample by sample; use as a context manager.

    >>> with CubeWriter(path, "s2l2a", ["<id>"]) as w:
    ...     w.write_sample(0, bands)          # (time, band, y, x)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        modality: str,
        sample_ids: Sequence[str],
        *,
        dtype: str | np.dtype | None = None,
        band_names: Sequence[str] | None = None,
        extra: Mapping[str, tuple[tuple[str, ...], np.ndarray, dict]] | None = None,
        times: int = spec.N_TIMES,
        overwrite: bool = False,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.modality = spec.MODALITIES[modality]
        self.sample_ids = [str(s) for s in sample_ids]
        self.dtype = np.dtype(dtype or self.modality.dtype)
        self.band_names = list(band_names or self.modality.bands)
        self.shape = (len(self.sample_ids), times, len(self.band_names), spec.SIZE, spec.SIZE)
        self._written: set[int] = set()
        self._atomic = atomic_path(self.path, overwrite=overwrite, fsync=fsync)
        temp = self._atomic.__enter__()
        try:
            self._zip = zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
            self._metadata = self._build_metadata(extra or {})
            for key in sorted(self._metadata, key=_member_order):
                if key != ".zmetadata":
                    self._add(key, self._metadata[key])
        except BaseException:
            self._abort()
            raise

    def _build_metadata(self, extra: Mapping[str, tuple[tuple[str, ...], np.ndarray, dict]]) -> dict[str, bytes]:
        import xarray as xr

        coords = {
            "sample": np.array(self.sample_ids),
            "time": np.arange(self.shape[1], dtype=np.int64),
            "band": np.array(self.band_names),
            "y": np.arange(spec.SIZE, dtype=np.int64),
            "x": np.arange(spec.SIZE, dtype=np.int64),
        }
        ds = xr.Dataset({name: (dims, data, attrs) for name, (dims, data, attrs) in extra.items()}, coords=coords)
        # per-(sample, time) chunks for images like the cloud mask
        chunks = {name: (1, 1, *var.shape[2:]) for name, var in ds.data_vars.items() if var.ndim >= 3}
        bands = {"name": spec.BANDS_VAR, "shape": self.shape, "chunks": (1, 1, *self.shape[2:]),
                 "dtype": self.dtype, "fill_value": _fill_value(self.dtype), "dims": spec.DIMS}
        return format2_metadata(ds, BLOSC_LZ4, chunks, bands)

    def _add(self, key: str, data: bytes) -> None:
        info = zipfile.ZipInfo(key, date_time=_ZIP_DATE)
        info.external_attr = 0o644 << 16
        info.create_system = 3
        self._zip.writestr(info, data, compress_type=zipfile.ZIP_STORED)

    def write_sample(self, index: int, bands: np.ndarray) -> None:
        """Write `bands[index]` as (time, band, y, x); values must fit the cube's dtype exactly."""
        expected = self.shape[1:]
        if tuple(bands.shape) != expected:
            raise ValueError(f"sample {index}: shape {bands.shape}, expected {expected}")
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"sample {index} out of range for {self.shape[0]} samples")
        data = np.ascontiguousarray(bands, dtype=self.dtype)
        for t in range(expected[0]):
            self._add(f"{spec.BANDS_VAR}/{index}.{t}.0.0.0", _encode(data[t]))
        self._written.add(index)

    def close(self) -> None:
        """Finish the cube: every sample must be written."""
        missing = sorted(set(range(self.shape[0])) - self._written)
        if missing:
            self._abort()
            raise ValueError(f"{self.path}: samples {missing[:5]} were never written")
        try:
            self._add(".zmetadata", self._metadata[".zmetadata"])
            self._zip.close()
        except BaseException:
            self._abort()
            raise
        self._atomic.__exit__(None, None, None)

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._zip.close()
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> CubeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def _encode(frame: np.ndarray) -> bytes:
    """Blosc-lz4 on one thread: with its own threads (numcodecs 0.15 uses them by default) Blosc stores
    blocks in the order they finish, and the same cube would not come out byte for byte the same."""
    blosc = numcodecs.blosc
    saved = blosc.use_threads
    blosc.use_threads = False
    try:
        return BLOSC_LZ4.encode(frame)
    finally:
        blosc.use_threads = saved


def _member_order(key: str) -> tuple[int, str]:
    """Group documents first (as xarray + zarr 2 wrote them), then arrays, `.zmetadata` last."""
    return ({".zgroup": 0, ".zattrs": 1, ".zmetadata": 3}.get(key, 2), key)


def write_cube(
    path: str | os.PathLike[str],
    modality: str,
    bands: np.ndarray,
    sample_ids: Sequence[str],
    **kwargs: Any,
) -> Path:
    """Write a whole cube from a (sample, time, band, y, x) array."""
    with CubeWriter(path, modality, sample_ids, dtype=kwargs.pop("dtype", bands.dtype), **kwargs) as writer:
        for i in range(bands.shape[0]):
            writer.write_sample(i, bands[i])
    return Path(path)
