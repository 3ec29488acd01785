"""One reading of a label folder into tasks (`dataset_tasks`), and its unknown-task error at every entry point."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import convert
from neuco_io.errors import UsageError
from neuco_io.layout import discover
from neuco_io.tasks.labels import LabelFileError
from neuco_io.tasks.tasklist import dataset_tasks

from helpers import ORIGINAL

DOWNSTREAM = ORIGINAL / "downstream"
KNOWN = ["fixture_height", "fixture_subset", "fixture_water"]


def _folder(tmp_path, files: dict[str, str]):
    folder = tmp_path / "labels"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_strict_refuses_a_file_that_is_no_task_unless_wanted_leaves_it_out(tmp_path):
    folder = _folder(tmp_path, {"height__regr.csv": "id,label\na,1\n", "water__reg.csv": "id,label\nb,0\n",
                                "notes.csv": "x\n"})
    with pytest.raises(LabelFileError, match=r"notes\.csv: not named <task>__<type>\.csv; pass --tasks to leave "):
        dataset_tasks(folder, option="--tasks")
    found = dataset_tasks(folder, ["water", "height"], option="--tasks")
    # `reg` plainly means `regr`: a task, carried with the type as written
    assert {t: (f.name.type, f.labels()) for t, f in found.items()} == {
        "height": ("regr", {"a": 1.0}), "water": ("reg", {"b": 0.0})}
    assert list(dataset_tasks(folder, strict=False)) == ["height", "water"]


def test_a_type_that_means_nothing_is_refused_when_strict_and_kept_when_lenient(tmp_path):
    folder = _folder(tmp_path, {"height__regr.csv": "id,label\na,1\n", "odd__xyz.csv": "id,label\nb,2\n"})
    for wanted in (None, ["odd"]):  # wanted cannot leave out the file of a wanted task
        with pytest.raises(LabelFileError, match=r"odd__xyz\.csv: task type 'xyz'.*pass --tasks to leave it out"):
            dataset_tasks(folder, wanted, option="--tasks")
    assert list(dataset_tasks(folder, ["height"])) == ["height"]
    lenient = dataset_tasks(folder, strict=False)
    assert lenient["odd"].labels() == {"b": 2.0} and lenient["odd"].name.kind is None


def test_two_files_of_one_task_are_refused_when_strict_and_the_first_wins_when_lenient(tmp_path):
    folder = _folder(tmp_path, {"water__cls.csv": "id,label\na,1\n", "water__regr.csv": "id,label\na,0.5\n",
                                "height__regr.csv": "id,label\na,3\n"})
    with pytest.raises(LabelFileError, match=r"water__regr\.csv: task 'water' also comes from water__cls\.csv"):
        dataset_tasks(folder)
    assert list(dataset_tasks(folder, ["height"])) == ["height"]  # a task left out is not read
    lenient = dataset_tasks(folder, strict=False)
    assert lenient["water"].path.name == "water__cls.csv" and lenient["water"].labels() == {"a": 1.0}


@pytest.mark.parametrize("strict", [True, False])
def test_an_unknown_wanted_task_names_the_closest_and_every_known_task(strict):
    ds = discover(DOWNSTREAM, "downstream")
    with pytest.raises(UsageError) as info:
        dataset_tasks(ds, ["fixture_height", "fixture_heigth", "zzz"], strict=strict, option="--tasks")
    text = str(info.value)
    assert text.startswith("--tasks: unknown task 'fixture_heigth' (did you mean 'fixture_height'?), 'zzz' in ")
    assert str(DOWNSTREAM / "labels") in text and text.endswith(f"known tasks: {', '.join(KNOWN)}")
    assert list(dataset_tasks(ds, ["fixture_water"], strict=strict)) == ["fixture_water"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasklist") / "out"
    convert(DOWNSTREAM, out, to="parquet", jobs=1)
    return out


@pytest.mark.parametrize("command", [
    lambda tmp, out: ["convert", str(DOWNSTREAM), str(tmp / "shards"), "--to", "webdataset", "--jobs", "1",
                      "--tasks", "fixture_heigth"],
    lambda tmp, out: ["labels", "export", str(DOWNSTREAM), str(tmp / "exported"), "--tasks", "fixture_heigth"],
    lambda tmp, out: ["labels", "export", str(out), str(tmp / "exported"), "--tasks", "fixture_heigth"],
    lambda tmp, out: ["task", "pack", str(DOWNSTREAM), "--task", "fixture_heigth", "--out", str(tmp / "b.zip"),
                      "--jobs", "1"],
], ids=["convert", "export-dataset", "export-output", "pack"])
def test_every_entry_point_refuses_an_unknown_task_with_a_suggestion(tmp_path, converted, command):
    result = CliRunner().invoke(main, [*command(tmp_path, converted), "--format", "json", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "'fixture_heigth' (did you mean 'fixture_height'?)" in result.output
    assert "fixture_subset" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_submission_ids_of_a_label_folder_are_every_task_s_labelled_ids(tmp_path):
    from neuco_io.submission.check import expected_ids
    from neuco_io.tasks.labels import read_task_labels

    ids = set().union(*(read_task_labels(p) for p in (DOWNSTREAM / "labels").glob("*.csv")))
    assert ids and expected_ids(labels=DOWNSTREAM / "labels") == ids
    folder = _folder(tmp_path, {"notes.csv": "x\n", "t__regr.csv": "id,label\na,1\nb,\n"})
    assert expected_ids(labels=folder) == {"a"}  # not a task file: passed over; empty labels skipped
