"""Validate, convert and verify on a Dask cluster: identical results, worker deaths, lost clusters."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import convert, verify
from neuco_io.execution import UnitFailed
from neuco_io.validators import validate

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        yield cluster, client


def test_same_findings_on_the_cluster(cluster, downstream):
    (downstream / "labels" / "x__cls.csv").write_text("id,label\nnope,1\n")
    (downstream / "data" / "s1" / "part-000000" / "junk.zarr.zip").write_bytes(b"")
    local = validate(downstream, jobs=1, deep=True).to_dict()
    remote = validate(downstream, deep=True, scheduler=cluster[0].scheduler_address).to_dict()
    assert remote == local
    assert {e["code"] for e in local["errors"]} >= {"cubes.unreadable", "labels.unknown-id"}


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_byte_identical_shards_and_manifest(cluster, sample_v11, tmp_path, fmt):
    convert(sample_v11, tmp_path / "local", to=fmt, jobs=1, max_records=2)
    convert(sample_v11, tmp_path / "dask", to=fmt, scheduler=cluster[0].scheduler_address, max_records=2)
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")
    report = verify(sample_v11, tmp_path / "dask", scheduler=cluster[0].scheduler_address)
    assert report.ok, report.to_dict()


def test_cli_local_cluster(sample_downstream, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(sample_downstream), str(tmp_path / "out"), "--to", "webdataset",
                                  "--max-records", "2", "--scheduler", "local:2", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["records"] == 5
    result = runner.invoke(main, ["verify", str(sample_downstream), str(tmp_path / "out"), "--scheduler", "local:2"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(main, ["validate", str(sample_downstream), "--scheduler", "local:zero"])
    assert bad.exit_code == 2 and "local:N" in bad.output
    both = runner.invoke(main, ["validate", str(sample_downstream), "--scheduler", "local:2", "--jobs", "2"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        nowhere = runner.invoke(main, ["verify", str(sample_downstream), str(tmp_path / "out"), "--scheduler",
                                       "tcp://127.0.0.1:9"])
    assert nowhere.exit_code == 2 and "cannot connect" in nowhere.output


def test_local_cluster_workers_keep_chunk_buffers_on_the_heap():
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_, which makes glibc mmap every buffer above 128 KiB; the
    workers neuco-io starts get an mmap threshold back, and the user's Dask config is left as it was."""
    from neuco_io.execution import DaskExecutor

    before = dask.config.get("distributed.nanny.pre-spawn-environ")
    with DaskExecutor("local:1") as executor:
        seen = executor._client.run(lambda: dict(os.environ))
    assert [env.get("MALLOC_MMAP_THRESHOLD_") for env in seen.values()] == [str(4 << 20)]
    assert all(env.get("MALLOC_TRIM_THRESHOLD_") for env in seen.values())  # Dask's own setting stays
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before


def _wait_for_state(out: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list((out / ".neuco-io" / "shards").glob("*.json")) if (out / ".neuco-io" / "shards").is_dir() \
            else True:
        if time.monotonic() > deadline:
            raise TimeoutError("no shard finished")
        time.sleep(0.01)


def test_a_killed_worker_has_its_units_retried(sample_downstream, tmp_path):
    reference = tmp_path / "reference"
    convert(sample_downstream, reference, to="webdataset", jobs=1, max_records=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        out = tmp_path / "out"
        errors = []

        def run():
            try:
                convert(sample_downstream, out, to="webdataset", scheduler=cluster.scheduler_address, max_records=1)
            except Exception as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        _wait_for_state(out)
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)  # the nanny starts a new worker
        thread.join(timeout=300)
        assert not errors, errors
    assert digests(out) == digests(reference)
    assert not list(out.glob(".*"))


def test_resume_after_the_cluster_is_lost(sample_downstream, tmp_path):
    reference = tmp_path / "reference"
    convert(sample_downstream, reference, to="webdataset", jobs=1, max_records=1)
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=50)
    errors = []

    def run():
        try:
            convert(sample_downstream, out, to="webdataset", scheduler=cluster.scheduler_address, max_records=1)
        except Exception as exc:  # the lost cluster
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for_state(out)
    cluster.close()
    thread.join(timeout=300)
    assert len(errors) == 1 and isinstance(errors[0], UnitFailed), errors
    assert ".tar failed on the cluster" in str(errors[0])
    assert not (out / "manifest.json").exists()
    result = convert(sample_downstream, out, to="webdataset", scheduler="local:2", max_records=1, resume=True)
    assert result.written < result.shards
    assert digests(out) == digests(reference)
