"""Zarr format-2 metadata and chunks, read as hostile input.

A cube comes from strangers, so its `.zarray` documents are checked before
anything is built from them: only allow-listed codecs are instantiated (a
`pickle` codec named in a file would run code on decode in numcodecs 0.15),
shapes, chunks and dtypes must be well-formed and within limits, and every
decode is capped by the size the metadata allows, checked against the
codec's own header before any output is allocated. Errors are `ValueError`
subclasses; `reader.py` turns them into `CubeError`s naming the file (`reason_of`
gives their reason).
"""

from __future__ import annotations

import base64
import bz2
import json
import lzma
import math
import struct
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np

__all__ = [
    "COMPRESSORS",
    "FILTERS",
    "MAX_ARRAYS",
    "MAX_CHUNKS",
    "MAX_CHUNK_BYTES",
    "MAX_DIMS",
    "MAX_JSON_BYTES",
    "MAX_READ_BYTES",
    "ArrayMeta",
    "CodecError",
    "MetadataError",
    "TooLargeError",
    "ZarrFormatError",
    "decode_chunk",
    "first_line",
    "parse_array",
    "read_group",
    "reason_of",
]

COMPRESSORS = frozenset({"blosc", "zstd", "lz4", "zlib", "gzip", "bz2", "lzma"})
"""Compressors a cube may name: the public files use Blosc; the rest are zarr's plain byte compressors."""
FILTERS = frozenset({"vlen-utf8"})
"""Filters a cube may name: xarray + zarr 2.18 write `vlen-utf8` for object (str) variables. Nothing else
(no pickle, msgpack, json, categorize, vlen-bytes...): no known writer of these datasets uses them."""

MAX_DIMS = 32
MAX_CHUNK_BYTES = 256 << 20
"""Largest decoded chunk: a public `bands` chunk is 1.8 MB."""
MAX_CHUNKS = 1 << 20
"""Largest chunk grid of one array: a 64-sample v1.1 `bands` has 256 chunks."""
MAX_READ_BYTES = 1 << 30
"""Largest box one read returns (a whole 64-sample v1.1 `bands` is 464 MB)."""
MAX_ELEMENTS = 1 << 62
MAX_JSON_BYTES = 16 << 20
"""Largest metadata document read (a 64-sample v1.1 `.zmetadata` is about 20 KB)."""
MAX_ARRAYS = 1000
"""Arrays one cube may declare (a v1.1 cube has 15)."""
_LZMA_MEMLIMIT = 256 << 20
_DTYPE_KINDS = "biufcUSmMO"


class MetadataError(ValueError):
    """A `.zarray`/`.zattrs` document is malformed."""


class CodecError(MetadataError):
    """A codec outside the allow-list, or a config it cannot be built from."""


class TooLargeError(MetadataError):
    """The metadata claims more than the limits allow (never allocated)."""


class ZarrFormatError(MetadataError):
    """A store in a Zarr format other than 2."""


def reason_of(exc: MetadataError) -> str:
    """The `CubeError.reason` a metadata error is reported with."""
    if isinstance(exc, CodecError):
        return "codec"
    if isinstance(exc, TooLargeError):
        return "too-large"
    return "zarr-format" if isinstance(exc, ZarrFormatError) else "not-zarr"


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, capped (codec and JSON errors can be long)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


@dataclass(frozen=True)
class ArrayMeta:
    """A checked `.zarray` document; the codecs are numcodecs objects from the allow-list."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    compressor: Any
    filters: tuple[Any, ...]
    fill_value: Any
    order: str
    separator: str
    attrs: dict[str, Any]

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.attrs.get("_ARRAY_DIMENSIONS", ()))

    @property
    def chunk_items(self) -> int:
        return math.prod(self.chunks)

    @property
    def chunk_nbytes(self) -> int | None:
        """Decoded bytes of one chunk; None for object arrays (variable length)."""
        return None if self.dtype.hasobject else self.chunk_items * self.dtype.itemsize

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks))

    @property
    def absent_value(self) -> Any:
        """What an absent chunk reads as: the fill value, else zero (an empty string for object arrays)."""
        return self.fill_value if self.fill_value is not None else "" if self.dtype.hasobject else 0

    def chunk_key(self, name: str, index: Sequence[int]) -> str:
        """The member holding chunk `index` of array `name` (a 0-d array's one chunk is `name/0`)."""
        return f"{name}/" + (self.separator.join(str(i) for i in index) if index else "0")

    def chunk_index(self, suffix: str) -> tuple[int, ...] | None:
        """The grid index a member name (its part after `name/`) stands for; None when it is no chunk of this
        array (a stray member, or an index outside the grid)."""
        parts = suffix.split(self.separator)
        if len(parts) != max(len(self.shape), 1) or not all(p.isdigit() and p.isascii() for p in parts):
            return None
        index = tuple(int(p) for p in parts) if self.shape else ()
        return index if all(i < n for i, n in zip(index, self.grid)) else None


_CODECS: dict[str, Any] = {}


def _codec(config: Any, allowed: frozenset[str], role: str) -> Any:
    """A numcodecs codec for an allow-listed config, cached (cubes share a handful of configs)."""
    if not isinstance(config, dict) or not isinstance(config.get("id"), str):
        raise CodecError(f"{role} {_short(config)} is not a codec configuration")
    codec_id = config["id"]
    if codec_id not in allowed:
        raise CodecError(f"{role} codec {_short(codec_id)} is not allowed (allowed: {', '.join(sorted(allowed))})")
    if codec_id == "lzma" and (config.get("filters") is not None or config.get("format") not in (None, 0, 1, 2)):
        raise CodecError("lzma with custom filters or the raw format is not allowed")
    key = repr(sorted(config.items()))
    codec = _CODECS.get(key)
    if codec is None:
        try:
            codec = numcodecs.get_codec(dict(config))
        except Exception as exc:  # bad arguments: TypeError, ValueError...
            raise CodecError(f"{role} {_short(config)} is not a valid {codec_id} configuration: {exc}") from None
        _CODECS[key] = codec
    return codec


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise MetadataError(f"{what} {_short(value)} is not a list of integers")
    if len(value) > MAX_DIMS:
        raise MetadataError(f"{what} has {len(value)} dimensions, more than {MAX_DIMS}")
    return tuple(value)


def _dtype(raw: Any) -> np.dtype:
    if not isinstance(raw, str) or len(raw) > 32:
        raise MetadataError(f"dtype {_short(raw)} is not a plain dtype string (structured dtypes are not read)")
    try:
        dtype = np.dtype(raw)
    except Exception:
        raise MetadataError(f"dtype {_short(raw)} is not a numpy dtype") from None
    if dtype.kind not in _DTYPE_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise MetadataError(f"dtype {raw!r} is not supported")
    return dtype


def _fill_value(raw: Any, dtype: np.dtype) -> Any:
    """The fill value as zarr 2 encodes it (NaN/Infinity strings, base64 for bytes), as a numpy scalar."""
    if raw is None:
        return None
    if not isinstance(raw, (int, float, str, bool)):
        raise MetadataError(f"fill_value {_short(raw)} is not a number or string")
    if dtype.hasobject:
        return raw
    try:
        if dtype.kind in "fc" and isinstance(raw, str):
            raw = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[raw]
        elif dtype.kind == "S" and isinstance(raw, str):
            raw = base64.standard_b64decode(raw)
        return np.array(raw, dtype=dtype)[()]
    except Exception:
        raise MetadataError(f"fill_value {_short(raw)} does not fit dtype {dtype}") from None


def parse_array(doc: Any, attrs: Any) -> ArrayMeta:
    """Check one `.zarray` document (and its `.zattrs`) and build its codecs. Raises MetadataError."""
    if not isinstance(doc, dict):
        raise MetadataError(f".zarray is {type(doc).__name__}, not an object")
    if attrs is None:
        attrs = {}
    if not isinstance(attrs, dict):
        raise MetadataError(f".zattrs is {type(attrs).__name__}, not an object")
    if doc.get("zarr_format") != 2:
        raise MetadataError(f"zarr_format is {_short(doc.get('zarr_format'))}, expected 2")
    for key in ("shape", "chunks", "dtype"):
        if key not in doc:
            raise MetadataError(f"no {key!r}")
    shape, chunks = _ints(doc["shape"], "shape"), _ints(doc["chunks"], "chunks")
    if any(n < 0 for n in shape):
        raise MetadataError(f"shape {list(shape)} has a negative size")
    if len(chunks) != len(shape) or any(c < 1 for c in chunks):
        raise MetadataError(f"chunks {list(chunks)} do not fit shape {list(shape)}")
    dims = attrs.get("_ARRAY_DIMENSIONS", [])
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        raise MetadataError(f"_ARRAY_DIMENSIONS {_short(dims)} is not a list of names")
    if dims and len(dims) != len(shape):
        raise MetadataError(f"_ARRAY_DIMENSIONS names {len(dims)} dimensions for shape {list(shape)}")
    order = doc.get("order", "C")
    if order not in ("C", "F"):
        raise MetadataError(f"order {_short(order)} is neither C nor F")
    separator = doc.get("dimension_separator") or "."
    if separator not in (".", "/"):
        raise MetadataError(f"dimension_separator {_short(separator)} is neither '.' nor '/'")
    dtype = _dtype(doc["dtype"])
    raw_filters = doc.get("filters") or []
    if not isinstance(raw_filters, list):
        raise MetadataError(f"filters {_short(raw_filters)} is not a list")
    compressor = None if doc.get("compressor") is None else _codec(doc["compressor"], COMPRESSORS, "compressor")
    filters = tuple(_codec(f, FILTERS, "filter") for f in raw_filters)
    if len(filters) != (1 if dtype.hasobject else 0):
        raise MetadataError(f"dtype {dtype} with filters {[f.codec_id for f in filters]}: object arrays need "
                            "exactly the vlen-utf8 filter, and other arrays none")
    meta = ArrayMeta(shape=shape, chunks=chunks, dtype=dtype, compressor=compressor, filters=filters,
                     fill_value=_fill_value(doc.get("fill_value"), dtype), order=order, separator=separator,
                     attrs=attrs)
    _check_sizes(meta)
    return meta


def _check_sizes(meta: ArrayMeta) -> None:
    chunk_bytes = meta.chunk_items * max(meta.dtype.itemsize, 1)
    if math.prod(meta.shape) > MAX_ELEMENTS:
        raise TooLargeError(f"shape {list(meta.shape)} claims more than 2^62 values")
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise TooLargeError(f"chunks {list(meta.chunks)} of {meta.dtype} claim {chunk_bytes:,} bytes each, more "
                            f"than {MAX_CHUNK_BYTES:,}")
    if math.prod(meta.grid) > MAX_CHUNKS:
        raise TooLargeError(f"shape {list(meta.shape)} in chunks {list(meta.chunks)} claims "
                            f"{math.prod(meta.grid):,} chunks, more than {MAX_CHUNKS:,}")


# -- the group -----------------------------------------------------------------
_PARSED: dict[bytes, tuple[dict[str, Any], dict[str, ArrayMeta]]] = {}
"""Checked metadata by `.zmetadata` bytes: parsing and checking it is most of the cost of opening a cube."""


def _json(key: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MetadataError(f"{key} is not valid JSON: {first_line(exc)}") from None


def read_group(members: Collection[str], read: Callable[[str], bytes]) -> tuple[dict[str, Any], dict[str, ArrayMeta]]:
    """The root group's attributes and its checked arrays, from the consolidated `.zmetadata` when `members`
    (the store's keys) hold one, else from the per-array documents. `read` returns a member's bytes
    (bounded by the caller, e.g. to MAX_JSON_BYTES). Raises MetadataError."""
    if "zarr.json" in members:
        raise ZarrFormatError("is a Zarr format-3 store; the datasets use Zarr format 2")
    consolidated = ".zmetadata" in members
    if consolidated:
        raw = read(".zmetadata")
        known = _PARSED.get(raw)  # the cubes of one modality usually share their metadata byte for byte
        if known is not None:
            return dict(known[0]), known[1]
        docs = _json(".zmetadata", raw)
        docs = docs.get("metadata") if isinstance(docs, dict) else None
        if not isinstance(docs, dict):
            raise MetadataError(".zmetadata has no 'metadata' object")
    else:
        wanted = (".zgroup", ".zarray", ".zattrs")
        docs = {k: _json(k, read(k)) for k in members if k.rsplit("/", 1)[-1] in wanted}
    group_attrs, arrays = _parse_group(docs)
    if consolidated:
        if len(_PARSED) >= 64:
            _PARSED.clear()
        _PARSED[raw] = (group_attrs, arrays)
    return dict(group_attrs), arrays


def _parse_group(docs: dict[Any, Any]) -> tuple[dict[str, Any], dict[str, ArrayMeta]]:
    """Check a group's metadata documents (keyed by member name) and parse each array's."""
    if not all(isinstance(k, str) for k in docs):
        raise MetadataError(".zmetadata keys are not all strings")
    group = docs.get(".zgroup")
    if not isinstance(group, dict):
        raise MetadataError("zip holds no Zarr group at its root (no .zgroup)")
    if group.get("zarr_format") != 2:
        raise ZarrFormatError(f"group has zarr_format {str(group.get('zarr_format'))[:40]}, expected 2")
    group_attrs = docs.get(".zattrs") or {}
    if not isinstance(group_attrs, dict):
        raise MetadataError(f"the group's .zattrs is {type(group_attrs).__name__}, not an object")
    n_arrays = sum(1 for key in docs if key.endswith("/.zarray"))
    if n_arrays > MAX_ARRAYS:
        raise TooLargeError(f"metadata declares {n_arrays:,} arrays, more than {MAX_ARRAYS:,}")
    arrays = {}
    for key, doc in docs.items():
        if not key.endswith("/.zarray"):
            continue
        name = key[: -len("/.zarray")]
        try:
            arrays[name] = parse_array(doc, docs.get(f"{name}/.zattrs"))
        except MetadataError as exc:
            raise type(exc)(f"array {name[:100]!r}: {exc}") from None
    return group_attrs, arrays


# -- decoding -------------------------------------------------------------------
_BLOSC_HEADER = struct.Struct("<BBBBIII")  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes


def _claimed_size(codec_id: str, raw: bytes) -> int | None:
    """What the codec's own header says the chunk decodes to (None when its header has no size)."""
    if codec_id == "blosc":
        if len(raw) < _BLOSC_HEADER.size:
            raise ValueError("shorter than a Blosc header")
        *_, nbytes, _, cbytes = _BLOSC_HEADER.unpack_from(raw)
        if cbytes != len(raw):
            raise ValueError(f"Blosc header says {cbytes} compressed bytes, the chunk has {len(raw)}")
        return nbytes
    if codec_id == "lz4":
        if len(raw) < 4:
            raise ValueError("shorter than an LZ4 header")
        return int.from_bytes(raw[:4], "little", signed=True)
    if codec_id == "zstd":
        return _zstd_content_size(raw)
    return None


def _zstd_content_size(raw: bytes) -> int:
    """The frame content size from a Zstandard frame header (RFC 8878, 3.1.1.1)."""
    if len(raw) < 6 or raw[:4] != b"\x28\xb5\x2f\xfd":
        raise ValueError("not a Zstandard frame")
    descriptor = raw[4]
    fcs_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if size == 0:
        raise ValueError("Zstandard frame does not state its content size")
    if len(raw) < pos + size:
        raise ValueError("truncated Zstandard frame header")
    value = int.from_bytes(raw[pos:pos + size], "little")
    return value + 256 if size == 2 else value


def _stream_decompressor(codec: Any) -> Any:
    if codec.codec_id == "zlib":
        return zlib.decompressobj()
    if codec.codec_id == "gzip":
        return zlib.decompressobj(wbits=31)
    if codec.codec_id == "bz2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(format=codec.format or lzma.FORMAT_AUTO, memlimit=_LZMA_MEMLIMIT)


def _decompress(codec: Any, raw: bytes, expected: int | None, out: np.ndarray | None) -> bytes | np.ndarray:
    """Decompress at most `expected` bytes (at most MAX_CHUNK_BYTES for object arrays)."""
    limit = MAX_CHUNK_BYTES if expected is None else expected
    if codec.codec_id in ("blosc", "lz4", "zstd"):
        claimed = _claimed_size(codec.codec_id, raw)
        if claimed < 0 or claimed > limit or (expected is not None and claimed != expected):
            raise ValueError(f"its header claims {claimed:,} decoded bytes, expected "
                             f"{'at most ' if expected is None else ''}{limit:,}")
        if out is not None:
            codec.decode(raw, out=out)
            return out
        target = np.empty(claimed, dtype=np.uint8)
        codec.decode(raw, out=target)
        return target.tobytes() if expected is None else target
    stream = _stream_decompressor(codec)
    data = stream.decompress(raw, limit + 1)
    if len(data) > limit or not stream.eof:
        raise ValueError(f"decodes to more than {limit:,} bytes" if len(data) > limit else "truncated stream")
    return data


def decode_chunk(meta: ArrayMeta, raw: bytes, out: np.ndarray | None = None) -> np.ndarray:
    """One stored chunk as an array of the chunk's shape, never decoding more than it may hold.

    `out`, when given, is a C-contiguous chunk-shaped buffer decoded into directly
    (C order, no filters). Raises ValueError (or a codec's RuntimeError) on a bad chunk.
    """
    expected = meta.chunk_nbytes
    direct = out if out is not None and meta.order == "C" and not meta.filters else None
    if meta.compressor is None:
        data: Any = raw
        if expected is not None and len(raw) != expected:
            raise ValueError(f"holds {len(raw):,} bytes, expected {expected:,}")
    else:
        data = _decompress(meta.compressor, raw, expected, direct)
        if data is direct:
            return direct
    if meta.filters:  # object strings: the only allowed filter is vlen-utf8
        if len(data) < 4 or int.from_bytes(bytes(data[:4]), "little") != meta.chunk_items:
            raise ValueError(f"vlen-utf8 header does not state {meta.chunk_items} items")
        items = np.empty(meta.chunk_items, dtype=object)
        meta.filters[0].decode(data, out=items)
        chunk = items.reshape(meta.chunks, order=meta.order)
    else:
        flat = np.frombuffer(data, dtype=meta.dtype)
        if flat.size != meta.chunk_items:
            raise ValueError(f"decodes to {flat.size} values, expected {meta.chunk_items}")
        chunk = flat.reshape(meta.chunks, order=meta.order)
    if out is not None:
        out[...] = chunk
        return out
    return chunk
