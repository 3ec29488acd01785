"""Against NeuCo-Bench's own code: its evaluator scores what neuco-io produces, and its reference loader reads the
same arrays as `CubeDataset`.

NeuCo-Bench is used from a copy beside the repository (`../shared/neuco-bench`, or NEUCO_BENCH_DIR), never
copied into the project. Without it, or without the evaluator's dependencies, these tests skip and say why;
scripts/test.sh sets NEUCO_IO_REQUIRE_NEUCO_BENCH=1 in CI, which turns such a skip into a failure.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuco_io import spec
from neuco_io.cube.zarrcompat import is_zarr3
from neuco_io.loader import CubeDataset

REPO = Path(__file__).resolve().parents[1]
# beside the clone (CI), or beside the folder holding a git worktree of it
NEUCO_BENCH = Path(os.environ.get("NEUCO_BENCH_DIR") or next(
    (p for p in (REPO.parent / "shared" / "neuco-bench", REPO.parents[1] / "shared" / "neuco-bench") if p.is_dir()),
    REPO.parent / "shared" / "neuco-bench")).resolve()
REQUIRED = os.environ.get("NEUCO_IO_REQUIRE_NEUCO_BENCH") == "1"
# what benchmark/main.py imports (module names; the pip names are in pyproject's test extra)
EVALUATOR_MODULES = ("torch", "torchmetrics", "sklearn", "skopt", "yaml", "matplotlib", "scipy", "tqdm")


def need(*modules: str, file: str) -> Path:
    """NeuCo-Bench's `file` and the modules it imports, or a skip naming what is missing (a failure in CI)."""
    path = NEUCO_BENCH / file
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    reason = None
    if not path.is_file():
        reason = f"NeuCo-Bench not found: {path} is absent (set NEUCO_BENCH_DIR to a checkout)"
    elif missing:
        reason = f"NeuCo-Bench's {file} needs {', '.join(missing)} (pip install -e '.[test]')"
    if reason:
        if REQUIRED:
            pytest.fail(reason + "; NEUCO_IO_REQUIRE_NEUCO_BENCH=1 requires it")
        pytest.skip(reason)
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "neuco_io.cli", *map(str, args)], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, f"neuco-io {' '.join(map(str, args))}: {result.stdout}{result.stderr}"
    return result


def test_sample_convert_embed_export_is_scored_by_the_neuco_bench_evaluator(tmp_path):
    """sample -> convert -> embed -> labels export -> NeuCo-Bench's benchmark/main.py: every task is scored."""
    if os.environ.get("NEUCO_IO_STACK") == "newest":
        pytest.skip("scripts/test.sh runs NeuCo-Bench's evaluator in its own (pinned) environment only")
    main_py = need(*EVALUATOR_MODULES, file="benchmark/main.py")
    root, shards, labels = tmp_path / "sample", tmp_path / "shards", tmp_path / "labels"
    embeddings = tmp_path / "embeddings.csv"
    cli("sample", root, "--locations", "16", "--seed", "11")
    cli("convert", root, shards, "--to", "webdataset", "--jobs", "1")
    cli("embed", shards, "--encoder", "mean", "--out", embeddings)
    cli("labels", "export", shards, labels)
    tasks = sorted(p.stem.split("__")[0] for p in labels.glob("*.csv"))
    assert len(tasks) == 3, tasks
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML: a small linear-probe run of NeuCo-Bench's own settings
        "k_folds": 2, "probe_type": "linear",
        "probe_params": {"batch_size": 8, "epochs": 3, "learning_rate": 0.01, "device": "cpu"},
        "embedding_dim": None, "standardize_embeddings": True, "normalize_labels": True, "enable_plots": False,
        "update_leaderboard": False, "store_probes": False, "task_filter": None,
    }))
    results = tmp_path / "results"
    run = subprocess.run([sys.executable, str(main_py), "--submission_file", str(embeddings), "--annotation_path",
                          str(labels), "--config", str(config), "--output_dir", str(results), "--phase", "e2e",
                          "--method_name", "mean"], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "MPLBACKEND": "Agg", "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, f"NeuCo-Bench's evaluator failed:\n{run.stderr[-4000:]}"
    summaries = list((results / "e2e").glob("*/results_summary.json"))
    assert len(summaries) == 1, run.stderr[-4000:]
    summary = json.loads(summaries[0].read_text())
    assert sorted(summary["task_q_scores"]) == tasks  # every exported task was scored
    assert sorted(summary["task_acc_scores"]) == tasks
    assert all(math.isfinite(v) for v in summary["task_acc_scores"].values()), summary
    for task in tasks:
        assert len(list((results / "e2e").glob(f"*/{task}/{task}_result.json"))) == 1, task


def _reference_dataset_class():
    dataset_py = need("torch", "xarray", file="generate_embeddings/data/dataset.py")
    if is_zarr3():
        pytest.skip("NeuCo-Bench's reference loader opens cubes with xarray.open_zarr(path), which needs zarr 2: "
                    "it runs in NeuCo-Bench's pinned environment (scripts/test.sh's .venv-pinned)")
    module_spec = importlib.util.spec_from_file_location("neuco_bench_reference_dataset", dataset_py)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SSL4EODownstreamDataset


@pytest.mark.parametrize(("options", "reference_options"), [
    ({}, {}),  # the defaults agree: shift_s2="auto" is the reference's shift_s2_channels=True on downstream data
    ({"seasons": 2, "shift_s2": False, "concat": False}, {"seasons": 2, "shift_s2_channels": False, "concat": False}),
    ({"shift_s2": True, "modalities": ["s1", "s2l1c"]}, {"modalities": ["s1", "s2l1c"]}),
], ids=["defaults", "two-seasons-raw-split", "s1-first"])
def test_cube_dataset_reads_what_the_reference_loader_reads(sample_downstream, options, reference_options):
    reference_class = _reference_dataset_class()
    modalities = options.pop("modalities", ["s2l1c", "s2l2a", "s1"])
    reference_options.setdefault("modalities", modalities)
    reference = reference_class(data_path=str(sample_downstream / "data"), output_file_name=True, **reference_options)
    ours = CubeDataset(sample_downstream, modalities=modalities, return_id=True, output="torch", **options)
    by_id = {ours.ids[i]: i for i in range(len(ours))}
    assert len(reference) == len(ours) == 5
    for item in range(len(reference)):
        theirs = reference[item]
        mine = ours[by_id[theirs["file_name"]]]
        if isinstance(theirs["data"], dict):
            assert list(theirs["data"]) == list(mine["data"]) == modalities
            pairs = [(theirs["data"][m], mine["data"][m]) for m in modalities]
        else:
            pairs = [(theirs["data"], mine["data"])]
        for ref, got in pairs:
            ref = ref[0] if ref.ndim == 5 else ref  # the reference keeps the sample axis: [1, T, C, H, W]
            assert ref.dtype == got.dtype and tuple(ref.shape) == tuple(got.shape)
            assert np.array_equal(ref.numpy(), got.numpy())
    n_s2 = sum(spec.MODALITIES[m].n_bands for m in modalities if spec.MODALITIES[m].s2)
    assert n_s2 > 0
