"""Parquet shards: both array layouts, stock readers, the dataset card, checks against the record, versions."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import convert, verify
from neuco_io.cube.reader import Cube
from neuco_io.embed import embed
from neuco_io.errors import ShardError
from neuco_io.loader import CubeDataset, ShardDataset
from neuco_io.shards.codecs import decode_member
from neuco_io.shards.manifest import Manifest
from neuco_io.shards.parquet import ParquetShard, iter_parquet_records
from neuco_io.shards.record import FORMAT_VERSION
from neuco_io.tasks.labels import read_task_labels

from helpers import ORIGINAL

SOURCES = {"downstream": ORIGINAL / "downstream", "v11": ORIGINAL / "v11"}


def shard_paths(out: Path) -> list[Path]:
    return [out / s["name"] for s in Manifest.load(out)["shards"]]


def source_array(root: Path, meta: dict, name: str) -> np.ndarray:
    info = meta.get("arrays", {}).get(name, {"source": name, "variable": "bands"})
    with Cube(root / meta["source"][info["source"]]) as cube:
        return cube.read(info["variable"], (meta["sample_index"],))


@pytest.mark.parametrize("arrays", ["binary", "tensor"])
@pytest.mark.parametrize("codec", ["blosc", "none"])
@pytest.mark.parametrize("layout", ["downstream", "v11"])
def test_round_trip_is_lossless_and_verifies(tmp_path, layout, codec, arrays):
    root = SOURCES[layout]
    out = tmp_path / "out"
    convert(root, out, to="parquet", codec=codec, parquet_arrays=arrays, jobs=1, max_records=2, row_group_size=1)
    assert Manifest.load(out)["options"]["parquet_arrays"] == arrays
    report = verify(root, out, jobs=1)
    assert report.ok, report.findings
    n = 0
    for path in shard_paths(out):
        for meta, got in iter_parquet_records(path, path.name):
            assert meta["parquet_arrays"] == arrays and meta["format_version"] == FORMAT_VERSION
            for name in meta["members"]:
                want = source_array(root, meta, name)
                assert got[name].dtype == want.dtype and got[name].tobytes() == want.tobytes()
            n += 1
    assert n == Manifest.load(out)["records"]


def test_default_layout_fields_and_page_settings(tmp_path):
    convert(SOURCES["v11"], tmp_path / "out", to="parquet", jobs=1)
    path = shard_paths(tmp_path / "out")[0]
    schema = pq.read_schema(path)
    field = schema.field("s2l1c")
    assert field.type == pa.binary()
    assert field.metadata[b"dtype"] == b"<i2" and json.loads(field.metadata[b"shape"]) == [4, 13, 264, 264]
    assert json.loads(field.metadata[b"bands"])[0] == "B01" and field.metadata[b"encoding"] == b"blosc"
    meta = pq.ParquetFile(path).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in
               range(meta.num_columns)}
    # Blosc values are stored as they are: no second compression, no dictionary, no statistics.
    assert columns["s2l1c"].compression == "UNCOMPRESSED"
    assert not columns["s2l1c"].is_stats_set and "RLE_DICTIONARY" not in columns["s2l1c"].encodings
    assert columns["record"].compression == "ZSTD"


def test_pyarrow_alone_recovers_raw_arrays_in_one_line(tmp_path):
    root = SOURCES["v11"]
    convert(root, tmp_path / "out", to="parquet", codec="none", jobs=1)
    path = shard_paths(tmp_path / "out")[0]
    table = pq.read_table(path)
    field = table.schema.field("s1").metadata
    # The line the README documents:
    s1 = np.frombuffer(table["s1"][0].as_buffer(), field[b"dtype"].decode()).reshape(json.loads(field[b"shape"]))
    meta = json.loads(table["record"][0].as_py())
    want = source_array(root, meta, "s1")
    assert s1.dtype == np.float16 and s1.tobytes() == want.tobytes()
    assert pq.ParquetFile(path).metadata.row_group(0).column(table.schema.get_field_index("s1")).compression == "ZSTD"


def test_default_layout_decodes_with_decode_member(tmp_path):
    root = SOURCES["downstream"]
    convert(root, tmp_path / "out", to="parquet", jobs=1)
    table = pq.read_table(shard_paths(tmp_path / "out")[0])
    meta = json.loads(table["record"][0].as_py())
    s2l2a = decode_member("s2l2a.blosc", table["s2l2a"][0].as_buffer())
    assert s2l2a.tobytes() == source_array(root, meta, "s2l2a").tobytes()


@pytest.mark.parametrize("codec", ["blosc", "none"])
def test_duckdb_and_polars_read_rows_with_blobs(tmp_path, codec):
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    convert(SOURCES["v11"], tmp_path / "out", to="parquet", codec=codec, jobs=1)
    path = str(shard_paths(tmp_path / "out")[0])
    rows = duckdb.sql(f"select id, s2l1c, center_lat, record from '{path}' order by id").fetchall()
    assert len(rows) == 5 and isinstance(rows[0][1], bytes) and isinstance(rows[0][2], float)
    if codec == "none":
        assert len(rows[0][1]) == 4 * 13 * 264 * 264 * 2
    assert json.loads(rows[0][3])["id"] == rows[0][0]
    df = polars.read_parquet(path)
    assert df.height == 5 and df.schema["s1"] == polars.Binary and "cloud_mask" in df.columns


def test_hugging_face_datasets_loads_the_folder_and_the_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = SOURCES["downstream"]
    out = tmp_path / "out"
    convert(root, out, to="parquet", jobs=1, max_records=2)
    by_card = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    by_files = datasets.load_dataset("parquet", data_files=[str(p) for p in shard_paths(out)], split="train",
                                     cache_dir=str(tmp_path / "cache2"))
    for ds in (by_card, by_files):
        assert ds.num_rows == 3 and ds.features["s1"].dtype == "binary"
        row = ds[0]
        meta = json.loads(row["record"])
        assert decode_member("s1.blosc", row["s1"]).tobytes() == source_array(root, meta, "s1").tobytes()


@pytest.mark.parametrize("arrays", ["binary", "tensor"])
def test_dataset_card_parses_and_names_every_shard(tmp_path, arrays):
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "out"
    convert(SOURCES["v11"], out, to="parquet", parquet_arrays=arrays, jobs=1, max_records=2)
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    manifest = Manifest.load(out)
    assert manifest["card"] == "README.md"
    config = front["configs"][0]
    assert config["config_name"] == "default"
    assert config["data_files"][0]["path"] == [s["name"] for s in manifest["shards"]]
    assert front["license"] and front["neuco_io"]["source"] == manifest["source"]["root"]
    assert front["dataset_info"]["splits"][0]["num_examples"] == manifest["records"] == 5
    features = {f["name"]: f["dtype"] for f in front["dataset_info"].get("features", [])}
    if arrays == "binary":
        assert features["s2l1c"] == "binary" and features["id"] == "string" and features["crs"] == "int64"
    else:
        assert not features and "cannot read" in text


def test_card_never_replaces_a_users_readme(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    result = CliRunner().invoke(main, ["convert", str(SOURCES["downstream"]), str(out), "--to", "parquet", "-q"])
    assert result.exit_code == 2 and "README.md" in result.output
    assert (out / "README.md").read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == ["README.md"]
    (out / "README.md").unlink()
    convert(SOURCES["downstream"], out, to="parquet", jobs=1)
    convert(SOURCES["downstream"], out, to="parquet", jobs=1, max_records=1, overwrite=True)  # our card: replaced
    assert "3 Parquet shards" in (out / "README.md").read_text().replace("3 locations in ", "")


@pytest.mark.parametrize("arrays", ["binary", "tensor"])
def test_shard_dataset_embed_and_labels_export_on_both_layouts(tmp_path, arrays):
    root = SOURCES["downstream"]
    out = tmp_path / "out"
    convert(root, out, to="parquet", parquet_arrays=arrays, jobs=1, max_records=2)
    options = {"return_id": True, "seasons": [3, 1], "tasks": ["fixture_height"]}
    cubes = {s["id"]: s for s in (CubeDataset(root, **options)[i] for i in range(3))}
    streamed = {s["id"]: s for s in ShardDataset(out, **options)}
    assert cubes.keys() == streamed.keys()
    for loc_id, sample in cubes.items():
        assert sample["data"].tobytes() == streamed[loc_id]["data"].tobytes()
        np.testing.assert_equal(sample["labels"], streamed[loc_id]["labels"])
    embed(out, "mean", tmp_path / "from-shards.csv")
    embed(root, "mean", tmp_path / "from-cubes.csv")
    assert (tmp_path / "from-shards.csv").read_bytes() == (tmp_path / "from-cubes.csv").read_bytes()
    result = CliRunner().invoke(main, ["labels", "export", str(out), str(tmp_path / "labels")])
    assert result.exit_code == 0, result.output
    for path in (tmp_path / "labels").iterdir():
        assert read_task_labels(path) == read_task_labels(root / "labels" / path.name)


def test_tensor_layout_keeps_typed_columns(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    convert(SOURCES["v11"], tmp_path / "out", to="parquet", parquet_arrays="tensor", jobs=1)
    path = str(shard_paths(tmp_path / "out")[0])
    s1 = pq.read_table(path, columns=["s1"])["s1"].combine_chunks().to_numpy_ndarray()
    assert s1.dtype == np.float16 and s1.shape == (5, 4, 2, 264, 264)
    rows = duckdb.sql(f"select id, len(s2l1c) as n from '{path}' order by id").fetchall()
    assert len(rows) == 5 and rows[0][1] == 4 * 13 * 264 * 264
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "BYTE_STREAM_SPLIT" in encodings["s1.list.element"]  # float16: split bytes compress better
    assert "BYTE_STREAM_SPLIT" not in encodings["s2l1c.list.element"]
    compression = {meta.column(i).path_in_schema: meta.column(i).compression for i in range(meta.num_columns)}
    assert compression["s1.list.element"] == compression["s2l1c.list.element"] == compression["record"] == "ZSTD"


class CountingFile:
    """A local file that counts the reads pyarrow makes through it."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.reads = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        return self.fh.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.fh.close()


def test_one_positioned_read_per_row_group_and_unwanted_groups_unread(tmp_path):
    convert(SOURCES["v11"], tmp_path / "out", to="parquet", jobs=1, row_group_size=1)
    path = shard_paths(tmp_path / "out")[0]
    counting = CountingFile(path)
    with ParquetShard(counting, path.name) as shard:
        assert shard.file.num_row_groups == 5
        opened = counting.reads
        names = ["s1", "s2l1c", "s2l2a"]  # what ShardDataset reads by default
        rows = [(row.number, row.arrays(names)["s2l1c"].shape) for row in shard.rows(names)]
        assert [n for n, _ in rows] == [0, 1, 2, 3, 4]
        assert counting.reads - opened == 5
        before = counting.reads
        assert [row.number for row in shard.rows(["s1"], {3}.__contains__)] == [3]
        assert counting.reads - before == 1
    counting.close()


def test_raw_arrays_are_views_of_the_read_buffers(tmp_path):
    convert(SOURCES["downstream"], tmp_path / "out", to="parquet", codec="none", jobs=1)
    path = shard_paths(tmp_path / "out")[0]
    with ParquetShard(path, path.name) as shard:
        row = next(shard.rows(["s2l1c"]))
        array = row.arrays(["s2l1c"])["s2l1c"]
        assert not array.flags.owndata  # a view of the decompressed page, not a copy


def rewrite(path: Path, edit_record=None, edit_table=None) -> None:
    """Rewrite a shard with its records (or its table) changed, keeping everything else."""
    table = pq.read_table(path)
    if edit_record is not None:
        records = [json.dumps(edit_record(json.loads(r))) for r in table["record"].to_pylist()]
        table = table.set_column(table.schema.get_field_index("record"), table.schema.field("record"),
                                 pa.array(records, pa.string()))
    if edit_table is not None:
        table = edit_table(table)
    pq.write_table(table, path)


def wrong_shape(meta: dict) -> dict:
    meta["shapes"]["s1"] = [4, 2, 132, 528]
    return meta


def wrong_dtype(meta: dict) -> dict:
    meta["dtypes"]["s1"] = "int16"
    return meta


@pytest.mark.parametrize("arrays, codec", [("binary", "blosc"), ("binary", "none"), ("tensor", "blosc")])
@pytest.mark.parametrize("edit", [wrong_shape, wrong_dtype])
def test_array_disagreeing_with_its_record_is_a_shard_error(tmp_path, arrays, codec, edit):
    out = tmp_path / "out"
    convert(SOURCES["downstream"], out, to="parquet", parquet_arrays=arrays, codec=codec, jobs=1)
    path = shard_paths(out)[0]
    rewrite(path, edit_record=edit)
    with pytest.raises(ShardError) as info:
        list(ShardDataset(out, modalities=["s1"]))
    assert info.value.shard == path.name and info.value.key in Manifest.load(out)["index"]
    assert list(ShardDataset(out, modalities=["s1"], on_error="warn")) == []
    assert len(list(ShardDataset(out, modalities=["s2l1c"]))) == 3  # the other arrays still read
    report = verify(SOURCES["downstream"], out, jobs=1)
    assert {m.code for m in report.findings} >= {"verify.unreadable-record"}


def test_raw_value_of_the_wrong_size_and_null_values_are_shard_errors(tmp_path):
    out = tmp_path / "out"
    convert(SOURCES["downstream"], out, to="parquet", codec="none", jobs=1)
    path = shard_paths(out)[0]

    def truncate(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("s1")
        values = [v[:-2] if v is not None else None for v in table["s1"].to_pylist()]
        values[1] = None
        return table.set_column(index, table.schema.field("s1"), pa.array(values, pa.binary()))

    rewrite(path, edit_table=truncate)
    with ParquetShard(path, path.name) as shard:
        messages = []
        for row in shard.rows(["s1"]):
            with pytest.raises(ShardError) as info:
                row.arrays(["s1"])
            assert info.value.key == row.id
            messages.append(str(info.value))
    assert "bytes for float16" in messages[0] and "is null" in messages[1]


def test_newer_format_versions_are_refused(tmp_path):
    out = tmp_path / "out"
    convert(SOURCES["downstream"], out, to="parquet", jobs=1)
    path = shard_paths(out)[0]
    rewrite(path, edit_record=lambda meta: dict(meta, format_version=FORMAT_VERSION + 1))
    with pytest.raises(ShardError, match="newer neuco-io"):
        list(ShardDataset(out))
    table = pq.read_table(path)
    info = json.loads(table.schema.metadata[b"neuco-io"])
    pq.write_table(table.replace_schema_metadata({"neuco-io": json.dumps(dict(info, format_version=99))}), path)
    with pytest.raises(ShardError, match="format version 99"):
        ParquetShard(path, path.name)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(manifest, format_version=FORMAT_VERSION + 1)))
    with pytest.raises(ShardError, match="newer neuco-io"):
        ShardDataset(out)
    result = CliRunner().invoke(main, ["verify", str(SOURCES["downstream"]), str(out)])
    assert result.exit_code == 1 and "upgrade neuco-io" in result.output


def test_newer_tar_records_are_refused(tmp_path):
    import tarfile

    out = tmp_path / "out"
    convert(SOURCES["downstream"], out, to="webdataset", codec="none", jobs=1)
    path = out / Manifest.load(out)["shards"][0]["name"]
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            if member.name.endswith(".json"):
                data = json.dumps(dict(json.loads(data), format_version=FORMAT_VERSION + 1)).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(ShardError, match="newer neuco-io"):
        list(ShardDataset(out))


def test_version_1_tensor_shards_still_read(tmp_path):
    """Shards written before format version 2 (tensor columns, codec "parquet") read as they did."""
    out = tmp_path / "out"
    convert(SOURCES["downstream"], out, to="parquet", parquet_arrays="tensor", jobs=1)
    path = shard_paths(out)[0]

    def as_v1(meta: dict) -> dict:
        meta.pop("parquet_arrays")
        return dict(meta, format_version=1, codec="parquet")

    rewrite(path, edit_record=as_v1)
    shutil.copy(path, tmp_path / "old.parquet")
    streamed = list(ShardDataset([tmp_path / "old.parquet"], dtype="native", concat=False, return_id=True))
    assert len(streamed) == 3 and streamed[0]["data"]["s1"].dtype == np.float16


@pytest.mark.parametrize("option", [["--parquet-arrays", "tensor"], ["--row-group-size", "4"]])
def test_parquet_options_are_refused_for_webdataset(tmp_path, option):
    """A Parquet-only option given with --to webdataset is a usage error, not silently ignored."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(SOURCES["downstream"]), str(out), "--to", "webdataset",
                                       *option])
    assert result.exit_code == 2, result.output
    assert "--to parquet only" in result.output
    assert not out.exists()
