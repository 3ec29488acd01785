"""The cube's layers on their own: zip members, Zarr v2 group metadata, chunk keys, the converter's copy-through."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.members import MemberTooLarge, ZipMembers
from neuco_io.cube.passthrough import read_sample, sample_frames
from neuco_io.cube.reader import Cube
from neuco_io.cube.writer import write_cube
from neuco_io.cube.zarrv2 import MetadataError, ZarrFormatError, read_group, reason_of
from neuco_io.errors import CubeFormatError, CubeReadError

from helpers import ORIGINAL, edit_cube, read_members, tiny_bands, write_members

CUBE = next(p for p in sorted(ORIGINAL.rglob("*.zarr.zip")) if "S2L2A" in str(p) and "train" in str(p))


def test_positioned_reads_equal_zipfile_and_limits_refuse_before_reading():
    expected = read_members(CUBE)
    members = ZipMembers(CUBE)
    try:
        assert set(members) == set(expected) and len(members) == len(expected) and not members.compressed
        for key, data in expected.items():
            assert members.read(key, len(data)) == data
        key = max(expected, key=lambda k: len(expected[k]))
        with pytest.raises(MemberTooLarge) as err:
            members.read(key, len(expected[key]) - 1)
        assert err.value.claimed == len(expected[key])
    finally:
        members.close()
    assert set(members) == set(expected)  # the directory stays readable after close


def test_metadata_and_chunks_claiming_too_much_are_refused_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "x.zarr.zip"
    write_cube(path, "s2l1c", tiny_bands("s2l1c", 0), ["x"], fsync=False)
    monkeypatch.setattr("neuco_io.cube.reader.MAX_CHUNK_BYTES", -(1 << 16))  # no room left, framing slack included
    with Cube(path) as cube, pytest.raises(CubeReadError, match="more than a chunk may hold") as err:
        cube.read("bands", (0, 0))
    assert err.value.reason == "chunk" and err.value.path == str(path)
    monkeypatch.setattr("neuco_io.cube.reader.MAX_JSON_BYTES", 100)
    with pytest.raises(CubeFormatError, match="more than a metadata document may hold") as err:
        Cube(path)
    assert err.value.reason == "too-large"


def test_group_metadata_is_read_from_members_alone():
    expected = read_members(CUBE)
    attrs, arrays = read_group(expected, expected.__getitem__)
    with Cube(CUBE) as cube:
        assert attrs == cube.group_attrs and set(arrays) == set(cube.array_names)
        assert arrays["bands"] == cube.array_meta("bands")
    per_array = {k: v for k, v in expected.items() if k != ".zmetadata"}  # no consolidated metadata
    assert set(read_group(per_array, per_array.__getitem__)[1]) == set(arrays)


@pytest.mark.parametrize(("members", "error", "reason"), [
    ({"zarr.json": b"{}"}, ZarrFormatError, "zarr-format"),
    ({".zmetadata": b"{not json"}, MetadataError, "not-zarr"),
    ({".zmetadata": json.dumps({"metadata": {".zgroup": {"zarr_format": 3}}}).encode()}, ZarrFormatError,
     "zarr-format"),
    ({".zgroup": b'{"zarr_format": 2}', "a/.zarray": json.dumps({"zarr_format": 2, "shape": [2], "chunks": [1],
      "dtype": "<i2", "compressor": {"id": "pickle"}}).encode()}, MetadataError, "codec"),
])
def test_group_metadata_errors_carry_their_reason(members, error, reason):
    with pytest.raises(error) as err:
        read_group(members, members.__getitem__)
    assert reason_of(err.value) == reason


def test_chunk_keys_round_trip_and_stray_members_are_no_chunks(tmp_path):
    with Cube(CUBE) as cube:
        meta = cube.array_meta("bands")
        for index in cube.stored_chunks("bands"):
            assert meta.chunk_index(meta.chunk_key("bands", index)[len("bands/"):]) == index
        assert meta.chunk_index("0.0") is None  # too few dimensions
        assert meta.chunk_index("99.0.0.0.0") is None  # outside the grid
        assert meta.chunk_index("0.0.0.0.x") is None
    path = tmp_path / "x.zarr.zip"
    write_cube(path, "s2l1c", tiny_bands("s2l1c", 0), ["x"], fsync=False)
    edit_cube(path, lambda m: m.update({"bands/notes.txt": b"hello", "bands/0.0.0.0.7": b"junk"}))
    with Cube(path) as cube:
        stored = cube.stored_chunks("bands")
        assert stored == [(0, t, 0, 0, 0) for t in range(4)]


def test_copy_through_frames_decode_to_the_sample(tmp_path):
    with Cube(CUBE) as cube:
        array, frames = read_sample(cube, spec.BANDS_VAR, 1)
        np.testing.assert_array_equal(array, cube.read(spec.BANDS_VAR, (1,)))
        assert frames == sample_frames(cube, spec.BANDS_VAR, 1) and len(frames) == array.shape[0]
    path = tmp_path / "x.zarr.zip"
    members = read_members(CUBE)
    members = {k: v for k, v in members.items() if k != "bands/1.2.0.0.0"}  # one absent frame: no copy-through
    write_members(path, members)
    with Cube(path) as cube:
        assert sample_frames(cube, spec.BANDS_VAR, 1) is None
        array, frames = read_sample(cube, spec.BANDS_VAR, 1)
        assert frames is None and array.shape == cube.shape(spec.BANDS_VAR)[1:]


def test_a_deflated_cube_reads_the_same(tmp_path):
    path = tmp_path / "x.zarr.zip"
    write_members(path, read_members(CUBE), compression=zipfile.ZIP_DEFLATED)
    with Cube(CUBE) as stored, Cube(path) as deflated:
        assert deflated.info().zip_compressed and not stored.info().zip_compressed
        np.testing.assert_array_equal(deflated.read("bands"), stored.read("bands"))
