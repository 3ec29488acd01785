"""GeoTIFFs as GDAL writes them (rasterio), multi-page TIFFs as tifffile writes them, and bilinear resampling."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.rasters import RasterError, interpolation_taps, read_raster, resample
from neuco_io.cube.reader import Cube
from neuco_io.tasks.importer import import_task

rasterio = pytest.importorskip("rasterio", reason="rasterio (test extra) writes the GDAL GeoTIFFs")
tifffile = pytest.importorskip("tifffile")
from rasterio.transform import from_origin  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:rasterio")

EPSG = 32633
ORIGIN = (500000.0, 4700000.0)


def gdal_write(path: Path, data: np.ndarray, *, compress: str | None = "deflate", predictor: int = 1,
               tiled: bool = True, interleave: str = "band", nodata: float | None = 0, size: int = 10) -> None:
    """A (band, y, x) array as GDAL writes a GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": str(data.dtype), "crs": f"EPSG:{EPSG}", "transform": from_origin(*ORIGIN, size, size),
               "interleave": interleave, "nodata": nodata}
    if compress:
        profile.update(compress=compress, predictor=predictor)
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def s2_image(bands: int, seed: int, size: int = 100) -> np.ndarray:
    data = np.random.default_rng(seed).integers(1, 12000, (bands, size, size)).astype(np.int16)
    data[:, :3, :5] = 0  # the nodata value, as a scene edge
    return data


VARIANTS = [(c, p, t, i) for c, p, t, i in itertools.product(["deflate", "lzw", "zstd", None], [1, 2, 3],
                                                               [True, False], ["band", "pixel"])
            if not (c is None and p != 1)]


@pytest.mark.parametrize(("compress", "predictor", "tiled", "interleave"), VARIANTS,
                         ids=lambda v: str(v).lower())
def test_gdal_geotiffs_read_as_rasterio_reads_them(tmp_path, compress, predictor, tiled, interleave):
    if predictor == 3:  # the floating-point predictor: S1 backscatter in float32
        data = np.random.default_rng(1).normal(-15, 5, (2, 100, 120)).astype(np.float32)
        data[:, 0, :4] = np.nan
        nodata = np.nan
    else:
        data, nodata = s2_image(13, 2), 0
    path = tmp_path / "x.tif"
    gdal_write(path, data, compress=compress, predictor=predictor, tiled=tiled, interleave=interleave, nodata=nodata)
    raster = read_raster(path)
    with rasterio.open(path) as src:
        expected = src.read()
    assert raster.data.dtype == expected.dtype and raster.data.shape == expected.shape
    np.testing.assert_array_equal(raster.data, expected)
    np.testing.assert_array_equal(raster.data, data)
    assert raster.georef["epsg"] == EPSG
    assert raster.georef["transform"] == [10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1]]
    assert raster.georef["nodata"] == ("nan" if predictor == 3 else "0")


@pytest.mark.filterwarnings("ignore:<tifffile.TiffWriter.write> data with shape:DeprecationWarning")
def test_multipage_tiffs_read_one_page_per_band(tmp_path):
    data = s2_image(13, 3, size=40)
    tifffile.imwrite(tmp_path / "pages.tif", data)  # tifffile's default for (13, y, x): 13 pages
    with tifffile.TiffFile(tmp_path / "pages.tif") as tif:
        assert len(tif.pages) == 13
    np.testing.assert_array_equal(read_raster(tmp_path / "pages.tif").data, data)
    tifffile.imwrite(tmp_path / "two.tif", data[:2])  # S1: 2 pages
    np.testing.assert_array_equal(read_raster(tmp_path / "two.tif").data, data[:2])
    tifffile.imwrite(tmp_path / "rgb.tif", data[:3])  # 3 bands: tifffile writes one planar RGB page
    np.testing.assert_array_equal(read_raster(tmp_path / "rgb.tif").data, data[:3])
    tifffile.imwrite(tmp_path / "one.tif", data[0])
    np.testing.assert_array_equal(read_raster(tmp_path / "one.tif").data, data[:1])
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([data, data]))  # 4-D: not an image of bands
    with pytest.raises(RasterError, match=r"expected a \(band, y, x\) image"):
        read_raster(tmp_path / "stack.tif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(RasterError, match="not a readable TIFF"):
        read_raster(tmp_path / "bad.tif")


def test_import_gdal_geotiffs_with_bilinear_resampling(tmp_path):
    """A custom task from 300x300 GDAL GeoTIFFs (mixed writers and layouts), resampled to the cube size."""
    src = tmp_path / "src"
    variants = itertools.cycle([("deflate", 2, True, "band"), ("lzw", 2, False, "pixel"), ("zstd", 1, True, "pixel")])
    expected = {}
    for season in spec.SEASONS:
        for modality in spec.DOWNSTREAM_MODALITIES:
            mod = spec.MODALITIES[modality]
            seed = spec.SEASONS.index(season) * 10 + spec.DOWNSTREAM_MODALITIES.index(modality)
            if mod.s2:
                data, nodata = s2_image(mod.n_bands, seed, size=300), 0
            else:
                data = np.random.default_rng(seed).normal(-15, 5, (2, 300, 300)).astype(np.float32)
                nodata = None
            compress, predictor, tiled, interleave = next(variants)
            path = src / "field" / f"{modality}_{season}.tif"
            gdal_write(path, data, compress=compress, predictor=predictor, tiled=tiled, interleave=interleave,
                       nodata=nodata)
            expected[modality, season] = resample(data, "bilinear")
    pages = src / "pages" / "s2l2a_spring.tif"  # one location's files from tifffile, one page per band
    for path in (src / "field").iterdir():
        (src / "pages").mkdir(exist_ok=True)
        tifffile.imwrite(src / "pages" / path.name, read_raster(path).data)
    assert pages.is_file()
    root = tmp_path / "task"
    result = import_task(src, root, pattern="{id}/{modality}_{season}.tif", resample_method="bilinear",
                         locations=tmp_path / "where.json")
    assert sorted(result.imported) == ["field", "pages"] and not result.refused
    with Cube(root / "data/s2l2a/part-000000/field.zarr.zip") as cube:
        np.testing.assert_array_equal(cube.read("bands", (0, 1)), np.round(expected["s2l2a", "summer"]))
    with Cube(root / "data/s1/part-000000/pages.zarr.zip") as cube:
        np.testing.assert_array_equal(cube.read("bands", (0, 3)), expected["s1", "winter"].astype(np.float32))
    where = json.loads((tmp_path / "where.json").read_text())
    assert where["field"]["s2l1c"]["fall"]["epsg"] == EPSG and where["field"]["s2l1c"]["fall"]["nodata"] == "0"


def _dense(n_in: int, n_out: int) -> np.ndarray:
    lo, hi, frac = interpolation_taps(n_in, n_out)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), lo), 1 - frac)
    np.add.at(matrix, (np.arange(n_out), hi), frac)
    return matrix


@pytest.mark.parametrize("shape", [(2, 300, 300), (3, 100, 513), (1, 1, 7), (2, 264, 264), (1, 50, 40)])
def test_bilinear_equals_the_separable_matrix_product(shape):
    image = np.random.default_rng(0).normal(size=shape)
    expected = _dense(shape[1], spec.SIZE) @ image @ _dense(shape[2], spec.SIZE).T
    np.testing.assert_allclose(resample(image, "bilinear"), expected, rtol=0, atol=1e-9)
    if shape[1:] == (spec.SIZE, spec.SIZE):
        np.testing.assert_array_equal(resample(image, "bilinear"), image)  # same size: the identity
    ints = np.random.default_rng(1).integers(0, 10000, shape).astype(np.int16)
    out = resample(ints, "bilinear")
    assert out.dtype == np.float64 and ints.min() <= out.min() and out.max() <= ints.max()
