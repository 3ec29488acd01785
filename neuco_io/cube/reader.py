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
is checked before it is trusted (`safezip`), and the metadata, codecs and
every decode are checked and bounded (`zarrv2`). Whatever a file holds, a
bad cube raises a `CubeError` naming it.
"""

from __future__ import annotations

import itertools
import json
import lzma
import math
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from neuco_io.cube.members import LOCAL_HEADER, check_entry_count, check_layout, stored_data_offset
from neuco_io.cube.zarrcompat import open_format2_group, open_xarray, zip_store
from neuco_io.cube.zarrv2 import (
    MAX_CHUNK_BYTES,
    MAX_READ_BYTES,
    ArrayMeta,
    CodecError,
    MetadataError,
    TooLargeError,
    decode_chunk,
    parse_array,
)
from neuco_io.errors import CubeFormatError, CubeReadError
from neuco_io.shards.codecs import check_blosc_frame
from neuco_io.spec import BANDS_VAR
from neuco_io.storage import Store, as_path, open_store

__all__ = ["ArrayInfo", "Cube", "CubeInfo", "open_cube", "read_cube_info"]

MAX_JSON_BYTES = 16 << 20
"""Largest metadata document read (a 64-sample v1.1 `.zmetadata` is about 20 KB)."""
ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error,
                   lzma.LZMAError)
"""What zipfile raises on a damaged member (a flipped method field makes a stored member "deflated"...)."""
_PARSED: dict[bytes, tuple[dict[str, Any], dict[str, ArrayMeta]]] = {}
"""Checked metadata by `.zmetadata` bytes: parsing and checking it is most of the cost of opening a cube."""
MAX_ARRAYS = 1000
"""Arrays one cube may declare (a v1.1 cube has 15)."""
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


def _size_or_raise(store: Store) -> int:
    """The size of the file at the store's root; CubeReadError when it is missing, a directory, not a regular
    file or empty."""
    path = store.path
    try:
        info = store.info()
    except FileNotFoundError:
        raise CubeReadError(path, "file not found", reason="missing") from None
    except PermissionError:
        raise CubeReadError(path, "permission denied", reason="permission") from None
    except OSError as exc:
        raise CubeReadError(path, f"cannot stat: {exc.strerror or exc}", reason="io") from None
    except Exception as exc:  # object-store backends raise their own errors
        raise CubeReadError(path, f"cannot stat: {type(exc).__name__}: {exc}", reason="io") from None
    if info.is_dir:
        raise CubeReadError(path, "is a directory, not a zip file", reason="directory")
    if info.kind is not None:
        raise CubeReadError(path, f"is not a regular file ({info.kind})", reason="not-regular")
    if info.size == 0:
        raise CubeReadError(path, "zero-byte file", reason="empty")
    return info.size


def _open_zip(store: Store, size: int) -> tuple[zipfile.ZipFile, IO[bytes]]:
    """The zip and its open file (with `positioned_reads`, its descriptor serves reads of stored members)."""
    path = store.path
    fh = None
    try:
        fh = store.open()  # closed by Cube.close
        check_entry_count(fh, size)
        zf = zipfile.ZipFile(fh)
        check_layout(zf.infolist(), size)
        return zf, fh
    except PermissionError:
        raise CubeReadError(path, "permission denied", reason="permission") from None
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:  # zipfile raises ValueError on some damage
        fh.close()
        raise CubeReadError(path, f"not a valid zip archive ({exc}); truncated or corrupt?", reason="not-zip") from None
    except OSError as exc:
        if fh is not None:
            fh.close()
        raise CubeReadError(path, f"cannot read: {exc.strerror or exc}", reason="io") from None


class Cube:
    """An open cube. Use as a context manager, or call `close()`.

    Opening reads the zip directory and the Zarr v2 metadata only (the
    consolidated `.zmetadata`, else the per-array documents); no chunk is
    decoded until `read` asks for it. zarr itself (2.18 or 3) is opened on
    demand, for the xarray view only.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = as_path(path)
        self.storage = open_store(self.path)  # the file itself is the store's root
        self.size = _size_or_raise(self.storage)
        self._store = None  # zarr.storage.ZipStore, when zarr itself is needed
        self._zarr_group = None
        self._zip, self._fh = _open_zip(self.storage, self.size)
        self._fd: int | None = self._fh.fileno() if self.storage.positioned_reads else None
        try:
            self._members = {info.filename: info for info in self._zip.infolist()}
            self.consolidated = ".zmetadata" in self._members
            self.group_attrs, self._meta = self._read_metadata()
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------
    def _bytes(self, key: str) -> bytes:
        info = self._members[key]
        if info.file_size > MAX_JSON_BYTES:
            raise CubeFormatError(self.path, f"{key} claims {info.file_size:,} bytes, more than a metadata document "
                                  f"may hold ({MAX_JSON_BYTES:,})", reason="too-large")
        try:
            return self._zip.read(key)
        except ZIP_READ_ERRORS as exc:
            raise CubeReadError(self.path, f"cannot read {key}: {_first_line(exc)}", reason="not-zip") from None

    def _json(self, key: str, data: bytes | None = None) -> Any:
        data = self._bytes(key) if data is None else data
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise CubeFormatError(self.path, f"{key} is not valid JSON: {_first_line(exc)}", reason="not-zarr") \
                from None

    def _read_metadata(self) -> tuple[dict[str, Any], dict[str, ArrayMeta]]:
        if "zarr.json" in self._members:
            raise CubeFormatError(self.path, "is a Zarr format-3 store; the datasets use Zarr format 2",
                                  reason="zarr-format")
        if self.consolidated:
            raw = self._bytes(".zmetadata")
            known = _PARSED.get(raw)  # the cubes of one modality usually share their metadata byte for byte
            if known is not None:
                return dict(known[0]), known[1]
            docs = self._json(".zmetadata", raw)
            docs = docs.get("metadata") if isinstance(docs, dict) else None
            if not isinstance(docs, dict):
                raise CubeFormatError(self.path, ".zmetadata has no 'metadata' object", reason="not-zarr")
        else:
            wanted = (".zgroup", ".zarray", ".zattrs")
            docs = {k: self._json(k) for k in self._members if k.rsplit("/", 1)[-1] in wanted}
        if not all(isinstance(k, str) for k in docs):
            raise CubeFormatError(self.path, ".zmetadata keys are not all strings", reason="not-zarr")
        group = docs.get(".zgroup")
        if not isinstance(group, dict):
            raise CubeFormatError(self.path, "zip holds no Zarr group at its root (no .zgroup)", reason="not-zarr")
        if group.get("zarr_format") != 2:
            raise CubeFormatError(self.path, f"group has zarr_format {str(group.get('zarr_format'))[:40]}, expected 2",
                                  reason="zarr-format")
        group_attrs = docs.get(".zattrs") or {}
        if not isinstance(group_attrs, dict):
            raise CubeFormatError(self.path, f"the group's .zattrs is {type(group_attrs).__name__}, not an object",
                                  reason="not-zarr")
        n_arrays = sum(1 for key in docs if key.endswith("/.zarray"))
        if n_arrays > MAX_ARRAYS:
            raise CubeFormatError(self.path, f"metadata declares {n_arrays:,} arrays, more than {MAX_ARRAYS:,}",
                                  reason="too-large")
        arrays = {}
        for key, doc in docs.items():
            if not key.endswith("/.zarray"):
                continue
            name = key[: -len("/.zarray")]
            try:
                arrays[name] = parse_array(doc, docs.get(f"{name}/.zattrs"))
            except MetadataError as exc:
                reason = "codec" if isinstance(exc, CodecError) else "too-large" if isinstance(exc, TooLargeError) \
                    else "not-zarr"
                raise CubeFormatError(self.path, f"array {name[:100]!r}: {exc}", reason=reason) from None
        if self.consolidated:
            if len(_PARSED) >= 64:
                _PARSED.clear()
            _PARSED[raw] = (group_attrs, arrays)
        return dict(group_attrs), arrays

    def _zarr(self):  # -> zarr.Group
        """The group through zarr itself (2.18 or 3), opened on first use (zarr is imported only then)."""
        if self._zarr_group is None:
            if not self.storage.os_paths:
                raise CubeFormatError(self.path, "the xarray view reads through zarr, which needs a local copy of "
                                      "the cube", reason="remote")
            self._store = zip_store(self.path)
            self._zarr_group = open_format2_group(self._store, self.consolidated)
        return self._zarr_group

    def close(self) -> None:
        if getattr(self, "_store", None) is not None:
            self._store.close()
            self._store = None
            self._zarr_group = None
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
            self._zip = None
            self._fh.close()
            self._fd = None

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

    def _array(self, name: str) -> ArrayMeta:
        try:
            return self._meta[name]
        except KeyError:
            raise CubeFormatError(self.path, f"has no variable {name!r}", reason="missing-variable") from None

    def dims(self, name: str) -> tuple[str, ...]:
        return self._array(name).dims

    def shape(self, name: str) -> tuple[int, ...]:
        return self._array(name).shape

    def dtype(self, name: str) -> np.dtype:
        return self._array(name).dtype

    def chunks(self, name: str) -> tuple[int, ...]:
        return self._array(name).chunks

    def array_info(self, name: str) -> ArrayInfo:
        meta = self._array(name)
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
            zip_compressed=any(i.compress_type != zipfile.ZIP_STORED for i in self._members.values()),
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
        sep = self._array(name).separator
        return f"{name}/" + (sep.join(str(i) for i in index) if index else "0")

    def raw_chunk(self, name: str, index: Sequence[int]) -> bytes | None:
        """The chunk's stored (compressed) bytes, or None when the chunk is absent (fill value)."""
        key = self.chunk_key(name, index)
        info = self._members.get(key)
        if info is None:
            return None
        limit = MAX_CHUNK_BYTES + (1 << 16)  # room for a codec's framing
        if info.file_size > limit or info.compress_size > limit:
            raise CubeReadError(self.path, f"chunk {key} claims {max(info.file_size, info.compress_size):,} bytes, "
                                f"more than a chunk may hold", reason="chunk")
        try:
            if self._fd is not None and info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                return self._read_stored(info)
            return self._zip.read(key)
        except ZIP_READ_ERRORS as exc:
            raise CubeReadError(self.path, f"cannot read chunk {key}: {exc}", reason="chunk") from None

    def _read_stored(self, info: zipfile.ZipInfo) -> bytes:
        """A stored member with one positioned read, CRC-32 checked like zipfile does.

        zipfile's reader copies each member several times through its buffers;
        the public cubes are stored zips, so their members are plain byte ranges.
        """
        header = os.pread(self._fd, LOCAL_HEADER.size + len(info.orig_filename.encode()), info.header_offset)
        start = stored_data_offset(header[:LOCAL_HEADER.size], header[LOCAL_HEADER.size:], info)
        data = os.pread(self._fd, info.compress_size, start)
        if len(data) != info.compress_size:
            raise EOFError(f"{info.filename}: truncated ({len(data)} of {info.compress_size} bytes)")
        if zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC-32 for {info.filename}")
        return data

    def has_chunk(self, name: str, index: Sequence[int]) -> bool:
        return self.chunk_key(name, index) in self._members

    def chunk_grid(self, name: str) -> tuple[int, ...]:
        return self._array(name).grid

    def _decode(self, meta: ArrayMeta, name: str, index: Sequence[int], out: np.ndarray | None) -> np.ndarray:
        """Decode one chunk (straight into `out` when it is a C-contiguous chunk-shaped buffer)."""
        raw = self.raw_chunk(name, index)
        if raw is None:
            chunk = out if out is not None else np.empty(meta.chunks, dtype=meta.dtype)
            chunk[...] = meta.fill_value if meta.fill_value is not None else "" if meta.dtype.hasobject else 0
            return chunk
        try:
            return decode_chunk(meta, raw, out)
        except Exception as exc:  # codecs raise RuntimeError/ValueError on corrupt input
            raise CubeReadError(self.path, f"chunk {self.chunk_key(name, index)} does not decode: "
                                f"{_first_line(exc)}", reason="chunk") from None

    def read_chunk(self, name: str, index: Sequence[int]) -> np.ndarray:
        """One whole chunk, decoded (edge chunks keep their stored padding)."""
        return self._decode(self._array(name), name, index, None)

    def stored_chunks(self, name: str) -> list[tuple[int, ...]]:
        """Grid indices of the chunks the zip holds for an array (absent chunks read as the fill value)."""
        meta = self._array(name)
        prefix = f"{name}/"
        found = []
        for key in self._members:
            if not key.startswith(prefix):
                continue
            parts = key[len(prefix):].split(meta.separator)
            if len(parts) != max(len(meta.shape), 1) or not all(p.isdigit() and p.isascii() for p in parts):
                continue
            index = tuple(int(p) for p in parts) if meta.shape else ()
            if all(i < n for i, n in zip(index, meta.grid)):
                found.append(index)
        return sorted(found)

    def iter_chunks(self, name: str) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """Every chunk of an array, decoded, in C order of the chunk grid."""
        for index in itertools.product(*(range(n) for n in self.chunk_grid(name))):
            yield index, self.read_chunk(name, index)

    def read(self, name: str, selection: Sequence[slice | int] | None = None) -> np.ndarray:
        """Read a variable (or a box of it given as slices/ints per dimension) in its native dtype."""
        meta = self._array(name)
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

    def sample_frames(self, name: str, sample: int) -> list[bytes] | None:
        """The stored Blosc chunks of one sample, one per timestamp, without decoding them.

        None unless every timestamp is exactly one Blosc chunk (the public
        layout). The zip's CRC-32 (checked on every read) and each Blosc
        header (its sizes must match the chunk) are verified; the data is not
        decompressed.
        """
        meta = self._array(name)
        per_timestamp = len(meta.shape) >= 3 and meta.chunks == (1, 1, *meta.shape[2:])
        blosc = meta.compressor is not None and meta.compressor.codec_id == "blosc"
        if not (per_timestamp and blosc and meta.order == "C" and not meta.filters):
            return None
        zeros = [0] * (len(meta.shape) - 2)
        frames = [self.raw_chunk(name, (sample, t, *zeros)) for t in range(meta.shape[1])]
        if any(f is None for f in frames):
            return None
        nbytes = math.prod(meta.shape[2:]) * meta.dtype.itemsize
        for t, frame in enumerate(frames):
            try:
                check_blosc_frame(frame, nbytes)
            except ValueError as exc:
                raise CubeReadError(self.path, f"chunk {self.chunk_key(name, (sample, t, *zeros))} is damaged: "
                                    f"{exc}", reason="chunk") from None
        return frames

    def read_sample(self, name: str, sample: int) -> tuple[np.ndarray, list[bytes] | None]:
        """One sample of a (sample, time, ...) array, decoded, and its stored frames when they can be reused.

        Frames are returned when every timestamp is exactly one Blosc chunk
        (the public layout): the compressed bytes can then be copied into a
        shard as they are, after this decode proved them sound.
        """
        meta = self._array(name)
        frames = self.sample_frames(name, sample)
        if frames is None:
            return self.read(name, (sample,)), None
        out = np.empty(meta.shape[1:], dtype=meta.dtype)
        zeros = [0] * (len(meta.shape) - 2)
        for t, frame in enumerate(frames):
            try:
                meta.compressor.decode(frame, out=out[t])
            except Exception as exc:
                raise CubeReadError(self.path, f"chunk {self.chunk_key(name, (sample, t, *zeros))} does not "
                                    f"decode: {exc}", reason="chunk") from None
        return out, frames

    def read_location(self, sample: int = 0, times: Sequence[int] | None = None) -> np.ndarray:
        """`bands` of one location as (time, band, y, x), native dtype; `times` picks and orders timestamps."""
        if times is None:
            return self.read(BANDS_VAR, (sample,))
        meta = self._array(BANDS_VAR)
        out = np.empty((len(times), *meta.shape[2:]), dtype=meta.dtype)
        for i, t in enumerate(times):
            out[i] = self.read(BANDS_VAR, (sample, t))
        return out

    # -- xarray ----------------------------------------------------------
    def to_xarray(self):  # -> xarray.Dataset
        """A lazily loaded xarray view through zarr (no dask). Keep the cube open while using it."""
        return open_xarray(self._zarr().store, self.consolidated)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


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
    store = zip_store(path)
    try:
        return open_xarray(store, None)
    except Exception:
        store.close()
        raise
