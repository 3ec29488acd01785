"""convert never loses data: what --overwrite may remove, checks before changes, locking, refused OUTs,
disk full, interrupts that end every process, and --dry-run."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import ConvertEstimate, convert, verify
from neuco_io.converters.outdir import LOCK, OutputBusyError
from neuco_io.shards.manifest import Manifest

from helpers import TINY_IDS, cube_path

EXE = str(Path(sys.executable).with_name("neuco-io"))


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`, with file contents."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# -- what --overwrite may remove ---------------------------------------------------------------------------


def test_overwrite_removes_only_what_a_manifest_lists(downstream, tmp_path):
    out = tmp_path / "out"
    convert(downstream, out, to="webdataset", jobs=1, max_records=1)
    mine = {"shard-notes.tar": b"notes", "old.partial": b"x", ".draft.partial": b"draft",
            ".shard-000009.tar.partial": b"not ours either", ".notes.txt.123-abcdef01.partial": b"an editor's"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    (out / "shard-photos.tar").mkdir()
    (out / "shard-photos.tar" / "a.jpg").write_bytes(b"jpg")
    (out / ".neuco-io").mkdir()
    (out / ".neuco-io" / "my-settings.txt").write_text("keep")
    convert(downstream, out, to="webdataset", jobs=1, max_records=2, overwrite=True)
    for name, data in mine.items():
        assert (out / name).read_bytes() == data, name
    assert (out / "shard-photos.tar" / "a.jpg").read_bytes() == b"jpg"
    assert (out / ".neuco-io" / "my-settings.txt").read_text() == "keep"
    # the old run's 4 shards are gone, the new run's 2 are there
    assert sorted(p.name for p in out.glob("shard-0*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert verify(downstream, out, jobs=1).ok


@pytest.mark.parametrize("bad", [
    ["--modalities", "s2l2"],
    ["--tasks", "no_such_task"],
    ["--prefix", "x" * 300],
    ["--prefix", "a/b"],
])
def test_overwrite_with_a_bad_option_keeps_the_old_output(downstream, tmp_path, bad):
    out = tmp_path / "out"
    convert(downstream, out, to="webdataset", jobs=1, max_records=2)
    before = tree(out)
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--overwrite", "--jobs", "1",
                       *bad)
    assert code == 2, output
    assert "Traceback" not in output
    assert tree(out) == before


def test_overwrite_with_a_bad_cube_keeps_the_old_output(downstream, tmp_path):
    out = tmp_path / "out"
    convert(downstream, out, to="webdataset", jobs=1, max_records=1)
    before = tree(out)
    bad = cube_path(downstream, "s2l2a", TINY_IDS[2])
    good = bad.read_bytes()
    bad.write_bytes(b"broken")  # found while writing the 3rd shard
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--overwrite", "--jobs", "1",
                       "--max-records", "1", "--codec", "none")
    assert code == 1 and TINY_IDS[2] in output
    after = {k: v for k, v in tree(out).items() if not k.startswith(".neuco-io")}
    assert after == before  # the old output is intact and complete; the new one waits in the staging area
    assert Manifest.load(out)["options"]["codec"] == "blosc"
    bad.write_bytes(good)  # fixed: --resume finishes the new output and swaps it in
    result = convert(downstream, out, to="webdataset", jobs=1, max_records=1, codec="none", resume=True)
    assert (result.written, result.reused_from) == (2, "interrupted")
    assert Manifest.load(out)["options"]["codec"] == "none" and verify(downstream, out, jobs=1).ok
    assert sorted(p.name for p in out.iterdir()) == ["labels.parquet", "manifest.json"] + [
        f"shard-00000{i}.tar" for i in range(4)]


def test_overwrite_of_parquet_by_webdataset_removes_the_old_shards(downstream, tmp_path):
    out = tmp_path / "out"
    convert(downstream, out, to="parquet", jobs=1, max_records=2)
    convert(downstream, out, to="webdataset", jobs=1, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["labels.parquet", "manifest.json", "shard-000000.tar"]


def test_a_file_in_the_way_of_a_shard_is_never_overwritten(downstream, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "shard-000000.tar").write_bytes(b"someone else's tar")
    for extra in ([], ["--overwrite"]):
        code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1", *extra)
        assert code == 2 and "not written by a conversion" in output
    assert (out / "shard-000000.tar").read_bytes() == b"someone else's tar"
    assert sorted(p.name for p in out.iterdir()) == ["shard-000000.tar"]


# -- resume re-checks the source ---------------------------------------------------------------------------


def test_resume_on_a_finished_output_rechecks_the_source(downstream, tmp_path):
    from neuco_io.cube.writer import write_cube

    from helpers import tiny_bands

    out = tmp_path / "out"
    convert(downstream, out, to="webdataset", jobs=1, max_records=1)
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1",
                       "--max-records", "1", "--resume")
    assert code == 0 and "already complete" in output and "interrupted" not in output
    write_cube(cube_path(downstream, "s1", TINY_IDS[1]), "s1", tiny_bands("s1", 77), [TINY_IDS[1]],
               overwrite=True, fsync=False)
    result = convert(downstream, out, to="webdataset", jobs=1, max_records=1, resume=True)
    assert (result.written, result.shards, result.reused_from) == (1, 4, "finished")
    assert verify(downstream, out, jobs=1).ok


# -- a failed run leaves OUT as it found it ----------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True])
def test_a_run_that_wrote_no_shard_leaves_out_as_found(downstream, tmp_path, existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "readme.txt").write_text("mine")
    before = tree(out) if existing else None
    cube_path(downstream, "s1", TINY_IDS[0]).write_bytes(b"broken")  # the first shard fails
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1")
    assert code == 1 and TINY_IDS[0] in output
    assert (tree(out) == before) if existing else not out.exists()
    # nothing traps the user: --skip-invalid and a plain rerun are accepted
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1", "--skip-invalid")
    assert code == 1 and "skipped" in output
    assert len(Manifest.load(out)["index"]) == 3


def test_an_unfinished_plan_without_shards_is_replaced_silently(downstream, tmp_path):
    out = tmp_path / "out"
    (out / ".neuco-io").mkdir(parents=True)
    (out / ".neuco-io" / "plan.json").write_text(json.dumps({"fingerprint": "old", "files": ["shard-000000.tar"]}))
    convert(downstream, out, to="webdataset", jobs=1)
    assert sorted(p.name for p in out.iterdir()) == ["labels.parquet", "manifest.json", "shard-000000.tar"]


def test_a_worker_killed_while_saving_its_state_leaves_no_trace(downstream, tmp_path):
    """A unit killed mid-write leaves `.neuco-io/shards/.NAME.json.PID-HEX.partial`; finishing the run
    removes it with the rest of the journal, and a user's own file there is kept."""
    from neuco_io.converters.outdir import remove_state
    from neuco_io.storage import LocalStore

    out = tmp_path / "out"
    convert(downstream, out, to="webdataset", jobs=1)
    shards = out / ".neuco-io" / "shards"
    shards.mkdir(parents=True)
    (shards / ".shard-000000.tar.json.4242-0badcafe.partial").write_text("{")
    remove_state(LocalStore(out), {"shard-000000.tar"})
    assert not (out / ".neuco-io").exists()
    shards.mkdir(parents=True)
    (shards / "mine.txt").write_text("mine")
    remove_state(LocalStore(out), {"shard-000000.tar"})
    assert (shards / "mine.txt").read_text() == "mine"


# -- locking ----------------------------------------------------------------------------------------------


def test_a_locked_out_is_refused_and_a_stale_lock_taken_over(downstream, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now"}))
        with pytest.raises(OutputBusyError, match=f"process {holder.pid}"):
            convert(downstream, out, to="webdataset", jobs=1)
        code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1")
        assert code == 2 and "another conversion is writing here" in output
        assert sorted(p.name for p in out.iterdir()) == [LOCK]
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over with a note
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1")
    assert code == 0 and "stale lock" in output
    assert not (out / LOCK).exists()


def test_a_lock_from_another_host_is_respected(downstream, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": "then"}))
    with pytest.raises(OutputBusyError, match=r"elsewhere\.example"):
        convert(downstream, out, to="webdataset", jobs=1)


def test_two_conversions_into_one_out_at_once(sample_downstream, tmp_path):
    """The second one, started while the first holds the lock, is refused; the first completes."""
    out = tmp_path / "out"
    env = dict(os.environ, NEUCO_IO_TEST_HOLD_SHARD="shard-000001.tar")
    first = subprocess.Popen([EXE, "convert", str(sample_downstream), str(out), "--to", "webdataset",
                              "--max-records", "1", "--jobs", "1", "-q"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for(lambda: (out / ".neuco-io" / "shards" / "shard-000000.tar.json").exists())
        second = subprocess.run([EXE, "convert", str(sample_downstream), str(out), "--to", "webdataset",
                                 "--max-records", "1", "--jobs", "1", "--overwrite", "-q"],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"process {first.pid}" in second.stderr, second.stderr
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    result = convert(sample_downstream, out, to="webdataset", jobs=1, max_records=1, resume=True)
    assert result.written == 4 and verify(sample_downstream, out, jobs=1).ok


# -- refused locations ------------------------------------------------------------------------------------


def test_out_inside_root_is_refused(downstream, tmp_path):
    for out in (downstream, downstream / "shards", downstream / "data" / "x"):
        code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1")
        assert code == 2 and "ROOT" in output, output
    assert not (downstream / "shards").exists()


def test_out_dangling_symlink_or_under_a_file_is_refused(downstream, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    file = tmp_path / "file"
    file.write_text("x")
    for out, words in ((link, "does not exist"), (file, "a file"), (file / "sub", "under")):
        code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--jobs", "1")
        assert code == 2 and words in output, output
        assert "Traceback" not in output
    assert file.read_text() == "x" and not (tmp_path / "nowhere").exists()


def test_a_long_prefix_is_refused_clearly(downstream, tmp_path):
    code, output = cli("convert", str(downstream), str(tmp_path / "out"), "--to", "webdataset", "--prefix", "p" * 300)
    assert code == 2 and "--prefix is 300 bytes long" in output
    assert not (tmp_path / "out").exists()
    result = convert(downstream, tmp_path / "ok", to="parquet", jobs=1, prefix="p" * 200)
    assert result.shards == 1


# -- disk full ---------------------------------------------------------------------------------------------


def _limited(limit: int, *args: str) -> subprocess.CompletedProcess:
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from neuco_io.cli import main; sys.argv = ['neuco-io'] + sys.argv[1:]; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_output_too_large_is_reported_as_such(downstream, tmp_path, jobs):
    """A file size limit (EFBIG) stands in for a full disk: same code path, no root needed."""
    out = tmp_path / "out"
    proc = _limited(20_000, "convert", str(downstream), str(out), "--to", "webdataset", "--codec", "none",
                    "--max-records", "1", "--jobs", jobs)
    assert proc.returncode == 1, proc.stderr
    assert "File too large (EFBIG)" in proc.stderr and "shard-000000.tar" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not list(out.glob("shard-*.tar")) and not list(out.glob(".*partial"))


def test_disk_full_on_a_small_tmpfs(downstream, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        code, output = cli("convert", str(downstream), str(mount / "out"), "--to", "webdataset", "--codec", "none",
                           "--jobs", "1")
        assert code == 1 and "No space left on device (ENOSPC)" in output, output
        assert "shard-000000.tar" in output
        assert not list((mount / "out").glob("shard-*")) if (mount / "out").exists() else True
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- dry run -----------------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(downstream, tmp_path):
    out = tmp_path / "out"
    plan = convert(downstream, out, to="webdataset", jobs=2, max_records=1, dry_run=True)
    assert isinstance(plan, ConvertEstimate) and not out.exists()
    assert (plan.records, plan.shards, plan.action) == (4, 4, "new")
    assert plan.bytes > 0 and plan.rate > 0 and plan.seconds > 0
    result = convert(downstream, out, to="webdataset", jobs=1, max_records=1)
    assert 0.5 * result.bytes < plan.bytes < 2 * result.bytes
    before = tree(out)
    code, output = cli("convert", str(downstream), str(out), "--to", "webdataset", "--max-records", "1",
                       "--overwrite", "--dry-run", "--format", "json")
    data = json.loads(output)
    assert code == 0 and data["action"] == "replace" and data["shards"] == 4 and data["estimated_seconds"] is not None
    assert tree(out) == before


def test_too_few_shards_for_the_jobs_is_said(downstream, tmp_path):
    code, output = cli("convert", str(downstream), str(tmp_path / "out"), "--to", "webdataset", "--jobs", "3",
                       "--dry-run")
    assert code == 0 and "1 shard for 3 jobs" in output and "--shard-size" in output
    assert "about 0 s" not in output  # a tiny conversion is "under 1 s"


def test_estimated_durations_read_as_words():
    from neuco_io.cli import _duration

    assert [_duration(s) for s in (0.2, 0.6, 30, 600, 36000)] == \
        ["under 1 s", "about 1 s", "about 30 s", "about 10 min", "about 10.0 h"]


# -- interrupts --------------------------------------------------------------------------------------------


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def _session_processes(sid: int) -> list[int]:
    """Processes of a session still alive (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _interrupt_once(source: Path, out: Path, sig: int, rng: random.Random) -> None:
    env = dict(os.environ, NEUCO_IO_TEST_HOLD_SHARD="shard-000004.tar")
    proc = subprocess.Popen([EXE, "convert", str(source), str(out), "--to", "webdataset", "--max-records", "1",
                             "--jobs", "2", "--codec", "none"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(lambda: (out / ".neuco-io" / "plan.json").exists())  # the signal handlers are installed by now
    time.sleep(rng.uniform(0, 1.5))
    os.killpg(proc.pid, sig)
    second = rng.random() < 0.5
    if second:  # a second signal while the first is being handled
        time.sleep(rng.uniform(0, 0.3))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    text = stderr.decode()
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], (second, text)
    assert "Traceback" not in text, text
    _wait_for(lambda: not _session_processes(proc.pid), timeout=60)
    for shard in out.glob("shard-*.tar"):  # every shard under its final name is complete
        assert shard.stat().st_size % 10240 == 0
    if (out / ".neuco-io" / "plan.json").exists() and not second:
        assert "--resume" in text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupts_at_random_moments_end_every_process(sample_downstream, tmp_path, sig):
    """Repeated interrupts at random moments (seeded) of a busy 2-worker run: every time exit 130/143,
    no process of the command left, nothing truncated under a final name, and the hint to resume.

    The last shard waits for the signal (a test hook), so the run cannot finish first: the outcome does not
    depend on timing, only the moment the signal lands does."""
    rng = random.Random(12)
    for attempt in range(6):
        _interrupt_once(sample_downstream, tmp_path / f"out{attempt}", sig, rng)


# -- clear refusals elsewhere ------------------------------------------------------------------------------


def test_task_import_refuses_an_overlong_id_and_goes_on(tmp_path):
    import csv

    import numpy as np

    from neuco_io import spec

    rows = []
    for m, modality in enumerate(spec.DOWNSTREAM_MODALITIES):
        mod = spec.MODALITIES[modality]
        for season in range(len(spec.SEASONS)):
            path = tmp_path / "src" / f"{modality}_{season}.npy"
            path.parent.mkdir(exist_ok=True)
            np.save(path, np.full((mod.n_bands, spec.SIZE, spec.SIZE), 100 + m + season, mod.dtype))
            rows += [[loc_id, modality, season, path] for loc_id in ("fine", "x" * 300)]
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "modality", "season", "path"], *rows])
    code, output = cli("task", "import", str(table), str(tmp_path / "root"), "--format", "json", "--jobs", "1")
    data = json.loads(output)
    assert code == 1 and data["ids"] == ["fine"], output
    assert "300 bytes long" in data["refused"][0]["reason"]


def test_a_cr_only_submission_is_a_clear_error(tmp_path):
    path = tmp_path / "emb.csv"
    path.write_bytes(b"id,0,1\raa,0.5,0.25\rbb,0.1,0.2\r")
    code, output = cli("submission", "check", str(path))
    assert code == 1 and "bare carriage return" in output and "internal error" not in output


@pytest.mark.parametrize("option", ["block_size=abc", "timeout=-1", "max_concurrency=true"])
def test_a_bad_numeric_storage_option_is_a_usage_error(downstream, tmp_path, option):
    code, output = cli("convert", str(downstream), str(tmp_path / "out"), "--to", "webdataset",
                       "--storage-option", option)
    assert code == 2 and "must be a non-negative number" in output and option.split("=")[0] in output


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted = []
    import threading

    def serve() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("command", ["validate", "convert"])
def test_a_server_that_never_answers_fails_in_bounded_time_naming_the_url(silent_server, tmp_path, command):
    url = f"{silent_server}/dataset"
    extra = ["--to", "webdataset", str(tmp_path / "out")] if command == "convert" else []
    proc = subprocess.run([EXE, command, url, *extra[2:], *extra[:2], "--storage-option", "timeout=1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert url in proc.stderr and "no answer from the server in time" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_http_reads_have_a_default_timeout():
    from neuco_io.storage import DEFAULT_TIMEOUT, as_path

    path = as_path("http://127.0.0.1:9/x")
    timeout = path.fs.client_kwargs["timeout"]
    assert timeout.sock_read == timeout.sock_connect == DEFAULT_TIMEOUT and timeout.total is None
