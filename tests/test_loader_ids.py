"""`ids=`, `ShardDataset.get`, `IndexedShardDataset` and `embed --ids/--labels` (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_loader_cache import serve

from neuco_io.cli import main
from neuco_io.converters import convert
from neuco_io.errors import ShardError, UsageError
from neuco_io.loader import CubeDataset, IndexedShardDataset, ShardDataset

from helpers import ORIGINAL

OPTIONS = {"modalities": ["s2rgb", "s1"], "return_id": True}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The v1.1 fixture (5 locations) as tar shards of 2 and as Parquet."""
    base = tmp_path_factory.mktemp("ids")
    for fmt in ("webdataset", "parquet"):
        convert(ORIGINAL / "v11", base / fmt, to=fmt, jobs=1, max_records=2)
    return base


def by_id(samples) -> dict:
    return {s["id"]: s["data"] for s in samples}


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_ids_stream_exactly_those_records(shards, fmt, tmp_path):
    everything = by_id(ShardDataset(shards / fmt, **OPTIONS))
    wanted = sorted(everything)[1::2]
    picked = ShardDataset(shards / fmt, ids=wanted, **OPTIONS, shuffle=2)
    assert len(picked) == len(wanted)
    got = by_id(picked)
    assert sorted(got) == wanted
    for loc_id, data in got.items():
        np.testing.assert_array_equal(data, everything[loc_id])
    listing = tmp_path / "ids.txt"
    listing.write_text("# picked\n" + "".join(f"{i}.zarr.zip\n\n" for i in wanted) + wanted[0] + "\n")
    assert sorted(by_id(ShardDataset(shards / fmt, ids=listing, **OPTIONS))) == wanted


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_get_and_indexed_dataset_read_one_record(shards, fmt):
    everything = by_id(ShardDataset(shards / fmt, **OPTIONS))
    ds = ShardDataset(shards / fmt, **OPTIONS)
    for loc_id, data in everything.items():
        np.testing.assert_array_equal(ds.get(loc_id)["data"], data)
    with pytest.raises(KeyError, match="nowhere"):
        ds.get("nowhere")
    indexed = IndexedShardDataset(shards / fmt, **OPTIONS)
    assert sorted(indexed.ids) == sorted(everything) and len(indexed) == len(everything)
    for i in range(len(indexed)):
        np.testing.assert_array_equal(indexed[i]["data"], everything[indexed.ids[i]])
    with pytest.raises(IndexError):
        indexed[len(indexed)]


def test_unknown_ids_and_shards_without_a_manifest_are_usage_errors(shards, tmp_path):
    with pytest.raises(UsageError, match="1 of 2 ids are not in the shards read: 'nowhere'"):
        ShardDataset(shards / "webdataset", ids=["0080717", "nowhere"], **OPTIONS)
    lone = tmp_path / "lone"
    lone.mkdir()
    for tar in (shards / "webdataset").glob("*.tar"):
        (lone / tar.name).write_bytes(tar.read_bytes())
    with pytest.raises(UsageError, match=r"needs the manifest\.json"):
        ShardDataset(sorted(str(p) for p in lone.glob("*.tar")), ids=["0080717"], **OPTIONS)
    with pytest.raises(UsageError, match="cannot read"):
        ShardDataset(shards / "webdataset", ids=tmp_path / "missing.txt", **OPTIONS)
    with pytest.raises(UsageError, match="have no cubes"):
        CubeDataset(ORIGINAL / "v11", ids=["nowhere"])


def test_ids_read_only_the_byte_ranges_needed(sample_v11, tmp_path):
    """Over HTTP with range requests: the records of the ids, and not one byte more of the shards."""
    folder = tmp_path / "served"
    convert(sample_v11, folder / "ds", to="webdataset", jobs=1, max_records=4)
    with serve(folder) as (base, handler):
        manifest = json.loads((folder / "ds" / "manifest.json").read_text())
        index = manifest["index"]
        wanted = sorted(index)[2:5]
        ds = ShardDataset(f"{base}/ds/", ids=wanted, modalities=["s2rgb"], return_id=True)
        before = handler.sent
        assert sorted(s["id"] for s in ds) == wanted
        assert handler.sent - before == sum(index[i][3] for i in wanted)
        before = handler.sent
        ds.get(wanted[0])
        assert handler.sent - before == index[wanted[0]][3]
        total = sum(s["bytes"] for s in manifest["shards"])
        assert sum(index[i][3] for i in wanted) < total * len(wanted) / len(index) * 1.5


@pytest.mark.parametrize("source", ["cubes", "shards"])
def test_embed_ids_and_labels(shards, tmp_path, source):
    root = ORIGINAL / "downstream"
    src = root if source == "cubes" else tmp_path / "shards"
    if source == "shards":
        convert(root, src, to="webdataset", jobs=1, max_records=2)
    known = sorted(CubeDataset(root).ids)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{known[0]}\n{known[2]}\n")
    out = tmp_path / "emb.csv"
    result = CliRunner().invoke(main, ["embed", str(src), "--encoder", "mean", "--out", str(out), "--ids", str(ids),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(line.split(",")[0] for line in out.read_text().splitlines()[1:]) == [known[0], known[2]]
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "height__regr.csv").write_text(f"id,label\n{known[1]},1.5\n{known[2]},\n")
    (labels / "kind__cls.csv").write_text(f"id,label\n{known[0]},1\n{known[1]},0\n")
    out = tmp_path / "emb2.csv"
    result = CliRunner().invoke(main, ["embed", str(src), "--encoder", "mean", "--out", str(out), "--labels",
                                       str(labels)])
    assert result.exit_code == 0, result.output
    assert sorted(line.split(",")[0] for line in out.read_text().splitlines()[1:]) == [known[0], known[1]]
    both = CliRunner().invoke(main, ["embed", str(src), "--encoder", "mean", "--out", str(tmp_path / "x.csv"),
                                     "--labels", str(labels), "--ids", str(ids)])
    assert both.exit_code == 2 and "give one of them" in both.output
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("nowhere\n")
    bad = CliRunner().invoke(main, ["embed", str(src), "--encoder", "mean", "--out", str(tmp_path / "y.csv"),
                                    "--ids", str(unknown)])
    assert bad.exit_code == 2 and "nowhere" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("place", [(-5, None), (None, 10**12), (None, 0), (10**15, None)])
def test_a_tampered_index_range_is_a_shard_error_not_a_seek_or_allocation(shards, tmp_path, place):
    """An index entry placing a record outside its shard (a terabyte, a negative offset) is refused before any
    read: it was a MemoryError or 'Invalid argument' from deep inside, and `get` called it an unknown id."""
    import shutil

    folder = tmp_path / "tampered"
    shutil.copytree(shards / "webdataset", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    loc_id = sorted(manifest["index"])[0]
    entry = manifest["index"][loc_id]
    entry[2] = entry[2] if place[0] is None else place[0]
    entry[3] = entry[3] if place[1] is None else place[1]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"shard-\d+\.tar: the manifest's index places .* outside the shard"):
        ShardDataset(folder, **OPTIONS).get(loc_id)
    with pytest.raises(ShardError, match="outside the shard"):
        ShardDataset(folder, ids=[loc_id], **OPTIONS)


def test_a_single_id_given_as_a_string_says_to_use_a_list(shards):
    loc_id = sorted(json.loads((shards / "webdataset" / "manifest.json").read_text())["index"])[0]
    with pytest.raises(UsageError, match=r"No such file.*one id goes in a list: ids=\['"):
        ShardDataset(shards / "webdataset", ids=loc_id, **OPTIONS)


def test_an_empty_or_oversized_id_list_is_refused_naming_it(tmp_path):
    """`ids=[]` or an id file with no id would read nothing without a word; a huge file is refused unread."""
    from neuco_io.errors import UsageError
    from neuco_io.loader.select import MAX_ID_FILE_BYTES, read_id_list

    with pytest.raises(UsageError, match="no id given"):
        read_id_list([])
    empty = tmp_path / "ids.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(UsageError, match=r"no id given in .*ids\.txt"):
        read_id_list(empty)
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as fh:
        fh.truncate(MAX_ID_FILE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(UsageError, match=r"huge\.txt is over"):
        read_id_list(huge)
