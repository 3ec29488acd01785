"""Label files are read the way the NeuCo-Bench evaluator reads them."""

from __future__ import annotations

import csv

import pytest

from neuco_io.labels import LabelFileError, parse_task_name, read_label_table, read_task_labels
from neuco_io.validators import validate

from helpers import write_location


@pytest.mark.parametrize(("name", "task", "kind"), [
    ("biomass_mean__regr.csv", "biomass_mean", "regression"),
    ("random_reg__reg.csv", "random_reg", "regression"),
    ("cloud_detection__classification.csv", "cloud_detection", "classification"),
    ("random_cls__cls.csv", "random_cls", "classification"),
    ("landcover_aggriculture__regr.csv", "landcover_aggriculture", "regression"),
    ("weird__xyz.csv", "weird", None),
])
def test_task_names(name, task, kind):
    parsed = parse_task_name(name)
    assert (parsed.task, parsed.kind) == (task, kind)


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
    assert report.findings == [], [f.to_dict() for f in report.findings]


def test_findings_name_file_row_and_id(downstream):
    (downstream / "labels" / "x__cls.csv").write_text("id,label\nnope,1\nnope2,0\n")
    report = validate(downstream, jobs=1)
    unknown = [f for f in report.findings if f.code == "labels.unknown-id"]
    assert [(f.row, f.id) for f in unknown] == [(2, "nope"), (3, "nope2")]
    assert all(f.path.endswith("x__cls.csv") and f.column == "id" for f in unknown)
