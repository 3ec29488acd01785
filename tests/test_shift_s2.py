"""`shift_s2="auto"`: S2 comes out in the SSL4EO-S12 v1.1 convention whatever the layout; an explicit double
shift warns (loader and `embed --shift-s2 on`)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io import spec
from neuco_io.cli import main
from neuco_io.converters import convert
from neuco_io.cube.reader import Cube
from neuco_io.errors import UsageError
from neuco_io.loader import CubeDataset, DoubleShiftWarning, ShardDataset

from helpers import ORIGINAL

DOWNSTREAM = ORIGINAL / "downstream"
V11 = ORIGINAL / "v11"


def _raw_s2(root, loc_index: int = 0) -> np.ndarray:
    """The first location's S2L2A bands as stored (float32), straight from the cube."""
    path = sorted((root / "data" / "s2l2a").glob("*/*.zarr.zip"))[loc_index] if (root / "data").is_dir() else \
        sorted(root.glob("train/S2L2A/*.zarr.zip"))[0]
    with Cube(path) as cube:
        return cube.read("bands")[0].astype(np.float32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    base = tmp_path_factory.mktemp("shift")
    out = {}
    for name, root in (("downstream", DOWNSTREAM), ("v11", V11)):
        convert(root, base / name, to="webdataset", jobs=1)
        out[name] = base / name
    return out


def test_auto_shifts_downstream_and_leaves_v11(shards):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoubleShiftWarning)
        down = CubeDataset(DOWNSTREAM, modalities=["s2l2a"], return_id=True)
        assert down.options.shift_s2 == "auto"
        first = down[0]
        expected = _raw_s2(DOWNSTREAM) + spec.S2_OFFSET
        np.testing.assert_array_equal(first["data"], expected)
        streamed = next(iter(ShardDataset(shards["downstream"], modalities=["s2l2a"], return_id=True)))
        assert streamed["id"] == first["id"]
        np.testing.assert_array_equal(streamed["data"], expected)

        v11 = CubeDataset(V11, modalities=["s2l2a", "s1"])
        raw = _raw_s2(V11)
        np.testing.assert_array_equal(v11[0][:, :12], raw)  # v1.1 already has the offset: untouched
        np.testing.assert_array_equal(next(iter(ShardDataset(shards["v11"], modalities=["s2l2a", "s1"])))[:, :12],
                                      raw)
    # both layouts land in the same range: the sample data's S2 values sit above the offset
    assert float(np.median(v11[0][:, :12])) > spec.S2_OFFSET and float(np.median(first["data"])) > spec.S2_OFFSET


def test_true_and_false_stay_available(shards):
    raw = _raw_s2(DOWNSTREAM)
    np.testing.assert_array_equal(CubeDataset(DOWNSTREAM, modalities=["s2l2a"], shift_s2=False)[0], raw)
    np.testing.assert_array_equal(CubeDataset(DOWNSTREAM, modalities=["s2l2a"], shift_s2=True)[0],
                                  raw + spec.S2_OFFSET)
    native = CubeDataset(DOWNSTREAM, modalities=["s2l2a"], dtype="native")[0]  # auto widens like True
    assert native.dtype == np.int32
    np.testing.assert_array_equal(native, raw.astype(np.int32) + spec.S2_OFFSET)
    assert CubeDataset(V11, modalities=["s2l2a"], dtype="native")[0].dtype == np.int16
    for bad in ("yes", 1, None):
        with pytest.raises(UsageError, match="shift_s2"):
            CubeDataset(DOWNSTREAM, shift_s2=bad)


def test_explicit_double_shift_warns(shards):
    raw = _raw_s2(V11)
    with pytest.warns(DoubleShiftWarning, match=r"already include the \+1000 offset"):
        ds = CubeDataset(V11, modalities=["s2l2a"], shift_s2=True)
    np.testing.assert_array_equal(ds[0], raw + spec.S2_OFFSET)  # what was asked for, after the warning
    with pytest.warns(DoubleShiftWarning):
        ShardDataset(shards["v11"], modalities=["s2l2a"], shift_s2=True)
    paths = sorted(str(p) for p in shards["v11"].glob("*.tar"))  # no manifest: warned on the first record
    with pytest.warns(DoubleShiftWarning):
        next(iter(ShardDataset(paths, modalities=["s2l2a"], shift_s2=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoubleShiftWarning)
        CubeDataset(DOWNSTREAM, shift_s2=True)  # downstream: no offset yet, nothing to warn about
        CubeDataset(V11, shift_s2=False)


def test_embed_shift_s2_option(tmp_path):
    runner = CliRunner()

    def run(root, *options):
        out = tmp_path / f"e{len(list(tmp_path.iterdir()))}.csv"
        result = runner.invoke(main, ["embed", str(root), "--encoder", "mean", "--modalities", "s2l2a",
                                      "--seasons", "1", "--out", str(out), *options])
        assert result.exit_code == 0, result.output
        return result, np.loadtxt(out, delimiter=",", skiprows=1, usecols=1, max_rows=1)

    _, auto = run(DOWNSTREAM)
    _, on = run(DOWNSTREAM, "--shift-s2", "on")
    _, off = run(DOWNSTREAM, "--shift-s2", "off")
    assert auto == on == pytest.approx(off + spec.S2_OFFSET, abs=0.01)  # column 0: B01's spatial mean
    result, v11_auto = run(V11)
    assert "warning" not in result.output
    result, twice = run(V11, "--shift-s2", "on", "--format", "json")
    assert twice == pytest.approx(v11_auto + spec.S2_OFFSET, abs=0.01)
    info = json.loads(result.stdout)
    assert len(info["warnings"]) == 1 and "--shift-s2 on adds it a second time" in info["warnings"][0]
    result, _ = run(V11, "--shift-s2")  # the bare flag still means on
    assert "warning: " in result.stderr and "a second time" in result.stderr
    bad = runner.invoke(main, ["embed", str(V11), "--encoder", "mean", "--out", str(tmp_path / "x.csv"),
                               "--shift-s2", "twice"])
    assert bad.exit_code == 2
