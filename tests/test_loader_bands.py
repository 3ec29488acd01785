"""Band selection by name and per-band normalization (issue 16), in both datasets and `embed --bands`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io import spec
from neuco_io.cli import main
from neuco_io.converters import convert
from neuco_io.errors import UsageError
from neuco_io.loader import CubeDataset, ShardDataset
from neuco_io.stats import dataset_stats

from helpers import ORIGINAL

DOWNSTREAM = ORIGINAL / "downstream"
V11 = ORIGINAL / "v11"
PICK = {"s2l2a": ["B04", "B03", "B02"], "s1": ["VV"]}
REF = spec.REFERENCE_STATISTICS["ssl4eo-s12"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    base = tmp_path_factory.mktemp("bands")
    out = {}
    for layout, root in (("downstream", DOWNSTREAM), ("v11", V11)):
        for fmt in ("webdataset", "parquet"):
            convert(root, base / f"{layout}-{fmt}", to=fmt, jobs=1, max_records=2)
            out[(layout, fmt)] = base / f"{layout}-{fmt}"
    return out


def by_id(ds) -> dict:
    return {s["id"]: s["data"] for s in ds}


@pytest.mark.parametrize("concat", [True, False])
def test_bands_pick_and_reorder_by_name(concat):
    full = CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], concat=False)
    picked = CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], concat=concat, bands=PICK)
    for i in range(len(full)):
        want = {"s2l2a": full[i]["s2l2a"][:, [3, 2, 1]], "s1": full[i]["s1"][:, [0]]}
        got = picked[i]
        if concat:
            np.testing.assert_array_equal(got, np.concatenate([want["s2l2a"], want["s1"]], axis=1))
        else:
            assert list(got) == ["s2l2a", "s1"]
            for m in want:
                np.testing.assert_array_equal(got[m], want[m])
    assert picked.options.band_names("s2l2a") == ["B04", "B03", "B02"]
    assert picked.options.band_names("s1") == ["vv"]


def test_bands_native_dtype_keeps_the_stored_values():
    full = CubeDataset(DOWNSTREAM, modalities=["s2l2a"], concat=False, dtype="native", shift_s2=False)
    picked = CubeDataset(DOWNSTREAM, modalities=["s2l2a"], concat=False, dtype="native", shift_s2=False,
                         bands={"s2l2a": ["B08"]})
    assert picked[0]["s2l2a"].dtype == full[0]["s2l2a"].dtype
    np.testing.assert_array_equal(picked[0]["s2l2a"], full[0]["s2l2a"][:, [7]])


@pytest.mark.parametrize("layout", ["downstream", "v11"])
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_shards_and_cubes_agree_on_bands_and_normalization(shards, layout, fmt):
    root = DOWNSTREAM if layout == "downstream" else V11
    mods = ["s2l2a", "s1"]
    options = {"modalities": mods, "bands": PICK, "normalize": "ssl4eo-s12", "return_id": True}
    cubes = {s["id"]: s["data"] for s in (CubeDataset(root, **options)[i]
                                          for i in range(len(CubeDataset(root, modalities=mods))))}
    assert by_id(ShardDataset(shards[(layout, fmt)], **options)).keys() == cubes.keys()
    for loc_id, data in by_id(ShardDataset(shards[(layout, fmt)], **options)).items():
        np.testing.assert_array_equal(data, cubes[loc_id])


def _reference_normalized(data: dict, s2_has_offset: bool) -> dict:
    """The published statistics applied by hand, in their own (v1.1, +1000) convention."""
    out = {}
    for m, x in data.items():
        means, stds = (np.asarray(v, np.float64) for v in REF.bands[m])
        x = x.astype(np.float64) + (spec.S2_OFFSET if spec.MODALITIES[m].s2 and not s2_has_offset else 0)
        out[m] = (x - means[None, :, None, None]) / stds[None, :, None, None]
    return out


@pytest.mark.parametrize("shift_s2", ["auto", True, False])
@pytest.mark.parametrize("root", [DOWNSTREAM, V11], ids=["downstream", "v11"])
def test_normalize_ssl4eo_s12_uses_the_v11_convention_whatever_the_layout_and_shift(root, shift_s2, recwarn):
    mods = ["s2l2a", "s1"]
    raw = CubeDataset(root, modalities=mods, concat=False, shift_s2=False)
    norm = CubeDataset(root, modalities=mods, concat=False, shift_s2=shift_s2, normalize="ssl4eo-s12")
    for i in (0, len(raw) - 1):
        want = _reference_normalized(raw[i], s2_has_offset=root == V11)
        for m in mods:
            np.testing.assert_allclose(norm[i][m], want[m], rtol=1e-5, atol=1e-4)


def test_published_statistics_follow_the_v11_offset_convention():
    """B10 (cirrus) is dark: about 0 DN without the offset, about 1000 with it. The published v1.1 S2L1C
    statistics sit at ~1022 and the downstream ones at ~20: the first include +1000, the second do not."""
    b10 = spec.MODALITIES["s2l1c"].bands.index("B10")
    assert REF.s2_offset and REF.bands["s2l1c"][0][b10] > spec.S2_OFFSET
    down = spec.REFERENCE_STATISTICS["ssl4eo-s12-downstream"]
    assert not down.s2_offset and down.bands["s2l1c"][0][b10] < 100
    for m in ("s2l1c", "s2l2a"):
        diff = np.subtract(REF.bands[m][0], down.bands[m][0])
        assert 500 < np.median(diff) < 1500  # the datasets differ, the offset dominates


def test_normalize_with_the_datasets_own_stats_json_centres_it(tmp_path):
    doc = dataset_stats(DOWNSTREAM, jobs=1).to_dict()
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(doc))
    # downstream statistics (no offset), loader in the v1.1 convention (+1000): still centred
    ds = CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], concat=False, normalize=str(path),
                     bands={"s2l2a": ["B12", "B01"]})
    stacked = {m: np.stack([ds[i][m] for i in range(len(ds))]).astype(np.float64) for m in ("s2l2a", "s1")}
    for x in stacked.values():
        per_band = x.transpose(2, 0, 1, 3, 4).reshape(x.shape[2], -1)
        finite = [b[np.isfinite(b)] for b in per_band]
        np.testing.assert_allclose([b.mean() for b in finite], 0, atol=1e-3)
        np.testing.assert_allclose([b.std() for b in finite], 1, atol=1e-3)


def test_normalize_custom_mapping_applies_to_the_delivered_values():
    n = spec.MODALITIES["s2l2a"].n_bands
    means, stds = np.arange(n) * 100.0, np.arange(1, n + 1) * 10.0
    plain = CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], concat=False)
    norm = CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], concat=False,
                       normalize={"s2l2a": (means, stds), "s1": None})
    want = (plain[0]["s2l2a"] - means[None, :, None, None]) / stds[None, :, None, None]
    np.testing.assert_allclose(norm[0]["s2l2a"], want, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(norm[0]["s1"], plain[0]["s1"])


@pytest.mark.parametrize("kwargs, words", [
    ({"bands": {"s2l2a": ["B4"]}}, ["s2l2a has no band 'B4'", "B01, B02", "B12"]),
    ({"bands": {"s2l2a": ["B04", "b04"]}}, ["twice"]),
    ({"bands": {"s2l1c": ["B04"]}}, ["not one of the modalities read"]),
    ({"bands": {"s2l2a": []}}, ["non-empty list"]),
    ({"normalize": "imagenet"}, ["ssl4eo-s12", "stats.json"]),
    ({"normalize": {"s2l2a": ([0] * 12, [1] * 12)}}, ["no statistics for s1"]),
    ({"normalize": {"s2l2a": ([0] * 3, [1] * 3), "s1": None}}, ["12 numbers"]),
    ({"normalize": {"s2l2a": ([0] * 12, [0] * 12), "s1": None}}, ["std must be > 0"]),
    ({"normalize": "ssl4eo-s12", "dtype": "native"}, ["dtype='float32'"]),
    ({"normalize": "missing/stats.json"}, ["cannot read missing/stats.json"]),
])
def test_bad_bands_and_normalize_are_usage_errors(kwargs, words):
    with pytest.raises(UsageError) as info:
        CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], **kwargs)
    for word in words:
        assert word in str(info.value)


def test_normalize_refuses_a_json_that_is_not_stats(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"format": "something"}')
    with pytest.raises(UsageError, match=r"not a stats\.json"):
        CubeDataset(DOWNSTREAM, normalize=path)


@pytest.mark.parametrize("text, words", [
    ("[" * 100_000 + "]" * 100_000, "is not JSON (RecursionError"),
    ('{"format": "neuco-io.stats", "s2_offset": "false", "modalities": {}}', "s2_offset must be true, false or null"),
    (" " * (16 * 2**20 + 1), "over 16 MiB"),
    ("\xff{}", "is not JSON (UnicodeDecodeError"),
])
def test_normalize_refuses_a_hostile_stats_json_naming_it(tmp_path, text, words):
    path = tmp_path / "hostile.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UsageError) as info:
        CubeDataset(DOWNSTREAM, normalize=path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_embed_bands(tmp_path):
    out = tmp_path / "emb.csv"
    result = CliRunner().invoke(main, ["embed", str(DOWNSTREAM), "--encoder", "mean", "--out", str(out),
                                       "--modalities", "s2l2a,s1", "--bands", "s2l2a=B04,B03,B02", "--bands",
                                       "s1=VV", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dim"] == 2 * 4 * (3 + 1)
    bad = CliRunner().invoke(main, ["embed", str(DOWNSTREAM), "--encoder", "mean", "--out", str(tmp_path / "b.csv"),
                                    "--bands", "s2l2a=B4"])
    assert bad.exit_code == 2 and "B01, B02" in bad.output and "Traceback" not in bad.output
    bad = CliRunner().invoke(main, ["embed", str(DOWNSTREAM), "--encoder", "mean", "--out", str(tmp_path / "b.csv"),
                                    "--bands", "s2l2a"])
    assert bad.exit_code == 2 and "MODALITY=BAND" in bad.output
