"""`stats` and `info`: exact mergeable histograms, parallel runs, shards, the published-statistics comparison."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io import spec
from neuco_io.cli import main
from neuco_io.cube.reader import Cube
from neuco_io.cube.writer import CubeWriter
from neuco_io.sketch import ValueHistogram, add_bands, summarize
from neuco_io.stats import dataset_stats
from neuco_io.statscompare import compare


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _numpy_summary(values: np.ndarray) -> list[float]:
    v = values.astype(np.float64).ravel()
    v = v[np.isfinite(v)]
    return [v.size, v.mean(), v.std(), v.min(), v.max(), *np.percentile(v, [1, 50, 99])]


def _sketch_summary(hist: ValueHistogram) -> list[float]:
    s = summarize(hist)
    return [s["count"], s["mean"], s["std"], s["min"], s["max"], s["p1"], s["p50"], s["p99"]]


@pytest.mark.parametrize("dtype", ["int16", "uint16", "float16", "uint8", "float32"])
def test_histogram_matches_numpy_and_merges_in_any_order(dtype):
    rng = np.random.default_rng(7)
    values = rng.normal(50, 400, size=(6, 3, 40, 40))
    if dtype.startswith("u"):
        values = np.abs(values) % (255 if dtype == "uint8" else 65535)
    values = values.astype(dtype)
    if dtype.startswith("float"):
        values[0, 0, :3, :3] = np.nan
    parts = []
    for chunk in values:  # one part per "worker"
        hists = [ValueHistogram.for_values(dtype) for _ in range(3)]
        add_bands(hists, chunk)
        parts.append(hists)
    forward, backward = ([ValueHistogram.for_values(dtype) for _ in range(3)] for _ in range(2))
    for hists in parts:
        for total, h in zip(forward, hists):
            total.merge(h)
    for hists in reversed(parts):
        for total, h in zip(backward, hists):
            total.merge(h.compact())
    for band in range(3):
        assert forward[band] == backward[band]
        assert summarize(forward[band]) == summarize(backward[band])
        # the sketch's stated error is zero for 8/16-bit values: equal to numpy up to float rounding
        exact = values[:, band] if dtype != "float32" else values[:, band].astype(np.float16)
        np.testing.assert_allclose(_sketch_summary(forward[band]), _numpy_summary(exact), rtol=1e-12, atol=0)
    nan = summarize(forward[0])["nan"]
    assert nan == (9 if dtype.startswith("float") else 0)


def _numpy_band_values(root: Path, modality: str) -> np.ndarray:
    """Every value of every cube of a modality, (band, n) with numpy alone: the full-data truth."""
    arrays = []
    for path in sorted(root.glob(f"data/{modality}/part-*/*.zarr.zip")):
        with Cube(path) as cube:
            arrays.append(cube.read("bands")[0])                      # (time, band, y, x)
    data = np.stack(arrays)                                           # (loc, time, band, y, x)
    return data.transpose(2, 0, 1, 3, 4).reshape(data.shape[2], -1)


def test_stats_equal_numpy_on_full_data(sample_downstream):
    result = dataset_stats(sample_downstream, jobs=1).to_dict()
    for modality in ("s1", "s2l2a"):
        values = _numpy_band_values(sample_downstream, modality)
        entry = result["modalities"][modality]
        assert entry["bands"] == list(spec.MODALITIES[modality].bands)
        assert entry["locations"] == 5
        for band, truth in enumerate(values):
            got = [entry[k][band] for k in ("count", "mean", "std", "min", "max", "p1", "p50", "p99")]
            np.testing.assert_allclose(got, _numpy_summary(truth), rtol=1e-9)
            assert entry["zero_fraction"][band] == np.count_nonzero(truth == 0) / truth.size
        assert set(entry["seasons"]) == set(spec.SEASONS)


def test_stats_merge_exactly_across_jobs_and_scheduler(sample_downstream):
    pytest.importorskip("distributed")
    serial = dataset_stats(sample_downstream, jobs=1).to_dict()
    assert dataset_stats(sample_downstream, jobs=2).to_dict() == serial
    assert dataset_stats(sample_downstream, scheduler="local:2").to_dict() == serial


def test_stats_of_shards_equal_stats_of_cubes(sample_downstream, tmp_path):
    from neuco_io.converters import convert

    cubes = dataset_stats(sample_downstream, jobs=1).to_dict()["modalities"]
    for to in ("webdataset", "parquet"):
        out = tmp_path / to
        convert(sample_downstream, out, to=to, max_records=2, jobs=1)
        shards = dataset_stats(out, jobs=2).to_dict()
        assert shards["input"] == "shards" and shards["s2_offset"] is False
        assert shards["modalities"] == cubes


def test_sample_is_seeded(sample_downstream):
    a = dataset_stats(sample_downstream, sample=2, seed=5, jobs=1).to_dict()
    b = dataset_stats(sample_downstream, sample=2, seed=5, jobs=1).to_dict()
    assert a == b
    assert a["sample"] == {"locations": 2, "seed": 5}
    assert a["modalities"]["s1"]["locations"] == 2
    others = [dataset_stats(sample_downstream, sample=2, seed=s, jobs=1).to_dict()["modalities"] for s in range(4)]
    assert any(o != a["modalities"] for o in others)


def test_v11_stats_and_sample(sample_v11):
    full = dataset_stats(sample_v11, jobs=1)
    assert full.s2_offset is True and full.layout == "v1.1"
    assert full.partial.locations["s2l1c"] == 7
    assert "s2rgb" in full.to_dict()["modalities"]
    part = dataset_stats(sample_v11, sample=4, seed=1, jobs=1)
    assert part.partial.locations["s2l1c"] == 4


# -- comparison with the published statistics ------------------------------------------------------------
def _rewrite_s2(root: Path, edit) -> None:
    """Rewrite every S2 cube's `bands` through `edit(modality, (time, band, y, x)) -> array`."""
    for modality in ("s2l1c", "s2l2a"):
        for path in sorted(root.rglob(f"*{spec.CUBE_SUFFIX}")):
            if f"/{modality}/" not in str(path) and f"/{spec.MODALITIES[modality].v11_folder}/" not in str(path):
                continue
            with Cube(path) as cube:
                data, ids = cube.read("bands"), cube.sample_ids
            with CubeWriter(path, modality, ids, overwrite=True, fsync=False) as writer:
                for s in range(len(ids)):
                    writer.write_sample(s, edit(modality, data[s]))


def _codes(root: Path, reference: str = "ssl4eo-s12") -> set[tuple[str, str]]:
    comparison = compare(dataset_stats(root, jobs=1), reference)
    return {(f.code, f.modality) for f in comparison.errors}


@pytest.mark.parametrize("reference", ["ssl4eo-s12", "ssl4eo-s12-downstream"])
def test_compare_passes_the_sample_datasets(sample_downstream, sample_v11, reference):
    assert _codes(sample_downstream, reference) == set()
    assert _codes(sample_v11, reference) == set()


def test_compare_flags_s2_written_against_the_offset_convention(sample_downstream, sample_v11, tmp_path):
    with_offset = Path(shutil.copytree(sample_downstream, tmp_path / "downstream"))
    _rewrite_s2(with_offset, lambda m, a: a + spec.S2_OFFSET)
    assert _codes(with_offset) == {("stats.offset", "s2l1c"), ("stats.offset", "s2l2a")}
    without = Path(shutil.copytree(sample_v11, tmp_path / "v11"))
    _rewrite_s2(without, lambda m, a: a - spec.S2_OFFSET)
    assert _codes(without) == {("stats.offset", "s2l1c"), ("stats.offset", "s2l2a")}


def test_compare_flags_swapped_bands(sample_downstream, tmp_path):
    root = Path(shutil.copytree(sample_downstream, tmp_path / "swapped"))
    b02, b08 = spec.MODALITIES["s2l2a"].bands.index("B02"), spec.MODALITIES["s2l2a"].bands.index("B08")

    def swap(modality, array):
        if modality == "s2l2a":
            array = array.copy()
            array[:, [b02, b08]] = array[:, [b08, b02]]
        return array

    _rewrite_s2(root, swap)
    comparison = compare(dataset_stats(root, jobs=1), "ssl4eo-s12")
    flags = [f for f in comparison.errors]
    assert [(f.code, f.modality, f.bands) for f in flags] == [("stats.band-order", "s2l2a", ("B02", "B08"))]


def test_compare_flags_exchanged_s1_polarisations(sample_downstream, tmp_path):
    root = Path(shutil.copytree(sample_downstream, tmp_path / "s1"))
    for path in sorted(root.glob("data/s1/part-*/*.zarr.zip")):
        with Cube(path) as cube:
            data, ids = cube.read("bands"), cube.sample_ids
        with CubeWriter(path, "s1", ids, overwrite=True, fsync=False) as writer:
            writer.write_sample(0, data[0][:, ::-1])                  # VH stored as vv, VV as vh
    for reference in ("ssl4eo-s12", "ssl4eo-s12-downstream"):
        flags = compare(dataset_stats(root, jobs=1), reference).errors
        assert [(f.code, f.modality, f.bands) for f in flags] == [("stats.band-order", "s1", ("vv", "vh"))]


def test_compare_unknown_reference_is_a_usage_error(sample_downstream):
    result = invoke("stats", sample_downstream, "--compare", "nope")
    assert result.exit_code == 2


# -- the command line -------------------------------------------------------------------------------------
def test_stats_cli_json_out_and_exit_codes(sample_downstream, tmp_path):
    out = tmp_path / "stats.json"
    result = invoke("stats", sample_downstream, "--compare", "ssl4eo-s12", "--out", out, "--format", "json",
                    "--jobs", "1", "--sample", "3")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert json.loads(out.read_text()) == printed
    assert printed["format"] == "neuco-io.stats" and printed["format_version"] == 1
    assert printed["comparison"]["reference"] == "ssl4eo-s12"
    s2 = printed["modalities"]["s2l2a"]
    assert len(s2["mean"]) == len(s2["std"]) == len(s2["bands"]) == 12
    assert list(out.parent.iterdir()) == [out]  # nothing half-written left beside it
    text = invoke("stats", sample_downstream, "--jobs", "1", "--seasons")
    assert text.exit_code == 0 and "B8A" in text.output and "winter" in text.output


def test_stats_cli_flags_exit_1_and_bad_input(sample_downstream, tmp_path):
    root = Path(shutil.copytree(sample_downstream, tmp_path / "offset"))
    _rewrite_s2(root, lambda m, a: a + spec.S2_OFFSET)
    result = invoke("stats", root, "--compare", "ssl4eo-s12", "--jobs", "1")
    assert result.exit_code == 1
    assert "stats.offset" in result.output
    assert invoke("stats", tmp_path / "missing").exit_code == 2
    broken = next(root.glob("data/s1/part-*/*.zarr.zip"))
    broken.write_bytes(b"not a zip")
    result = invoke("stats", root, "--jobs", "1")
    assert result.exit_code == 1 and broken.name in result.output and "Traceback" not in result.output


# -- info -------------------------------------------------------------------------------------------------
def test_info_of_dataset_cube_and_shards(sample_downstream, tmp_path):
    from neuco_io.converters import convert

    result = invoke("info", sample_downstream, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kind"] == "dataset" and data["layout"] == "downstream" and data["locations"] == 5
    assert data["cube_format"]["s2l1c"]["bands"] == list(spec.MODALITIES["s2l1c"].bands)
    assert data["cube_format"]["s1"]["dtype"] == "float16"
    assert {t["task"] for t in data["tasks"]} == {"forest_cover", "water_presence", "summer_ndvi"}
    cube = next(sample_downstream.glob("data/s2l2a/part-*/*.zarr.zip"))
    one = json.loads(invoke("info", cube, "--format", "json").output)
    assert one["kind"] == "cube" and one["modality"] == "s2l2a" and one["seasons"] == list(spec.SEASONS)
    assert one["arrays"]["bands"]["chunks"] == [1, 1, 12, 264, 264]
    assert one["arrays"]["bands"]["compressor"]["cname"] == "lz4"
    out = tmp_path / "shards"
    convert(sample_downstream, out, to="webdataset", max_records=2, jobs=1)
    shards = json.loads(invoke("info", out, "--format", "json").output)
    assert shards["kind"] == "shards" and shards["shards"] == 3 and shards["records"] == 5
    assert shards["sha256"] is True and shards["format_version"] is not None
    for path in (sample_downstream, cube, out):
        text = invoke("info", path)
        assert text.exit_code == 0 and str(path) in text.output


def test_info_refuses_what_it_does_not_know(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert invoke("info", tmp_path / "notes.txt").exit_code == 2
    assert invoke("info", tmp_path / "nothing").exit_code == 2
    (tmp_path / "bad.zarr.zip").write_bytes(b"junk")
    result = invoke("info", tmp_path / "bad.zarr.zip")
    assert result.exit_code == 1 and "bad.zarr.zip" in result.output


def test_stride_counts_every_nth_row(sample_downstream):
    result = dataset_stats(sample_downstream, jobs=1, stride=3).to_dict()
    assert result["stride"] == 3
    values = _numpy_band_values(sample_downstream, "s2l1c").reshape(13, -1, spec.SIZE, spec.SIZE)[:, :, ::3, :]
    entry = result["modalities"]["s2l1c"]
    for band in (0, 10):
        got = [entry[k][band] for k in ("count", "mean", "std", "min", "max", "p1", "p50", "p99")]
        np.testing.assert_allclose(got, _numpy_summary(values[band]), rtol=1e-9)


def test_info_of_v11_root_and_shards_without_manifest(sample_v11, tmp_path):
    from neuco_io.converters import convert
    from neuco_io.info import info

    data = info(sample_v11)
    assert data["layout"] == "v1.1" and data["files"] == 3 and data["splits"] == ["train", "val"]
    assert "s2rgb" in data["cube_format"] and data["cube_format"]["s2l1c"]["shape"][0] == 3
    out = tmp_path / "shards"
    convert(sample_v11, out, to="parquet", max_records=4, jobs=1)
    (out / "manifest.json").unlink()
    bare = info(str(out / "shard-{000000..000001}.parquet"))
    assert bare["kind"] == "shards" and bare["manifest"] is False and bare["records"] == 7 and bare["bytes"] > 0
