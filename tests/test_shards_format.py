"""The shard format package: one Manifest, one record loop over both formats, the same record checks for both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neuco_io.converters import convert
from neuco_io.errors import ManifestError, ShardError, UsageError
from neuco_io.shards.manifest import JOURNAL, Manifest, is_convert_output, is_shard_source
from neuco_io.shards.reader import read_shard
from neuco_io.shards.record import FORMAT_VERSION

from helpers import ORIGINAL

SOURCE = ORIGINAL / "downstream"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """The downstream fixture as WebDataset and Parquet shards, 2 records a shard."""
    base = tmp_path_factory.mktemp("shards-format")
    out = {}
    for fmt in ("webdataset", "parquet"):
        out[fmt] = base / fmt
        convert(SOURCE, out[fmt], to=fmt, max_records=2, jobs=1)
    return out


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_manifest_indexes_what_the_shards_hold(outputs, fmt):
    manifest = Manifest.load(outputs[fmt])
    assert manifest.format == fmt and len(manifest.shards) == 2
    assert [p.name for p in manifest.shard_paths] == [s["name"] for s in manifest.shards]
    assert all(p.is_file() for p in manifest.shard_paths)
    for number, shard in enumerate(manifest.shards):
        ids = [record.id for record in read_shard(manifest.shard_paths[number], fmt)]
        assert manifest.ids(shard) == ids and len(ids) == shard["records"]
        for row, loc_id in enumerate(ids):
            assert manifest.place(loc_id)[:2] == (number, row)
    assert manifest.place("not-an-id") is None
    assert (manifest.labels_path is None) == (not manifest.get("labels"))


def test_both_formats_give_the_same_records(outputs):
    def records(fmt: str) -> dict[str, dict[str, np.ndarray]]:
        return {r.id: r.arrays() for p in Manifest.load(outputs[fmt]).shard_paths for r in read_shard(p, fmt)}

    tar, rows = records("webdataset"), records("parquet")
    assert tar.keys() == rows.keys()
    for loc_id, arrays in tar.items():
        assert arrays.keys() == rows[loc_id].keys()
        for name, array in arrays.items():
            assert array.dtype == rows[loc_id][name].dtype and np.array_equal(array, rows[loc_id][name])


def test_read_shard_stops_after_the_last_row_asked(outputs):
    path = Manifest.load(outputs["parquet"]).shard_paths[0]
    assert len(list(read_shard(path, "parquet", last=0))) == 1
    path = Manifest.load(outputs["webdataset"]).shard_paths[0]
    assert len(list(read_shard(path, "webdataset", last=0))) == 1


def test_a_newer_manifest_is_refused(outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(outputs["webdataset"], out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(manifest, format_version=FORMAT_VERSION + 1)))
    with pytest.raises(ManifestError, match="newer neuco-io"):
        Manifest.load(out)


def test_a_folder_without_manifest_says_what_it_is(tmp_path):
    assert not is_convert_output(tmp_path) and not is_shard_source(tmp_path)
    with pytest.raises(UsageError, match="no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / JOURNAL).parent.mkdir()
    (tmp_path / JOURNAL).write_text("{}")
    with pytest.raises(UsageError, match="interrupted conversion"):
        Manifest.load(tmp_path)


def test_resume_refuses_a_damaged_manifest(outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(outputs["webdataset"], out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["index"][next(iter(manifest["index"]))] = [99, 0, 0, 0]  # a shard that does not exist
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="index entry"):
        convert(SOURCE, out, to="webdataset", max_records=2, jobs=1, resume=True)


def test_a_parquet_row_gets_the_record_checks_a_tar_record_gets(outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(outputs["parquet"], out)
    path = Manifest.load(out).shard_paths[0]
    table = pq.read_table(path)
    records = [json.loads(r) for r in table["record"].to_pylist()]
    records[0]["labels"] = {"task": "not a number"}
    column = pa.array([json.dumps(r) for r in records], pa.string())
    pq.write_table(table.set_column(table.schema.get_field_index("record"), "record", column), path)
    with pytest.raises(ShardError, match="`labels` are not numbers") as info:
        list(read_shard(path, "parquet"))
    assert info.value.key == records[0]["id"]


def test_a_byte_range_holding_two_records_is_a_shard_error(outputs, tmp_path):
    """get(id) reads the byte range the manifest's index gives: a range that is not one record is refused."""
    from neuco_io.loader import ShardDataset

    out = tmp_path / "out"
    shutil.copytree(outputs["webdataset"], out)
    manifest = json.loads((out / "manifest.json").read_text())
    first, second = [loc_id for loc_id, entry in manifest["index"].items() if entry[0] == 0][:2]
    manifest["index"][first][3] += manifest["index"][second][3]  # the range now spans both records
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="holds 2 records, not 1"):
        ShardDataset(out, return_id=True).get(first)
