"""The shard format: record keys, member names, and the array codecs.

A WebDataset record is a run of tar members `<key>.<member>`; `<key>` is the
location id with `%` and `.` percent-encoded (WebDataset splits a member name
at its first dot, so `my.loc` is written `my%2Eloc` and still groups into one
record with stock webdataset). The true id is always in the record's JSON.

Array members use one of two codecs:

- `none`: `<modality>.npy`, plain NumPy files any tool reads.
- `blosc` (default): `<modality>.blosc`, a small container of one Blosc frame
  per timestamp. When a source cube chunks by timestamp (the public files do),
  the frames are the source's own compressed chunks, passed through bit for
  bit: no re-encoding, and about the bytes of the source. Layout:

      b"NEUCOBL1" | uint32 LE header length | JSON header | frames...

  with the header `{"dtype": "<i2", "shape": [4, 13, 264, 264], "frames": [n0, n1, n2, n3]}`;
  frame i decodes to `shape[1:]`. Decode with `decode_member` (or, with stock
  webdataset: `WebDataset(urls, shardshuffle=False).map(decode_sample)`).

Untrusted input: nothing here unpickles; `.npy` is read with
`allow_pickle=False`; dtypes are limited to plain numbers; sizes are checked
against the header and a ceiling before any allocation.
"""

from __future__ import annotations

import io
import itertools
import json
import struct
from collections.abc import Sequence
from typing import Any

import numcodecs
import numpy as np

from neuco_io.errors import ShardError

__all__ = [
    "BLOSC_EXT",
    "CODECS",
    "PARQUET_ARRAYS",
    "blosc_member_parts",
    "decode_key",
    "decode_member",
    "decode_sample",
    "encode_blosc_array",
    "encode_blosc_frames",
    "encode_key",
    "encode_npy",
    "member_name",
    "webdataset_decoder",
]

CODECS = ("blosc", "none")
PARQUET_ARRAYS = ("binary", "tensor")
"""Parquet array layouts: one binary value per array, or Arrow fixed_shape_tensor columns."""
BLOSC_EXT = "blosc"
MAGIC = b"NEUCOBL1"
MAX_ARRAY_BYTES = 1 << 28
"""Refuse to allocate more for one member (256 MiB): the largest the format allows, 4 seasons x 13 bands x
264 x 264 float32, is 14.5 MB, and the largest real member (64-sample files are split) about 8 MB."""
_BLOSC = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
_BLOSC_HEADER = struct.Struct("<BBBBIII")  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes


def encode_key(loc_id: str) -> str:
    """Tar key for an id: `%` and `.` percent-encoded, so the key has no dot."""
    return loc_id.replace("%", "%25").replace(".", "%2E")


def decode_key(key: str) -> str:
    return key.replace("%2E", ".").replace("%2e", ".").replace("%25", "%")


def member_name(name: str, codec: str) -> str:
    return f"{name}.{'npy' if codec == 'none' else BLOSC_EXT}"


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind not in "biuf" or dt.hasobject or dt.fields:
        raise ValueError(f"dtype {dt} is not a plain numeric dtype")
    return dt


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def blosc_member_parts(dtype: np.dtype | str, shape: Sequence[int], frames: Sequence[bytes]) -> list[bytes]:
    """The pieces of a `.blosc` member, to write one after the other without joining them."""
    header = json.dumps({"dtype": np.dtype(dtype).str, "shape": [int(n) for n in shape],
                         "frames": [len(f) for f in frames]}, separators=(",", ":"), sort_keys=True).encode()
    return [MAGIC + struct.pack("<I", len(header)) + header, *frames]


def encode_blosc_frames(dtype: np.dtype | str, shape: Sequence[int], frames: Sequence[bytes]) -> bytes:
    """Container of already-compressed frames, one per entry of the first axis."""
    return b"".join(blosc_member_parts(dtype, shape, frames))


def encode_blosc_array(array: np.ndarray) -> bytes:
    """Compress an array (Blosc-lz4, byte shuffle: the public cubes' codec), one frame per first-axis entry."""
    array = np.ascontiguousarray(array)
    return encode_blosc_frames(array.dtype, array.shape, [_BLOSC.encode(array[i]) for i in range(array.shape[0])])


def _read_header(data: bytes | memoryview) -> tuple[dict, int]:
    view = memoryview(data)
    if len(view) < len(MAGIC) + 4 or bytes(view[:len(MAGIC)]) != MAGIC:
        raise ValueError("not a neuco-io blosc member (bad magic)")
    (hlen,) = struct.unpack_from("<I", view, len(MAGIC))
    start = len(MAGIC) + 4
    if hlen > 1 << 20 or start + hlen > len(view):
        raise ValueError("corrupt header length")
    header = json.loads(bytes(view[start:start + hlen]))
    if not isinstance(header, dict) or not {"dtype", "shape", "frames"} <= header.keys():
        raise ValueError("header lacks dtype, shape or frames")
    return header, start + hlen


def decode_blosc(data: bytes, *, take: Sequence[int] | None = None, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Decode a `.blosc` member; `take` decodes only those first-axis entries (timestamps), in that order."""
    header, offset = _read_header(data)
    dtype = _check_dtype(header["dtype"])
    shape = tuple(int(n) for n in header["shape"])
    frames = [int(n) for n in header["frames"]]
    if not shape or any(n < 0 for n in shape) or len(frames) != shape[0]:
        raise ValueError(f"shape {shape} does not fit {len(frames)} frames")
    total = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if total > max_bytes:
        raise ValueError(f"array of {total} bytes exceeds the {max_bytes}-byte limit")
    if offset + sum(frames) != len(data) or any(n < _BLOSC_HEADER.size for n in frames):
        raise ValueError("frame sizes do not add up to the member size (truncated?)")
    view = memoryview(data)
    bounds = list(itertools.accumulate(frames, initial=offset))
    parts = [view[a:b] for a, b in itertools.pairwise(bounds)]
    if take is not None:
        if any(not 0 <= t < len(parts) for t in take):
            raise ValueError(f"timestamps {list(take)} out of range for {len(parts)} frames")
        parts = [parts[t] for t in take]
        shape = (len(parts), *shape[1:])
    return decode_blosc_frames(dtype, shape, parts)


def check_blosc_frame(frame: bytes, nbytes: int, what: str = "frame") -> None:
    """The Blosc header must promise exactly `nbytes` decoded and match the frame's length.

    Catches truncated and mismatched frames without decompressing them.
    """
    if len(frame) < _BLOSC_HEADER.size:
        raise ValueError(f"{what}: {len(frame)} bytes is shorter than a Blosc header")
    _, _, _, _, declared, _, cbytes = _BLOSC_HEADER.unpack_from(frame)
    if declared != nbytes or cbytes != len(frame):
        raise ValueError(f"{what} declares {declared} bytes ({cbytes} compressed, {len(frame)} stored), "
                         f"expected {nbytes}")


def decode_blosc_frames(dtype: np.dtype | str, shape: Sequence[int], frames: Sequence[bytes]) -> np.ndarray:
    """Decode per-timestamp Blosc frames into one array of `shape`."""
    out = np.empty(tuple(shape), dtype=_check_dtype(dtype))
    for i, frame in enumerate(frames):
        check_blosc_frame(frame, out[i].nbytes, f"frame {i}")
        _BLOSC.decode(frame, out=out[i])
    return out


def decode_npy(data: bytes, *, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    stream = io.BytesIO(bytes(memoryview(data)[:65536]))  # the header: no copy of the array data
    version = np.lib.format.read_magic(stream)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"unsupported .npy version {version}")
    shape, fortran, dtype = readers[version](stream)  # header first: no allocation for a hostile shape
    _check_dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize > max_bytes:
        raise ValueError("array exceeds the size limit")
    start = stream.tell()
    if len(data) - start != count * dtype.itemsize:
        raise ValueError(f"{len(data) - start} data bytes for {shape} {dtype}")
    # A view of the member's bytes (writable when they are a bytearray): no copy.
    array = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    return array.reshape(shape, order="F" if fortran else "C")


def decode_member(name: str, data: bytes, *, shard: str = "?", key: str | None = None,
                  take: Sequence[int] | None = None) -> np.ndarray:
    """Decode an array member (`*.blosc` or `*.npy`); ShardError naming shard and key when it is bad.

    `take` selects entries of the first axis (timestamps); a `.blosc` member
    then decodes only those frames.
    """
    try:
        if name.endswith("." + BLOSC_EXT) or name == BLOSC_EXT:
            return decode_blosc(data, take=take)
        if name.endswith(".npy") or name == "npy":
            array = decode_npy(data)
            if take is None or list(take) == list(range(array.shape[0])):
                return array
            return array[list(take)]
    except (ValueError, RuntimeError, TypeError, IndexError, struct.error, OSError, EOFError) as exc:
        raise ShardError(shard, f"member {name}: {exc}", key=key) from None
    raise ShardError(shard, f"member {name}: not an array member", key=key)


def webdataset_decoder(key: str, data: bytes) -> Any:
    """A `webdataset` decode handler for neuco-io members: arrays and JSON, never pickle.

    Every other member is returned as its raw bytes, so webdataset's default
    handlers that come after this one (which `pickle.loads` `.pyd`/`.pickle`
    members and `torch.load` `.pth`) never see it. webdataset still runs its
    `.gz` handler *before* this one; `decode_sample` avoids that too.
    """
    ext = key.rsplit(".", 1)[-1].lower()
    if ext in (BLOSC_EXT, "npy"):
        return decode_member(key, data)
    if ext == "json":
        return json.loads(data)
    return bytes(data)


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Decode a WebDataset sample of a neuco-io shard; the safe recipe for stock webdataset:

        webdataset.WebDataset(urls, shardshuffle=False).map(decode_sample)

    Only `.json`, `.npy` and `.blosc` members are decoded (with the checks of
    `decode_member`); every other member stays raw bytes, unread. No webdataset
    handler runs, so nothing is unpickled or decompressed without bounds.
    """
    return {name: value if name.startswith("__") or not isinstance(value, (bytes, bytearray, memoryview))
            else webdataset_decoder(name, value) for name, value in sample.items()}
