"""The converter's copy-through: a sample's stored Blosc chunks, reused in a shard as they are.

When every timestamp of a (sample, time, ...) array is exactly one Blosc
chunk (the public layout), a shard can hold those compressed bytes instead of
compressing the decoded array again. `read_sample` decodes them once anyway,
to prove them sound before they are copied.
"""

from __future__ import annotations

import math

import numpy as np

from neuco_io.cube.reader import Cube
from neuco_io.errors import CubeReadError
from neuco_io.shards.codecs import check_blosc_frame

__all__ = ["read_sample", "sample_frames"]


def sample_frames(cube: Cube, name: str, sample: int) -> list[bytes] | None:
    """The stored Blosc chunks of one sample, one per timestamp, without decoding them.

    None unless every timestamp is exactly one Blosc chunk (the public
    layout). The zip's CRC-32 (checked on every read) and each Blosc
    header (its sizes must match the chunk) are verified; the data is not
    decompressed.
    """
    meta = cube.array_meta(name)
    per_timestamp = len(meta.shape) >= 3 and meta.chunks == (1, 1, *meta.shape[2:])
    blosc = meta.compressor is not None and meta.compressor.codec_id == "blosc"
    if not (per_timestamp and blosc and meta.order == "C" and not meta.filters):
        return None
    zeros = [0] * (len(meta.shape) - 2)
    frames = [cube.raw_chunk(name, (sample, t, *zeros)) for t in range(meta.shape[1])]
    if any(f is None for f in frames):
        return None
    nbytes = math.prod(meta.shape[2:]) * meta.dtype.itemsize
    for t, frame in enumerate(frames):
        try:
            check_blosc_frame(frame, nbytes)
        except ValueError as exc:
            raise CubeReadError(cube.path, f"chunk {cube.chunk_key(name, (sample, t, *zeros))} is damaged: "
                                f"{exc}", reason="chunk") from None
    return frames


def read_sample(cube: Cube, name: str, sample: int) -> tuple[np.ndarray, list[bytes] | None]:
    """One sample of a (sample, time, ...) array, decoded, and its stored frames when they can be reused.

    Frames are returned when every timestamp is exactly one Blosc chunk
    (the public layout): the compressed bytes can then be copied into a
    shard as they are, after this decode proved them sound.
    """
    meta = cube.array_meta(name)
    frames = sample_frames(cube, name, sample)
    if frames is None:
        return cube.read(name, (sample,)), None
    out = np.empty(meta.shape[1:], dtype=meta.dtype)
    zeros = [0] * (len(meta.shape) - 2)
    for t, frame in enumerate(frames):
        try:
            meta.compressor.decode(frame, out=out[t])
        except Exception as exc:
            raise CubeReadError(cube.path, f"chunk {cube.chunk_key(name, (sample, t, *zeros))} does not "
                                f"decode: {exc}", reason="chunk") from None
    return out, frames
