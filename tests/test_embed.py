"""`neuco-io embed` and `neuco-io labels export`, end to end."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import convert
from neuco_io.embed import EmbedError, MeanEncoder, embed
from neuco_io.errors import UsageError
from neuco_io.tasks.labels import read_task_labels

from helpers import ORIGINAL


def evaluator_view(path: Path, labels: dict[str, float], dim: int) -> np.ndarray:
    """Load a submission the way NeuCo-Bench's `load_submission` does, and insist nothing was coerced."""
    df = pd.read_csv(path)
    assert "id" in df.columns
    df["id"] = df["id"].astype(str).str.replace(".zarr.zip", "", regex=False).str.replace(".zarr", "", regex=False)
    df = df.set_index("id")
    digit = sorted((c for c in df.columns if str(c).isdigit()), key=int)
    assert digit == [str(i) for i in range(dim)] and len(digit) == len(df.columns)
    values = df[digit].apply(pd.to_numeric, errors="coerce")
    assert not values.isna().any().any()  # the evaluator would have turned these into 0
    assert set(labels) <= set(df.index)
    return values.to_numpy(np.float32)


def test_embed_sample_to_a_csv_the_evaluator_accepts(sample_downstream, tmp_path):
    out = tmp_path / "emb.csv"
    result = CliRunner().invoke(main, ["embed", str(sample_downstream), "--encoder", "mean", "--out", str(out),
                                       "--batch-size", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["rows"] == 5 and info["dim"] == 2 * 4 * (2 + 13 + 12)
    labels = read_task_labels(next((sample_downstream / "labels").glob("forest_cover__*.csv")))
    matrix = evaluator_view(out, labels, info["dim"])
    assert matrix.shape == (5, 216)
    # the mean encoder is deterministic and means what it says
    again = tmp_path / "again.csv"
    embed(sample_downstream, "mean", again, batch_size=5)
    assert out.read_bytes() == again.read_bytes()
    header = out.read_text().splitlines()[0]
    assert header.startswith("id,0,1,2,") and '"' not in header


def test_embed_from_shards_equals_embed_from_cubes(tmp_path):
    root = ORIGINAL / "downstream"
    convert(root, tmp_path / "shards", to="webdataset", jobs=1, max_records=2)
    embed(root, "mean", tmp_path / "a.csv", modalities=["s2l2a", "s1"], seasons=[0, 2], shift_s2=True)
    embed(tmp_path / "shards", "mean", tmp_path / "b.csv", modalities=["s2l2a", "s1"], seasons=[0, 2],
          shift_s2=True)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    embed(tmp_path / "shards", "mean", tmp_path / "c.parquet", dim=300)
    table = pd.read_parquet(tmp_path / "c.parquet")
    assert list(table.columns[:3]) == ["id", "0", "1"] and table.shape == (3, 301)
    assert (table[[str(i) for i in range(216, 300)]] == 0).all().all()  # zero-padded to --dim


def test_user_encoder_batches_and_errors(tmp_path):
    root = ORIGINAL / "downstream"
    encoder = tmp_path / "my_encoder.py"
    encoder.write_text(textwrap.dedent("""
        import numpy as np
        SEEN = []

        def good(batch):
            SEEN.append({k: (np.shape(v) if k != "id" else len(v)) for k, v in batch.items()})
            return np.stack([batch["s2l2a"][i].mean(axis=(-1, -2)).ravel() for i in range(len(batch["id"]))])

        def nan(batch):
            out = np.zeros((len(batch["id"]), 4), np.float32)
            out[-1, 2] = np.nan
            return out

        def wrong(batch):
            return np.zeros((len(batch["id"]) + 1, 4))

        class Model:
            def __call__(self, batch):
                return np.ones((len(batch["id"]), 3))
    """))
    result = embed(root, f"{encoder}:good", tmp_path / "good.csv", batch_size=2, modalities=["s2l2a", "s1"])
    assert (result.rows, result.dim) == (3, 48)
    import sys

    seen = sys.modules["neuco_encoder_my_encoder"].SEEN
    assert seen[0] == {"id": 2, "s2l2a": (2, 4, 12, 264, 264), "s1": (2, 4, 2, 264, 264)}
    assert embed(root, f"{encoder}:Model", tmp_path / "cls.csv").dim == 3
    with pytest.raises(EmbedError, match="NaN or infinity for ids"):
        embed(root, f"{encoder}:nan", tmp_path / "nan.csv")
    with pytest.raises(EmbedError, match=r"shape \[3, 4\] for a batch of 2"):
        embed(root, f"{encoder}:wrong", tmp_path / "wrong.csv", batch_size=2)
    with pytest.raises(EmbedError, match="more than --dim 2"):
        embed(root, f"{encoder}:good", tmp_path / "big.csv", dim=2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("nan", "wrong", "big", ".nan", ".wrong"))]
    with pytest.raises(UsageError, match="no attribute"):
        embed(root, f"{encoder}:missing", tmp_path / "x.csv")
    result = CliRunner().invoke(main, ["embed", str(root), "--encoder", f"{encoder}:nan", "--out",
                                       str(tmp_path / "cli.csv")])
    assert result.exit_code == 1 and "NaN or infinity" in result.output and "Traceback" not in result.output


def test_embed_with_dataloader_workers(tmp_path):
    pytest.importorskip("torch")
    root = ORIGINAL / "v11"
    embed(root, "mean", tmp_path / "w0.csv", batch_size=2, workers=0)
    embed(root, "mean", tmp_path / "w2.csv", batch_size=2, workers=2)
    a = pd.read_csv(tmp_path / "w0.csv", dtype={"id": str}).set_index("id").sort_index()
    b = pd.read_csv(tmp_path / "w2.csv", dtype={"id": str}).set_index("id").sort_index()
    pd.testing.assert_frame_equal(a, b)
    assert list(a.index) == sorted(["0080717", "0060573", "0001234", "0179869", "0012333"])


def test_mean_encoder_layout():
    batch = {"id": ["a"], "s1": np.arange(2 * 1 * 2 * 2 * 2, dtype=np.float32).reshape(1, 2, 2, 2, 2)}
    out = MeanEncoder()(batch)
    assert out.shape == (1, 2 * 2 * 2)
    np.testing.assert_allclose(out[0, :2], [1.5, np.std([0, 1, 2, 3])])


@pytest.mark.parametrize("from_shards", [False, True])
def test_labels_export(tmp_path, from_shards):
    root = ORIGINAL / "downstream"
    source = root
    if from_shards:
        convert(root, tmp_path / "shards", to="parquet", jobs=1)
        source = tmp_path / "shards"
    result = CliRunner().invoke(main, ["labels", "export", str(source), str(tmp_path / "labels")])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert files == ["fixture_height__regr.csv", "fixture_subset__regr.csv", "fixture_water__cls.csv"]
    for name in files:
        assert read_task_labels(tmp_path / "labels" / name) == read_task_labels(root / "labels" / name)
        text = (tmp_path / "labels" / name).read_bytes()
        assert b"\r" not in text and not text.startswith(b"\xef\xbb\xbf")
    with (tmp_path / "labels" / "fixture_water__cls.csv").open(newline="") as fh:
        assert sorted(r["label"] for r in csv.DictReader(fh)) == ["0", "0", "1"]  # integers written as such
    again = CliRunner().invoke(main, ["labels", "export", str(source), str(tmp_path / "labels")])
    assert again.exit_code == 2 and "exists" in again.output


@pytest.fixture
def reg_dataset(tmp_path) -> Path:
    """The original fixture with one task named the way the evaluator refuses (`__reg`, as a public file was)."""
    import shutil

    root = Path(shutil.copytree(ORIGINAL / "downstream", tmp_path / "reg-dataset"))
    (root / "labels" / "fixture_subset__regr.csv").rename(root / "labels" / "fixture_subset__reg.csv")
    return root


@pytest.mark.parametrize("from_shards", [False, True])
def test_labels_export_refuses_a_type_the_evaluator_refuses(tmp_path, reg_dataset, from_shards):
    source = reg_dataset
    if from_shards:  # convert carries the type as written; the export is where the evaluator's rule applies
        convert(reg_dataset, tmp_path / "shards", to="parquet", jobs=1)
        source = tmp_path / "shards"
    out = tmp_path / "labels"
    result = CliRunner().invoke(main, ["labels", "export", str(source), str(out)])
    assert result.exit_code == 1, result.output
    assert "'reg'" in result.output and "--rename-types" in result.output and "Traceback" not in result.output
    assert ("fixture_subset__reg.csv" if not from_shards else "manifest.json") in result.output
    assert not out.exists() or not list(out.iterdir())  # nothing written
    renamed = CliRunner().invoke(main, ["labels", "export", str(source), str(out), "--rename-types", "--format",
                                        "json", "--quiet"])
    assert renamed.exit_code == 0, renamed.output
    files = sorted(Path(p).name for p in json.loads(renamed.output)["files"])
    assert files == ["fixture_height__regr.csv", "fixture_subset__regr.csv", "fixture_water__cls.csv"]
    assert read_task_labels(out / "fixture_subset__regr.csv") == read_task_labels(
        reg_dataset / "labels" / "fixture_subset__reg.csv")
    # --tasks can leave the file out instead
    only = CliRunner().invoke(main, ["labels", "export", str(source), str(tmp_path / "two"), "--tasks",
                                     "fixture_height,fixture_water"])
    assert only.exit_code == 0, only.output


@pytest.mark.parametrize(("stray", "why"), [
    ("old__reg.csv", "'reg'"),
    ("notes.csv", "not named <task>__<type>.csv"),
    ("fixture_water__classification.csv", "second label file of task 'fixture_water'"),
])
def test_labels_export_refuses_a_folder_the_evaluator_cannot_read(tmp_path, stray, why):
    """The evaluator reads every *.csv in the folder: one it would stop on (or mix into a task) refuses the export."""
    out = tmp_path / "labels"
    out.mkdir()
    (out / stray).write_text("id,label\na,1\n")
    result = CliRunner().invoke(main, ["labels", "export", str(ORIGINAL / "downstream"), str(out)])
    assert result.exit_code == 1, result.output
    assert stray in result.output and why in result.output
    assert sorted(p.name for p in out.iterdir()) == [stray]
