"""Open one `.zarr.zip` cube.

The public cubes are Zarr format-2 groups inside stored zip archives written by
zarr 2.18; zarr 3 opens them only through an explicit `ZipStore` (which
`open_cube` and `Cube.to_xarray` use). The hot paths (validate, convert, the
loader) read the v2 metadata documents and the chunks straight from the
archive and decode them with the arrays' own numcodecs codecs: zarr 3's
open-and-read costs about 1 ms of event-loop round trips per file and 1.5x the
decode time, which would dominate a metadata scan of 40,000 files. The tests
prove both paths give identical bytes and metadata on files from the original
writer stack.

Cubes are untrusted input: only regular files are opened, the zip directory
is checked before it is trusted and members are read bounded (`members`), and
the metadata, codecs and every decode are checked and bounded (`zarrv2`).
Whatever a file holds, a bad cube raises a `CubeError` naming it. This module
only decodes and selects; the xarray view is `view`, the converter's
copy-through `passthrough`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuco_io.cube.members import ZIP_READ_ERRORS, MemberTooLarge, ZipMembers
from neuco_io.cube.view import ZarrView, open_dataset
from neuco_io.cube.zarrv2 import (
    MAX_CHUNK_BYTES,
    MAX_JSON_BYTES,
    MAX_READ_BYTES,
    ArrayMeta,
    MetadataError,
    decode_chunk,
    first_line,
    read_group,
    reason_of,
)
from neuco_io.errors import CubeFormatError, CubeReadError
from neuco_io.spec import BANDS_VAR
from neuco_io.storage import as_path

__all__ = ["ArrayInfo", "Cube", "CubeInfo", "open_cube", "read_cube_info"]

MAX_COORD_BYTES = 16 << 20
"""Largest coordinate `info()` decodes (the public ones are a few KB)."""


@dataclass(frozen=True)
class ArrayInfo:
    """What zarr's metadata says about one array; small and picklable."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    attrs: dict[str, Any] = field(default_factory=dict)
    compressor: dict[str, Any] | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class CubeInfo:
    """Everything `validate` needs to know about a cube without decoding image chunks."""

    path: str
    arrays: dict[str, ArrayInfo]
    group_attrs: dict[str, Any]
    consolidated: bool
    zip_compressed: bool
    """True when any zip member is deflated (the public files are stored)."""
    coords: dict[str, list[Any]]
    """Values of the 1-D coordinate arrays (sample, time, band, y, x) that exist."""
    size: int

    @property
    def bands(self) -> ArrayInfo | None:
        return self.arrays.get(BANDS_VAR)

    @property
    def sample_ids(self) -> list[str]:
        return [str(s) for s in self.coords.get("sample", [])]

    @property
    def band_names(self) -> list[str]:
        return [str(b) for b in self.coords.get("band", [])]


class Cube:
    """An open cube. Use as a context manager, or call `close()`.

    Opening reads the zip directory and the Zarr v2 metadata only (the
    consolidated `.zmetadata`, else the per-array documents); no chunk is
    decoded until `read` asks for it. zarr itself (2.18 or 3) is opened on
    demand, for the xarray view only.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = as_path(path)
        self._members = ZipMembers(self.path)
        self.size = self._members.size
        self._view: ZarrView | None = None
        self.consolidated = ".zmetadata" in self._members
        try:
            self.group_attrs, self._meta = read_group(self._members, self._document)
        except MetadataError as exc:
            self.close()
            raise CubeFormatError(self.path, str(exc), reason=reason_of(exc)) from None
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------
    def _document(self, key: str) -> bytes:
        """A metadata document's bytes, bounded by MAX_JSON_BYTES."""
        try:
            return self._members.read(key, MAX_JSON_BYTES)
        except MemberTooLarge as exc:
            raise CubeFormatError(self.path, f"{key} claims {exc.claimed:,} bytes, more than a metadata document "
                                  f"may hold ({MAX_JSON_BYTES:,})", reason="too-large") from None
        except ZIP_READ_ERRORS as exc:
            raise CubeReadError(self.path, f"cannot read {key}: {first_line(exc)}", reason="not-zip") from None

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
        self._members.close()

    def __enter__(self) -> Cube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cube({str(self.path)!r})"

    # -- metadata --------------------------------------------------------
    @property
    def array_names(self) -> list[str]:
        return sorted(self._meta)

    def array_meta(self, name: str) -> ArrayMeta:
        """The array's checked Zarr v2 metadata (codecs included)."""
        try:
            return self._meta[name]
        except KeyError:
            raise CubeFormatError(self.path, f"has no variable {name!r}", reason="missing-variable") from None

    def dims(self, name: str) -> tuple[str, ...]:
        return self.array_meta(name).dims

    def shape(self, name: str) -> tuple[int, ...]:
        return self.array_meta(name).shape

    def dtype(self, name: str) -> np.dtype:
        return self.array_meta(name).dtype

    def chunks(self, name: str) -> tuple[int, ...]:
        return self.array_meta(name).chunks

    def array_info(self, name: str) -> ArrayInfo:
        meta = self.array_meta(name)
        return ArrayInfo(
            name=name,
            dims=meta.dims,
            shape=meta.shape,
            chunks=meta.chunks,
            dtype=str(meta.dtype),
            attrs={k: v for k, v in meta.attrs.items() if k != "_ARRAY_DIMENSIONS"},
            compressor=meta.compressor.get_config() if meta.compressor is not None else None,
        )

    def info(self) -> CubeInfo:
        coords = {}
        for name in ("sample", "time", "band", "y", "x"):
            meta = self._meta.get(name)
            if meta is None or len(meta.shape) != 1:
                continue
            if meta.shape[0] * meta.dtype.itemsize > MAX_COORD_BYTES:
                raise CubeFormatError(self.path, f"coordinate `{name}` claims {meta.shape[0]:,} values of {meta.dtype}"
                                      f", more than {MAX_COORD_BYTES:,} bytes", reason="too-large")
            coords[name] = self.read(name).tolist()
        return CubeInfo(
            path=str(self.path),
            arrays={name: self.array_info(name) for name in self._meta},
            group_attrs=self.group_attrs,
            consolidated=self.consolidated,
            zip_compressed=self._members.compressed,
            coords=coords,
            size=self.size,
        )

    @property
    def sample_ids(self) -> list[str]:
        return [str(s) for s in self.read("sample").tolist()]

    @property
    def band_names(self) -> list[str]:
        return [str(b) for b in self.read("band").tolist()]

    @property
    def n_samples(self) -> int:
        return int(self.shape(BANDS_VAR)[0])

    # -- chunks ----------------------------------------------------------
    def chunk_key(self, name: str, index: Sequence[int]) -> str:
        return self.array_meta(name).chunk_key(name, index)

    def raw_chunk(self, name: str, index: Sequence[int]) -> bytes | None:
        """The chunk's stored (compressed) bytes, or None when the chunk is absent (fill value)."""
        key = self.chunk_key(name, index)
        if key not in self._members:
            return None
        try:
            return self._members.read(key, MAX_CHUNK_BYTES + (1 << 16))  # room for a codec's framing
        except MemberTooLarge as exc:
            raise CubeReadError(self.path, f"chunk {key} claims {exc.claimed:,} bytes, more than a chunk may hold",
                                reason="chunk") from None
        except ZIP_READ_ERRORS as exc:
            raise CubeReadError(self.path, f"cannot read chunk {key}: {exc}", reason="chunk") from None

    def has_chunk(self, name: str, index: Sequence[int]) -> bool:
        return self.chunk_key(name, index) in self._members

    def chunk_grid(self, name: str) -> tuple[int, ...]:
        return self.array_meta(name).grid

    def _decode(self, meta: ArrayMeta, name: str, index: Sequence[int], out: np.ndarray | None) -> np.ndarray:
        """Decode one chunk (straight into `out` when it is a C-contiguous chunk-shaped buffer)."""
        raw = self.raw_chunk(name, index)
        if raw is None:
            chunk = out if out is not None else np.empty(meta.chunks, dtype=meta.dtype)
            chunk[...] = meta.absent_value
            return chunk
        try:
            return decode_chunk(meta, raw, out)
        except Exception as exc:  # codecs raise RuntimeError/ValueError on corrupt input
            raise CubeReadError(self.path, f"chunk {self.chunk_key(name, index)} does not decode: "
                                f"{first_line(exc)}", reason="chunk") from None

    def read_chunk(self, name: str, index: Sequence[int]) -> np.ndarray:
        """One whole chunk, decoded (edge chunks keep their stored padding)."""
        return self._decode(self.array_meta(name), name, index, None)

    def stored_chunks(self, name: str) -> list[tuple[int, ...]]:
        """Grid indices of the chunks the zip holds for an array (absent chunks read as the fill value)."""
        meta = self.array_meta(name)
        prefix = f"{name}/"
        indices = (meta.chunk_index(key[len(prefix):]) for key in self._members if key.startswith(prefix))
        return sorted(index for index in indices if index is not None)

    def iter_chunks(self, name: str) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """Every chunk of an array, decoded, in C order of the chunk grid."""
        for index in itertools.product(*(range(n) for n in self.chunk_grid(name))):
            yield index, self.read_chunk(name, index)

    def read(self, name: str, selection: Sequence[slice | int] | None = None) -> np.ndarray:
        """Read a variable (or a box of it given as slices/ints per dimension) in its native dtype."""
        meta = self.array_meta(name)
        sel = _normalize(selection, meta.shape)
        nbytes = math.prod(b - a for a, b in sel) * meta.dtype.itemsize
        if nbytes > MAX_READ_BYTES:
            raise CubeFormatError(self.path, f"reading {name} {[b - a for a, b in sel]} would take {nbytes:,} "
                                  f"bytes, more than {MAX_READ_BYTES:,}", reason="too-large")
        result = self._read_box(meta, name, sel)
        squeeze = [i for i, s in enumerate(selection or ()) if isinstance(s, (int, np.integer))]
        if squeeze:
            result = result.reshape(tuple(n for i, n in enumerate(result.shape) if i not in squeeze))
        return result

    def _read_box(self, meta: ArrayMeta, name: str, sel: list[tuple[int, int]]) -> np.ndarray:
        chunks = meta.chunks
        out = np.empty(tuple(b - a for a, b in sel), dtype=meta.dtype)
        if out.size == 0:
            return out
        ranges = [range(a // c, (b - 1) // c + 1) for (a, b), c in zip(sel, chunks)]
        for index in itertools.product(*ranges):
            lo = [i * c for i, c in zip(index, chunks)]
            src = tuple(slice(max(a, l0) - l0, min(b, l0 + c) - l0) for (a, b), l0, c in zip(sel, lo, chunks))
            dst = tuple(slice(max(a, l0) - a, min(b, l0 + c) - a) for (a, b), l0, c in zip(sel, lo, chunks))
            target = out[dst]
            whole = all(s.start == 0 and s.stop == c for s, c in zip(src, chunks))
            if whole and target.flags.c_contiguous:
                self._decode(meta, name, index, target)
            else:
                target[...] = self._decode(meta, name, index, None)[src]
        return out

    def read_location(self, sample: int = 0, times: Sequence[int] | None = None) -> np.ndarray:
        """`bands` of one location as (time, band, y, x), native dtype; `times` picks and orders timestamps."""
        if times is None:
            return self.read(BANDS_VAR, (sample,))
        meta = self.array_meta(BANDS_VAR)
        out = np.empty((len(times), *meta.shape[2:]), dtype=meta.dtype)
        for i, t in enumerate(times):
            out[i] = self.read(BANDS_VAR, (sample, t))
        return out

    # -- xarray ----------------------------------------------------------
    def to_xarray(self):  # -> xarray.Dataset
        """A lazily loaded xarray view through zarr (no dask). Keep the cube open while using it."""
        if self._view is None:
            self._view = ZarrView(self.path, self.consolidated)
        return self._view.dataset()


def _normalize(selection: Sequence[slice | int] | None, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    sel = list(selection or ())
    if len(sel) > len(shape):
        raise IndexError(f"too many indices ({len(sel)}) for {len(shape)} dimensions")
    out = []
    for i, n in enumerate(shape):
        s = sel[i] if i < len(sel) else slice(None)
        if isinstance(s, (int, np.integer)):
            k = int(s) + n if s < 0 else int(s)
            if not 0 <= k < n:
                raise IndexError(f"index {s} out of range for dimension of size {n}")
            out.append((k, k + 1))
        else:
            start, stop, step = s.indices(n)
            if step != 1:
                raise IndexError("only contiguous slices are supported")
            out.append((start, max(start, stop)))
    return out


def read_cube_info(path: str | os.PathLike[str]) -> CubeInfo:
    """Metadata and coordinates of a cube, without decoding image chunks."""
    with Cube(path) as cube:
        return cube.info()


def open_cube(path: str | os.PathLike[str]):  # -> xarray.Dataset
    """Open a cube as an xarray Dataset on zarr 2.18 or 3 (`xarray.open_zarr(path)` fails on zarr 3).

    The Dataset owns the zip store; call `ds.close()` when done.
    """
    Cube(path).close()  # metadata and codecs are checked (allow-list, limits) before zarr builds anything
    return open_dataset(path)
