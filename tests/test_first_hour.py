"""The rough edges a new user hits in the first hour (issue 13): verdicts, messages, small tools."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.sample import write_sample

from helpers import TINY_IDS


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# -- --strict: the verdict, JSON `ok` and the exit code agree ------------------------------------
def _with_warning(root: Path) -> Path:
    (root / "data" / "s1" / "part-000000" / ".DS_Store").write_text("x")
    return root


def test_validate_strict_verdict_agrees_with_exit_code(downstream):
    _with_warning(downstream)
    text = invoke("validate", downstream, "--strict")
    assert text.exit_code == 1
    assert text.output.splitlines()[-1] == "FAILED: 0 errors, 1 warning"
    report = json.loads(invoke("validate", downstream, "--strict", "--format", "json").output)
    assert report["ok"] is False
    lenient = invoke("validate", downstream, "--format", "json")
    assert lenient.exit_code == 0 and json.loads(lenient.output)["ok"] is True


def _embeddings(path: Path, ids: list[str], dims: int = 3, constant: bool = False) -> Path:
    rows = [",".join([i] + [("0" if constant and d == 0 else str(n + d + 0.5)) for d in range(dims)])
            for n, i in enumerate(ids)]
    path.write_text("id," + ",".join(map(str, range(dims))) + "\n" + "\n".join(rows) + "\n")
    return path


def test_submission_check_strict_verdict_agrees_with_exit_code(tmp_path):
    emb = _embeddings(tmp_path / "emb.csv", ["a", "b", "c"], constant=True)  # a constant dimension: a warning
    text = invoke("submission", "check", emb, "--strict")
    assert text.exit_code == 1
    assert text.output.splitlines()[-1].startswith("FAILED: 0 errors, 1 warning")
    data = invoke("submission", "check", emb, "--strict", "--format", "json")
    assert data.exit_code == 1 and json.loads(data.output)["ok"] is False
    assert invoke("submission", "check", emb).exit_code == 0


# -- the user's encoder raising is their error: exit 1, their traceback, the batch's ids -----------
def test_encoder_crash_is_the_users_error_with_traceback(downstream, tmp_path):
    encoder = tmp_path / "myenc.py"
    encoder.write_text("def helper(batch):\n    return 1 / 0\n\n\ndef crash(batch):\n    return helper(batch)\n")
    result = CliRunner().invoke(main, ["embed", str(downstream), "--encoder", f"{encoder}:crash", "--out",
                                       str(tmp_path / "e.csv"), "--batch-size", "2", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    assert f'File "{encoder}", line 2, in helper' in result.output
    assert "ZeroDivisionError: division by zero" in result.output
    assert TINY_IDS[0] in result.output and TINY_IDS[1] in result.output and TINY_IDS[2] not in result.output
    assert not (tmp_path / "e.csv").exists()


# -- sample --overwrite removes what the previous sample wrote, and only that ---------------------------
@pytest.mark.parametrize("layout", ["downstream", "v1.1"])
def test_sample_overwrite_removes_the_previous_sample(tmp_path, layout):
    out = tmp_path / "s"
    write_sample(out, layout=layout, locations=4, samples_per_file=1)
    (out / "mine.txt").write_text("keep me")
    summary = write_sample(out, layout=layout, locations=2, samples_per_file=1, overwrite=True)
    cubes = sorted(p for p in out.rglob("*.zarr.zip"))
    assert len(cubes) == summary.files == (6 if layout == "downstream" else 8)
    assert (out / "mine.txt").read_text() == "keep me"
    assert summary.bytes == sum(p.stat().st_size for p in out.rglob("*") if p.is_file()
                                and p.name not in ("mine.txt", ".neuco-io-sample.json"))
    fresh = write_sample(tmp_path / "fresh", layout=layout, locations=2, samples_per_file=1)
    assert sorted(p.relative_to(out) for p in cubes) == \
        sorted(p.relative_to(fresh.root) for p in fresh.root.rglob("*.zarr.zip"))
    assert invoke("validate", out, "--quiet").exit_code == 0


# -- labels export of a dataset without labels ----------------------------------------------------------
def test_labels_export_without_tasks_exits_1(downstream, tmp_path):
    shutil.rmtree(downstream / "labels")
    result = invoke("labels", "export", downstream, tmp_path / "labels")
    assert result.exit_code == 1
    assert "has no tasks" in result.output
    assert not (tmp_path / "labels").exists()


# -- --seasons: autumn is fall, a bad name lists the names -------------------------------------------------
def test_seasons_autumn_and_listing(downstream, tmp_path):
    ok = invoke("embed", downstream, "--encoder", "mean", "--out", tmp_path / "e.csv", "--seasons", "spring,autumn",
                "--quiet")
    assert ok.exit_code == 0, ok.output
    bad = invoke("embed", downstream, "--encoder", "mean", "--out", tmp_path / "f.csv", "--seasons", "herbst")
    assert bad.exit_code == 2
    assert "spring, summer, fall, winter" in bad.output


# -- plurals: one helper ---------------------------------------------------------------------------------
def test_plurals(downstream, tmp_path):
    from neuco_io.render import plural

    assert (plural(1, "error"), plural(0, "error"), plural(2, "mismatch", "mismatches")) == \
        ("1 error", "0 errors", "2 mismatches")
    out = invoke("convert", downstream, tmp_path / "wds", "--to", "webdataset", "--quiet", "--jobs", "1")
    assert "in 1 webdataset shard," in out.output, out.output


# -- the library called from a script without an `if __name__ == "__main__":` guard --------------------------
_UNGUARDED = """
import sys, threading, time
from neuco_io.execution import make_executor
from neuco_io.validators import validate

if sys.argv[2] == "thread":
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
report = validate(sys.argv[1], jobs=2)
with make_executor(2, 4) as executor:
    print(type(executor).__name__, report.ok, report.summary["cubes"], sorted(executor.map(abs, [-1, 2, -3])))
"""


@pytest.mark.parametrize("threads, executor", [("none", "ProcessExecutor"), ("thread", "SerialExecutor")])
def test_library_runs_from_a_script_without_main_guard(downstream, tmp_path, threads, executor):
    import os
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(_UNGUARDED)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(script), str(downstream), threads], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [executor, "True", "12", "[1,", "2,", "3]"]


# -- --format json: a usage error is one JSON object on stdout too ------------------------------------------
@pytest.mark.parametrize("args", [
    ["validate", "{root}", "--jobs", "-1", "--format", "json"],             # click rejects a value
    ["embed", "{root}", "--encoder", "mean", "--out", "{tmp}/e.csv", "--seasons", "herbst", "--format=json"],
    ["validate", "{tmp}/nowhere", "--format", "json"],                      # the library refuses ROOT
    ["submission", "check", "{tmp}/e.csv", "--dim", "0", "--format", "json"],  # in a subgroup
])
def test_json_usage_error(downstream, tmp_path, args):
    args = [a.format(root=downstream, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["error"]["kind"] == "usage" and data["error"]["exit_code"] == 2
    assert data["error"]["message"]
    plain = CliRunner().invoke(main, [a for a in args if a not in ("--format", "json", "--format=json")])
    assert plain.exit_code == 2 and not plain.stdout.strip()


# -- labels fix ------------------------------------------------------------------------------------------
def test_labels_fix_repairs_what_validate_refuses(downstream):
    from neuco_io.validators import validate

    path = downstream / "labels" / "height__regr.csv"
    original = path.read_text()
    body = original.replace(f"{TINY_IDS[1]},", f"{TINY_IDS[1]}.zarr.zip,").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    report = validate(downstream, jobs=1)
    bom = next(f for f in report.errors if f.code == "labels.bom")
    assert "neuco-io labels fix" in bom.message

    dry = invoke("labels", "fix", downstream, "--dry-run")
    assert dry.exit_code == 0 and "would fix" in dry.output
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # a dry run writes nothing

    result = invoke("labels", "fix", downstream, "--format", "json")
    assert result.exit_code == 0
    files = {Path(f["path"]).name: f for f in json.loads(result.output)["files"]}
    assert files["height__regr.csv"] == {"path": str(path), "changed": True, "bom": True, "line_endings": 5,
                                         "suffixed_ids": 1, "error": None}
    assert files["water__cls.csv"]["changed"] is True  # CRLF only
    assert files["subset__regr.csv"]["changed"] is False
    assert path.read_text() == original
    assert validate(downstream, jobs=1).ok
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    again = invoke("labels", "fix", path)
    assert again.exit_code == 0 and "nothing to fix" in again.output and "fixed 0 files, 1 already fine" in again.output


def test_labels_fix_refuses_non_utf8(tmp_path):
    path = tmp_path / "x__cls.csv"
    path.write_bytes("id,label\nstra\xdfe,1\n".encode("latin-1"))
    result = invoke("labels", "fix", path)
    assert result.exit_code == 1
    assert "not UTF-8" in result.output and str(path) in result.output


# -- messages ------------------------------------------------------------------------------------------------
def test_submission_pack_padding_is_one_note_on_the_users_file(tmp_path):
    import numpy as np

    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(3, 5)))
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    out = tmp_path / "emb.csv"
    for profile in ("benchmark", "challenge"):
        result = invoke("submission", "pack", tmp_path / "emb.npy", "--ids", tmp_path / "ids.txt", "--out", out,
                        "--dim", 1024, "--profile", profile, "--overwrite", "--format", "json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["warnings"] == [] and [n["code"] for n in data["notes"]] == ["submission.padding"]
        assert data["notes"][0]["path"] == str(out)  # the user's file, not the temporary one
        assert "5..1023 (1019)" in data["notes"][0]["message"]
    # checked afterwards, the zero columns are one warning, and "... and N more" is no finding
    text = invoke("submission", "check", out, "--dim", 1024)
    assert text.output.count("submission.constant-dim") == 1
    assert text.output.splitlines()[-1] == "OK: 0 errors, 1 warning, 0 notes"


def test_many_findings_are_counted_not_listed(tmp_path):
    from neuco_io.submission import check_submission
    from neuco_io.submission.check import SHOWN

    rows = [f"r{i},{'nan' if i % 2 else i + 0.5},{i}" for i in range(60)]
    path = tmp_path / "emb.csv"
    path.write_text("id,0,1\n" + "\n".join(rows) + "\n")
    report = check_submission(path)
    assert all(not f.message.startswith("...") for f in report.findings)
    assert len(report.warnings) == SHOWN and report.totals()["warning"] == 30
    result = invoke("submission", "check", path, "--max-findings", 5)
    assert "  ... and 25 more" in result.output
    assert result.output.splitlines()[-1] == "OK: 0 errors, 30 warnings, 0 notes"


def test_id_suffix_finding_names_the_id_once(tmp_path):
    long_id = "ab" * 32
    path = _embeddings(tmp_path / "emb.csv", [f"{long_id}.zarr.zip", "x"])
    result = invoke("submission", "check", path)
    line = next(x for x in result.output.splitlines() if "submission.id-suffix" in x)
    assert line.count(long_id) == 1 and "'.zarr.zip'" in line


def test_spreadsheet_lost_leading_zeros_is_one_hint(tmp_path, downstream):
    path = _embeddings(tmp_path / "emb.csv", ["7", "12", "0099"])
    (tmp_path / "ids.txt").write_text("007\n012\n0099\n")
    data = json.loads(invoke("submission", "check", path, "--ids", tmp_path / "ids.txt", "--format", "json").output)
    codes = [f["code"] for f in data["warnings"]]
    assert codes == ["submission.leading-zeros"]
    assert "7 is 007" in data["warnings"][0]["message"] and "2 ids" in data["warnings"][0]["message"]
    # validate: a label id that lost its zeros says which cube it meant
    from helpers import write_location

    write_location(downstream, "0042", seed=9)
    (downstream / "labels" / "x__regr.csv").write_text(f"id,label\n42,1\n{TINY_IDS[0]},2\n")
    report = json.loads(invoke("validate", downstream, "--format", "json", "--jobs", 1).output)
    unknown = next(f for f in report["errors"] if f["code"] == "labels.unknown-id")
    assert unknown["id"] == "42" and "0042 has" in unknown["message"] and "leading zeros" in unknown["message"]


def test_task_labels_show_the_users_ids_and_readable_statistics(tmp_path):
    import numpy as np

    from neuco_io.tasks.importer import import_task

    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    bands = {"s1": (2, "float32"), "s2l1c": (13, "int16"), "s2l2a": (12, "int16")}
    for loc in ("p1", "p2"):
        for modality, (n, dtype) in bands.items():
            for season in ("spring", "summer", "fall", "winter"):
                (src / loc).mkdir(parents=True, exist_ok=True)
                np.save(src / loc / f"{modality}_{season}.npy",
                        (rng.random((n, 264, 264)) * 1000).astype(dtype))
    root = tmp_path / "task"
    import_task(src, root, pattern="{id}/{modality}_{season}.npy", ids="hash", jobs=1)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\np1,1\np1,0\np2,7\n")
    result = invoke("task", "labels", "water", root, "--type", "classification", "--from", bad)
    assert result.exit_code == 1
    assert "[p1]" in result.output and "[p2]" in result.output
    assert not re.search(r"[0-9a-f]{64}", result.output)
    good = tmp_path / "good.csv"
    good.write_text("id,label\np1,1.5\np2,2.5\n")
    ok = invoke("task", "labels", "height", root, "--type", "regression", "--from", good)
    assert ok.exit_code == 0, ok.output
    assert "labels: min 1.5, max 2.5, mean 2, std 0.5" in ok.output and "{" not in ok.output


# -- verify / embed on the wrong or an unfinished output ----------------------------------------------------------
def test_verify_against_the_wrong_source_is_one_finding(downstream, tmp_path):
    out = tmp_path / "wds"
    assert invoke("convert", downstream, out, "--to", "webdataset", "--quiet", "--jobs", 1).exit_code == 0
    other = write_sample(tmp_path / "other", locations=2, seed=11).root
    result = invoke("verify", other, out, "--quiet", "--jobs", 1)
    assert result.exit_code == 1
    assert result.output.count("verify.") == 1 and "verify.wrong-source" in result.output
    assert f"made from {downstream}" in result.output
    # one missing cube is still named on its own, once per array, with its path once
    (downstream / "data" / "s1" / "part-000000" / f"{TINY_IDS[0]}.zarr.zip").unlink()
    data = json.loads(invoke("verify", downstream, out, "--format", "json", "--jobs", 1).output)
    assert [e["code"] for e in data["errors"]] == ["verify.source-unreadable"]
    assert data["errors"][0]["message"].count(f"{TINY_IDS[0]}.zarr.zip") == 1


def test_verify_and_embed_on_an_interrupted_conversion(downstream, tmp_path):
    out = tmp_path / "wds"
    assert invoke("convert", downstream, out, "--to", "webdataset", "--quiet", "--jobs", 1).exit_code == 0
    (out / "manifest.json").unlink()  # as a conversion stopped before its manifest leaves it
    (out / ".neuco-io").mkdir()
    (out / ".neuco-io" / "plan.json").write_text("{}")
    for args in (["verify", downstream, out], ["embed", out, "--encoder", "mean", "--out", tmp_path / "e.csv"]):
        result = invoke(*args)
        assert result.exit_code == 2
        assert "interrupted conversion" in result.output and "--resume" in result.output


# -- PYTHON=... ./scripts/demo.sh is not silently ignored when .venv exists ---------------------------------------
def test_setup_recreates_a_venv_of_another_python(tmp_path):
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "venv.sh"
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 2.7.18 /opt/old-python\n")
    fake.chmod(0o755)

    def run(**env):
        return subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **env}, stdin=subprocess.DEVNULL)

    unchanged = run()  # no PYTHON asked for: the existing .venv stays
    assert unchanged.returncode == 0 and unchanged.stderr == "" and "old-python" in fake.read_text()
    recreated = run(PYTHON=sys.executable)
    assert recreated.returncode == 0, recreated.stderr
    assert "has Python 2.7.18 /opt/old-python" in recreated.stderr and "recreating .venv" in recreated.stderr
    version = subprocess.run([str(fake), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True, timeout=60).stdout.strip()
    assert version == sys.version.split()[0]
    again = run(PYTHON=sys.executable)
    assert again.returncode == 0 and again.stderr == ""
