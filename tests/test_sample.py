"""`neuco-io sample` writes data that follows the format, deterministically."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.reader import Cube
from neuco_io.errors import UsageError
from neuco_io.layout import discover
from neuco_io.sample import write_sample
from neuco_io.tasks.labels import parse_task_name, read_label_table
from neuco_io.validators import validate

from helpers import ORIGINAL


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("root", [ORIGINAL / "downstream", ORIGINAL / "v11"], ids=["downstream", "v1.1"])
@pytest.mark.parametrize("deep", [False, True], ids=["metadata", "deep"])
def test_original_fixtures_validate_clean(root, deep):
    report = validate(root, jobs=1, deep=deep)
    assert report.findings == []
    assert report.summary["offset_examined"] > 0


@pytest.mark.parametrize("name", ["sample_downstream", "sample_v11"])
def test_sample_validates_clean(request, name):
    root = request.getfixturevalue(name)
    report = validate(root, jobs=1, deep=True)
    assert report.findings == [], [f.to_dict() for f in report.findings]


def test_downstream_sample_follows_format(sample_downstream):
    ds = discover(sample_downstream)
    locations = ds.downstream_locations()
    assert len(locations) == 5
    for loc in locations:
        assert spec.PUBLIC_ID_RE.match(loc.id)
        for modality, cube_file in loc.files.items():
            mod = spec.MODALITIES[modality]
            with Cube(cube_file.path) as cube:
                assert cube.sample_ids == [loc.id]
                assert cube.band_names == list(mod.bands)
                assert cube.dtype("bands") == mod.dtype
                assert cube.chunks("bands") == (1, 1, mod.n_bands, 264, 264)
                data = cube.read("bands")
            if mod.s2:
                assert np.mean(data < spec.S2_OFFSET) > 0.05  # no +1000 offset in downstream data
            else:
                assert -40 < float(np.nanmean(data.astype(np.float32))) < 0  # dB
            # smooth: neighbouring pixels (S1: 8x8 blocks, under speckle) are more alike than random pairs
            img = data[0, 1, -1].astype(np.float32)
            if not mod.s2:
                img = img.reshape(33, 8, 33, 8).mean(axis=(1, 3))
            shuffled = np.random.default_rng(0).permutation(img.ravel()).reshape(img.shape)
            assert np.mean(np.abs(np.diff(img, axis=1))) < 0.6 * np.mean(np.abs(np.diff(shuffled, axis=1)))
            # seasons differ
            assert not np.array_equal(data[0, 0], data[0, 1])
    tasks = {}
    for path in ds.label_files:
        name = parse_task_name(path)
        table = read_label_table(path)
        tasks[name.kind] = tasks.get(name.kind, 0) + 1
        assert [r.id for r in table.rows] == sorted(loc.id for loc in locations)
        if name.kind == "classification":
            assert {r.raw for r in table.labelled} == {"0", "1"}
    assert tasks == {"regression": 2, "classification": 1}
    assert any(read_label_table(p).skipped for p in ds.label_files)


def test_v11_sample_follows_format(sample_v11):
    ds = discover(sample_v11)
    assert ds.layout == "v1.1"
    assert ds.modalities == ["s1", "s2l1c", "s2l2a", "s2rgb"]
    groups = ds.v11_files(["s1", "s2l1c", "s2l2a", "s2rgb"])
    assert len(groups) == 3  # train: 3 + 3 samples, val: 1
    with Cube(groups[0]["s2l2a"].path) as cube:
        assert len(cube.sample_ids) == 3
        assert all(len(s) == 7 and s.isdigit() for s in cube.sample_ids)
        assert {"center_lat", "center_lon", "crs", "time_", "cloud_mask", "x_", "y_"} <= set(cube.array_names)
        assert float(cube.read("bands").min()) >= spec.S2_OFFSET  # v1.1 includes the offset
    with Cube(groups[0]["s2rgb"].path) as cube:
        assert cube.dtype("bands") == np.uint8


def test_sample_is_deterministic(tmp_path):
    a = write_sample(tmp_path / "a", locations=3, seed=7).root
    b = write_sample(tmp_path / "b", locations=3, seed=7).root
    c = write_sample(tmp_path / "c", locations=3, seed=8).root
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_sample_refuses_non_empty_output(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        write_sample(tmp_path / "x", locations=2)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
