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


def test_the_console_entry_point_keeps_exit_codes_and_output(tmp_path):
    """`neuco_io.cli.run` leaves with os._exit after flushing: output whole, exit codes as documented."""
    import json
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "neuco_io.cli", "--version"], capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0 and ok.stdout.strip()
    usage = subprocess.run([sys.executable, "-m", "neuco_io.cli", "validate", str(tmp_path / "absent"), "--format",
                            "json"], capture_output=True, text=True, timeout=300)
    assert usage.returncode == 2 and json.loads(usage.stdout)["ok"] is False
