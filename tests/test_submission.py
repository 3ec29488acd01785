"""Submission files: every rule of the check, both profiles, and packing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.findings import CODES
from neuco_io.submission import check_submission, pack_submission
from neuco_io.submission.pack import PackRefused

IDS = ["000123", "abc", "f" * 64]


def write(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def good_rows(dim: int = 4) -> list[list]:
    rng = np.random.default_rng(0)
    return [[i, *np.round(rng.normal(size=dim), 4)] for i in IDS]


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def test_a_good_file_passes(tmp_path):
    path = write(tmp_path / "e.csv", ["id", "0", "1", "2", "3"], good_rows())
    report = check_submission(path, ids=set(IDS), dim=4)
    assert report.findings == [] and report.ok
    assert report.summary["matched_ids"] == 3
    strict = check_submission(path, ids=set(IDS), dim=4, profile="challenge")
    assert strict.ok


def test_terratorch_headers_and_numeric_looking_ids(tmp_path):
    path = write(tmp_path / "e.csv", ["id", "1", "2", "3", "4"], good_rows())
    report = check_submission(path, ids=set(IDS), dim=4)
    assert report.findings == []  # 1..D accepted; 000123 kept as a string


CASES = [
    ("no-id-column", ["ident", "0", "1"], [["a", 1, 2]], {}, "submission.no-id-column"),
    ("empty", ["id", "0", "1"], [], {}, "submission.empty"),
    ("gap", ["id", "0", "1", "3"], [["abc", 1, 2, 3]], {}, "submission.column-names"),
    ("no digits", ["id", "a", "b"], [["abc", 1, 2]], {}, "submission.column-names"),
    ("extra", ["id", "0", "1", "note"], [["abc", 1, 2, "x"]], {}, "submission.extra-column"),
    ("too many", ["id", "0", "1", "2"], [["abc", 1, 2, 3]], {"dim": 2}, "submission.too-many-dims"),
    ("too few", ["id", "0", "1"], [["abc", 1, 2], ["f" * 64, 2, 1]], {"dim": 4}, "submission.too-few-dims"),
    ("suffix", ["id", "0"], [["abc.zarr.zip", 1], ["000123.zarr", 2]], {}, "submission.id-suffix"),
    ("numeric ids", ["id", "0"], [["000123", 1], ["45", 2]], {}, "submission.id-changed"),
    ("zarr inside", ["id", "0"], [["a.zarr_1", 1], ["abc", 2]], {}, "submission.id-changed"),
    ("duplicate", ["id", "0"], [["abc", 1], ["abc.zarr.zip", 2]], {}, "submission.duplicate-id"),
    ("missing", ["id", "0"], [["abc", 1], ["000123", 2]], {"ids": set(IDS)}, "submission.missing-id"),
    ("unknown", ["id", "0"], [["abc", 1], ["zzz", 2]], {"ids": {"abc"}}, "submission.unknown-id"),
    ("zeros", ["id", "0"], [["abc", 1], ["123", 2]], {"ids": {"abc", "000123"}}, "submission.leading-zeros"),
    ("not numeric", ["id", "0", "1"], [["abc", '"1,5"', 2]], {}, "submission.not-numeric"),
    ("text", ["id", "0", "1"], [["abc", "one", 2], ["000123", 1, 3]], {}, "submission.not-numeric"),
    ("nan", ["id", "0", "1"], [["abc", "nan", 2], ["000123", 1, 3]], {}, "submission.nan"),
    ("blank", ["id", "0", "1"], [["abc", "", 2], ["000123", 1, 3]], {}, "submission.nan"),
    ("inf", ["id", "0", "1"], [["abc", "inf", 2], ["000123", 1, 3]], {}, "submission.infinite"),
    ("constant", ["id", "0", "1"], [["abc", 0, 2], ["000123", 0, 3]], {}, "submission.constant-dim"),
]


@pytest.mark.parametrize(("name", "header", "rows", "kw", "code"), CASES, ids=[c[0] for c in CASES])
def test_each_rule(tmp_path, name, header, rows, code, kw):
    path = write(tmp_path / "e.csv", header, rows)
    report = check_submission(path, **kw)
    assert code in codes(report), [f.to_dict() for f in report.findings]
    benchmark_severity = CODES[code].severity.value
    found = next(f for f in report.findings if f.code == code)
    assert found.severity.value == benchmark_severity
    strict = check_submission(path, profile="challenge", **kw)
    assert next(f for f in strict.findings if f.code == code).severity.value == "error"
    assert not strict.ok


def test_locations_name_row_and_column(tmp_path):
    path = write(tmp_path / "e.csv", ["id", "0", "1", "2"], [["abc", 1, 2, 3], ["000123", 4, "oops", 6],
                                                            ["f" * 64, 7, 8, "nan"]])
    report = check_submission(path)
    bad = next(f for f in report.findings if f.code == "submission.not-numeric")
    assert (bad.row, bad.column, bad.id, bad.got) == (3, "1", "000123", "oops")
    nan = next(f for f in report.findings if f.code == "submission.nan")
    assert (nan.row, nan.column, nan.id) == (4, "2", "f" * 64)


def test_bom_is_reported_and_the_rest_still_checked(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"\xef\xbb\xbfid,0,1\nabc,1,2\n000123,nan,3\n")
    found = codes(check_submission(path))
    assert {"submission.bom", "submission.nan"} <= found


def test_every_submission_code_is_exercised():
    # submission.padding (a note on what the user asked for, in either profile): test_first_hour.py
    covered = {c[4] for c in CASES} | {"submission.bom", "submission.unreadable", "submission.padding"}
    assert covered == {code for code in CODES if code.startswith("submission.")}


def test_unreadable(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"id,0\n\xff\xfe,1\n")
    assert "submission.unreadable" in codes(check_submission(path))
    ragged = write(tmp_path / "r.csv", ["id", "0", "1"], [["abc", 1, 5, 2]])  # 1,5 unquoted: pandas fails too
    report = check_submission(ragged)
    assert codes(report) == {"submission.unreadable"} and "columns" in report.findings[0].message


PARITY = {
    "clean": b"id,0,1\nabc,1.5,-2\n000123,3,4e-3\n",
    "empty cells": b"id,0,1\nabc,,2\n000123,1, \n",
    "short row": b"id,0,1\nabc,1\n000123,1,2\n",
    "long row": b"id,0,1\nabc,1,2,3\n000123,1,2\n",
    "blank line": b"id,0,1\nabc,1,2\n\n000123,1,2\n",
    "empty id": b"id,0,1\n,1,2\n000123,1,2\n",
    "quoted": b'id,0,1\n"abc","1.5",2\n000123,"",2\n',
    "crlf and inf": b"id,0,1\r\nabc,inf,2\r\n000123,-Infinity,nan\r\n",
    "trailing space": b"id,0,1\nabc,1.5 ,2\n000123,1,2\n",
    "no final newline": b"id,0,1\nabc,1,2\n000123,0,2",
    "extra column": b"id,0,1,note\nabc,1,2,x\n000123,1,2,\n",
    "spellings of numbers": b"id,0,1\nabc,+nan,iNfInItY\n000123,\t1,00012\n",
    "digit separator": b"id,0,1\nabc,1_0,2\n000123,1,2\n",  # Python's float() reads 1_0; pandas and polars do not
}


POLARS_ACCEPTS = {"clean", "empty cells", "crlf and inf", "no final newline", "extra column",
                  "spellings of numbers"}


@pytest.mark.parametrize("name", PARITY)
def test_polars_fast_path_agrees_with_the_exact_pyarrow_path(tmp_path, monkeypatch, name):
    """polars is lenient where pyarrow is strict; whatever it accepts must give the very same report."""
    from neuco_io.submission import check

    head, body = PARITY[name].split(b"\n", 1)
    header = head.rstrip(b"\r").decode().split(",")
    accepted = check._parse_with_polars(body, header, [c for c in header if c.isdigit()]) is not None
    assert accepted == (name in POLARS_ACCEPTS)
    path = tmp_path / "e.csv"
    path.write_bytes(PARITY[name])
    fast = check_submission(path, dim=2)
    monkeypatch.setattr(check, "_parse_with_polars", lambda *args: None)
    exact = check_submission(path, dim=2)
    assert [f.to_dict() for f in fast.findings] == [f.to_dict() for f in exact.findings]
    assert fast.summary == exact.summary


def test_large_file_in_bounded_memory(tmp_path):
    """Many blocks: counts stay exact while only a few findings are listed."""
    rng = np.random.default_rng(1)
    n, d = 4000, 64
    values = rng.normal(size=(n, d)).astype(np.float32)
    values[::7, 3] = np.nan
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("id," + ",".join(str(i) for i in range(d)) + "\n")
        for i in range(n):
            fh.write(f"loc{i}," + ",".join(f"{v:.6g}" for v in values[i]) + "\n")
    report = check_submission(path, dim=64)
    assert report.summary["rows"] == n
    assert report.summary["counts"]["submission.nan"] == len(range(0, n, 7))
    assert sum(1 for f in report.findings if f.code == "submission.nan") <= 21


def test_pack_from_npy_parquet_and_sloppy_csv(tmp_path):
    matrix = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    np.save(tmp_path / "emb.npy", matrix)
    (tmp_path / "ids.txt").write_text("000123\nabc.zarr.zip\n" + "f" * 64 + "\n")
    out = pack_submission(tmp_path / "emb.npy", tmp_path / "a.csv", ids=tmp_path / "ids.txt", dim=8,
                          expected=set(IDS))
    assert (out.rows, out.dim) == (3, 8) and out.report.ok
    text = (tmp_path / "a.csv").read_text().splitlines()
    assert text[0] == "id," + ",".join(str(i) for i in range(8)) and text[2].startswith("abc,")
    # a sloppy CSV: BOM, 1-based headers, suffixed ids -> a clean one with the same values
    sloppy = tmp_path / "sloppy.csv"
    sloppy.write_bytes(b"\xef\xbb\xbfid,1,2,3,4,5\r\n" + b"".join(
        f"{i}.zarr.zip,{','.join(repr(float(v)) for v in row)}\r\n".encode() for i, row in zip(IDS, matrix)))
    tidy = pack_submission(sloppy, tmp_path / "b.csv")
    assert tidy.report.ok and check_submission(tmp_path / "b.csv", ids=set(IDS), profile="challenge").ok
    import pandas as pd

    frame = pd.read_csv(tmp_path / "b.csv", dtype={"id": str}).set_index("id")
    np.testing.assert_array_equal(frame.loc[IDS].to_numpy(np.float32), matrix)
    # parquet with an id column
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": IDS, **{str(j): matrix[:, j] for j in range(5)}}), tmp_path / "e.parquet")
    assert pack_submission(tmp_path / "e.parquet", tmp_path / "c.csv").rows == 3
    # a file that would fail is refused and never written
    bad = matrix.copy()
    bad[1, 1] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(PackRefused, match=r"submission\.infinite"):
        pack_submission(tmp_path / "bad.npy", tmp_path / "d.csv", ids=tmp_path / "ids.txt")
    assert not (tmp_path / "d.csv").exists()


def test_cli(tmp_path):
    path = write(tmp_path / "e.csv", ["id", "0", "1"], [["abc", 1, 2], ["000123", "nan", 3], ["zz", 5, 4]])
    (tmp_path / "ids.txt").write_text("\n".join(IDS[:2]) + "\nother\n")
    runner = CliRunner()
    result = runner.invoke(main, ["submission", "check", str(path), "--ids", str(tmp_path / "ids.txt"),
                                  "--format", "json"])
    assert result.exit_code == 0, result.output  # benchmark profile: warnings only
    data = json.loads(result.output)
    assert {w["code"] for w in data["warnings"]} == {"submission.nan", "submission.missing-id",
                                                     "submission.unknown-id"}
    strict = runner.invoke(main, ["submission", "check", str(path), "--ids", str(tmp_path / "ids.txt"),
                                  "--profile", "challenge", "--dim", "2"])
    assert strict.exit_code == 1 and "FAILED" in strict.output
