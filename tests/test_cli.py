"""The command line: exit codes, output formats, parallel runs, and the real console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.findings import CODES

from helpers import ORIGINAL, TINY_IDS, cube_path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_validate_clean_dataset(downstream):
    result = invoke("validate", downstream)
    assert result.exit_code == 0, result.output
    assert "OK: 0 errors, 0 warnings" in result.output
    assert "task subset (regression): 3 labelled, 1 empty (skipped)" in result.output


def test_validate_errors_exit_1_and_json(downstream):
    cube_path(downstream, "s1", TINY_IDS[0]).write_bytes(b"")
    (downstream / "labels" / "x__cls.csv").write_text("id,label\nnope,1\n")
    result = invoke("validate", downstream, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {e["code"] for e in report["errors"]} == {"cubes.unreadable", "labels.unknown-id", "labels.single-class"}
    for finding in report["errors"] + report["warnings"]:
        assert {"code", "path", "message"} <= finding.keys()
    unknown = next(e for e in report["errors"] if e["code"] == "labels.unknown-id")
    assert unknown["row"] == 2 and unknown["id"] == "nope"
    assert report["summary"]["checks"]["cubes"]["errors"] == 1


def test_strict_fails_on_warnings(downstream):
    (downstream / "data" / "s1" / "part-000000" / ".DS_Store").write_text("x")
    assert invoke("validate", downstream).exit_code == 0
    result = invoke("validate", downstream, "--strict")
    assert result.exit_code == 1
    assert "layout.stray-file" in result.output


def test_max_findings_limits_text(downstream):
    lines = "".join(f"nope{i},{i % 2}\n" for i in range(30))
    (downstream / "labels" / "x__cls.csv").write_text("id,label\n" + lines)
    result = invoke("validate", downstream, "--max-findings", "3")
    assert result.exit_code == 1
    assert result.output.count("labels.unknown-id") == 3
    assert "... and 27 more" in result.output


@pytest.mark.parametrize("args", [["validate", "/nonexistent/root"], ["validate", "--jobs", "-3", "."],
                                  ["sample", "x", "--locations", "1"],
                                  ["convert", "in", "out", "--to", "webdataset", "--shard-size", "inf"],
                                  ["convert", "in", "out", "--to", "webdataset", "--shard-size", "1e400GB"]])
def test_usage_errors_exit_2(args, tmp_path):
    result = invoke(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_not_a_dataset_exits_2(tmp_path):
    result = invoke("validate", tmp_path)
    assert result.exit_code == 2
    assert "not a dataset root" in result.output


def test_parallel_validation_gives_identical_findings(downstream):
    cube_path(downstream, "s2l1c", TINY_IDS[1]).write_bytes(b"garbage")
    (downstream / "labels" / "x__cls.csv").write_text("id,label\nnope,1\n")
    serial = invoke("validate", downstream, "--format", "json", "--jobs", "1")
    parallel = invoke("validate", downstream, "--format", "json", "--jobs", "2", "--deep")
    serial_deep = invoke("validate", downstream, "--format", "json", "--jobs", "1", "--deep")
    assert serial.exit_code == parallel.exit_code == 1
    assert json.loads(parallel.output) == json.loads(serial_deep.output)
    assert json.loads(serial.output)["errors"] == json.loads(parallel.output)["errors"]


def test_sample_command_json(tmp_path):
    result = invoke("sample", tmp_path / "s", "--locations", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["files"] == 6 and data["layout"] == "downstream"
    assert invoke("sample", tmp_path / "s", "--locations", "2").exit_code == 2  # not empty


def test_console_script_runs_for_real(tmp_path):
    """One end-to-end run of the installed `neuco-io` executable, bad files included."""
    root = Path(shutil.copytree(ORIGINAL / "downstream", tmp_path / "ds"))
    first = sorted((root / "data" / "s1" / "part-000000").iterdir())[0]
    first.write_bytes(first.read_bytes()[:1000])  # truncated
    exe = Path(sys.executable).with_name("neuco-io")
    proc = subprocess.run([str(exe), "validate", str(root), "--format", "json", "--jobs", "2"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert [e["code"] for e in report["errors"]] == ["cubes.unreadable"]
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to drop privileges")
def test_unreadable_permission_as_unprivileged_user():
    """As root, permission bits do not bite: validate in a forked child that became `nobody`."""
    from neuco_io.validators import validate

    base = Path("/tmp") / f"neuco-perm-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    try:
        root = Path(shutil.copytree(ORIGINAL / "downstream", base / "ds"))
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        assert validate(root, jobs=1).ok  # also imports every module before the fork
        locked = sorted((root / "data" / "s2l2a" / "part-000000").iterdir())[0]
        locked.chmod(0o000)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop privileges, validate, send the report back
            try:
                os.setgid(65534)
                os.setuid(65534)
                data = json.dumps(validate(root, jobs=1).to_dict()).encode()
                os.write(write_end, data)
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as fh:
            report = json.loads(fh.read())
        os.waitpid(pid, 0)
        assert [(e["code"], e["got"], e["path"]) for e in report["errors"]] == [
            ("cubes.unreadable", "permission", str(locked))]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_readme_documents_every_code():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    missing = [code for code in CODES if f"`{code}`" not in readme]
    assert not missing


@pytest.mark.parametrize("failure", ["WorkerDiedError", "UnitFailed"])
def test_a_stopped_conversion_says_how_to_finish_it(failure):
    """Both ways a unit can fail (a dead pool worker, a failed Dask unit) get the --resume hint from convert."""
    from neuco_io import cli, execution
    from neuco_io.errors import NeucoError

    with pytest.raises(NeucoError, match="rerun with --resume"), cli._resume_hint("out", None):
        raise getattr(execution, failure)("shard-000003.tar: lost")


@pytest.mark.parametrize("path", [("submission", "check"), ("submission", "pack"), ("labels", "export"),
                                  ("task", "labels"), ("task", "pack"), ("task", "import"), ("validate",),
                                  ("convert",), ("verify",), ("embed",), ("sample",)])
def test_reporting_commands_take_quiet_and_format(path):
    command = main
    for name in path:
        command = command.commands[name]
    options = {opt for param in command.params for opt in param.opts}
    assert {"--quiet", "--format"} <= options, path
