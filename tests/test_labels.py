"""Label files are read the way the NeuCo-Bench evaluator reads them."""

from __future__ import annotations

import csv
import re

import pytest
from test_neucobench import need

from neuco_io import spec
from neuco_io.tasks.labels import LabelFileError, parse_task_name, read_label_table, read_task_labels
from neuco_io.validators import validate

from helpers import write_location


@pytest.mark.parametrize(("name", "task", "kind", "accepted"), [
    ("biomass_mean__regr.csv", "biomass_mean", "regression", "regr"),
    ("cloud_detection__classification.csv", "cloud_detection", "classification", "classification"),
    ("random_cls__cls.csv", "random_cls", "classification", "cls"),
    ("landcover_aggriculture__regr.csv", "landcover_aggriculture", "regression", "regr"),
    ("x__regression.csv", "x", "regression", "regression"),
    # the evaluator refuses these spellings (ValueError: Unsupported task_type): no kind, and the accepted
    # spelling they mean, where there is one
    ("random_reg__reg.csv", "random_reg", None, "regr"),
    ("x__REGR.csv", "x", None, "regr"),
    ("x__Classification.csv", "x", None, "classification"),
    ("weird__xyz.csv", "weird", None, None),
    ("a__b__regr.csv", "a", None, None),  # the evaluator splits at the first `__` too
])
def test_task_names(name, task, kind, accepted):
    parsed = parse_task_name(name)
    assert (parsed.task, parsed.kind, parsed.accepted_type) == (task, kind, accepted)
    assert (parsed.type_problem() is None) == (kind is not None)


def test_task_types_are_exactly_what_the_evaluators_probes_accept():
    """spec.TASK_TYPES against the probes' own code (read from the NeuCo-Bench snapshot when present)."""
    assert set(spec.TASK_TYPES) == {"regression", "regr", "classification", "cls"}
    for probe in ("linear.py", "svm.py"):
        text = need(file=f"benchmark/evaluation/probes/{probe}").read_text()
        found = set(re.findall(r'self\.task_type in \(("[a-z]+"), ("[a-z]+")\)', text))
        assert {t.strip('"') for pair in found for t in pair} == set(spec.TASK_TYPES), probe
        assert "Unsupported task_type" in text


def test_reader_agrees_with_csv_dictreader(tmp_path):
    path = tmp_path / "t__regr.csv"
    path.write_bytes(b'id,label\r\n0001,1.5\r\n"quoted,id",2\r\n0002,\r\n\r\n0003, 7 \r\n')
    table = read_label_table(path)
    with path.open(newline="") as fh:
        expected = [(row["id"], row["label"]) for row in csv.DictReader(fh)]
    assert [(r.id, r.raw) for r in table.rows] == expected
    assert [r.line for r in table.rows] == [2, 3, 4, 6]
    assert table.skipped == 1
    assert read_task_labels(path) == {"0001": 1.5, "quoted,id": 2.0, "0003": 7.0}


def test_bom_and_nan_are_refused_by_the_strict_reader(tmp_path):
    bom = tmp_path / "a__regr.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,label\na,1\n")
    assert read_label_table(bom).bom
    with pytest.raises(LabelFileError, match="BOM"):
        read_task_labels(bom)
    nan = tmp_path / "b__regr.csv"
    nan.write_text("id,label\na,nan\n")
    with pytest.raises(LabelFileError, match="finite"):
        read_task_labels(nan)


def test_all_digit_ids_keep_leading_zeros(tmp_path):
    root = tmp_path / "ds"
    for loc_id in ("000123", "000456", "789"):
        write_location(root, loc_id)
    (root / "labels").mkdir()
    (root / "labels" / "t__cls.csv").write_text("id,label\n000123,1\n000456,0\n789,1\n")
    report = validate(root, jobs=1)
    # the label file is read as the evaluator reads it (ids stay strings): no label finding...
    assert [f for f in report.findings if f.check == "labels"] == []
    # ...but a submission hands 000123 to the evaluator as 123 (pandas' type inference): the ids are flagged
    assert {(f.code, f.id, f.got) for f in report.findings} == {
        ("ids.evaluator-changes", "000123", "123"), ("ids.evaluator-changes", "000456", "456")}


def test_findings_name_file_row_and_id(downstream):
    (downstream / "labels" / "x__cls.csv").write_text("id,label\nnope,1\nnope2,0\n")
    report = validate(downstream, jobs=1)
    unknown = [f for f in report.findings if f.code == "labels.unknown-id"]
    assert [(f.row, f.id) for f in unknown] == [(2, "nope"), (3, "nope2")]
    assert all(f.path.endswith("x__cls.csv") and f.column == "id" for f in unknown)
