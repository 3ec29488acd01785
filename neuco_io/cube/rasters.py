"""Read a user's imagery (GeoTIFF or .npy, one season of one modality per file) and fit it to a cube.

GeoTIFFs are read with tifffile (imagecodecs decodes LZW, ZSTD and the
floating-point predictor): one page holding all bands, pixel- or
band-interleaved as GDAL writes them, or one page per band as
`tifffile.imwrite` writes a (band, y, x) array. Their georeferencing (CRS,
geotransform, nodata) is returned separately so it can be kept out of the cubes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import spec

__all__ = ["Raster", "RasterError", "fit_dtype", "interpolation_taps", "read_raster", "resample"]

RESAMPLING = ("nearest", "bilinear")


class RasterError(ValueError):
    """A source file that cannot become a cube band stack (the message says why)."""


@dataclass
class Raster:
    path: str
    data: np.ndarray
    """(band, y, x)."""
    georef: dict[str, Any] = field(default_factory=dict)


def _tiff(path: Path) -> Raster:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]  # the full-resolution image: one page, or one page per band
            data = series.asarray()
            axes = series.axes
            georef = _georef(tif)
    except (OSError, ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
        raise RasterError(f"not a readable TIFF: {type(exc).__name__}: {exc}") from None
    if data.ndim == 2:
        data = data[None]
    elif data.ndim == 3 and axes.endswith("S"):
        data = np.moveaxis(data, -1, 0)  # pixel-interleaved (y, x, band) -> (band, y, x)
    elif data.ndim != 3:
        raise RasterError(f"expected a (band, y, x) image, got shape {data.shape} (axes {axes})")
    return Raster(str(path), np.ascontiguousarray(data), georef)


def _georef(tif) -> dict[str, Any]:
    """CRS (EPSG), pixel scale, tie point and affine transform from the GeoTIFF tags, if any."""
    tags = tif.pages[0].tags
    out: dict[str, Any] = {}
    scale = tags.get("ModelPixelScaleTag")
    tie = tags.get("ModelTiepointTag")
    matrix = tags.get("ModelTransformationTag")
    if scale is not None:
        out["pixel_scale"] = [float(v) for v in scale.value]
    if tie is not None:
        out["tiepoint"] = [float(v) for v in tie.value]
    if matrix is not None:
        out["transformation"] = [float(v) for v in matrix.value]
    if scale is not None and tie is not None:
        sx, sy = out["pixel_scale"][:2]
        i, j, _, x, y, _ = out["tiepoint"][:6]
        out["transform"] = [sx, 0.0, x - i * sx, 0.0, -sy, y + j * sy]  # GDAL-style affine
    nodata = tags.get("GDAL_NODATA")
    if nodata is not None:
        out["nodata"] = str(nodata.value).strip("\x00 ")
    keys = tags.get("GeoKeyDirectoryTag")
    if keys is not None:
        values = [int(v) for v in keys.value]
        for k in range(4, len(values) - 3, 4):
            key, location, _, value = values[k:k + 4]
            if location == 0 and key in (3072, 2048):  # ProjectedCSTypeGeoKey, GeographicTypeGeoKey
                out["epsg"] = value
    return out


def read_raster(path: str | os.PathLike[str]) -> Raster:
    """A (band, y, x) array from a GeoTIFF or an .npy file (never unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise RasterError("file not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _tiff(path)
    if suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RasterError(f"not a readable .npy array: {exc}") from None
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or data.dtype.kind not in "biuf":
            raise RasterError(f"expected a numeric (band, y, x) array, got {data.dtype} {data.shape}")
        return Raster(str(path), data)
    raise RasterError(f"unsupported file type {suffix!r} (use .tif/.tiff or .npy)")


def interpolation_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation between pixel centres: output i = (1 - frac) * input[lo] + frac * input[hi]."""
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, pos - lo


def resample(image: np.ndarray, method: str, size: int = spec.SIZE) -> np.ndarray:
    """(band, h, w) -> (band, size, size). NaNs stay NaN under bilinear (they spread to neighbours).

    Bilinear is separable and each output pixel reads two inputs per axis, so it
    gathers those two rows (then columns) and blends them: O(pixels), no matrix
    product over mostly-zero weights.
    """
    if method not in RESAMPLING:
        raise ValueError(f"resampling {method!r}: use one of {', '.join(RESAMPLING)}")
    _, h, w = image.shape
    if method == "nearest":
        rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(int), h - 1)
        cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(int), w - 1)
        return image[:, rows][:, :, cols]
    return _blend(_blend(image.astype(np.float64, copy=False), 1, size), 2, size)


def _blend(data: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation of float64 `data` along `axis` to `size` (gathers with np.take, blends in place)."""
    lo, hi, frac = interpolation_taps(data.shape[axis], size)
    shape = [1] * data.ndim
    shape[axis] = size
    out = np.take(data, lo, axis=axis)
    out *= (1 - frac).reshape(shape)
    upper = np.take(data, hi, axis=axis)
    upper *= frac.reshape(shape)
    out += upper
    return out


def fit_dtype(modality: str, data: np.ndarray) -> np.ndarray:
    """The array in a dtype the modality accepts, without changing a value.

    S2 becomes int16 (or uint16 when values need it); fractional or out-of-range
    S2 values are refused. S1 keeps float16/float32 as given (other numbers
    become float32, refused if that would change them).
    """
    mod = spec.MODALITIES[modality]
    if mod.s2:
        if data.dtype.kind == "f":
            if not np.isfinite(data).all():
                raise RasterError("S2 values hold NaN or infinity (S2 is stored as integers)")
            if not np.array_equal(data, np.round(data)):
                raise RasterError("S2 values are fractional; S2 is stored as integer digital numbers")
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
        for dtype in (np.int16, np.uint16):
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return data.astype(dtype)
        raise RasterError(f"S2 values {lo:g}..{hi:g} fit neither int16 nor uint16")
    if data.dtype in (np.float16, np.float32):
        return data
    converted = data.astype(np.float32)
    if not np.array_equal(converted.astype(data.dtype), data, equal_nan=data.dtype.kind == "f"):
        raise RasterError(f"S1 values in {data.dtype} do not fit float32 exactly")
    return converted
