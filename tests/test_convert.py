"""convert + verify: round trips, determinism, resume, invalid input, and third-party readers."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import convert, verify
from neuco_io.cube.reader import Cube
from neuco_io.errors import UsageError
from neuco_io.shards.codecs import decode_member, encode_key, webdataset_decoder
from neuco_io.shards.manifest import Manifest
from neuco_io.shards.parquet import iter_parquet_records
from neuco_io.shards.tar import decode_record, iter_tar_records
from neuco_io.tasks.labels import read_task_labels

from helpers import ORIGINAL, TINY_IDS, cube_path, write_location

SOURCES = {"downstream": ORIGINAL / "downstream", "v11": ORIGINAL / "v11"}


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def ordered_ids(manifest: dict) -> list[str]:
    """Ids in record order (the index is a JSON object with sorted keys)."""
    return sorted(manifest["index"], key=lambda i: manifest["index"][i][:2])


def records_of(out: Path):
    manifest = Manifest.load(out)
    for shard in manifest["shards"]:
        path = out / shard["name"]
        if manifest["output_format"] == "webdataset":
            with open(path, "rb") as fh:
                for raw in iter_tar_records(fh, shard["name"]):
                    yield raw.meta, decode_record(raw)
        else:
            yield from iter_parquet_records(path, shard["name"])


def source_arrays(root: Path, meta: dict) -> dict[str, np.ndarray]:
    out = {}
    for modality in meta["modalities"]:
        with Cube(root / meta["source"][modality]) as cube:
            out[modality] = cube.read("bands", (meta["sample_index"],))
    for name, info in meta.get("arrays", {}).items():
        with Cube(root / meta["source"][info["source"]]) as cube:
            out[name] = cube.read(info["variable"], (meta["sample_index"],))
    return out


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
@pytest.mark.parametrize("codec", ["blosc", "none"])
@pytest.mark.parametrize("layout", ["downstream", "v11"])
def test_round_trip_is_bit_exact(tmp_path, layout, fmt, codec):
    root = SOURCES[layout]
    result = convert(root, tmp_path / "out", to=fmt, codec=codec, jobs=1, max_records=2)
    n_expected = 3 if layout == "downstream" else 5
    assert result.records == n_expected and not result.skipped
    assert result.shards == -(-n_expected // 2)
    seen = []
    for meta, arrays in records_of(tmp_path / "out"):
        seen.append(meta["id"])
        expected = source_arrays(root, meta)
        assert arrays.keys() == expected.keys()
        for name, array in arrays.items():
            assert array.dtype == expected[name].dtype and array.shape == expected[name].shape
            assert array.tobytes() == expected[name].tobytes(), name
        assert meta["seasons"] == ["spring", "summer", "fall", "winter"]
        assert meta["s2_offset"] is (layout == "v11")
    manifest = Manifest.load(tmp_path / "out")
    assert seen == ordered_ids(manifest)
    if layout == "downstream":
        assert seen == sorted(seen)
        assert meta["labels"].keys() <= {"fixture_height", "fixture_subset", "fixture_water"}
    else:
        assert seen[:3] == ["0080717", "0060573", "0001234"]  # v1.1: file order, leading zeros kept
        assert "cloud_mask" in meta["arrays"] and meta["metadata"]["s2l2a"]["time_"][0].startswith("20")
    report = verify(root, tmp_path / "out", jobs=1)
    assert report.ok, report.to_dict()


def test_labels_in_records_and_labels_parquet(tmp_path):
    root = SOURCES["downstream"]
    convert(root, tmp_path / "out", to="webdataset", jobs=1)
    expected = {t: read_task_labels(p) for t, p in (
        ("fixture_height", root / "labels/fixture_height__regr.csv"),
        ("fixture_subset", root / "labels/fixture_subset__regr.csv"),
        ("fixture_water", root / "labels/fixture_water__cls.csv"))}
    for meta, _ in records_of(tmp_path / "out"):
        want = {t: v[meta["id"]] for t, v in expected.items() if meta["id"] in v}
        assert meta.get("labels", {}) == want  # an empty label is absent, not NaN
    table = pq.read_table(tmp_path / "out" / "labels.parquet").to_pydict()
    for task, values in expected.items():
        assert {i: v for i, v in zip(table["id"], table[task]) if v is not None} == values
    assert Manifest.load(tmp_path / "out")["tasks"]["fixture_water"]["kind"] == "classification"


def test_shards_respect_size_and_count_limits(sample_downstream, tmp_path):
    result = convert(sample_downstream, tmp_path / "a", to="webdataset", jobs=1, shard_size=25_000_000)
    manifest = Manifest.load(tmp_path / "a")
    assert result.shards == len(manifest["shards"]) > 1
    assert all(s["bytes"] <= 25_000_000 or s["records"] == 1 for s in manifest["shards"])
    source_bytes = sum(p.stat().st_size for p in sample_downstream.glob("data/*/*/*.zarr.zip"))
    assert result.bytes <= 1.15 * source_bytes  # the default codec keeps shards near the source size
    result = convert(sample_downstream, tmp_path / "b", to="webdataset", jobs=1, max_records=2)
    assert [s["records"] for s in Manifest.load(tmp_path / "b")["shards"]] == [2, 2, 1]


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_deterministic_output(sample_v11, tmp_path, fmt):
    convert(sample_v11, tmp_path / "a", to=fmt, jobs=1, max_records=3)
    convert(sample_v11, tmp_path / "b", to=fmt, jobs=2, max_records=3)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    with tarfile.open(next((tmp_path / "a").glob("*.tar"))) if fmt == "webdataset" else io.BytesIO() as tar:
        if fmt == "webdataset":
            assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in tar.getmembers()} == {(0, 0, 0, "", 0o644)}


def test_stock_webdataset_reads_blosc_shards_with_one_call(tmp_path):
    import webdataset as wds

    convert(SOURCES["v11"], tmp_path / "out", to="webdataset", jobs=1)
    urls = sorted(str(p) for p in (tmp_path / "out").glob("shard-*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode(webdataset_decoder))
    assert [s["json"]["id"] for s in samples] == ordered_ids(Manifest.load(tmp_path / "out"))
    assert samples[0]["s2l2a.blosc"].shape == (4, 12, 264, 264)
    assert samples[0]["cloud_mask.blosc"].dtype == np.uint8


def test_codec_none_needs_no_neuco_io_code(tmp_path):
    import webdataset as wds

    convert(SOURCES["downstream"], tmp_path / "out", to="webdataset", codec="none", jobs=1)
    urls = sorted(str(p) for p in (tmp_path / "out").glob("shard-*.tar"))
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        assert sample["s2l1c.npy"].dtype == np.int16 and sample["s2l1c.npy"].shape == (4, 13, 264, 264)
        assert sample["json"]["id"] == sample["__key__"]


def test_hugging_face_datasets_reads_codec_none(tmp_path):
    datasets = pytest.importorskip("datasets")
    convert(SOURCES["downstream"], tmp_path / "out", to="webdataset", codec="none", jobs=1)
    files = sorted(glob.glob(str(tmp_path / "out" / "shard-*.tar")))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == 3
    row = ds.with_format("numpy")[0]
    assert row["s2l2a.npy"].shape == (4, 12, 264, 264)
    with Cube(SOURCES["downstream"] / row["json"]["source"]["s2l2a"]) as cube:
        np.testing.assert_array_equal(row["s2l2a.npy"], cube.read("bands", (0,)))


def test_parquet_row_groups_are_bounded(sample_downstream, tmp_path):
    convert(sample_downstream, tmp_path / "out", to="parquet", jobs=1, row_group_size=2)
    path = next((tmp_path / "out").glob("shard-*.parquet"))
    assert [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(3)] == [2, 2, 1]


def test_dotted_ids_group_into_one_record(tmp_path):
    import webdataset as wds

    root = tmp_path / "ds"
    ids = ["plot.1", "plot.2.b", "x%y"]
    for i, loc_id in enumerate(ids):
        write_location(root, loc_id, seed=i)
    convert(root, tmp_path / "out", to="webdataset", codec="none", jobs=1)
    samples = list(wds.WebDataset(str(next((tmp_path / "out").glob("*.tar"))), shardshuffle=False).decode())
    assert len(samples) == 3
    assert [s["json"]["id"] for s in samples] == sorted(ids)
    assert [s["__key__"] for s in samples] == [encode_key(i) for i in sorted(ids)]
    assert all({"s1.npy", "s2l1c.npy", "s2l2a.npy", "json"} <= s.keys() for s in samples)


def test_invalid_cube_stops_the_run(downstream, tmp_path):
    cube_path(downstream, "s2l1c", TINY_IDS[1]).write_bytes(b"not a zip")
    with pytest.raises(Exception, match=TINY_IDS[1]) as info:
        convert(downstream, tmp_path / "out", to="webdataset", jobs=1)
    assert "skip-invalid" in str(info.value)
    assert not (tmp_path / "out" / "manifest.json").exists()
    result = CliRunner().invoke(main, ["convert", str(downstream), str(tmp_path / "cli"), "--to", "webdataset"])
    assert result.exit_code == 1 and TINY_IDS[1] in result.output


def test_skip_invalid_records_every_skipped_cube(downstream, tmp_path):
    cube_path(downstream, "s2l1c", TINY_IDS[1]).write_bytes(b"")
    cube_path(downstream, "s1", TINY_IDS[2]).unlink()
    result = CliRunner().invoke(main, ["convert", str(downstream), str(tmp_path / "out"), "--to", "webdataset",
                                       "--skip-invalid", "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["records"] == 2
    manifest = Manifest.load(tmp_path / "out")
    assert sorted(s["id"] for s in manifest["skipped"]) == [TINY_IDS[1], TINY_IDS[2]]
    assert sorted(manifest["index"]) == [TINY_IDS[0], TINY_IDS[3]]
    assert verify(downstream, tmp_path / "out", jobs=1).ok


def test_corrupt_chunk_found_while_writing(downstream, tmp_path):
    from helpers import edit_cube

    path = cube_path(downstream, "s2l2a", TINY_IDS[0])
    edit_cube(path, lambda m: m.update({"bands/0.3.0.0.0": m["bands/0.3.0.0.0"][:100]}))
    with pytest.raises(Exception, match=r"damaged|does not decode"):
        convert(downstream, tmp_path / "a", to="webdataset", jobs=1)
    assert not list((tmp_path / "a").glob("shard-*.tar"))  # no half-written shard under a final name
    result = convert(downstream, tmp_path / "b", to="webdataset", jobs=1, skip_invalid=True)
    assert [s.id for s in result.skipped] == [TINY_IDS[0]] and result.records == 3


def test_out_protection(sample_downstream, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    convert(sample_downstream, out, to="webdataset", jobs=1)
    with pytest.raises(UsageError, match="finished conversion"):
        convert(sample_downstream, out, to="webdataset", jobs=1)
    convert(sample_downstream, out, to="webdataset", jobs=1, overwrite=True, max_records=2)
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite removes only what convert wrote
    assert len(list(out.glob("shard-*.tar"))) == 3
    with pytest.raises(UsageError, match="other data or options"):
        convert(sample_downstream, out, to="webdataset", jobs=1, resume=True)


def _wait_for(path_glob: Path, pattern: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(path_glob.glob(pattern)):
        if time.monotonic() > deadline:
            raise TimeoutError(pattern)
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_interrupted_run_resumes_to_identical_output(sample_downstream, tmp_path, sig):
    reference = tmp_path / "reference"
    convert(sample_downstream, reference, to="webdataset", jobs=1, max_records=1)
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("neuco-io")
    # The last shard waits for the signal (a test-only hook): the run cannot finish before it arrives.
    env = dict(os.environ, NEUCO_IO_TEST_HOLD_SHARD="shard-000004.tar")
    proc = subprocess.Popen([str(exe), "convert", str(sample_downstream), str(out), "--to", "webdataset",
                             "--max-records", "1", "--jobs", "2"], stdin=subprocess.DEVNULL, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(out / ".neuco-io" / "shards", "*.json")
    os.killpg(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    if sig != signal.SIGKILL:
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
        word = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}[sig]
        assert stderr.decode().strip().splitlines()[-1] == f"neuco-io: {word}; finished shards are kept; rerun " \
            "with --resume to finish the conversion"
        assert b"Traceback" not in stderr
    assert not (out / "manifest.json").exists()
    finished = sorted(out.glob("shard-*.tar"))
    assert 0 < len(finished) < 5
    for shard in finished:  # every shard under its final name is complete
        assert shard.read_bytes() == (reference / shard.name).read_bytes()
    with pytest.raises(UsageError, match="interrupted"):
        convert(sample_downstream, out, to="webdataset", jobs=1, max_records=1)
    result = convert(sample_downstream, out, to="webdataset", jobs=1, max_records=1, resume=True)
    assert result.written < result.shards == 5
    assert digests(out) == digests(reference)
    assert not list(out.glob(".*"))  # no partial files, no state folder left


def test_verify_finds_tampering(tmp_path):
    root = SOURCES["downstream"]
    out = tmp_path / "out"
    convert(root, out, to="webdataset", jobs=1, codec="none")
    shard = next(out.glob("shard-*.tar"))
    data = bytearray(shard.read_bytes())
    manifest = Manifest.load(out)
    first_id = manifest["shards"][0]["first_id"]
    # flip one byte inside the first record's s2l1c array data (after its npy header)
    with tarfile.open(shard) as tar:
        member = tar.getmember(f"{first_id}.s2l1c.npy")
    data[member.offset_data + 1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = verify(root, out, jobs=1)
    codes = {(m.code, m.id, m.member) for m in report.findings}
    assert ("verify.sha256", None, None) in codes
    assert ("verify.array-mismatch", first_id, "s2l1c") in codes
    result = CliRunner().invoke(main, ["verify", str(root), str(out), "--format", "json"])
    assert result.exit_code == 1 and json.loads(result.output)["ok"] is False


def test_verify_finds_missing_shard_and_label_change(tmp_path):
    root = Path(shutil.copytree(SOURCES["downstream"], tmp_path / "src"))
    out = tmp_path / "out"
    convert(root, out, to="parquet", jobs=1, max_records=2)
    (out / "shard-000001.parquet").unlink()
    labels = root / "labels" / "fixture_height__regr.csv"
    labels.write_text(labels.read_text().replace("12.5", "13.5"))
    report = verify(root, out, jobs=1)
    codes = {m.code for m in report.findings}
    assert {"verify.missing-shard", "verify.label-mismatch"} <= codes


def test_decoder_refuses_hostile_members():
    from neuco_io.errors import ShardError
    from neuco_io.shards.codecs import MAGIC, encode_blosc_array

    good = encode_blosc_array(np.zeros((2, 3, 4), np.int16))
    np.testing.assert_array_equal(decode_member("x.blosc", good), np.zeros((2, 3, 4), np.int16))
    hostile = [
        ("x.blosc", good[:-5]),                                       # truncated
        ("x.blosc", b"NOTMAGIC" + good[8:]),                          # wrong magic
        ("x.blosc", good.replace(b'"<i2"', b'"|O8"')),                # object dtype
        ("x.blosc", MAGIC + (60).to_bytes(4, "little") +
         b'{"dtype":"<f8","frames":[16],"shape":[1,99999,99999,99]}' + b"\0" * 16),  # huge allocation
        ("x.npy", b"\x93NUMPY\x01\x00" + b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(118)
         + b"\n" + b"\x80\x04N."),                                    # a pickled object
    ]
    for name, data in hostile:
        with pytest.raises(ShardError):
            decode_member(name, data)


def test_fix_an_invalid_cube_then_resume(downstream, tmp_path):
    """The run stops at the bad cube; after the fix, --resume redoes only what is owed."""
    from neuco_io.cube.writer import write_cube

    from helpers import tiny_bands

    bad = cube_path(downstream, "s2l2a", TINY_IDS[2])
    good = bad.read_bytes()
    bad.write_bytes(b"broken")
    out = tmp_path / "out"
    with pytest.raises(Exception, match=TINY_IDS[2]):
        convert(downstream, out, to="webdataset", jobs=1, max_records=1)
    assert sorted(p.name for p in out.glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    bad.write_bytes(good)
    # The source of a finished shard changed meanwhile: that shard is redone too.
    write_cube(cube_path(downstream, "s1", TINY_IDS[0]), "s1", tiny_bands("s1", 99), [TINY_IDS[0]],
               overwrite=True, fsync=False)
    result = convert(downstream, out, to="webdataset", jobs=1, max_records=1, resume=True)
    assert (result.written, result.shards, result.records) == (3, 4, 4)
    assert verify(downstream, out, jobs=1).ok


CF_TIMES = [
    ("days since 2020-03-15 10:00:00", "proleptic_gregorian", [[0, 91, 182, 273], [1, 92, 183, 274]]),
    ("hours since 2000-01-01", None, list(range(10))),
    ("seconds since 1970-01-01T00:00:00", "standard", [-2**31, 0, 2**31 - 1]),
    ("microseconds since 2001-02-03 04:05", "gregorian", [-2**40, 17, 2**40]),
    ("minutes since 1900-01-01 00:00:00", None, [0, 1, 65535]),
    ("days since 1582-01-01", "standard", [0, 1]),  # before the reform: xarray's path
    ("days since 2020-03-15 10:00:00+01:00", None, [0, 1]),  # a time zone: xarray's path
    ("days since 2000-01-01", None, [90_000]),  # 2246, near the end of datetime64[ns]: xarray's path
]


@pytest.mark.parametrize("units,calendar,values", CF_TIMES, ids=[c[0] for c in CF_TIMES])
def test_cf_times_decode_exactly_as_xarray_does(units, calendar, values):
    import xarray as xr

    from neuco_io.cube.times import decode_times

    raw = np.asarray(values, dtype=np.int64)
    attrs = {"units": units, **({"calendar": calendar} if calendar else {})}
    dims = tuple(f"d{i}" for i in range(raw.ndim))
    try:
        expected = xr.decode_cf(xr.Dataset({"t": (dims, raw, attrs)}))["t"].values
    except ValueError:  # needs cftime, which is not installed: the same refusal, from the same decoder
        with pytest.raises(ValueError):
            decode_times("t", raw, attrs)
        return
    decoded = decode_times("t", raw, attrs)
    assert decoded.dtype == expected.dtype
    np.testing.assert_array_equal(decoded, expected)
