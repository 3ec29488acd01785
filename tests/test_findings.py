"""The code registry and the one Report: every code a command emits is registered, and truncation is uniform."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters.plan import Skipped
from neuco_io.findings import CODES, LISTED_PER_CODE, SECTIONS, Finding, Report, Severity
from neuco_io.render import findings_lines
from neuco_io.tasks.importer import Refusal

from helpers import TINY_IDS, build_downstream

PACKAGE = Path(__file__).parents[1] / "neuco_io"
CODE_LITERAL = re.compile(rf"({'|'.join(SECTIONS)})\.[a-z][a-z0-9-]*")
NOT_CODES = {"labels.parquet", "cubes.bad-times"}
"""String constants shaped like a code that are not: a file name, a CubeError reason (never a finding's code:
such a cube is skipped as `convert.invalid-cube`)."""
MORE_LINE = re.compile(r"^  \.\.\. and ([\d,]+) more \((--max-findings, or )?--format json for "
                       r"(all|the first ([\d,]+) of each code)\)$", re.M)


def _code_literals() -> dict[str, list[str]]:
    """Every string constant in neuco_io shaped like a code (outside the registry), and where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "findings.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE_LITERAL.fullmatch(node.value) \
                    and node.value not in NOT_CODES:
                found.setdefault(node.value, []).append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_every_code_the_package_emits_is_registered():
    literals = _code_literals()
    assert {code: where for code, where in literals.items() if code not in CODES} == {}
    assert {"verify.sha256", "convert.invalid-cube", "import.bad-id", "submission.nan"} <= literals.keys()


def test_every_registered_code_is_emitted_somewhere():
    assert sorted(set(CODES) - _code_literals().keys()) == []


@pytest.mark.parametrize("make", [
    lambda code: Finding(code, "x", "why"),
    lambda code: Skipped("x", "why", code=code),
    lambda code: Refusal("x", "why", code=code),
])
def test_unregistered_codes_are_refused(make):
    with pytest.raises(ValueError, match="unregistered"):
        make("verify.made-up")


def test_blocking_is_an_attribute_of_the_code():
    assert CODES["cubes.codec"].blocking and CODES["cubes.corrupt-chunk"].blocking
    assert not CODES["cubes.georef"].blocking and not CODES["layout.stray-file"].blocking
    assert all(not c.blocking for c in CODES.values() if c.check != "cubes")


def test_the_readme_tables_are_generated_from_the_registry():
    spec = importlib.util.spec_from_file_location("readme_codes", PACKAGE.parent / "scripts" / "readme_codes.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    readme = script.README.read_text(encoding="utf-8")
    assert sorted(script.sections(readme)) == sorted(SECTIONS)
    assert script.generated(readme) == readme, "run python scripts/readme_codes.py"


# -- truncation: Report.add lists, everything else counts ------------------------------------
def test_report_lists_a_few_of_each_code_and_file_and_counts_the_rest():
    report = Report("root", listed_per_code=2)
    report.extend(Finding("labels.not-numeric", "a.csv", f"row {i}", row=i) for i in range(5))
    report.add(Finding("labels.not-numeric", "b.csv", "row 1", row=1))
    report.add(Finding("labels.extra-column", "a.csv", "extra"))
    report.add_unlisted("labels.not-numeric", "b.csv", 3)
    assert [(f.path, f.row) for f in report.findings if f.code == "labels.not-numeric"] == [
        ("a.csv", 0), ("a.csv", 1), ("b.csv", 1)]
    assert report.code_counts() == {"labels.extra-column": 1, "labels.not-numeric": 9}
    assert report.unlisted_counts() == {"labels.not-numeric": 6}
    assert report.totals() == {"error": 9, "warning": 1, "note": 0}
    assert report.counts()["labels"] == {"errors": 9, "warnings": 1, "notes": 0}
    summary = report.to_dict()["summary"]
    assert (summary["counts"], summary["unlisted"]) == (report.code_counts(), report.unlisted_counts())
    lines = findings_lines(report.findings, "root", max_findings=1, report=report)
    assert MORE_LINE.findall("\n".join(lines)) == [("9", "--max-findings, or ", "the first 2 of each code", "2")]


def test_unlisted_findings_keep_their_severity():
    report = Report("root", listed_per_code=1)
    report.extend([Finding("submission.nan", "e.csv", "nan", level=Severity.ERROR)] * 3)
    assert report.totals()["error"] == 3 and not report.ok


def _more(output: str) -> list[tuple[str, ...]]:
    return MORE_LINE.findall(output)


def test_validate_lists_at_most_so_many_of_a_code_per_file(tmp_path):
    root = build_downstream(tmp_path / "ds")
    n = LISTED_PER_CODE + 7
    (root / "labels" / "height__regr.csv").write_text(
        "id,label\n" + "".join(f"{TINY_IDS[0]},{i}\n" if i == 0 else f"x{i},{i}\n" for i in range(n)))
    result = CliRunner().invoke(main, ["validate", str(root), "--format", "json", "--quiet"])
    report = json.loads(result.output)
    listed = [e for e in report["errors"] if e["code"] == "labels.unknown-id"]
    assert len(listed) == LISTED_PER_CODE and all(e["row"] for e in listed)
    assert report["summary"]["unlisted"] == {"labels.unknown-id": n - 1 - LISTED_PER_CODE}
    assert report["summary"]["counts"]["labels.unknown-id"] == n - 1
    assert report["summary"]["checks"]["labels"]["errors"] == n - 1
    text = CliRunner().invoke(main, ["validate", str(root), "--max-findings", "3", "--quiet"]).output
    assert _more(text) == [(f"{n - 1 - 3:,}", "--max-findings, or ", f"the first {LISTED_PER_CODE:,} of each code",
                            f"{LISTED_PER_CODE:,}")]
    assert "FAILED: " in text


def test_submission_check_and_task_labels_end_with_the_same_more_line(tmp_path):
    emb = tmp_path / "emb.csv"
    emb.write_text("id,0\n" + "".join(f"r{i},nan\n" for i in range(30)))
    text = CliRunner().invoke(main, ["submission", "check", str(emb), "--max-findings", "4"]).output
    assert _more(text) == [("26", "--max-findings, or ", "the first 20 of each code", "20")]
    data = json.loads(CliRunner().invoke(main, ["submission", "check", str(emb), "--format", "json"]).output)
    assert data["summary"]["unlisted"] == {"submission.nan": 10} and len(data["warnings"]) == 20

    root = build_downstream(tmp_path / "ds")
    user = tmp_path / "user.csv"
    user.write_text("id,label\n" + "".join(f"nope{i},{i}\n" for i in range(60)))
    result = CliRunner().invoke(main, ["task", "labels", "t", str(root), "--type", "regr", "--from", str(user)])
    assert result.exit_code == 1 and _more(result.output) == [("10", "", "all", "")]


def test_verify_ends_with_the_same_more_line(tmp_path):
    root = build_downstream(tmp_path / "ds")
    out = tmp_path / "out"
    done = CliRunner().invoke(main, ["convert", str(root), str(out), "--to", "webdataset", "--max-records", "1",
                                     "--quiet"])
    assert done.exit_code == 0, done.output
    for shard in out.glob("*.tar"):
        shard.unlink()
    result = CliRunner().invoke(main, ["verify", str(root), str(out), "--max-findings", "1", "--quiet"])
    assert result.exit_code == 1
    assert "verify.missing-shard" in result.output
    assert _more(result.output) == [(f"{len(TINY_IDS) - 1}", "--max-findings, or ", "all", "")]


# -- convert's skips and task import's refusals carry registered codes ------------------------
def test_convert_skips_carry_their_code(tmp_path):
    from helpers import cube_path

    root = build_downstream(tmp_path / "ds")
    cube_path(root, "s1", TINY_IDS[0]).write_bytes(b"")
    cube_path(root, "s2l2a", TINY_IDS[1]).unlink()
    result = CliRunner().invoke(main, ["convert", str(root), str(tmp_path / "out"), "--to", "webdataset",
                                       "--skip-invalid", "--format", "json", "--quiet"])
    assert result.exit_code == 1
    skipped = json.loads(result.output)["skipped"]
    assert {(s["id"], s["code"]) for s in skipped} == {(TINY_IDS[0], "convert.invalid-cube"),
                                                       (TINY_IDS[1], "convert.missing-modality")}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {s["code"] for s in manifest["skipped"]} == {"convert.invalid-cube", "convert.missing-modality"}


def test_import_refusals_carry_their_code(tmp_path):
    table = tmp_path / "sources.csv"
    table.write_text("id,modality,season,path\n"
                     "x1,s9,spring,nope.tif\n"      # no such modality
                     "a b,s1,spring,nope.tif\n"     # an id with a space (--ids keep)
                     "ok1,s1,spring,nope.tif\n")    # the other seasons and modalities are missing
    result = CliRunner().invoke(main, ["task", "import", str(table), str(tmp_path / "task"), "--format", "json",
                                       "--quiet"])
    assert result.exit_code == 1, result.output
    refused = json.loads(result.output)["refused"]
    assert {(r["id"], r["code"]) for r in refused} == {
        ("x1", "import.table-row"), ("a b", "import.bad-id"), ("ok1", "import.missing-file")}
    assert all(r["reason"] for r in refused)


def test_convert_skips_and_import_refusals_are_a_report_too(tmp_path):
    """The library's results hand their skips and refusals over as the one Report (codes, counts, verdict)."""
    from neuco_io.converters import convert
    from neuco_io.tasks.importer import import_task

    from helpers import cube_path

    root = build_downstream(tmp_path / "ds")
    cube_path(root, "s2l2a", TINY_IDS[1]).unlink()
    report = convert(root, tmp_path / "out", to="webdataset", jobs=1, skip_invalid=True).report
    assert [(f.code, f.id) for f in report.findings] == [("convert.missing-modality", TINY_IDS[1])]
    assert not report.ok and report.totals()["error"] == 1
    table = tmp_path / "sources.csv"
    table.write_text("id,modality,season,path\nx1,s9,spring,nope.tif\n")
    refused = import_task(table, tmp_path / "task").report
    assert [(f.code, f.id) for f in refused.findings] == [("import.table-row", "x1")]
    assert refused.to_dict()["ok"] is False
