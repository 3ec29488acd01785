"""The cube reader on files written by the original stack (zarr 2.18) and by neuco-io."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.reader import Cube, open_cube, read_cube_info
from neuco_io.cube.writer import write_cube
from neuco_io.cube.zarrcompat import is_zarr3, open_format2_group, open_xarray, zip_store
from neuco_io.errors import CubeFormatError, CubeReadError

from helpers import ORIGINAL, edit_cube, tiny_bands

ORIGINAL_CUBES = sorted(ORIGINAL.rglob("*.zarr.zip"))


def test_fixtures_are_small_and_present():
    assert len(ORIGINAL_CUBES) == 17
    assert sum(p.stat().st_size for p in ORIGINAL.rglob("*") if p.is_file()) < 3_000_000


@pytest.mark.parametrize("path", ORIGINAL_CUBES, ids=lambda p: "/".join(p.parts[-3:-1]))
def test_direct_reads_equal_zarr_and_xarray(path: Path):
    """On whichever zarr is installed: 3.x on the newest stack, 2.18 in NeuCo-Bench's pinned one."""
    with Cube(path) as cube, zip_store(path) as store:
        group = open_format2_group(store, consolidated=True)
        assert set(cube.array_names) == set(group.array_keys())
        for name in cube.array_names:
            arr = group[name]
            assert cube.shape(name) == arr.shape
            assert cube.chunks(name) == arr.chunks
            assert cube.dtype(name) == arr.dtype
            compressor = arr.metadata.compressor if is_zarr3() else arr.compressor
            assert cube.array_info(name).compressor == compressor.get_config()
            mine, theirs = cube.read(name), np.asarray(arr[...])
            assert mine.dtype == theirs.dtype
            assert mine.tobytes() == theirs.tobytes(), name
        ds = open_xarray(store, consolidated=True)
        np.testing.assert_array_equal(cube.read("bands"), ds["bands"].values)
        assert cube.sample_ids == [str(s) for s in ds["sample"].values]


def test_partial_reads_match_slices():
    path = next(p for p in ORIGINAL_CUBES if "S2L2A" in str(p) and "train" in str(p))
    with Cube(path) as cube:
        full = cube.read("bands")
        np.testing.assert_array_equal(cube.read("bands", (1,)), full[1])
        np.testing.assert_array_equal(cube.read("bands", (slice(1, 3), 2, slice(3, 5))), full[1:3, 2, 3:5])
        np.testing.assert_array_equal(cube.read_location(2, [3, 0]), full[2, [3, 0]])
        np.testing.assert_array_equal(cube.read("cloud_mask", (0, 1)), cube.read("cloud_mask")[0, 1])


def test_v11_metadata_variables_read_like_xarray():
    path = next(p for p in ORIGINAL_CUBES if "S2L2A" in str(p) and "train" in str(p))
    ds = open_cube(path)
    try:
        assert ds["bands"].dims == spec.DIMS
        assert ds.sizes["sample"] == 3
        assert ds["time_"].dtype.kind == "M"  # CF-decoded datetimes through zarr + xarray
        assert list(ds["sample"].values) == ["0080717", "0060573", "0001234"]  # leading zeros kept
        assert ds["cloud_mask"].dtype == np.uint8
    finally:
        ds.close()


def test_metadata_does_not_decode_image_chunks(tmp_path):
    """Garbage in every `bands` chunk: reading metadata and coordinates still works."""
    path = tmp_path / "x.zarr.zip"
    write_cube(path, "s2l1c", tiny_bands("s2l1c", 0), ["x"], fsync=False)
    edit_cube(path, lambda m: m.update({k: b"garbage" for k in m if k.startswith("bands/0.")}))
    info = read_cube_info(path)
    assert info.bands.shape == (1, 4, 13, 264, 264)
    assert info.sample_ids == ["x"]
    assert info.band_names == list(spec.MODALITIES["s2l1c"].bands)
    with Cube(path) as cube, pytest.raises(CubeReadError, match="does not decode"):
        cube.read("bands")


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty"),
    (b"PK\x03\x04 truncated", "not-zip"),
])
def test_unreadable_files_raise_read_errors(tmp_path, content, reason):
    path = tmp_path / "x.zarr.zip"
    path.write_bytes(content)
    with pytest.raises(CubeReadError) as info:
        Cube(path)
    assert info.value.reason == reason
    assert str(path) in str(info.value)


def test_directory_and_missing(tmp_path):
    (tmp_path / "d.zarr.zip").mkdir()
    with pytest.raises(CubeReadError, match="directory"):
        Cube(tmp_path / "d.zarr.zip")
    with pytest.raises(CubeReadError, match="not found"):
        Cube(tmp_path / "missing.zarr.zip")


def test_zip_without_group_is_a_format_error(tmp_path):
    path = tmp_path / "x.zarr.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(CubeFormatError, match="no Zarr group"):
        Cube(path)


def test_unconsolidated_cube_reads(tmp_path):
    path = tmp_path / "x.zarr.zip"
    write_cube(path, "s1", tiny_bands("s1", 0), ["x"], fsync=False)
    edit_cube(path, lambda m: m.pop(".zmetadata"))
    with Cube(path) as cube:
        assert not cube.consolidated
        np.testing.assert_array_equal(cube.read("bands"), tiny_bands("s1", 0))
        assert cube.to_xarray()["bands"].shape == (1, 4, 2, 264, 264)


def test_fortran_order_falls_back_to_zarr(tmp_path):
    """An array layout the direct path does not handle is read through zarr itself."""
    path = tmp_path / "x.zarr.zip"
    data = tiny_bands("s1", 0)
    write_cube(path, "s1", data, ["x"], fsync=False)

    def to_fortran(members):
        from neuco_io.cube.writer import BLOSC_LZ4

        for t in range(4):
            chunk = np.asfortranarray(data[:, t:t + 1])
            members[f"bands/0.{t}.0.0.0"] = BLOSC_LZ4.encode(chunk.tobytes(order="F"))
        for key in ("bands/.zarray",):
            doc = json.loads(members[key])
            doc["order"] = "F"
            members[key] = json.dumps(doc).encode()
        meta = json.loads(members[".zmetadata"])
        meta["metadata"]["bands/.zarray"]["order"] = "F"
        members[".zmetadata"] = json.dumps(meta).encode()

    edit_cube(path, to_fortran)
    with Cube(path) as cube:
        np.testing.assert_array_equal(cube.read("bands"), data)


def test_writer_metadata_matches_the_original_stack(tmp_path):
    """For the same content, neuco-io writes the metadata documents zarr 2.18 + xarray wrote."""
    original = next(p for p in ORIGINAL_CUBES if "downstream" in str(p) and "s2l1c" in str(p))
    with Cube(original) as cube:
        loc_id = cube.sample_ids[0]
        bands = cube.read("bands")
    mine = tmp_path / f"{loc_id}.zarr.zip"
    write_cube(mine, "s2l1c", bands, [loc_id], fsync=False)
    theirs_meta = json.loads(zipfile.ZipFile(original).read(".zmetadata"))["metadata"]
    mine_meta = json.loads(zipfile.ZipFile(mine).read(".zmetadata"))["metadata"]
    assert set(theirs_meta) == set(mine_meta)
    for key, doc in theirs_meta.items():
        ours = {k: v for k, v in mine_meta[key].items() if k != "dimension_separator"} \
            if isinstance(mine_meta[key], dict) else mine_meta[key]
        assert ours == doc, key
    with zipfile.ZipFile(mine) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.namelist()[-1] == ".zmetadata"
    with Cube(mine) as cube:
        np.testing.assert_array_equal(cube.read("bands"), bands)


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "x.zarr.zip"
    from neuco_io.cube.writer import CubeWriter

    with pytest.raises(RuntimeError), CubeWriter(path, "s1", ["x"], fsync=False) as writer:
        writer.write_sample(0, tiny_bands("s1", 0)[0])
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="never written"), CubeWriter(path, "s1", ["x", "y"], fsync=False) as w:
        w.write_sample(0, tiny_bands("s1", 0)[0])
    assert list(tmp_path.iterdir()) == []
    write_cube(path, "s1", tiny_bands("s1", 0), ["x"], fsync=False)
    with pytest.raises(FileExistsError):
        write_cube(path, "s1", tiny_bands("s1", 0), ["x"], fsync=False)
