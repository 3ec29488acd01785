"""One dataset per rule: each breaks exactly that rule and must produce its finding code."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.writer import CubeWriter, write_cube
from neuco_io.findings import CHECKS, CODES
from neuco_io.validators import validate

from helpers import (
    TINY_IDS,
    cube_path,
    edit_cube,
    edit_metadata,
    read_members,
    set_chunk,
    tiny_bands,
    write_location,
    write_members,
    write_v11_file,
)

ID0, ID1 = TINY_IDS[0], TINY_IDS[1]


def run(root, **kw):
    return validate(root, jobs=1, **kw)


# -- downstream breakers: (root) -> None ---------------------------------------------
def missing_modality_folder(root):
    shutil.rmtree(root / "data" / "s2l2a")


def missing_labels(root):
    shutil.rmtree(root / "labels")


def unknown_folder(root):
    (root / "data" / "s2rgb").mkdir()


def odd_part_name(root):
    (root / "data" / "s1" / "part-000000").rename(root / "data" / "s1" / "chunk-0")


def part_too_large(root, monkeypatch):
    monkeypatch.setattr(spec, "MAX_FILES_PER_PART", 3)


def outside_part(root):
    shutil.copy(cube_path(root, "s1", ID0), root / "data" / "s1" / f"{ID0}.zarr.zip")


def bad_file_name(root):
    write_location(root, "bad id", seed=9)


def stray_file(root):
    (root / "data" / "s1" / "part-000000" / "notes.txt").write_text("hi")


def zero_byte(root):
    cube_path(root, "s1", ID0).write_bytes(b"")


def truncated(root):
    path = cube_path(root, "s2l1c", ID0)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_zip(root):
    cube_path(root, "s2l2a", ID0).write_bytes(np.random.default_rng(0).bytes(5000))


def directory_cube(root):
    path = cube_path(root, "s1", ID1)
    path.unlink()
    path.mkdir()


def not_zarr(root):
    write_members(cube_path(root, "s1", ID0), {"hello.txt": b"not a zarr group"})


def zarr_v3(root):
    """A Zarr format-3 group in the zip, as zarr 3 writes one (written by hand: zarr 2.18 cannot)."""
    write_members(cube_path(root, "s1", ID0),
                  {"zarr.json": json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()})


def pickle_codec(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: edit_metadata(m, "band/.zarray", lambda d: d.update(
        compressor={"id": "pickle", "protocol": 5})))


def huge_chunks(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: edit_metadata(m, "bands/.zarray", lambda d: d.update(
        shape=[1, 4, 2, 15000, 15000], chunks=[1, 1, 2, 15000, 15000])))


def not_consolidated(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: m.pop(".zmetadata"))


def deflated(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: None, compression=zipfile.ZIP_DEFLATED)


def missing_bands(root):
    def edit(members):
        for key in [k for k in members if k.startswith("bands/")]:
            members["data/" + key[len("bands/"):]] = members.pop(key)
        meta = json.loads(members[".zmetadata"])
        meta["metadata"] = {k.replace("bands/", "data/"): v for k, v in meta["metadata"].items()}
        members[".zmetadata"] = json.dumps(meta).encode()
    edit_cube(cube_path(root, "s1", ID0), edit)


def wrong_dims(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: edit_metadata(
        m, "bands/.zattrs", lambda d: d.update(_ARRAY_DIMENSIONS=["sample", "band", "time", "y", "x"])))


def three_timestamps(root):
    path = cube_path(root, "s1", ID0)
    with CubeWriter(path, "s1", [ID0], times=3, overwrite=True, fsync=False) as w:
        w.write_sample(0, tiny_bands("s1", 1, times=3)[0])


def band_order(root):
    path = cube_path(root, "s2l2a", ID0)
    names = list(spec.MODALITIES["s2l2a"].bands)
    names[0], names[1] = names[1], names[0]
    with CubeWriter(path, "s2l2a", [ID0], band_names=names, overwrite=True, fsync=False) as w:
        w.write_sample(0, tiny_bands("s2l2a", 1)[0])


def float_s2(root):
    write_cube(cube_path(root, "s2l1c", ID0), "s2l1c", tiny_bands("s2l1c", 1, dtype="float32"), [ID0],
               overwrite=True, fsync=False)


def sample_mismatch(root):
    write_cube(cube_path(root, "s1", ID0), "s1", tiny_bands("s1", 1), [ID1], overwrite=True, fsync=False)


def time_coords(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: set_chunk(m, "time/0", np.arange(1, 5, dtype=np.int64)))


def georef_variable(root):
    write_cube(cube_path(root, "s1", ID0), "s1", tiny_bands("s1", 1), [ID0], overwrite=True, fsync=False,
               extra={"center_lat": (("sample",), np.array([48.1]), {})})


def georef_coordinates(root):
    edit_cube(cube_path(root, "s1", ID0),
              lambda m: set_chunk(m, "x/0", 500000 + 10 * np.arange(spec.SIZE, dtype=np.int64)))


def georef_attrs(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: edit_metadata(m, ".zattrs", lambda d: d.update(crs="EPSG:32633")))


def extra_variable(root):
    write_cube(cube_path(root, "s1", ID0), "s1", tiny_bands("s1", 1), [ID0], overwrite=True, fsync=False,
               extra={"quality": (("sample", "time"), np.ones((1, 4), dtype=np.uint8), {})})


def time_spanning_chunks(root):
    path = cube_path(root, "s1", ID0)
    members = read_members(path)
    data = tiny_bands("s1", 1)
    for t in range(4):
        members.pop(f"bands/0.{t}.0.0.0")
    set_chunk(members, "bands/0.0.0.0.0", data)
    edit_metadata(members, "bands/.zarray", lambda d: d.update(chunks=[1, 4, 2, 264, 264]))
    write_members(path, members)


def s2_with_offset(root):
    for loc_id in TINY_IDS:
        path = cube_path(root, "s2l1c", loc_id)
        with CubeWriter(path, "s2l1c", [loc_id], overwrite=True, fsync=False) as w:
            w.write_sample(0, tiny_bands("s2l1c", 3, offset=True)[0])


def missing_cube(root):
    cube_path(root, "s2l2a", ID1).unlink()


def duplicate_part(root):
    target = cube_path(root, "s1", ID0, part="part-000001")
    target.parent.mkdir()
    shutil.copy(cube_path(root, "s1", ID0), target)


def numeric_ids(root):
    """Locations named like numbers with leading zeros: a submission hands them to the evaluator changed."""
    for loc_id in ("000123", "000124"):
        write_location(root, loc_id, seed=7)


def label(name, text):
    def breaker(root):
        (root / "labels" / name).write_text(text)
    breaker.__name__ = f"label_{name}"
    return breaker


def label_bytes(name, data):
    def breaker(root):
        (root / "labels" / name).write_bytes(data)
    return breaker


def ids_with(*pairs):
    return "id,label\n" + "".join(f"{i},{v}\n" for i, v in pairs)


OK_CLS = [(ID0, 0), (ID1, 1)]

DOWNSTREAM_CASES = [
    (missing_modality_folder, "layout.missing-folder", set()),
    (missing_labels, "layout.missing-optional", set()),
    (unknown_folder, "layout.unknown-folder", set()),
    (odd_part_name, "layout.part-name", set()),
    (part_too_large, "layout.part-too-large", set()),
    (outside_part, "layout.outside-part", set()),
    (bad_file_name, "layout.file-name", set()),
    (stray_file, "layout.stray-file", set()),
    (zero_byte, "cubes.unreadable", set()),
    (truncated, "cubes.unreadable", set()),
    (corrupt_zip, "cubes.unreadable", set()),
    (directory_cube, "cubes.unreadable", set()),
    (not_zarr, "cubes.not-zarr", set()),
    (zarr_v3, "cubes.not-zarr", set()),
    (pickle_codec, "cubes.codec", set()),
    (huge_chunks, "cubes.too-large", set()),
    (not_consolidated, "cubes.not-consolidated", set()),
    (deflated, "cubes.zip-compressed", set()),
    (missing_bands, "cubes.missing-bands", {"cubes.extra-variable"}),
    (wrong_dims, "cubes.dims", set()),
    (three_timestamps, "cubes.shape", set()),
    (band_order, "cubes.band-names", set()),
    (float_s2, "cubes.dtype", set()),
    (sample_mismatch, "cubes.sample-id", set()),
    (time_coords, "cubes.coords", set()),
    (georef_variable, "cubes.georef", set()),
    (georef_coordinates, "cubes.georef", set()),
    (georef_attrs, "cubes.georef", set()),
    (extra_variable, "cubes.extra-variable", set()),
    (time_spanning_chunks, "cubes.chunking", set()),
    (s2_with_offset, "cubes.s2-offset", set()),
    (missing_cube, "ids.missing-modality", set()),
    (duplicate_part, "ids.duplicate", set()),
    (numeric_ids, "ids.evaluator-changes", set()),
    (label("misc.csv", ids_with(*OK_CLS)), "labels.file-name", set()),
    (label("misc__weird.csv", ids_with(*OK_CLS)), "labels.task-type", set()),
    (label("misc__reg.csv", ids_with((ID0, 0.5), (ID1, 1.5))), "labels.task-type", set()),
    (label("misc__CLS.csv", ids_with(*OK_CLS)), "labels.task-type", set()),
    (label_bytes("x__cls.csv", b"id,label\n\xff\xfe,1\n"), "labels.unreadable", set()),
    (label_bytes("x__cls.csv", b"\xef\xbb\xbf" + ids_with(*OK_CLS).encode()), "labels.bom", set()),
    (label("x__cls.csv", "ident,label\na,1\n"), "labels.columns", set()),
    (label("x__cls.csv", f"id,label,note\n{ID0},0,a\n{ID1},1,b\n"), "labels.extra-column", set()),
    (label("x__cls.csv", ids_with((ID0 + ".zarr.zip", 0), (ID1, 1))), "labels.id-format", {"labels.unknown-id"}),
    (label("x__cls.csv", ids_with((" " + ID0, 0), (ID1, 1))), "labels.id-format", {"labels.unknown-id"}),
    (label("x__cls.csv", ids_with(("a.zarr_1", 0), (ID1, 1))), "labels.id-format", {"labels.unknown-id"}),
    (label("x__cls.csv", ids_with(("", 0), (ID1, 1), (ID0, 0))), "labels.id-format", {"labels.unknown-id"}),
    (label("x__cls.csv", ids_with((ID0, 0), (ID1, 1), (ID0, 0))), "labels.duplicate-id", set()),
    (label("x__cls.csv", ids_with((ID0, 0), (ID1, 1), ("ffff", 0))), "labels.unknown-id", set()),
    (label("x__regr.csv", ids_with((ID0, 0.5), (ID1, "1.5x"), (TINY_IDS[2], 2))), "labels.not-numeric", set()),
    (label("x__regr.csv", ids_with((ID0, 0.5), (ID1, "nan"), (TINY_IDS[2], 2))), "labels.not-finite", set()),
    (label("x__regr.csv", ids_with((ID0, 0.5), (ID1, "inf"), (TINY_IDS[2], 2))), "labels.not-finite", set()),
    (label("x__cls.csv", ids_with((ID0, 0), (ID1, 2), (TINY_IDS[2], 1))), "labels.class-value", set()),
    (label("x__cls.csv", ids_with((ID0, 1), (ID1, 1))), "labels.single-class", set()),
    (label("x__regression.csv", ids_with((ID0, 5), (ID1, 5.0))), "labels.constant", set()),
    (label("x__regression.csv", ids_with((ID0, ""), (ID1, ""))), "labels.no-labels", set()),
]


@pytest.mark.parametrize(("breaker", "code", "also"), DOWNSTREAM_CASES,
                         ids=[f"{c[1]}-{c[0].__name__}" for c in DOWNSTREAM_CASES])
def test_downstream_rule(downstream, monkeypatch, breaker, code, also):
    if breaker is part_too_large:
        breaker(downstream, monkeypatch)
    else:
        breaker(downstream)
    report = run(downstream)
    assert code in report.codes(), [f.to_dict() for f in report.findings]
    unexpected = {f.code for f in report.findings} - {code} - also
    assert not unexpected, [f.to_dict() for f in report.findings if f.code in unexpected]
    assert report.ok == (CODES[code].severity.value == "warning")
    for finding in report.findings:
        assert finding.path and finding.message


def test_unreadable_files_each_give_one_finding(downstream):
    zero_byte(downstream)
    truncated(downstream)
    corrupt_zip(downstream)
    directory_cube(downstream)
    report = run(downstream)
    unreadable = [f for f in report.findings if f.code == "cubes.unreadable"]
    assert len(unreadable) == 4
    assert {f.got for f in unreadable} == {"empty", "not-zip", "directory"}
    assert len({f.path for f in unreadable}) == 4
    assert report.codes() == {"cubes.unreadable"}


# -- deep checks ------------------------------------------------------------------------
def corrupt_chunk(root):
    # Time 2: the metadata-level offset probe only decodes time 0.
    edit_cube(cube_path(root, "s2l1c", ID0), lambda m: m.update({"bands/0.2.0.0.0": m["bands/0.2.0.0.0"][:200]}))


def missing_chunk(root):
    edit_cube(cube_path(root, "s1", ID0), lambda m: m.pop("bands/0.1.0.0.0"))


def nan_timestamp(root):
    bands = tiny_bands("s1", 2)
    bands[0, 3] = np.nan
    write_cube(cube_path(root, "s1", ID0), "s1", bands, [ID0], overwrite=True, fsync=False)


def zero_timestamp(root):
    bands = tiny_bands("s2l2a", 2)
    bands[0, 0] = 0
    write_cube(cube_path(root, "s2l2a", ID0), "s2l2a", bands, [ID0], overwrite=True, fsync=False)


def nan_in_s2(root):
    bands = tiny_bands("s2l2a", 2, dtype="float32")
    bands[0, 1, 3, 10, 10] = np.inf
    write_cube(cube_path(root, "s2l2a", ID0), "s2l2a", bands, [ID0], overwrite=True, fsync=False)


DEEP_CASES = [
    (corrupt_chunk, "cubes.corrupt-chunk", set()),
    (missing_chunk, "cubes.missing-chunk", {"cubes.empty-timestamp"}),
    (nan_timestamp, "cubes.empty-timestamp", set()),
    (zero_timestamp, "cubes.empty-timestamp", set()),
    (nan_in_s2, "cubes.nonfinite", {"cubes.dtype"}),
]


@pytest.mark.parametrize(("breaker", "code", "also"), DEEP_CASES, ids=[c[1] for c in DEEP_CASES])
def test_deep_rule(downstream, breaker, code, also):
    breaker(downstream)
    shallow = run(downstream)
    assert code not in shallow.codes()
    report = run(downstream, deep=True)
    assert code in report.codes(), [f.to_dict() for f in report.findings]
    assert report.codes() - {code} - also == set()


# -- v1.1 ---------------------------------------------------------------------------------
def v11_reordered(root):
    write_v11_file(root, "train", 1, ["0000001", "0000002"], order={"s1": ["0000002", "0000001"]})


def v11_other_samples(root):
    write_v11_file(root, "train", 1, ["0000001", "0000002"], order={"s2l2a": ["0000001", "0000009"]})


def v11_duplicate_sample_in_file(root):
    write_v11_file(root, "train", 1, ["0000001", "0000001"])


def v11_sample_in_two_files(root):
    write_v11_file(root, "train", 2, ["0000001", "0000004"])


def v11_missing_file(root):
    (root / "train" / "S1GRD" / spec.v11_file_name("train", 2)).unlink()


def v11_wrong_split_name(root):
    src = root / "train" / "S1GRD" / spec.v11_file_name("train", 2)
    for folder in ("S1GRD", "S2L1C", "S2L2A"):
        src = root / "train" / folder / spec.v11_file_name("train", 2)
        src.rename(src.with_name(spec.v11_file_name("val", 2)))
    lst = root / "splits" / "ssl4eos12_train.txt"
    lst.write_text(lst.read_text().replace(spec.v11_file_name("train", 2), spec.v11_file_name("val", 2)))


def v11_unlisted(root):
    lst = root / "splits" / "ssl4eos12_train.txt"
    lst.write_text(spec.v11_file_name("train", 1) + "\n")


def v11_listed_missing(root):
    lst = root / "splits" / "ssl4eos12_val.txt"
    lst.write_text(lst.read_text() + spec.v11_file_name("val", 7) + "\n")


def v11_listed_twice(root):
    lst = root / "splits" / "ssl4eos12_val.txt"
    lst.write_text(lst.read_text() * 2)


def v11_no_offset(root):
    for split, number, ids in (("train", 1, ["0000001", "0000002"]), ("train", 2, ["0000003", "0000004"])):
        write_v11_file(root, split, number, ids, offset=False)


def v11_missing_split_list(root):
    (root / "splits" / "ssl4eos12_val.txt").unlink()


def v11_unknown_modality(root):
    (root / "train" / "DEM").mkdir()


def v11_missing_modality_folder(root):
    shutil.rmtree(root / "val" / "S2L1C")


V11_CASES = [
    (v11_reordered, "ids.sample-mismatch", set()),
    (v11_other_samples, "ids.sample-mismatch", set()),
    (v11_duplicate_sample_in_file, "cubes.duplicate-sample", set()),
    (v11_sample_in_two_files, "ids.duplicate", set()),
    (v11_missing_file, "ids.missing-modality", {"splits.missing-file"}),
    (v11_wrong_split_name, "layout.file-name", set()),
    (v11_unlisted, "splits.unlisted", set()),
    (v11_listed_missing, "splits.missing-file", set()),
    (v11_listed_twice, "splits.duplicate", set()),
    (v11_no_offset, "cubes.s2-offset", set()),
    (v11_missing_split_list, "layout.missing-optional", set()),
    (v11_unknown_modality, "layout.unknown-folder", set()),
    (v11_missing_modality_folder, "layout.missing-folder", set()),
]


@pytest.mark.parametrize(("breaker", "code", "also"), V11_CASES, ids=[f"{c[1]}-{c[0].__name__}" for c in V11_CASES])
def test_v11_rule(v11, breaker, code, also):
    breaker(v11)
    report = run(v11)
    assert code in report.codes(), [f.to_dict() for f in report.findings]
    unexpected = report.codes() - {code} - also
    assert not unexpected, [f.to_dict() for f in report.findings if f.code in unexpected]


def test_every_code_is_exercised():
    covered = {c[1] for c in DOWNSTREAM_CASES + DEEP_CASES + V11_CASES}
    assert covered == {code for code, c in CODES.items() if c.check in CHECKS}  # validate's codes


def test_summary_bytes_count_every_cube_file_once(downstream):
    """Sizes come from the workers for cubes that open, and from the file system for those that do not."""
    (downstream / "data" / "s1" / "part-000000" / "junk.zarr.zip").write_bytes(b"not a zip, 23 bytes long")
    summary = validate(downstream, jobs=1).summary
    assert summary["bytes"] == sum(p.stat().st_size for p in downstream.rglob("*.zarr.zip"))
