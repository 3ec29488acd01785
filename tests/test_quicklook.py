"""`quicklook` and dataset plotting: what the pictures show, determinism, cubes and shards alike."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io import spec
from neuco_io.cli import main
from neuco_io.quicklook import modality_tiles


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _image(path_or_bytes):
    from PIL import Image

    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_s2_true_colour_takes_b04_b03_b02_and_s1_uses_db_ranges():
    bands = spec.MODALITIES["s2l2a"].bands
    s2 = np.full((2, len(bands), 8, 8), 100, dtype=np.int16)
    s2[:, bands.index("B04")] = 3000                                   # red band bright
    s2[:, bands.index("B02"), :4] = 1500                               # some blue on top half
    tiles = modality_tiles("s2l2a", s2)
    assert tiles.shape == (2, 8, 8, 3) and tiles.dtype == np.uint8
    assert (tiles[..., 0] == 255).all()                                # B04 -> red, at the top of the stretch
    assert (tiles[:, :4, :, 2] > tiles[:, 4:, :, 2]).all()             # B02 -> blue
    s1 = np.stack([np.full((8, 8), -12.5), np.full((8, 8), -30.0)])[None].astype(np.float16)
    rgb = modality_tiles("s1", s1)[0, 0, 0]
    assert rgb[0] == 127 and rgb[1] == 0 and rgb[2] == 255             # VV -12.5 dB, VH floor, VV-VH >= 15


def test_quicklook_writes_a_png_per_location_and_contact_sheets(sample_downstream, tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "ql"
    result = invoke("quicklook", sample_downstream, "--out", out, "--per-page", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["locations"] == 5 and len(data["contact_sheets"]) == 3
    ids = sorted(p.name.split(".")[0] for p in (sample_downstream / "data" / "s1" / "part-000000").iterdir())
    assert sorted(p.rsplit("/", 1)[1][:-4] for p in data["images"]) == ids
    image = _image(out / f"{ids[0]}.png")
    # title row + season header + three modality rows of 264-pixel tiles, four season columns
    assert image.shape[0] > 3 * spec.SIZE and image.shape[1] > 4 * spec.SIZE
    tiles = image[60:, 90:]
    assert tiles.std() > 10 and len(np.unique(tiles.reshape(-1, 3), axis=0)) > 1000   # real pictures
    again = tmp_path / "again"
    assert invoke("quicklook", sample_downstream, "--out", again, "--per-page", "2").exit_code == 0
    for name in [f"{i}.png" for i in ids] + ["contact-sheet-0001.png"]:
        assert (out / name).read_bytes() == (again / name).read_bytes()   # deterministic


def test_quicklook_selection_and_shards_match_cubes(sample_downstream, tmp_path):
    pytest.importorskip("PIL")
    from neuco_io.converters import convert
    from neuco_io.gallery import write_quicklooks

    picked = write_quicklooks(sample_downstream, tmp_path / "a", sample=2, seed=4, tile=66)
    same = write_quicklooks(sample_downstream, tmp_path / "b", sample=2, seed=4, tile=66)
    assert picked.ids == same.ids and len(picked.ids) == 2
    shards = tmp_path / "shards"
    convert(sample_downstream, shards, to="webdataset", max_records=2, jobs=1)
    from_shards = write_quicklooks(shards, tmp_path / "c", ids=picked.ids, tile=66)
    assert from_shards.ids == picked.ids
    for a, c in zip(picked.images, from_shards.images):
        assert a.read_bytes() == c.read_bytes()                       # same arrays, same pictures
    result = invoke("quicklook", sample_downstream, "--out", tmp_path / "d", "--ids", "nope")
    assert result.exit_code == 2 and "nope" in result.output
    assert invoke("quicklook", sample_downstream, "--out", tmp_path / "e", "--ids", "x", "--sample", "1").exit_code == 2


def test_dataset_plot_for_notebooks(sample_downstream, tmp_path):
    pytest.importorskip("PIL")
    from neuco_io.converters import convert
    from neuco_io.loader import CubeDataset, ShardDataset

    cubes = CubeDataset(sample_downstream, modalities=["s2l2a", "s1"], seasons=[1, 3])
    figure = cubes.plot(0)
    assert figure.mode == "RGB" and figure.width > 2 * spec.SIZE and figure.height > 2 * spec.SIZE
    assert figure.width < 3 * spec.SIZE                                 # two seasons: two columns
    with pytest.raises(IndexError):
        cubes.plot(99)
    convert(sample_downstream, tmp_path / "s", to="parquet", jobs=1)
    shards = ShardDataset(tmp_path / "s", modalities=["s2l2a", "s1"], seasons=[1, 3], return_id=True)
    sample = next(iter(shards))
    assert sample["id"] == cubes.ids[0]
    plotted = np.asarray(shards.plot(sample))
    assert plotted.shape == np.asarray(figure).shape
    concatenated = next(iter(ShardDataset(tmp_path / "s", modalities=["s2l2a", "s1"], seasons=[1, 3])))
    assert np.asarray(shards.plot(concatenated)).shape[1] == plotted.shape[1]


def test_missing_pillow_says_how_to_install(sample_downstream, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)                      # import PIL now fails
    result = invoke("quicklook", sample_downstream, "--out", tmp_path / "ql")
    assert result.exit_code == 2
    assert "pip install 'neuco-io[quicklook]'" in result.output
    assert not (tmp_path / "ql").exists()
    result = invoke("validate", sample_downstream, "--report", tmp_path / "r.html")
    assert result.exit_code == 2 and "neuco-io[quicklook]" in result.output
    assert not (tmp_path / "r.html").exists()
