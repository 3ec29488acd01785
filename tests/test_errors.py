"""Errors cross process boundaries whole: a worker's CubeError or ShardError reaches the caller with its
message and fields, not as "a worker process died"."""

import pickle

import pytest

from neuco_io.errors import (
    CubeError,
    CubeFormatError,
    CubeReadError,
    ManifestError,
    OutOfSpaceError,
    ShardError,
    UsageError,
)


@pytest.mark.parametrize("error", [
    CubeError("a.zarr.zip", "bad", reason="codec"),
    CubeReadError("a.zarr.zip", "not a zip"),
    CubeFormatError("b.zarr.zip", "too big", reason="too-large"),
    ShardError("shard-000000.tar", "truncated", key="abc"),
    ShardError("shard-000000.tar", "truncated"),
    ManifestError("manifest.json", "names ../x"),
    UsageError("bad option"),
    OutOfSpaceError(28, "No space left on device", "/out/x"),
], ids=lambda e: type(e).__name__)
def test_errors_survive_pickling(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    for field in ("path", "message", "reason", "shard", "key", "errno", "filename"):
        assert getattr(copy, field, None) == getattr(error, field, None)
