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


def test_a_bug_outside_a_commands_error_handling_is_exit_3_without_a_traceback(tmp_path):
    """The console entry point's own safety net: an error while click parses options (here a parameter type
    made to fail) is an internal error, exit 3, one line; never a traceback and exit 1."""
    import subprocess
    import sys

    code = ("import sys, neuco_io.cli as cli\n"
            "def broken(self, value, param, ctx):\n    raise ZeroDivisionError('boom')\n"
            "cli.ByteSize.convert = broken\n"
            "sys.argv = ['neuco-io', 'convert', 'a', 'b', '--to', 'webdataset', '--shard-size', '1GB']\n"
            "cli.run()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "internal error: ZeroDivisionError: boom" in done.stderr
    assert "Traceback" not in done.stderr
