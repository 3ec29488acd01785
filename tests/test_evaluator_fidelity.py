"""`submission check` reads ids and numbers exactly as NeuCo-Bench's evaluator does.

The ground truth is the evaluator's own reading: its `load_submission` (imported from the NeuCo-Bench
snapshot when it and its dependencies are there), and always the pandas calls it makes
(`pd.read_csv`, `.astype(str)`, `pd.to_numeric(errors="coerce")`) on the very same file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import random

import numpy as np
import pandas as pd
import pytest
from test_neucobench import need

from neuco_io import evaluator
from neuco_io.submission import check, check_submission

# Spellings of numbers, odd and ordinary. None of them is a zero, so a 0 in the evaluator's output means
# "it could not read this" (load_submission fills NaN with 0).
SPELLINGS = [
    "1", "12", "-3.5", "+1", ".5", "5.", "1e5", "1E5", "1e+5", "1e-5", " 1", "1 ", " 1 ", "\t1", "1\t", "00012",
    "１２", "1_0", "١٢", "٣", "1\u20092", "\u20091", "1\u00a0", "1\u3000", "0x10", "1d5", "1D5", "--1", "+-1",
    "1.2.3", "1e", "e5", "1e5.5", "0.1f", ".", "-", "+", "e", "true", "abc", "∞",
    "inf", "-inf", "+inf", "Inf", "INF", "infinity", "-Infinity", "+Infinity", "INFINITY", "infinit",
    "nan", "NaN", "NAN", "-nan", "-NaN", "+nan", "Nan", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>",
    "#N/A", "1.#IND", "1.#QNAN", "", "  ", "1e400", "-1e400", "3.5e38", "1.5e308",
    '"1,5"', '"2"', '" 3 "',
]


def _field(spelling: str) -> str:
    return spelling  # quoted spellings carry their own quotes


UNQUOTED = [s for s in SPELLINGS if '"' not in s]


def _corpus_file(tmp_path, spellings=SPELLINGS, newline="\n"):
    """Each spelling in column 0 of its own row, with a plain number beside it in column 1."""
    path = tmp_path / "odd.csv"
    lines = ["id,0,1"] + [f"loc{k},{_field(s)},{k + 1}.25" for k, s in enumerate(spellings)]
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


def _pandas_reading(path) -> np.ndarray:
    """The evaluator's numbers, with its own pandas calls: NaN where it then writes 0."""
    df = pd.read_csv(path)
    emb = df[["0", "1"]].apply(pd.to_numeric, errors="coerce")
    return emb.to_numpy(dtype=np.float64, na_value=np.nan)


def _reported_cells(report) -> dict[tuple[int, str], str]:
    return {(f.row, f.column): f.code for f in report.findings
            if f.code in ("submission.not-numeric", "submission.nan", "submission.infinite")}


def _load_submission():
    """NeuCo-Bench's own load_submission, or a skip saying why it is not available (a failure in CI)."""
    module_path = need("torch", file="benchmark/data/embeddings.py")  # the module imports torch
    spec_ = importlib.util.spec_from_file_location("neuco_bench_embeddings", module_path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    logging.getLogger(module.__name__).setLevel(logging.WARNING)
    return module.load_submission


@pytest.mark.parametrize("fast", [True, False], ids=["polars-first", "pyarrow-only"])
@pytest.mark.parametrize(("spellings", "newline"), [(SPELLINGS, "\n"), (UNQUOTED, "\n"), (UNQUOTED, "\r\n")],
                         ids=["quoted", "unquoted", "crlf"])
def test_numbers_are_read_as_the_evaluator_reads_them(tmp_path, monkeypatch, fast, spellings, newline):
    monkeypatch.setattr(check, "SHOWN", 1000)  # list every finding
    if not fast:
        monkeypatch.setattr(check, "_parse_with_polars", lambda *args: None)
    path = _corpus_file(tmp_path, spellings, newline)
    with np.errstate(over="ignore"):
        truth = _pandas_reading(path).astype(np.float32)  # the evaluator's to_numpy(dtype=np.float32)
    report = check_submission(path)
    assert report.summary["rows"] == len(spellings)
    reported = _reported_cells(report)
    assert report.summary["counts"].get("submission.not-numeric", 0) + report.summary["counts"].get(
        "submission.nan", 0) + report.summary["counts"].get("submission.infinite", 0) == len(reported)
    for k, spelling in enumerate(spellings):
        value = truth[k, 0]
        code = reported.get((k + 2, "0"))
        if np.isnan(value):
            assert code in ("submission.not-numeric", "submission.nan"), (spelling, code)
        elif np.isinf(value):
            assert code == "submission.infinite", (spelling, code)
        else:
            assert code is None, (spelling, value, code)
    assert not any(col == "1" for _, col in reported)
    # the odd spellings the issue names are not numbers to the evaluator: errors, whatever the profile
    for spelling in ("１２", "1_0", "١٢", "1d5", "0x10"):
        k = spellings.index(spelling)
        assert reported[(k + 2, "0")] == "submission.not-numeric", spelling
    strict = check_submission(path, profile="challenge")
    assert all(f.severity.value == "error" for f in strict.findings)
    assert {(f.row, f.column) for f in strict.findings if f.column} >= set(reported)


def test_numbers_against_the_evaluators_own_load_submission(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "SHOWN", 1000)
    load_submission = _load_submission()
    path = _corpus_file(tmp_path)
    ids = {f"loc{k}" for k in range(len(SPELLINGS))}
    frame, dim = load_submission(path, ids, standardize=False)
    assert dim == 2
    zeroed = {row.id for row in frame.itertuples() if row.embedding[0] == 0}
    infinite = {row.id for row in frame.itertuples() if np.isinf(row.embedding[0])}
    report = check_submission(path)
    by_row = _reported_cells(report)
    flagged = {f"loc{row - 2}": code for (row, col), code in by_row.items() if col == "0"}
    assert {i for i, c in flagged.items() if c in ("submission.not-numeric", "submission.nan")} == zeroed
    assert {i for i, c in flagged.items() if c == "submission.infinite"} == infinite


def _fuzz_cells(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("0123456789") * 3 + list("+-.eE ") * 3 + list("infatyINFATYdDxXbB_\t#/") + [
        "\u00a0", "１", "٣", "\u2009", "\u3000", "é"]
    words = ["inf", "nan", "NaN", "infinity", "NA", "null", "1e400", "1e-400", "1e308", "0x1p3", "1_000", "1.#INF",
             "∞", "1e+", ".e1", "1.e1", "+.5", "-.5e-3", "1e0001", "00.5", "5e-324", "3.5e38", "3.4e38"]
    cells = set()
    while len(cells) < n:
        if rng.random() < 0.3:
            cells.add(rng.choice(["", "+", "-", " ", "0"]) + rng.choice(words) + rng.choice(["", " ", "0", "e5"]))
        else:
            cells.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))))
    return sorted(cells)


def test_a_values_reading_does_not_depend_on_its_column():
    """The evaluator's value of a field is the same whether pandas inferred its column as float or as text:
    what lets the checker judge fields one by one (evaluator.read_numbers)."""
    cells = _fuzz_cells(1, 400)
    values, _ = evaluator.read_numbers(cells)
    for k, cell in enumerate(cells):
        for partner in ("2.5", "zz"):
            text = 'id,0\na,"' + cell + '"\nb,' + partner + "\n"
            read = pd.read_csv(io.StringIO(text))[["0"]].apply(pd.to_numeric, errors="coerce")
            got = read["0"].to_numpy(dtype=np.float64, na_value=np.nan)[0]
            assert got == values[k] or (np.isnan(got) and np.isnan(values[k])), (cell, partner, got, values[k])


def test_what_the_fast_readers_read_as_a_number_the_evaluator_reads_as_the_same_number():
    """polars, pyarrow's CSV reader and its string cast are trusted for finite values only (everything else
    goes to pandas): prove it."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pc

    cells = [c for c in _fuzz_cells(2, 3000) if "," not in c]
    values, category = evaluator.read_numbers(cells)
    accepted = 0
    for k, cell in enumerate(cells):
        readings = []
        with contextlib.suppress(Exception):  # polars refuses it: nothing to compare
            readings.append(pl.read_csv(f"a,{cell}\n".encode(), has_header=False,
                                        schema={"id": pl.String, "0": pl.Float32})["0"][0])
        try:
            table = pc.read_csv(io.BytesIO(f"a,{cell}\n".encode()), read_options=pc.ReadOptions(
                column_names=["id", "0"]), convert_options=pc.ConvertOptions(
                column_types={"id": pa.string(), "0": pa.float32()}, null_values=[""], strings_can_be_null=False))
            readings.append(table.column(1)[0].as_py())
        except pa.ArrowInvalid:
            pass
        with contextlib.suppress(pa.ArrowInvalid):  # the slow path's per-column cast
            readings.append(pa.array([cell]).cast(pa.float32())[0].as_py())
        for reading in readings:
            if reading is not None and np.isfinite(reading):
                accepted += 1
                assert category[k] == evaluator.FINITE, (cell, reading)
                assert np.float32(reading) == np.float32(values[k]), (cell, reading, values[k])
    assert accepted > 100  # the corpus does exercise the fast readers


# -- ids ---------------------------------------------------------------------------------------
ID_SETS = {
    "leading zeros": ["000123", "000045", "7"],
    "decimals": ["1.50", "2", "3.25"],
    "exponent": ["1e3", "12"],
    "mixed with text": ["000123", "abc", "0099"],
    "bools": ["true", "false"],
    "missing-value spellings": ["NA", "12", "null"],
    "zarr suffix and inside": ["a.zarr.zip", "b.zarr", "c.zarr_1", "d"],
    "spaces": [" 12", "13 "],
    "hex": ["0a1b", "ff00", "1234"],
    "huge integers": ["99999999999999999999", "1"],
}


def _id_file(tmp_path, ids: list[str], dims: int = 2):
    path = tmp_path / "ids.csv"
    header = "id," + ",".join(str(d) for d in range(dims))
    path.write_text(header + "\n" + "".join(f'"{i}",' + ",".join(["0.5"] * dims) + "\n" for i in ids))
    return path


def _changed_by_pandas(path) -> set[str]:
    raw = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)["id"].tolist()
    read = evaluator.evaluator_id_text(pd.read_csv(path)["id"])
    return {r for r, e in zip(raw, read) if e != r and not (e is not None and r.endswith(".zarr.zip")
                                                             and e == r[:-9]) and not (
        e is not None and r.endswith(".zarr") and e == r[:-5])}


def _id_changed(report) -> set[str]:
    return {f.id for f in report.findings if f.code == "submission.id-changed"}


@pytest.mark.parametrize("name", ID_SETS)
def test_ids_are_read_as_the_evaluator_reads_them(tmp_path, name):
    path = _id_file(tmp_path, ID_SETS[name])
    report = check_submission(path)
    assert _id_changed(report) == _changed_by_pandas(path)
    assert all(f.severity.value == "error" for f in report.findings if f.code == "submission.id-changed")


@pytest.mark.parametrize("blocks", [("int", "float"), ("int", "float", "text"), ("int", "bool"), ("text", "int")])
def test_blocks_are_joined_as_pandas_joins_them(tmp_path, monkeypatch, blocks):
    """Types are inferred per block of rows and then joined: an int block next to a float block becomes floats
    (`000123` -> `123.0`), next to a text block stays ints. What the checker says the evaluator reads is exact."""
    monkeypatch.setattr(check, "SHOWN", 10_000)
    make = {"int": lambda b: [f"{b}{i:05d}" for i in range(512)], "float": lambda b: [f"{b}.{i}5" for i in range(512)],
            "text": lambda b: [f"t{b}_{i}" for i in range(512)], "bool": lambda b: ["true", "false"] * 256}
    ids = [i for b, kind in enumerate(blocks) for i in make[kind](b)]
    path = _id_file(tmp_path, ids, dims=1024)
    raw = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)["id"].tolist()
    truth = dict(zip(raw, evaluator.evaluator_id_text(pd.read_csv(path)["id"])))
    report = check_submission(path)
    got = {f.id: f.got for f in report.findings if f.code == "submission.id-changed"}
    assert got == {r: t for r, t in truth.items() if t != r}


def test_the_missing_value_spellings_are_pandas_own():
    from pandas._libs.parsers import STR_NA_VALUES

    assert frozenset(STR_NA_VALUES) == evaluator._NA_SPELLINGS


def test_ids_change_per_block_of_rows_in_a_wide_file(tmp_path):
    """pandas infers the id type per block of 512 rows for 1,024 dimensions: the first block's digit-only ids
    change although the file's other ids hold letters."""
    ids = [f"{i:06d}" for i in range(600)] + [f"a{i}" for i in range(600)]
    path = _id_file(tmp_path, ids, dims=1024)
    report = check_submission(path)
    assert report.summary["counts"]["submission.id-changed"] == 512
    assert _changed_by_pandas(path) == set(ids[:512])
    listed = [f for f in report.findings if f.code == "submission.id-changed"]
    assert listed[0].id == "000000" and listed[0].got == "0"


@pytest.mark.parametrize("name", ["leading zeros", "decimals", "mixed with text", "zarr suffix and inside",
                                  "missing-value spellings"])
def test_ids_against_the_evaluators_own_load_submission(tmp_path, name):
    load_submission = _load_submission()
    ids = ID_SETS[name]
    path = _id_file(tmp_path, ids)
    labels = {i[:-9] if i.endswith(".zarr.zip") else i[:-5] if i.endswith(".zarr") else i for i in ids}
    frame, _ = load_submission(path, labels, standardize=False)
    kept = set(frame["id"])
    lost = {i for i in ids if (i[:-9] if i.endswith(".zarr.zip") else i[:-5] if i.endswith(".zarr") else i)
            not in kept}
    assert _id_changed(check_submission(path)) == lost


def test_ids_at_risk_in_a_dataset():
    risk = evaluator.ids_at_risk(["abc", "000123", "12", "1.5", "a.zarr", "x.zarr_b", "true", "NA", "ff",
                                  "deadbeef", "plot_7", "7"])
    # 1.5 is read as 1.5 (unchanged); it is what turns 12 and 7 into 12.0 and 7.0 when they share a block
    assert set(risk) == {"000123", "12", "a.zarr", "x.zarr_b", "true", "NA", "7"}
    assert risk["000123"] == "123" and risk["12"].startswith("12.0") and risk["a.zarr"] == "a"
    assert evaluator.ids_at_risk(["abc", "12", "13", "plot_7"]) == {}
    assert evaluator.ids_at_risk([f"{i:064x}" for i in range(20, 30)]).keys() == {f"{i:064x}" for i in
                                                                                   range(20, 26)}


def test_the_id_prefilter_lets_through_every_id_pandas_may_change():
    words = evaluator._spellings()
    cells = [c for c in _fuzz_cells(3, 3000) if "\n" not in c]
    frame = evaluator._read_columns([cells], len(cells))
    for cell, read in zip(cells, evaluator.evaluator_id_text(frame.iloc[0])):
        if read != cell:
            assert evaluator._maybe_not_text(cell, words), (cell, read)
