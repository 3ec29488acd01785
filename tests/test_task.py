"""Custom tasks: import imagery (GeoTIFF and .npy), write labels, pack a bundle."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io import spec
from neuco_io.cli import main
from neuco_io.cube.reader import Cube
from neuco_io.errors import UsageError
from neuco_io.layout import discover
from neuco_io.loader import CubeDataset
from neuco_io.tasks.importer import import_task
from neuco_io.tasks.labels import read_task_labels
from neuco_io.tasks.pack import PackRefused, pack_task
from neuco_io.tasks.usertable import make_task_labels
from neuco_io.validators import validate

tifffile = pytest.importorskip("tifffile")

GEOKEYS = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)


def image(modality: str, seed: int, size: int = spec.SIZE) -> np.ndarray:
    mod = spec.MODALITIES[modality]
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (mod.n_bands, 4, 4))
    reps = -(-size // 4)
    field = np.kron(coarse, np.ones((1, reps, reps)))[:, :size, :size]
    if modality == "s1":
        return (-20 + 15 * field).astype(np.float32)
    return np.round(100 + 2500 * field).astype(np.uint16)


def write_tif(path: Path, data: np.ndarray, *, contiguous: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tags = [(33550, "d", 3, (10.0, 10.0, 0.0), True), (33922, "d", 6, (0, 0, 0, 500000.0, 4700000.0, 0), True),
            (34735, "H", len(GEOKEYS), GEOKEYS, True)]
    if contiguous:
        tifffile.imwrite(path, np.moveaxis(data, 0, -1), planarconfig="contig", extratags=tags)
    else:
        tifffile.imwrite(path, data, planarconfig="separate", extratags=tags)


def make_sources(folder: Path, ids: list[str], *, kind: str = "tif") -> None:
    for n, loc_id in enumerate(ids):
        for m, modality in enumerate(spec.DOWNSTREAM_MODALITIES):
            for season in spec.SEASONS:
                data = image(modality, n * 100 + m * 10 + spec.SEASONS.index(season))
                path = folder / loc_id / f"{modality}_{season}.{kind}"
                if kind == "tif":
                    write_tif(path, data, contiguous=(n % 2 == 1))
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, data)


def test_import_geotiffs_round_trip(tmp_path):
    src = tmp_path / "src"
    make_sources(src, ["field_1", "field_2", "field_3"])
    root = tmp_path / "task"
    result = import_task(src, root, pattern="{id}/{modality}_{season}.tif", locations=tmp_path / "where.json")
    assert sorted(result.imported) == ["field_1", "field_2", "field_3"] and not result.refused
    report = validate(root, jobs=1, deep=True)
    assert report.ok, [f.to_dict() for f in report.errors]
    assert {f.code for f in report.findings} == {"layout.missing-optional"}  # no labels/ yet
    with Cube(root / "data/s2l1c/part-000000/field_2.zarr.zip") as cube:
        np.testing.assert_array_equal(cube.read("bands", (0, 2)), image("s2l1c", 100 + 10 + 2))
        assert cube.dtype("bands") == np.int16
        assert cube.array_names == ["band", "bands", "sample", "time", "x", "y"]  # no georeferencing
    sample = CubeDataset(root, return_id=True)[0]
    assert sample["id"] == "field_1" and sample["data"].shape == (4, 27, 264, 264)
    where = json.loads((tmp_path / "where.json").read_text())
    assert where["field_1"]["s1"]["spring"]["epsg"] == 32633
    assert where["field_1"]["s1"]["spring"]["transform"][2] == 500000.0


def test_import_from_a_table_of_npy_files_with_hashed_ids(tmp_path):
    src = tmp_path / "src"
    make_sources(src, ["a", "b"], kind="npy")
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "modality", "season", "path"])
        for path in sorted(src.rglob("*.npy")):
            modality, season = path.stem.split("_")
            writer.writerow([path.parent.name, modality, spec.SEASONS.index(season), path.relative_to(tmp_path)])
    root = tmp_path / "task"
    result = import_task(table, root, ids="hash")
    assert len(result.imported) == 2 and all(spec.PUBLIC_ID_RE.match(i) for i in result.imported)
    assert result.mapping == tmp_path / "task.ids.csv" and result.mapping.is_file()  # beside ROOT, not inside
    with result.mapping.open() as fh:
        mapping = {r["source_id"]: r["id"] for r in csv.DictReader(fh)}
    assert sorted(mapping.values()) == sorted(result.imported)
    assert validate(root, jobs=1).errors == []
    again = import_task(table, root, ids="hash")  # a rerun skips the finished cubes
    assert again.imported == [] and sorted(again.skipped) == sorted(result.imported)
    with pytest.raises(UsageError, match="inside ROOT"):
        import_task(table, root, ids="hash", mapping=root / "ids.csv")


def test_refusals_are_per_location_and_the_rest_goes_on(tmp_path):
    src = tmp_path / "src"
    make_sources(src, ["good", "no_winter", "bands", "size", "broken", "float_s2"], kind="npy")
    (src / "no_winter" / "s1_winter.npy").unlink()
    np.save(src / "bands" / "s2l2a_summer.npy", image("s2l1c", 1))  # 13 bands for L2A
    np.save(src / "size" / "s1_fall.npy", image("s1", 2, size=256))
    (src / "broken" / "s2l1c_spring.npy").write_bytes(b"not numpy")
    np.save(src / "float_s2" / "s2l1c_spring.npy", image("s2l1c", 3).astype(np.float32) + 0.5)
    root = tmp_path / "task"
    runner = CliRunner()
    result = runner.invoke(main, ["task", "import", str(src), str(root), "--pattern", "{id}/{modality}_{season}.npy",
                                  "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["ids"] == ["good"]
    reasons = {r["id"]: r["reason"] for r in data["refused"]}
    assert "missing s1 winter" in reasons["no_winter"]
    assert "13 bands" in reasons["bands"]
    assert "256x256" in reasons["size"] and "--resample" in reasons["size"]
    assert "not a readable .npy" in reasons["broken"]
    assert "fractional" in reasons["float_s2"]
    # resampling makes the odd-sized location importable
    fixed = import_task(src, root, pattern="{id}/{modality}_{season}.npy", resample_method="bilinear")
    assert "size" in fixed.imported and "good" in fixed.skipped
    with Cube(root / "data/s1/part-000000/size.zarr.zip") as cube:
        assert cube.shape("bands") == (1, 4, 2, 264, 264)


def test_import_refuses_ids_the_evaluator_strips_and_flags_ids_it_changes(tmp_path):
    """`.`/`..` and ids holding `.zarr` are refused per location; ids a submission would hand to the evaluator
    changed (all digits with leading zeros) are imported but flagged, and the command exits 1."""
    src = tmp_path / "src"
    make_sources(src, ["one"], kind="npy")
    table = tmp_path / "sources.csv"
    rows = ["id,modality,season,path"]
    for loc_id in (".", "..", "a.zarr", "b.zarr_1", "000123", "plot_1"):
        rows += [f"{loc_id},{m},{season},{src / 'one' / f'{m}_{season}.npy'}" for m in spec.DOWNSTREAM_MODALITIES
                 for season in spec.SEASONS]
    table.write_text("\n".join(rows) + "\n")
    root = tmp_path / "task"
    result = CliRunner().invoke(main, ["task", "import", str(table), str(root), "--format", "json", "--quiet"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert sorted(data["ids"]) == ["000123", "plot_1"]
    reasons = {r["id"]: r["reason"] for r in data["refused"]}
    assert sorted(reasons) == [".", "..", "a.zarr", "b.zarr_1"]
    assert "folder" in reasons["."] and "`.zarr`" in reasons["b.zarr_1"]
    # task labels writes the file and flags the id
    user = tmp_path / "labels.csv"
    user.write_text("id,label\n000123,1.5\nplot_1,2.5\n")
    labelled = make_task_labels(root, "height", "regr", user)
    assert labelled.ok and labelled.path is not None
    assert [(f.code, f.id, f.severity.value) for f in labelled.findings] == [
        ("ids.evaluator-changes", "000123", "warning")]
    assert [(r["id"], "123" in r["reason"]) for r in data["flagged"]] == [("000123", True)]
    assert {f.code for f in validate(root, jobs=1).errors} == {"ids.evaluator-changes"}
    text = CliRunner().invoke(main, ["task", "import", str(table), str(root)])
    assert "flagged 000123" in text.output and text.exit_code == 1


def test_part_folders_hold_at_most_1000(tmp_path, monkeypatch):
    monkeypatch.setattr(spec, "MAX_FILES_PER_PART", 2)
    src = tmp_path / "src"
    make_sources(src, ["a", "b", "c"], kind="npy")
    root = tmp_path / "task"
    import_task(src, root, pattern="{id}/{modality}_{season}.npy")
    assert sorted(p.name for p in (root / "data" / "s1").iterdir()) == ["part-000000", "part-000001"]
    assert validate(root, jobs=1).errors == []


@pytest.fixture
def imported(tmp_path):
    src = tmp_path / "src"
    make_sources(src, ["p1", "p2", "p3", "p4"], kind="npy")
    root = tmp_path / "task"
    import_task(src, root, pattern="{id}/{modality}_{season}.npy", ids="hash")
    return root


def test_task_labels_mapped_validated_written(imported, tmp_path):
    user = tmp_path / "heights.csv"
    user.write_bytes(b"\xef\xbb\xbfplot,height,note\r\np1,1.5,x\r\np2,2.5,y\r\np3,,z\r\np1,1.50,dup\r\n")
    result = make_task_labels(imported, "height", "regression", user, id_col="plot", label_col="height")
    assert result.ok and result.path == imported / "labels" / "height__regression.csv"
    labels = read_task_labels(result.path)
    mapping = {r["source_id"]: r["id"] for r in csv.DictReader((tmp_path / "task.ids.csv").open())}
    assert labels == {mapping["p1"]: 1.5, mapping["p2"]: 2.5}
    assert result.summary["skipped_empty"] == 1 and result.summary["identical_duplicates"] == 1
    assert validate(imported, jobs=1).ok
    # conflicting duplicates and unknown ids are errors with their rows; nothing is written
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\np1,1\np1,0\nnope,1\np2,0\n")
    result = make_task_labels(imported, "water", "classification", bad)
    assert not result.ok and result.path is None
    assert {(f.code, f.row) for f in result.findings} >= {("labels.duplicate-id", 3), ("labels.unknown-id", 4)}
    assert not (imported / "labels" / "water__classification.csv").exists()
    single = tmp_path / "single.csv"
    single.write_text("id,label\np1,1\np2,1\n")
    assert "labels.single-class" in {f.code for f in make_task_labels(imported, "w2", "classification",
                                                                        single).findings}


@pytest.mark.parametrize("task_type", list(spec.TASK_TYPES))
def test_task_labels_writes_each_type_the_evaluator_accepts(imported, tmp_path, task_type):
    user = tmp_path / "t.csv"
    user.write_text("id,label\np1,1\np2,0\n")
    result = CliRunner().invoke(main, ["task", "labels", "t", str(imported), "--type", task_type, "--from", str(user),
                                       "--quiet", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.output)["path"]).name == f"t__{task_type}.csv"
    assert validate(imported, jobs=1).ok


@pytest.mark.parametrize("task_type", ["reg", "REGR", "class"])
def test_task_labels_refuses_a_type_the_evaluator_refuses(imported, tmp_path, task_type):
    user = tmp_path / "t.csv"
    user.write_text("id,label\np1,1\np2,0\n")
    result = CliRunner().invoke(main, ["task", "labels", "t", str(imported), "--type", task_type, "--from",
                                       str(user)])
    assert result.exit_code == 2 and "regr" in result.output
    assert not (imported / "labels").exists() or not list((imported / "labels").iterdir())
    with pytest.raises(UsageError, match="accepts exactly"):
        make_task_labels(imported, "t", task_type, user)


def test_task_pack_bundle_and_refusal(imported, tmp_path):
    user = tmp_path / "heights.csv"
    user.write_text("id,label\np1,1.5\np2,2.5\np4,0.5\n")
    assert make_task_labels(imported, "height", "regression", user).ok
    for out in (tmp_path / "bundle", tmp_path / "bundle.zip"):
        result = pack_task(imported, "height", out, validation=validate(imported, layout="downstream"),
                           description="Tree heights", licence="CC-BY-4.0", source="me")
        assert result.locations == 3
        if out.suffix == ".zip":
            with zipfile.ZipFile(out) as zf:
                names = set(zf.namelist())
                manifest = json.loads(zf.read("manifest.json"))
                card = zf.read("README.md").decode()
        else:
            names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
            manifest = json.loads((out / "manifest.json").read_text())
            card = (out / "README.md").read_text()
        assert "labels/height__regression.csv" in names and "README.md" in names
        assert sum(1 for n in names if n.endswith(".zarr.zip")) == 9  # 3 locations x 3 modalities
        assert {f["path"] for f in manifest["files"]} | {"manifest.json"} == names
        assert "CC-BY-4.0" in card and "Locations: 3" in card
    if True:  # the unpacked folder is itself a valid dataset
        assert validate(tmp_path / "bundle", jobs=1).ok
    # a georeferencing leak is refused, and nothing is written
    from neuco_io.cube.writer import write_cube

    victim = next((imported / "data" / "s1").rglob("*.zarr.zip"))
    with Cube(victim) as cube:
        bands, sid = cube.read("bands"), cube.sample_ids
    write_cube(victim, "s1", bands, sid, overwrite=True, extra={"center_lat": (("sample",), np.array([51.0]), {})})
    with pytest.raises(PackRefused, match=r"cubes\.georef"):
        pack_task(imported, "height", tmp_path / "leaky.zip", validation=validate(imported, layout="downstream"))
    assert not (tmp_path / "leaky.zip").exists()
    result = CliRunner().invoke(main, ["task", "pack", str(imported), "--task", "height", "--out",
                                       str(tmp_path / "leaky2")])
    assert result.exit_code == 1 and "cubes.georef" in result.output
    assert discover(imported).layout == "downstream"
