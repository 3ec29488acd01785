"""Cubes, dataset folders and label files crafted by an attacker.

Each class of hostile input gets a crafted case and the exact outcome: a
finding code (validate), a refusal (convert, embed, the loader), nothing
executed, bounded memory (RLIMIT_AS in a subprocess) and no hang (a generous
subprocess timeout turns a hang into a failure; nothing here measures time).
A seeded fuzz test damages valid cubes at random: every outcome is a finding
or a `CubeError`, never another exception.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import resource
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numcodecs
import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.passthrough import sample_frames
from neuco_io.cube.reader import Cube, open_cube
from neuco_io.errors import CubeError, CubeFormatError, CubeReadError, NeucoError
from neuco_io.layout import CubeFile
from neuco_io.sample import write_sample
from neuco_io.validators import validate
from neuco_io.validators.cubes import CubeTask, check_cube

from helpers import (
    ORIGINAL,
    TINY_IDS,
    build_downstream,
    cube_path,
    edit_cube,
    edit_metadata,
    read_members,
    write_members,
)

ROOT_DIR = Path(__file__).parents[1]
ID0, ID1 = TINY_IDS[0], TINY_IDS[1]
MEMORY_LIMIT = 1 << 30
"""Address space for a hostile run: a normal validate --deep --jobs 1 of a small dataset fits in it."""
TIMEOUT = 300


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_downstream(tmp_path_factory.mktemp("pristine") / "ds")


@pytest.fixture
def root(pristine, tmp_path):
    """A fresh copy of a small valid downstream dataset (4 locations, 3 tasks) to break."""
    return Path(shutil.copytree(pristine, tmp_path / "ds"))


def codes_for(report, path) -> list[str]:
    return sorted(f.code for f in report.findings if f.path == str(path))


def run_cli(*args, memory: int | None = None, cwd=None) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter, optionally under an address-space limit; a hang fails the test."""
    def limit():
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    return subprocess.run([sys.executable, "-m", "neuco_io.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, preexec_fn=limit, env=env, cwd=cwd)


def assert_clean_exit(proc: subprocess.CompletedProcess, code: int = 1) -> None:
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


# -- code execution: codecs ---------------------------------------------------------------------
class _CreatesFile:
    """Unpickling this creates a file: proof that the payload ran."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def _pickle_cube(path: Path, marker: Path, *, role: str = "compressor", array: str = "band") -> None:
    payload = pickle.dumps(np.array([_CreatesFile(marker)], dtype=object))
    assert not marker.exists()

    def edit(members):
        codec = {"id": "pickle", "protocol": 5}
        if role == "compressor":
            change = lambda d: d.update(compressor=codec)  # noqa: E731
        else:
            change = lambda d: d.update(compressor=None, filters=[codec], dtype="|O")  # noqa: E731
        edit_metadata(members, f"{array}/.zarray", change)
        members[f"{array}/0" if array != "bands" else "bands/0.0.0.0.0"] = payload
    edit_cube(path, edit)


@pytest.fixture
def original_root(tmp_path):
    """A copy of the committed dataset written by the original stack (readable without neuco-io's writer,
    so these tests also run on the pinned zarr 2.18 / numcodecs 0.15.1 stack, where `pickle` runs ungated)."""
    return Path(shutil.copytree(ORIGINAL / "downstream", tmp_path / "original"))


@pytest.mark.parametrize("role", ["compressor", "filter"])
@pytest.mark.parametrize("array", ["band", "bands"])
def test_a_pickle_codec_is_never_run(original_root, tmp_path, role, array):
    root = original_root
    marker = tmp_path / "pwned"
    path = next((root / "data" / "s2l2a").rglob(f"*{spec.CUBE_SUFFIX}"))
    _pickle_cube(path, marker, role=role, array=array)
    for deep in (False, True):
        report = validate(root, jobs=1, deep=deep)
        assert codes_for(report, path) == ["cubes.codec"]
        assert not marker.exists()
    with pytest.raises(CubeFormatError) as err:
        Cube(path)
    assert err.value.reason == "codec" and "pickle" in err.value.message
    with pytest.raises(CubeFormatError):
        open_cube(path)
    assert not marker.exists()


def test_a_pickle_codec_is_refused_by_convert_and_the_loader(root, tmp_path):
    from neuco_io.loader import CubeDataset

    marker = tmp_path / "pwned"
    _pickle_cube(cube_path(root, "s1", ID1), marker, array="bands")
    proc = run_cli("convert", root, tmp_path / "out", "--to", "webdataset", "-q", "--jobs", "1")
    assert_clean_exit(proc)
    proc = run_cli("convert", root, tmp_path / "out2", "--to", "webdataset", "-q", "--jobs", "1", "--skip-invalid",
                   "--format", "json")
    assert_clean_exit(proc)
    assert [s["id"] for s in json.loads(proc.stdout)["skipped"]] == [ID1]
    dataset = CubeDataset(root)
    with pytest.raises(CubeError):
        dataset[dataset.ids.index(ID1)]
    assert not marker.exists()


@pytest.mark.parametrize("codec", [
    {"id": "pickle"}, {"id": "vlen-bytes"}, {"id": "json2"}, {"id": "msgpack2"}, {"id": "vlen-array", "dtype": "i4"},
    {"id": "categorize", "labels": ["a"], "dtype": "<U1"}, {"id": "base64"}, {"id": "no-such-codec"}, {"id": 3},
    "blosc", ["blosc"], {"id": "blosc", "no_such_argument": 1}, {"id": "lzma", "format": 3, "filters": [{"id": 33}]},
])
def test_codecs_outside_the_allow_list_are_refused(root, codec):
    path = cube_path(root, "s1", ID0)
    edit_cube(path, lambda m: edit_metadata(m, "x/.zarray", lambda d: d.update(compressor=codec)))
    report = validate(root, jobs=1)
    assert codes_for(report, path) == ["cubes.codec"]


@pytest.mark.parametrize("codec", [numcodecs.Zstd(level=3), numcodecs.LZ4(), numcodecs.Zlib(level=5),
                                   numcodecs.GZip(level=5), numcodecs.BZ2(level=5), numcodecs.LZMA(),
                                   numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2)])
def test_allowed_compressors_read_back(root, codec):
    """Every allow-listed compressor decodes (through the bounded path) to the values written."""
    path = cube_path(root, "s2l2a", ID0)
    with Cube(path) as cube:
        expected = cube.read("bands")

    def recompress(members):
        for key in [k for k in members if k.startswith("bands/0.")]:
            members[key] = codec.encode(numcodecs.Blosc().decode(members[key]))
        edit_metadata(members, "bands/.zarray", lambda d: d.update(compressor=codec.get_config()))
    edit_cube(path, recompress)
    with Cube(path) as cube:
        np.testing.assert_array_equal(cube.read("bands"), expected)
    assert codes_for(validate(root, jobs=1, deep=True), path) == []


def test_object_strings_read_like_the_original_stack(root):
    """xarray + zarr 2.18 write str coordinates of object dtype with the vlen-utf8 filter: that is read."""
    path = cube_path(root, "s1", ID0)
    names = np.array(list(spec.MODALITIES["s1"].bands), dtype=object)

    def to_vlen(members):
        members["band/0"] = numcodecs.Blosc().encode(numcodecs.VLenUTF8().encode(names))
        edit_metadata(members, "band/.zarray", lambda d: d.update(dtype="|O", filters=[{"id": "vlen-utf8"}]))
    edit_cube(path, to_vlen)
    with Cube(path) as cube:
        assert cube.band_names == list(names)
    assert codes_for(validate(root, jobs=1, deep=True), path) == []


# -- malformed metadata: one finding for that cube, the run goes on --------------------------------
def _set(key, **values):
    return lambda m: edit_metadata(m, key, lambda d: d.update(values))


def _replace(member, data: bytes):
    def edit(members):
        members[member] = data
    return edit


def _group_attrs_list(members):
    members[".zattrs"] = b"[1, 2]"
    meta = json.loads(members[".zmetadata"])
    meta["metadata"][".zattrs"] = [1, 2]
    members[".zmetadata"] = json.dumps(meta).encode()


def _array_attrs(value):
    def edit(members):
        meta = json.loads(members[".zmetadata"])
        meta["metadata"]["bands/.zattrs"] = value
        members[".zmetadata"] = json.dumps(meta).encode()
    return edit


def _many_arrays(members):
    meta = json.loads(members[".zmetadata"])
    for i in range(1001):
        meta["metadata"][f"v{i}/.zarray"] = meta["metadata"]["x/.zarray"]
    members[".zmetadata"] = json.dumps(meta).encode()


def _array_doc(members, value):
    meta = json.loads(members[".zmetadata"])
    meta["metadata"]["x/.zarray"] = value
    members[".zmetadata"] = json.dumps(meta).encode()


MALFORMED = {
    "dims-not-a-list": (_array_attrs({"_ARRAY_DIMENSIONS": 5}), "cubes.not-zarr"),
    "dims-a-string": (_array_attrs({"_ARRAY_DIMENSIONS": "sample"}), "cubes.not-zarr"),
    "array-zattrs-a-list": (_array_attrs(["_ARRAY_DIMENSIONS"]), "cubes.not-zarr"),
    "group-zattrs-a-list": (_group_attrs_list, "cubes.not-zarr"),
    "negative-shape": (_set("bands/.zarray", shape=[1, 4, 2, -264, 264]), "cubes.not-zarr"),
    "zero-chunks": (_set("bands/.zarray", chunks=[1, 1, 2, 0, 264]), "cubes.not-zarr"),
    "100-dims": (_set("bands/.zarray", shape=[1] * 100, chunks=[1] * 100), "cubes.not-zarr"),
    "shape-a-string": (_set("bands/.zarray", shape="1,4,2,264,264"), "cubes.not-zarr"),
    "shape-floats": (_set("bands/.zarray", shape=[1.0, 4, 2, 264, 264]), "cubes.not-zarr"),
    "dict-fill-value": (_set("bands/.zarray", fill_value={"a": 1}), "cubes.not-zarr"),
    "text-fill-value": (_set("x/.zarray", fill_value="abc"), "cubes.not-zarr"),
    "structured-dtype": (_set("x/.zarray", dtype=[["a", "<i8"]]), "cubes.not-zarr"),
    "void-dtype": (_set("x/.zarray", dtype="|V8"), "cubes.not-zarr"),
    "bogus-dtype": (_set("x/.zarray", dtype="<q9"), "cubes.not-zarr"),
    "object-dtype-no-filter": (_set("x/.zarray", dtype="|O"), "cubes.not-zarr"),
    "order": (_set("x/.zarray", order="Z"), "cubes.not-zarr"),
    "separator": (_set("x/.zarray", dimension_separator="../"), "cubes.not-zarr"),
    "filters-not-a-list": (_set("x/.zarray", filters={"id": "vlen-utf8"}), "cubes.not-zarr"),
    "array-doc-a-list": (lambda m: _array_doc(m, [1, 2]), "cubes.not-zarr"),
    "zarr-format-3": (_set("x/.zarray", zarr_format=3), "cubes.not-zarr"),
    "deeply-nested": (_replace(".zmetadata", b"[" * 100_000 + b"]" * 100_000), "cubes.not-zarr"),
    "deeply-nested-object": (_replace(".zmetadata", b'{"a":' * 50_000 + b"1" + b"}" * 50_000), "cubes.not-zarr"),
    "not-utf8": (_replace(".zmetadata", b'{"metadata": {"\xff\xfe": 1}}'), "cubes.not-zarr"),
    "metadata-not-an-object": (_replace(".zmetadata", b'{"metadata": [1]}'), "cubes.not-zarr"),
    "huge-shape": (_set("bands/.zarray", shape=[10**30] * 5), "cubes.too-large"),
    "huge-chunk": (_set("bands/.zarray", chunks=[1, 1, 2, 15000, 15000], shape=[1, 4, 2, 15000, 15000]),
                   "cubes.too-large"),
    "huge-itemsize": (_set("band/.zarray", dtype="<U100000000"), "cubes.too-large"),
    "thousand-arrays": (_many_arrays, "cubes.too-large"),
    "million-chunks": (_set("bands/.zarray", shape=[1, 4, 2, 10**6, 10**6], chunks=[1, 1, 2, 1000, 1000]),
                       "cubes.too-large"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_metadata_is_one_finding_and_the_run_goes_on(root, case):
    edit, code = MALFORMED[case]
    path = cube_path(root, "s1", ID0)
    edit_cube(path, edit)
    report = validate(root, jobs=1, deep=True)
    assert codes_for(report, path) == [code]
    other = cube_path(root, "s1", ID1)
    assert codes_for(report, other) == []
    assert report.summary["cubes"] == 12


@pytest.mark.parametrize("case", ["group-zattrs-a-list", "deeply-nested"])
def test_malformed_metadata_through_the_cli(root, tmp_path, case):
    edit, code = MALFORMED[case]
    edit_cube(cube_path(root, "s1", ID0), edit)
    proc = run_cli("validate", root, "--format", "json", "-q", "--jobs", "1")
    assert_clean_exit(proc)
    assert code in {e["code"] for e in json.loads(proc.stdout)["errors"]}
    assert_clean_exit(run_cli("convert", root, tmp_path / "out", "--to", "parquet", "-q", "--jobs", "1"))
    proc = run_cli("convert", root, tmp_path / "out2", "--to", "webdataset", "-q", "--jobs", "1", "--skip-invalid",
                   "--format", "json")
    assert_clean_exit(proc)
    assert [s["id"] for s in json.loads(proc.stdout)["skipped"]] == [ID0]
    emb = tmp_path / "emb.csv"
    proc = run_cli("embed", root, "--encoder", "mean", "--out", emb, "-q")
    assert_clean_exit(proc)
    assert not emb.exists()


TYPED_COORDINATES = {
    "strings": np.array(["abc"] * 264), "complex": np.arange(264) * (1 + 1j),
    "dates": np.arange(264).astype("M8[D]"), "infinite": np.full(264, np.inf),
    "object-strings": np.array(["a"] * 264, dtype=object),
}


@pytest.mark.parametrize("kind", sorted(TYPED_COORDINATES))
def test_coordinates_of_any_type_are_findings(root, kind):
    """A pixel coordinate holding strings, complex numbers, dates... is a `cubes.coords` finding."""
    values = TYPED_COORDINATES[kind]
    path = cube_path(root, "s1", ID0)

    def edit(members):
        vlen = values.dtype.hasobject
        data = numcodecs.VLenUTF8().encode(values) if vlen else values.tobytes()
        members["x/0"] = numcodecs.Blosc().encode(data)
        edit_metadata(members, "x/.zarray", lambda d: d.update(dtype=values.dtype.str,
                                                                 filters=[{"id": "vlen-utf8"}] if vlen else None))
    edit_cube(path, edit)
    assert codes_for(validate(root, jobs=1, deep=True), path) == ["cubes.coords"]
    if kind == "complex":
        proc = run_cli("validate", root, "--format", "json", "-q", "--jobs", "1")
        assert_clean_exit(proc, 0)
        assert "cubes.coords" in {w["code"] for w in json.loads(proc.stdout)["warnings"]}


def test_a_huge_metadata_document_is_not_read(root):
    path = cube_path(root, "s1", ID0)
    edit_cube(path, _replace(".zattrs", b"{" + b" " * (17 << 20) + b"}"), compression=zipfile.ZIP_DEFLATED)
    edit_cube(path, lambda m: m.pop(".zmetadata"), compression=zipfile.ZIP_DEFLATED)
    assert codes_for(validate(root, jobs=1), path) == ["cubes.too-large"]


# -- memory and time bounded on claimed sizes -------------------------------------------------------
def _validate_bounded(root, *extra) -> dict:
    proc = run_cli("validate", root, "--format", "json", "-q", "--jobs", "1", *extra, memory=MEMORY_LIMIT)
    assert_clean_exit(proc)
    return json.loads(proc.stdout)


def _codes(report: dict, path: Path) -> set[str]:
    return {e["code"] for e in report["errors"] + report["warnings"] if e["path"] == str(path)}


def test_a_claimed_15000_pixel_image_is_not_allocated(root):
    """Small chunks of a huge claimed image: plain validate reads no value, --deep only the stored chunks."""
    path = cube_path(root, "s2l2a", ID0)
    edit_cube(path, _set("bands/.zarray", shape=[1, 4, 12, 15000, 15000]))
    for extra in ((), ("--deep",)):
        assert "cubes.shape" in _codes(_validate_bounded(root, *extra), path)


def test_a_claimed_million_pixel_image_with_deep(root):
    path = cube_path(root, "s2l2a", ID0)
    edit_cube(path, _set("bands/.zarray", shape=[1, 4, 12, 10**6, 10**6], chunks=[1, 1, 12, 2000, 2000]))
    report = _validate_bounded(root, "--deep")
    assert {"cubes.shape", "cubes.corrupt-chunk"} <= _codes(report, path)


def test_a_wrong_shape_is_refused_by_the_loader_and_embed(root, tmp_path):
    """The loader checks a cube's metadata before reading: a claimed image is never allocated."""
    from neuco_io.loader import CubeDataset

    path = cube_path(root, "s1", ID0)
    edit_cube(path, _set("bands/.zarray", shape=[1, 4, 2, 4000, 4000]))
    dataset = CubeDataset(root)
    with pytest.raises(CubeFormatError, match=r"cubes\.shape") as err:
        dataset[dataset.ids.index(ID0)]
    assert err.value.path == str(path)
    proc = run_cli("embed", root, "--encoder", "mean", "--out", tmp_path / "emb.csv", "-q", memory=MEMORY_LIMIT)
    assert_clean_exit(proc)
    assert str(path) in proc.stderr and not (tmp_path / "emb.csv").exists()


def test_a_huge_coordinate_is_not_decoded(root):
    path = cube_path(root, "s1", ID0)
    edit_cube(path, _set("x/.zarray", shape=[10**8], chunks=[10**6]))
    assert _codes(_validate_bounded(root), path) == {"cubes.too-large"}


def _zlib_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9)
    block = bytes(1 << 20)
    return b"".join(compressor.compress(block) for _ in range(size >> 20)) + compressor.flush()


@pytest.mark.parametrize("kind", ["zlib", "blosc", "lz4", "zstd"])
def test_decompression_bombs_are_capped(root, kind):
    """A chunk that decodes to far more than its declared shape is refused, never decoded in full."""
    path = cube_path(root, "s1", ID0)
    size = 1 << 30 if kind == "zlib" else 768 << 20
    if kind == "zlib":
        bomb = _zlib_bomb(size)
        config = {"id": "zlib", "level": 9}
    else:
        codec = {"blosc": numcodecs.Blosc(cname="lz4", clevel=9), "lz4": numcodecs.LZ4(),
                 "zstd": numcodecs.Zstd(level=19)}[kind]
        bomb = codec.encode(np.zeros(size >> 4, dtype=np.uint8))
        header = {"blosc": lambda b: b[:4] + struct.pack("<I", size) + b[8:],
                  "lz4": lambda b: struct.pack("<i", size) + b[4:], "zstd": lambda b: b}[kind]
        bomb = header(bomb)  # the header now claims the full size
        config = codec.get_config()

    def edit(members):
        members["bands/0.0.0.0.0"] = bomb
        edit_metadata(members, "bands/.zarray", lambda d: d.update(compressor=config))
    edit_cube(path, edit)
    assert len(bomb) < 8 << 20
    report = _validate_bounded(root, "--deep")
    assert "cubes.corrupt-chunk" in _codes(report, path)
    with Cube(path) as cube, pytest.raises(CubeReadError, match=r"bands/0\.0\.0\.0\.0"):
        cube.read("bands", (0, 0))


# -- the zip itself ----------------------------------------------------------------------------
def _central_directory(data: bytes) -> list[int]:
    """Offsets of the central directory headers."""
    out, at = [], data.find(b"PK\x01\x02")
    while at >= 0:
        out.append(at)
        at = data.find(b"PK\x01\x02", at + 4)
    return out


def _patch_directory(path: Path, member: str, *, offset: int | None = None, size: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    for at in _central_directory(bytes(data)):
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46:at + 46 + name_len]).decode() != member:
            continue
        if size is not None:
            struct.pack_into("<II", data, at + 20, size, size)
        if offset is not None:
            struct.pack_into("<I", data, at + 42, offset)
    path.write_bytes(bytes(data))


def _local_offset(path: Path, member: str) -> int:
    with zipfile.ZipFile(path) as zf:
        return zf.getinfo(member).header_offset


def test_a_member_claiming_a_huge_size(root):
    path = cube_path(root, "s1", ID0)
    _patch_directory(path, "bands/0.0.0.0.0", size=0xFFFFFFF0)
    assert codes_for(validate(root, jobs=1, deep=True), path) == ["cubes.unreadable"]


def test_overlapping_members(root):
    """Two directory entries pointing at one payload (the shape of a zip quine bomb)."""
    path = cube_path(root, "s1", ID0)
    _patch_directory(path, "bands/0.1.0.0.0", offset=_local_offset(path, "bands/0.0.0.0.0"))
    assert codes_for(validate(root, jobs=1, deep=True), path) == ["cubes.unreadable"]


def test_a_local_header_that_disagrees_with_the_directory(root):
    path = cube_path(root, "s1", ID0)
    data = bytearray(path.read_bytes())
    at = _local_offset(path, "bands/0.2.0.0.0")
    name = b"bands/0.2.0.0.0"
    assert data[at + 30:at + 30 + len(name)] == name
    data[at + 30:at + 30 + len(name)] = b"bands/0.3.0.0.0"
    path.write_bytes(bytes(data))
    report = validate(root, jobs=1, deep=True)
    assert codes_for(report, path) == ["cubes.corrupt-chunk"]
    assert "bands/0.2.0.0.0" in next(f.message for f in report.findings if f.path == str(path))


def test_thousands_of_members(root, monkeypatch):
    path = cube_path(root, "s1", ID0)
    members = read_members(path)
    members.update({f"junk/{i}": b"" for i in range(5000)})
    write_members(path, members)
    assert codes_for(validate(root, jobs=1, deep=True), path) == []
    from neuco_io.cube import members as safezip

    monkeypatch.setattr(safezip, "MAX_MEMBERS", 1000)
    assert codes_for(validate(root, jobs=1), path) == ["cubes.unreadable"]


# -- non-regular files ----------------------------------------------------------------------------
def _fifo(path: Path) -> None:
    if path.exists():
        path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("how", ["fifo", "symlink-to-fifo", "device"])
def test_a_fifo_or_device_named_like_a_cube(root, tmp_path, how):
    path = cube_path(root, "s1", ID0)
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "device":
        path.symlink_to("/dev/zero")
    else:
        _fifo(tmp_path / "pipe")
        path.symlink_to(tmp_path / "pipe")
    proc = run_cli("validate", root, "--format", "json", "-q", "--jobs", "1")
    assert_clean_exit(proc)
    found = [e for e in json.loads(proc.stdout)["errors"] if e["path"] == str(path)]
    assert [(e["code"], e["got"]) for e in found] == [("cubes.unreadable", "not-regular")]
    assert_clean_exit(run_cli("convert", root, tmp_path / "out", "--to", "webdataset", "-q", "--jobs", "1"))
    proc = run_cli("convert", root, tmp_path / "out2", "--to", "webdataset", "-q", "--jobs", "1", "--skip-invalid",
                   "--format", "json")
    assert_clean_exit(proc)


def test_a_fifo_named_like_a_label_file(root, tmp_path):
    label = root / "labels" / "height__regr.csv"
    _fifo(label)
    proc = run_cli("validate", root, "--format", "json", "-q", "--jobs", "1")
    assert_clean_exit(proc)
    found = [e for e in json.loads(proc.stdout)["errors"] if e["path"] == str(label)]
    assert [e["code"] for e in found] == ["labels.unreadable"] and "FIFO" in found[0]["message"]
    proc = run_cli("labels", "export", root, tmp_path / "labels-out")
    assert_clean_exit(proc)
    assert "height__regr.csv" in proc.stderr
    assert_clean_exit(run_cli("convert", root, tmp_path / "out", "--to", "webdataset", "-q", "--jobs", "1"))
    script = ("from neuco_io.loader import CubeDataset\nfrom neuco_io.tasks.labels import LabelFileError\n"
              f"try:\n    CubeDataset({str(root)!r}, tasks=['height'])\nexcept LabelFileError as exc:\n"
              "    print('refused', exc)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "PYTHONPATH": str(ROOT_DIR)})
    assert proc.stdout.startswith("refused") and "regular file" in proc.stdout, proc.stderr


def test_a_label_file_with_100000_columns_gets_a_short_warning(root):
    label = root / "labels" / "height__regr.csv"
    header = ["id", "label"] + [f"c{i}" for i in range(100_000)]
    rows = [",".join(header)] + [f"{loc_id},{n}" + "," * 100_000 for n, loc_id in enumerate(TINY_IDS)]
    label.write_text("\n".join(rows) + "\n")
    report = validate(root, jobs=1)
    found = [f for f in report.findings if f.path == str(label)]
    assert [f.code for f in found] == ["labels.extra-column"]
    assert len(found[0].message) < 500 and "100,000" in found[0].message
    assert len(json.dumps(found[0].got)) < 500


def test_a_label_file_without_id_and_many_columns_is_short(root):
    label = root / "labels" / "height__regr.csv"
    label.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n")
    found = [f for f in validate(root, jobs=1).findings if f.path == str(label)]
    assert [f.code for f in found] == ["labels.columns"] and len(found[0].message) < 500


def test_library_errors_name_the_file(root):
    path = cube_path(root, "s1", ID0)
    _fifo(path)
    with pytest.raises(CubeReadError) as err:
        Cube(path)
    assert err.value.path == str(path) and err.value.reason == "not-regular"
    assert isinstance(err.value, NeucoError)


# -- fuzzing ----------------------------------------------------------------------------------------
# Sources: cubes from `neuco-io sample` (both layouts) and the committed files of the original writer
# stack. Mutations: flipped and truncated bytes (mostly caught by the zip's CRC-32) and, inside a rewritten
# (CRC-valid) zip, flipped bytes in chunks and metadata documents and hostile values swapped into the
# metadata, so the metadata parser and the codecs see them.
FUZZ_SEED = int(os.environ.get("NEUCO_FUZZ_SEED", "20260412"))
FUZZ_CASES = int(os.environ.get("NEUCO_FUZZ_CASES", "300"))
"""Override both to fuzz longer: NEUCO_FUZZ_CASES=5000 pytest -k fuzzed_cubes tests/test_hostile_cubes.py"""
HOSTILE_VALUES = [None, -1, 0, 2**63, 10**12, 1.5, "x", "NaN", "", [], [[]], {}, {"id": "pickle"}, True,
                  [-1, 4], [10**9] * 5, ["sample"] * 100, "<U99999999", "|O", "|V8"]


@pytest.fixture(scope="module")
def fuzz_sources(tmp_path_factory) -> list[tuple[Path, str, str]]:
    """(cube, modality, layout) for every source cube."""
    base = tmp_path_factory.mktemp("fuzz-sources")
    write_sample(base / "down", locations=2, seed=3)
    write_sample(base / "v11", layout="v1.1", locations=2, samples_per_file=2, seed=4)
    found = []
    for root in (base / "down", ORIGINAL / "downstream", base / "v11", ORIGINAL / "v11"):
        layout = "downstream" if (root / "data").is_dir() else "v1.1"
        for path in sorted(root.rglob(f"*{spec.CUBE_SUFFIX}")):
            modality = path.parents[1 if layout == "downstream" else 0].name
            modality = {m.v11_folder: name for name, m in spec.MODALITIES.items()}.get(modality, modality)
            found.append((path, modality, layout))
    assert len(found) >= 20
    return found


def _set_random(doc, rng: random.Random) -> None:
    """Replace one value somewhere in a JSON document with a hostile one."""
    for _ in range(8):
        if not isinstance(doc, (dict, list)) or not doc:
            return
        key = rng.choice(sorted(doc)) if isinstance(doc, dict) else rng.randrange(len(doc))
        if rng.random() < 0.5 and isinstance(doc[key], (dict, list)) and doc[key]:
            doc = doc[key]
            continue
        doc[key] = rng.choice(HOSTILE_VALUES)
        return


def _flip(data: bytes, rng: random.Random, n: int) -> bytes:
    out = bytearray(data)
    for _ in range(n):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def mutate(source: Path, target: Path, rng: random.Random) -> str:
    """Write a damaged copy of `source` to `target`; returns what was done."""
    data = source.read_bytes()
    kind = rng.choice(["flip", "truncate", "chunk", "metadata-bytes", "metadata-value", "metadata-value"])
    if kind == "flip":
        target.write_bytes(_flip(data, rng, rng.randint(1, 16)))
    elif kind == "truncate":
        target.write_bytes(data[:rng.randrange(len(data))])
    else:
        members = read_members(source)
        if kind == "chunk":
            key = rng.choice(sorted(k for k in members if not k.rsplit("/", 1)[-1].startswith(".")))
            members[key] = _flip(members[key], rng, rng.randint(1, 8))
        elif kind == "metadata-bytes":
            key = rng.choice(sorted(k for k in members if k.rsplit("/", 1)[-1].startswith(".")))
            members[key] = _flip(members[key], rng, rng.randint(1, 4))
        else:
            meta = json.loads(members[".zmetadata"])
            _set_random(meta, rng)
            members[".zmetadata"] = json.dumps(meta).encode()
        write_members(target, members)
    return kind


def test_fuzzed_cubes_give_findings_or_cube_errors(fuzz_sources, tmp_path):
    rng = random.Random(FUZZ_SEED)
    kinds: dict[str, int] = {}
    outcomes = {"clean": 0, "findings": 0}
    for case in range(FUZZ_CASES):
        source, modality, layout = rng.choice(fuzz_sources)
        target = tmp_path / f"case{case % 4}" / modality / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        kind = mutate(source, target, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        where = f"case {case} ({kind} of {source.name})"
        cube_file = CubeFile(target, modality, "data" if layout == "downstream" else "train",
                             "part-000000" if layout == "downstream" else None)
        result = check_cube(CubeTask(cube_file, layout, deep=rng.random() < 0.5, probe_offset=True))
        outcomes["findings" if result.findings else "clean"] += 1
        assert all(f.path == str(target) for f in result.findings), where
        try:  # the reader as the loader and converters use it
            with Cube(target) as cube:
                for name in cube.array_names:
                    for index in cube.stored_chunks(name)[:4]:
                        cube.read_chunk(name, index)
                if spec.BANDS_VAR in cube.array_names and len(cube.shape(spec.BANDS_VAR)) == 5:
                    cube.read_location(0, [0])
                    sample_frames(cube, spec.BANDS_VAR, 0)
        except CubeError as exc:
            assert exc.path == str(target), where
        except IndexError:  # a selection outside a shape the damage made smaller: the caller's request
            pass
    assert set(kinds) == {"flip", "truncate", "chunk", "metadata-bytes", "metadata-value"}
    assert outcomes["findings"] > FUZZ_CASES // 2


def test_fuzzed_datasets_through_the_cli(fuzz_sources, tmp_path):
    """A few damaged datasets validated and converted by the CLI: exit 0 or 1, never a traceback."""
    rng = random.Random(FUZZ_SEED + 1)
    downstream = [s for s in fuzz_sources if s[2] == "downstream" and "original" not in str(s[0])]
    root = downstream[0][0].parents[3]
    for case in range(3):
        work = tmp_path / f"ds{case}"
        shutil.copytree(root, work)
        for path in sorted(work.rglob(f"*{spec.CUBE_SUFFIX}"))[::2]:
            mutate(path, path, rng)
        for args in (["validate", work, "--deep", "--format", "json", "-q", "--jobs", "1"],
                     ["convert", work, tmp_path / f"out{case}", "--to", "webdataset", "--skip-invalid", "-q",
                      "--jobs", "1"]):
            proc = run_cli(*args)
            assert proc.returncode in (0, 1), proc.stderr[-2000:]
            assert_clean_exit(proc, proc.returncode)
