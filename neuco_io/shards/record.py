"""The record: one location as the shards hold it, its JSON, and the checks every reader applies to it.

A record is a JSON object (id, key, modalities, dtypes, shapes, bands,
source files, labels...) plus one array per modality or extra variable.
Tar shards store the JSON as `<key>.json` and each array as a member;
Parquet shards store the JSON in the `record` column and each array as a
column. Both readers check a record here, the same way, before using it.

`FORMAT_VERSION` versions the record, the shards and the manifest together;
readers refuse what a newer neuco-io wrote.
"""

from __future__ import annotations

import contextlib
import json
import struct
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuco_io import __version__
from neuco_io.errors import ShardError
from neuco_io.names import relative_path_problem
from neuco_io.shards.codecs import MAX_ARRAY_BYTES, decode_blosc_frames, member_name

__all__ = ["DATA_ERRORS", "FORMAT_VERSION", "MAX_JSON_BYTES", "Record", "check_array", "check_format_version",
           "check_record", "check_record_version", "data_errors", "decode_arrays", "expected_specs", "format_stamp",
           "parse_record", "record_json"]

FORMAT_VERSION = 2
"""Version of the shard, record and manifest format. 2: Parquet arrays as binary values (`parquet_arrays`)."""
MAX_JSON_BYTES = 16 << 20
"""The largest JSON record a reader parses (a tar member, or a Parquet `record` value)."""
DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
                MemoryError, EOFError, OSError, UnicodeError, struct.error, tarfile.TarError)
"""What malformed data makes Python, numpy, json or tarfile raise; readers turn them into ShardError."""


def format_stamp(kind: str) -> dict[str, Any]:
    """The fields that open every record and manifest: what it is, and which format version wrote it."""
    return {"format": f"neuco-io.{kind}", "format_version": FORMAT_VERSION, "tool_version": __version__}


def check_format_version(version: Any) -> None:
    """Refuse what a newer neuco-io wrote (ValueError): its layout may differ in ways this one misreads."""
    if version is None:
        return
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise ValueError(f"written by a newer neuco-io (format version {version}; this one reads up to "
                         f"{FORMAT_VERSION}): upgrade neuco-io")


@dataclass
class Record:
    """A record being written: its JSON fields and its arrays (decoded, or as the source's compressed frames)."""

    id: str
    key: str
    meta: dict[str, Any]
    specs: dict[str, tuple[np.dtype, tuple[int, ...]]] = field(default_factory=dict)
    """member base name (modality, or an extra array like `cloud_mask`) -> (dtype, shape), in member order."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    """member base name -> decoded array (absent when only the frames were read)."""
    frames: dict[str, list[bytes]] = field(default_factory=dict)
    """member base name -> the source's compressed per-timestamp chunks, when they can be reused."""

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            dtype, shape = self.specs[name]
            self.arrays[name] = decode_blosc_frames(dtype, shape, self.frames[name])
        return self.arrays[name]


def record_json(record: Record, codec: str, parquet_arrays: str | None = None) -> bytes:
    """The JSON record; `members` names where each array is: a tar member, or (Parquet) a column."""
    meta = dict(record.meta, codec=codec)
    if parquet_arrays is not None:
        meta["parquet_arrays"] = parquet_arrays
        meta["members"] = {name: name for name in record.specs}
    else:
        meta["members"] = {name: member_name(name, codec) for name in record.specs}
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


@contextlib.contextmanager
def data_errors(shard: str, key: str | None = None, what: str = "corrupt record") -> Iterator[None]:
    """Turn any exception malformed data can cause into a ShardError naming shard and key."""
    try:
        yield
    except ShardError:
        raise
    except DATA_ERRORS as exc:
        raise ShardError(shard, f"{what}: {type(exc).__name__}: {str(exc)[:300]}", key=key) from None


def parse_record(data: bytes | str, shard: str, key: str | None, where: str = "") -> dict[str, Any]:
    """A stored JSON record, bounded, parsed and checked (`check_record`); ShardError when it is unusable.

    `key`: what names the record in messages (its own id when None); `where` prefixes them (a Parquet row).
    """
    if len(data) > MAX_JSON_BYTES:
        raise ShardError(shard, f"{where}JSON record of {len(data)} bytes exceeds the {MAX_JSON_BYTES}-byte "
                                "limit", key=key)
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError too
        raise ShardError(shard, f"{where}JSON record: {exc}", key=key) from None
    if key is None and isinstance(meta, dict) and isinstance(meta.get("id"), str):
        key = meta["id"]
    check_record(meta, shard, key)
    return meta


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 8 and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ARRAY_BYTES for n in value)


def check_record(meta: Any, shard: str, key: str | None) -> None:
    """The fields of a JSON record the readers use must have the types the format gives them."""

    def refuse(message: str) -> None:
        raise ShardError(shard, f"JSON record: {message}", key=key)

    if not isinstance(meta, dict):
        refuse(f"a {type(meta).__name__}, not an object")
    if "id" in meta and (not isinstance(meta["id"], str) or not meta["id"]):
        refuse(f"id {str(meta['id'])[:100]!r} is not a string")
    members = meta.get("members", {})
    if not isinstance(members, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in members.items()):
        refuse("`members` is not an object of names")
    modalities = meta.get("modalities", [])
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        refuse("`modalities` is not a list of names")
    for table in ("dtypes", "shapes", "labels", "arrays", "source"):
        if not isinstance(meta.get(table, {}), dict):
            refuse(f"`{table}` is not an object")
    if not all(isinstance(d, str) for d in meta.get("dtypes", {}).values()) or \
            not all(_is_shape(s) for s in meta.get("shapes", {}).values()):
        refuse("`dtypes`/`shapes` are not dtype names and lists of sizes")
    if not all(isinstance(a, dict) and isinstance(a.get("dtype"), str) and _is_shape(a.get("shape"))
               for a in meta.get("arrays", {}).values()):
        refuse("`arrays` entries lack a dtype and shape")
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
               for v in meta.get("labels", {}).values()):
        refuse("`labels` are not numbers")
    for modality, rel in meta.get("source", {}).items():
        problem = relative_path_problem(rel)
        if problem:
            refuse(f"source of {str(modality)[:50]} {str(rel)[:200]!r} {problem}")
    if "sample_index" in meta and not (isinstance(meta["sample_index"], int) and meta["sample_index"] >= 0):
        refuse("`sample_index` is not a non-negative integer")


def expected_specs(meta: dict[str, Any], shard: str, key: str | None) -> dict[str, tuple[str, list[int]]]:
    """Array name -> (dtype, shape) as the JSON record states them; ShardError when it cannot say."""
    try:
        expected = {**{m: (meta["dtypes"][m], meta["shapes"][m]) for m in meta.get("modalities", [])},
                    **{n: (a["dtype"], a["shape"]) for n, a in meta.get("arrays", {}).items()}}
        return {name: (str(dtype), [int(n) for n in shape]) for name, (dtype, shape) in expected.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ShardError(shard, f"JSON record lacks dtypes/shapes ({exc})", key=key) from None


def check_array(array: np.ndarray, expected: tuple[str, list[int]] | None, where: str, shard: str,
                key: str | None, take: Sequence[int] | None = None) -> None:
    """The decoded array must have the dtype and shape the JSON record states (`take`: timestamps kept)."""
    if expected is None:
        return
    dtype, shape = expected
    want = list(shape) if take is None else [len(take), *shape[1:]]
    if str(array.dtype) != dtype or list(array.shape) != want:
        raise ShardError(shard, f"{where} is {array.dtype} {list(array.shape)}; the JSON record says {dtype} {shape}",
                         key=key)


def check_record_version(meta: dict[str, Any], shard: str, key: str | None) -> None:
    try:
        check_format_version(meta.get("format_version"))
    except ValueError as exc:
        raise ShardError(shard, f"record: {exc}", key=key) from None


Decoder = Callable[[str, str, "tuple[str, list[int]] | None"], np.ndarray]
"""(array name, where it is stored, what the record states) -> the decoded array."""


def decode_arrays(meta: dict[str, Any], shard: str, key: str | None, names: Sequence[str] | None,
                  take: Sequence[int] | None, decode: Decoder, where: str) -> dict[str, np.ndarray]:
    """The arrays the record lists (or `names`), each decoded by `decode` and checked against the record.

    The one decoding path of both shard formats: version, `members`, then
    every array's dtype and shape (`where`: "member" or "column", for messages).
    """
    check_record_version(meta, shard, key)
    members = meta.get("members")
    if not isinstance(members, dict):
        raise ShardError(shard, "JSON record lacks `members`", key=key)
    expected = expected_specs(meta, shard, key)
    arrays = {}
    for name in names if names is not None else list(members):
        stored = members.get(name)
        if not isinstance(stored, str):
            raise ShardError(shard, f"array {name} is missing", key=key)
        array = decode(name, stored, expected.get(name))
        check_array(array, expected.get(name), f"{where} {stored}", shard, key, take)
        arrays[name] = array
    return arrays
