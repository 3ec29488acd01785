"""Shards, manifests and records as hostile input (issue 12): nothing runs, nothing escapes, nothing hangs.

Each crafted input asserts its exact outcome: a ShardError (or ManifestError) naming the file, a documented
exit code from the CLI, no file written or read outside the folder, no code executed. Hangs become
failures through generous subprocess timeouts, never tight ones.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io.cli import main
from neuco_io.converters import convert
from neuco_io.errors import ManifestError, ShardError, UsageError
from neuco_io.loader import CubeDataset, ShardDataset
from neuco_io.render import printable

from helpers import ORIGINAL

DOWNSTREAM = ORIGINAL / "downstream"
PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[1]
HANG_GUARD = 300
"""Seconds before a subprocess counts as hung: generous, the machine is shared."""


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """The downstream fixture (3 locations) as pass-through tars, .npy tars and Parquet, 2 records a shard."""
    base = tmp_path_factory.mktemp("hostile")
    out = {}
    for name, fmt, codec in (("wds", "webdataset", "blosc"), ("npy", "webdataset", "none"),
                             ("parquet", "parquet", "blosc")):
        out[name] = base / name
        convert(DOWNSTREAM, out[name], to=fmt, codec=codec, jobs=1, max_records=2)
    return out


@pytest.fixture
def wds(outputs, tmp_path) -> Path:
    """A fresh copy of the pass-through WebDataset output, free to break."""
    return Path(shutil.copytree(outputs["wds"], tmp_path / "wds"))


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess (a hang fails the test after HANG_GUARD seconds)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([PYTHON, "-m", "neuco_io.cli", *args], capture_output=True, text=True, env=env,
                          timeout=HANG_GUARD, cwd=cwd)


def edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


# -- crafted tar headers -------------------------------------------------------------------------------
def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(tarfile.USTAR_FORMAT)


def _member(name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> bytes:
    return _header(name, len(data), kind) + data + b"\0" * (-len(data) % 512)


def _tar(*parts: bytes) -> bytes:
    return b"".join(parts) + b"\0" * 1024


PAX_ZERO = _tar(_member("././@PaxHeader", b"0 path=x\n", tarfile.XHDTYPE), _member("k.json", b"{}"))


def _pax(records: bytes) -> bytes:
    return _tar(_member("././@PaxHeader", records, tarfile.XHDTYPE), _member("k.json", b'{"id": "k"}'))


def _negative_size() -> bytes:
    header = bytearray(_header("k.json", 0))
    header[124:136] = b"\xff" * 12  # base-256: -1
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    return _tar(bytes(header))


CRAFTED_TARS = {
    "pax-length-zero": PAX_ZERO,
    "pax-length-short": _pax(b"3 path=x\n"),
    "pax-length-past-end": _pax(b"99 path=x\n"),
    "pax-not-a-number": _pax(b"x1 path=x\n"),
    "pax-size-not-decimal": _pax(b"15 size=-1e999\n"),
    "pax-size-huge": _pax(b"27 size=99999999999999999\n"),
    "extended-header-too-big": _tar(_header("././@PaxHeader", 1 << 30, tarfile.XHDTYPE)),
    "negative-size": _negative_size(),
    "claims-huge-member": _tar(_header("k.s1.blosc", (1 << 33) - 1)),
    "absolute-member": _tar(_member("/etc/k.json", b"{}")),
    "dotdot-member": _tar(_member("../k.json", b"{}")),
    "subfolder-member": _tar(_member("a/k.json", b"{}")),
    "bad-checksum": _tar(_member("k.json", b"{}")[:148] + b"0000000\0" + _member("k.json", b"{}")[156:]),
    "truncated-header": _member("k.json", b"{}")[:300],
    "no-end-of-archive": _member("k.json", b'{"id": "k"}'),
    "json-not-an-object": _tar(_member("k.json", b"[1, 2]")),
    "json-invalid": _tar(_member("k.json", b"{not json")),
    "json-deeply-nested": _tar(_member("k.json", b"[" * 100_000 + b"]" * 100_000)),
    "json-not-utf8": _tar(_member("k.json", b'{"id": "\xff"}')),
    "json-members-list": _tar(_member("k.json", b'{"id": "k", "members": ["s1.npy"]}')),
    "json-id-number": _tar(_member("k.json", b'{"id": 7}')),
    "json-labels-text": _tar(_member("k.json", b'{"id": "k", "labels": {"t": "high"}}')),
    "json-shape-text": _tar(_member("k.json", b'{"id": "k", "shapes": {"s1": "big"}}')),
    "json-twice": _tar(_member("k.json", b'{"id": "k"}'), _member("k.json", b'{"id": "k"}')),
    "no-json": _tar(_member("k.s1.npy", b"\x93NUMPY")),
}


@pytest.mark.parametrize("case", sorted(CRAFTED_TARS))
def test_crafted_tar_is_a_shard_error_naming_the_shard(case, tmp_path):
    shard = tmp_path / f"{case}.tar"
    shard.write_bytes(CRAFTED_TARS[case])
    with pytest.raises(ShardError) as info:
        list(ShardDataset(str(shard), modalities=["s1"]))  # counting the records already reads it
    assert info.value.shard.endswith(f"{case}.tar")


@pytest.mark.parametrize("case, kept", [
    ("json-deeply-nested", 3), ("json-shape-text", 3), ("json-labels-text", 3), ("json-members-list", 3),
    ("json-invalid", 3),
    # broken framing: the record before it may have had more members, so it goes too
    ("pax-length-zero", 2), ("claims-huge-member", 2),
])
def test_a_hostile_record_after_good_ones_is_one_shard_error(case, kept, outputs, tmp_path, caplog):
    """`on_error="raise"` raises it as a ShardError; `"warn"` logs it and keeps the other records."""
    folder = Path(shutil.copytree(outputs["npy"], tmp_path / "npy"))
    shard = folder / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes().rstrip(b"\0") + b"\0" * (-len(shard.read_bytes().rstrip(b"\0")) % 512)
                      + CRAFTED_TARS[case])
    with pytest.raises(ShardError, match=r"shard-000000\.tar"):
        list(ShardDataset(folder, modalities=["s1"]))
    with caplog.at_level("WARNING", logger="neuco_io.loader"):
        got = list(ShardDataset(folder, modalities=["s1"], on_error="warn", return_id=True))
    assert len(got) == kept and "shard-000000.tar" in caplog.text


def test_pax_length_zero_does_not_hang_verify_embed_or_the_loader(wds, tmp_path):
    """The 2 KB shard that looped forever: every reader refuses it (a hang fails after HANG_GUARD s)."""
    (wds / "shard-000000.tar").write_bytes(PAX_ZERO)
    edit_manifest(wds, lambda m: m["shards"][0].update(bytes=len(PAX_ZERO)))
    verify = run_cli("verify", str(DOWNSTREAM), str(wds), "--quiet")
    assert verify.returncode == 1, verify.stderr
    assert "verify.unreadable-shard" in verify.stdout and "shard-000000.tar" in verify.stdout
    embed = run_cli("embed", str(wds), "--encoder", "mean", "--out", str(tmp_path / "e.csv"), "--quiet")
    assert embed.returncode == 1, embed.stderr
    assert "shard-000000.tar" in embed.stderr and "internal error" not in embed.stderr
    assert not (tmp_path / "e.csv").exists()


def test_pax_length_zero_over_http_is_refused(wds):
    served = wds.parent
    (wds / "shard-000000.tar").write_bytes(PAX_ZERO)
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/wds/shard-000000.tar"
        with pytest.raises(ShardError, match=r"shard-000000\.tar"):
            list(ShardDataset([url], modalities=["s1"]))
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _blosc_bomb() -> bytes:
    """A `.blosc` member whose header claims 4 x 13 x 100000 x 100000 int16 (10^12 bytes) in 64 bytes."""
    header = json.dumps({"dtype": "<i2", "shape": [4, 13, 100_000, 100_000], "frames": [16] * 4}).encode()
    return b"NEUCOBL1" + len(header).to_bytes(4, "little") + header + bytes(64)


def _npy_bomb() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    return buf.getvalue() + bytes(64)


MEMORY_BOMBS = {
    "blosc-claims-1TB": _tar(_member("k.json", b'{"id": "k", "members": {"s1": "s1.blosc"}}'),
                             _member("k.s1.blosc", _blosc_bomb())),
    "npy-claims-4TB": _tar(_member("k.json", b'{"id": "k", "members": {"s1": "s1.npy"}}'),
                           _member("k.s1.npy", _npy_bomb())),
    "member-claims-250MB-holds-1KB": _header("k.json", 250 << 20) + bytes(1024),
    "member-claims-8GB": _tar(_header("k.s1.npy", (1 << 33) - 1)),
    "json-claims-100MB": _header("k.json", 100 << 20) + b"{" * 1024,
}


def test_claimed_sizes_never_become_allocations(tmp_path):
    """Each bomb is a ShardError, and the whole process's peak memory stays small (measured, not timed)."""
    for name, data in MEMORY_BOMBS.items():
        (tmp_path / f"{name}.tar").write_bytes(data)
    script = f"""
import json
from pathlib import Path
from neuco_io.errors import ShardError
from neuco_io.loader import ShardDataset
from neuco_io.shards.tar import decode_record, iter_tar_records
outcomes = {{}}
for path in sorted(Path({str(tmp_path)!r}).glob("*.tar")):
    try:
        with path.open("rb") as fh:
            for raw in iter_tar_records(fh, path.name):
                decode_record(raw)
        outcomes[path.stem] = "records"
    except ShardError as exc:
        outcomes[path.stem] = "ShardError" if path.name in str(exc) else str(exc)
# VmHWM: this process's own peak (ru_maxrss would include the parent's, carried over by fork and exec)
peak_kib = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
print(json.dumps({{"outcomes": outcomes, "peak_mib": peak_kib / 1024}}))
"""
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=HANG_GUARD,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcomes"] == {name: "ShardError" for name in MEMORY_BOMBS}
    assert report["peak_mib"] < 400, report  # the bombs claim 250 MB to 4 TB each


# -- names from manifests and records --------------------------------------------------------------------
HOSTILE_NAMES = {
    "absolute": "/etc/passwd",
    "dotdot": "../outside.tar",
    "subfolder": "a/b.tar",
    "empty": "",
    "nul": "shard\0.tar",
    "very-long": "s" * 300 + ".tar",
    "backslash": "..\\outside.tar",
    "escape": "shard-\x1b]0;pwned\x07.tar",
    "not-a-string": 7,
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_manifest_shard_names_are_confined_to_the_folder(case, wds, tmp_path):
    outside = tmp_path / "outside.tar"
    shutil.copy(wds / "shard-000000.tar", outside)  # a real shard one level up: must never be opened
    edit_manifest(wds, lambda m: m["shards"][0].update(name=HOSTILE_NAMES[case]))
    with pytest.raises(ManifestError) as info:
        ShardDataset(wds, modalities=["s1"])
    assert "manifest.json" in str(info.value) and "shard name" in str(info.value)
    for args in (["verify", str(DOWNSTREAM), str(wds)],
                 ["embed", str(wds), "--encoder", "mean", "--out", str(tmp_path / "e.csv")]):
        result = CliRunner().invoke(main, [*args, "--quiet"])
        assert result.exit_code == 1, result.output
        assert "manifest.json" in result.output and "\x1b" not in result.output


@pytest.mark.parametrize("case, edit", [
    ("task-absolute", lambda m: m["tasks"].update({"/tmp/evil": {"type": "regr", "file": "labels/x.csv"}})),
    ("task-dotdot", lambda m: m["tasks"].update({"../../evil": {"type": "regr", "file": "labels/x.csv"}})),
    ("type-dotdot", lambda m: m["tasks"]["fixture_height"].update(type="regr/../../../evil")),
    ("task-file-absolute", lambda m: m["tasks"]["fixture_height"].update(file="/etc/passwd")),
    ("task-file-dotdot", lambda m: m["tasks"]["fixture_height"].update(file="labels/../../x.csv")),
    ("labels-dotdot", lambda m: m.update(labels="../labels.parquet")),
    ("labels-absolute", lambda m: m.update(labels="/etc/passwd")),
])
def test_manifest_task_and_label_names_never_become_paths_outside(case, edit, wds, tmp_path):
    edit_manifest(wds, edit)
    export = tmp_path / "export" / "deep"
    export.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*") if "wds" not in p.parts)
    result = CliRunner().invoke(main, ["labels", "export", str(wds), str(export)])
    assert result.exit_code == 1, result.output
    assert "manifest.json" in result.output
    assert sorted(p for p in tmp_path.rglob("*") if "wds" not in p.parts) == before  # nothing written anywhere
    assert not Path("/tmp/evil__regr.csv").exists()
    verify = CliRunner().invoke(main, ["verify", str(DOWNSTREAM), str(wds), "--quiet"])
    assert verify.exit_code == 1 and "manifest.json" in verify.output


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(shards="all"), "`shards` is not a list"),
    (lambda m: m["shards"][0].update(records="2"), "`records`"),
    (lambda m: m["shards"][0].update(records=-1), "`records`"),
    (lambda m: m.update(output_format="pickle"), "output_format"),
    (lambda m: m["shards"][0].update(name="shard-000000.parquet"), "does not end with .tar"),
    (lambda m: m["shards"].append(dict(m["shards"][0])), "listed twice"),
    (lambda m: m.update(modalities=["s1", "s9"]), "modalities"),
    (lambda m: m.update(index={"x": [7, 0, 0, 0]}), "index entry"),
])
def test_manifest_fields_the_readers_rely_on_are_checked(edit, message, wds):
    edit_manifest(wds, edit)
    with pytest.raises(ManifestError, match=message):
        ShardDataset(wds)


@pytest.mark.parametrize("text", [b"[" * 200_000, b"\xff\xfe", b"{", b"[]", b"null"])
def test_unparsable_manifests_are_manifest_errors(text, wds):
    (wds / "manifest.json").write_bytes(text)
    with pytest.raises(ManifestError, match=r"manifest\.json"):
        ShardDataset(wds)
    result = CliRunner().invoke(main, ["verify", str(DOWNSTREAM), str(wds), "--quiet"])
    assert result.exit_code == 1 and "manifest.json" in result.output


def test_a_manifest_larger_than_the_limit_is_refused_before_reading(wds, monkeypatch):
    import neuco_io.shards.manifest as manifest_module

    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", 1000)
    with pytest.raises(ManifestError, match="exceeds"):
        ShardDataset(wds)


def _rewrite_records(shard: Path, edit) -> None:
    """Rewrite a tar shard, editing each JSON record (a dict) in place."""
    members = []
    with tarfile.open(shard) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read()
            if info.name.endswith(".json"):
                record = json.loads(data)
                edit(record)
                data = json.dumps(record).encode()
            members.append(_member(info.name, data))
    shard.write_bytes(_tar(*members))


@pytest.mark.parametrize("source", ["/etc/passwd", "../../outside.zarr.zip", "data/../../../x.zarr.zip", ""])
def test_record_source_paths_are_confined_to_the_dataset_root(source, wds, tmp_path):
    """`verify` opens the source cubes a record names: only inside ROOT."""
    _rewrite_records(wds / "shard-000000.tar", lambda r: r["source"].update(s1=source))
    with pytest.raises(ShardError, match="source of s1"):
        list(ShardDataset(wds, modalities=["s1"]))
    result = run_cli("verify", str(DOWNSTREAM), str(wds), "--format", "json", "--quiet")
    assert result.returncode == 1, result.stderr
    codes = {e["code"] for e in json.loads(result.stdout)["errors"]}
    assert "verify.unreadable-shard" in codes and "verify.source-unreadable" not in codes


# -- integrity ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["wds", "parquet"])
@pytest.mark.parametrize("claimed", [1, 3])
def test_a_record_count_that_disagrees_with_the_shard_is_a_shard_error(fmt, claimed, outputs, tmp_path, caplog):
    folder = Path(shutil.copytree(outputs[fmt], tmp_path / fmt))
    edit_manifest(folder, lambda m: m["shards"][0].update(records=claimed))  # the shard holds 2
    dataset = ShardDataset(folder, modalities=["s1"], return_id=True)
    assert len(dataset) == claimed + 1
    with pytest.raises(ShardError, match=r"shard-000000\.\w+.*(holds|more records)"):
        list(dataset)
    with caplog.at_level("WARNING", logger="neuco_io.loader"):
        list(ShardDataset(folder, modalities=["s1"], on_error="warn"))
    assert "manifest" in caplog.text
    result = run_cli("verify", str(DOWNSTREAM), str(folder), "--format", "json", "--quiet")
    assert result.returncode == 1
    records = [e for e in json.loads(result.stdout)["errors"] if e["code"] == "verify.records"]
    assert any("holds 2 records, the manifest says" in e["message"] for e in records), records


def test_passthrough_refuses_a_corrupt_blosc_payload_under_a_valid_header_and_crc(tmp_path):
    root = Path(shutil.copytree(DOWNSTREAM, tmp_path / "root"))
    cube = sorted(root.glob("data/s2l1c/*/*.zarr.zip"))[0]
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(cube) as zin, zipfile.ZipFile(damaged, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "bands/0.1.0.0.0":
                data = data[:16] + bytes(len(data) - 16)  # Blosc header kept; the zip CRC is recomputed
            zout.writestr(info, data)
    damaged.replace(cube)
    result = run_cli("convert", str(root), str(tmp_path / "out"), "--to", "webdataset", "--quiet")
    assert result.returncode == 1, result.stdout
    assert "bands/0.1.0.0.0" in result.stderr and cube.name in result.stderr
    assert not list((tmp_path / "out").glob("shard-*.tar"))
    skipped = run_cli("convert", str(root), str(tmp_path / "out2"), "--to", "webdataset", "--skip-invalid",
                      "--format", "json", "--quiet")
    assert skipped.returncode == 1
    assert [s["id"] for s in json.loads(skipped.stdout)["skipped"]] == [cube.name[:-len(".zarr.zip")]]


# -- tasks, patterns ---------------------------------------------------------------------------------------
def test_an_unknown_task_is_an_error_with_a_suggestion_in_every_loader(outputs, tmp_path):
    for dataset in (lambda **kw: ShardDataset(outputs["wds"], **kw),
                    lambda **kw: ShardDataset(outputs["parquet"], **kw),
                    lambda **kw: CubeDataset(DOWNSTREAM, **kw)):
        with pytest.raises(UsageError) as info:
            dataset(tasks=["fixture_heigth"])
        text = str(info.value)
        assert "'fixture_heigth' (did you mean 'fixture_height'?)" in text
        assert "fixture_subset" in text and "fixture_water" in text  # the known tasks are listed
    labelled = ShardDataset(outputs["wds"], tasks=["fixture_height"], modalities=["s1"])
    assert all(np.isfinite(s["labels"]["fixture_height"]) for s in labelled)
    lone = tmp_path / "lone.tar"
    shutil.copy(outputs["wds"] / "shard-000000.tar", lone)
    with pytest.raises(UsageError, match="no manifest"):
        ShardDataset(str(lone), tasks=["fixture_height"])


def test_globs_work_like_brace_patterns(outputs):
    folder = outputs["wds"]
    ids = lambda source: [s["id"] for s in ShardDataset(source, modalities=["s1"], return_id=True)]  # noqa: E731
    assert ids(str(folder / "shard-*.tar")) == ids(str(folder / "shard-{000000..000001}.tar")) == ids(folder)
    assert ids(str(folder / "shard-00000[1].tar")) == ids(folder)[2:]
    with pytest.raises(UsageError, match="no shard matches"):
        ShardDataset(str(folder / "nothing-*.tar"))


# -- WebDataset recipes never unpickle -----------------------------------------------------------------------
def _evil_tar(clean: Path, dst: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with tarfile.open(clean) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    key = members[0][0].name.split(".")[0]
    evil = [("pyd", pickle.dumps(Payload())), ("pickle", pickle.dumps(Payload())),
            ("extra.pyd", pickle.dumps(Payload()))]
    with tarfile.open(dst, "w") as out:
        for info, data in members[:1]:
            out.addfile(info, io.BytesIO(data))
        for ext, data in evil:
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for info, data in members[1:]:
            out.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("flavour", ["wds", "npy"])
def test_the_documented_webdataset_recipes_run_nothing_from_a_shard(flavour, outputs, tmp_path):
    """The README's recipes, with real webdataset, on a shard carrying pickles that would create a file."""
    wds = pytest.importorskip("webdataset")
    from neuco_io.shards.codecs import decode_sample, webdataset_decoder

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.tar"
    _evil_tar(outputs[flavour] / "shard-000000.tar", evil, marker)
    # the payload works: webdataset's default decoder runs it (what the recipes must never do)
    control = tmp_path / "control"
    _evil_tar(outputs[flavour] / "shard-000000.tar", evil.with_name("control.tar"), control)
    list(wds.WebDataset(str(evil.with_name("control.tar")), shardshuffle=False).decode())
    assert control.exists()

    url = str(evil)
    pipelines = {
        "map(decode_sample)": wds.WebDataset(url, shardshuffle=False).map(decode_sample),
        "decode(webdataset_decoder)": wds.WebDataset(url, shardshuffle=False).decode(webdataset_decoder),
    }
    if flavour == "npy":
        only = ["json", "s1.npy", "s2l1c.npy", "s2l2a.npy"]
        pipelines["decode(only=...)"] = wds.WebDataset(url, shardshuffle=False).decode(only=only)
    ext = "npy" if flavour == "npy" else "blosc"
    for name, pipeline in pipelines.items():
        samples = list(pipeline)
        assert not marker.exists(), f"{name} ran the pickle"
        assert len(samples) == 2
        first = samples[0]
        assert isinstance(first["pyd"], bytes) and isinstance(first["extra.pyd"], bytes), name
        assert first[f"s2l2a.{ext}"].shape == (4, 12, 264, 264), name
        assert first["json"]["id"] == samples[0]["json"]["id"]


# -- terminal output ---------------------------------------------------------------------------------------
def test_printable_escapes_control_characters_and_keeps_lines():
    assert printable("a\x1b]0;title\x07b\r\u202e\u2028\0\nnext é") == \
        "a\\x1b]0;title\\x07b\\x0d\\u202e\\u2028\\x00\nnext é"
    assert printable("plain text") == "plain text"


def test_control_characters_from_shards_never_reach_the_terminal_raw(wds, tmp_path):
    evil_id = "x\x1b]0;pwned\x07\x1b[2J"
    _rewrite_records(wds / "shard-000000.tar", lambda r: r.update(id=evil_id))
    for args in (["verify", str(DOWNSTREAM), str(wds), "--quiet"],
                 ["embed", str(wds), "--encoder", "mean", "--out", str(tmp_path / "e.csv"), "--quiet"]):
        result = run_cli(*args)
        text = result.stdout + result.stderr
        assert "\x1b" not in text and "\x07" not in text, text
    verify = run_cli("verify", str(DOWNSTREAM), str(wds), "--quiet")
    assert verify.returncode == 1 and "x\\x1b]0;pwned\\x07" in verify.stdout
    as_json = run_cli("verify", str(DOWNSTREAM), str(wds), "--quiet", "--format", "json")
    assert "\x1b" not in as_json.stdout and evil_id in as_json.stdout.encode().decode("unicode_escape")


def test_every_text_line_of_the_cli_goes_through_printable():
    source = (REPO / "neuco_io" / "cli.py").read_text()
    raw = [line.strip() for line in source.splitlines() if "click.echo(" in line]
    assert raw == ["click.echo(json.dumps(data, indent=2, default=str))",
                   "click.echo((\"\\r\\033[K\" if clear_line else \"\") + printable(text), err=err)"]


# -- readers are closed deterministically --------------------------------------------------------------------
def test_live_parquet_iterators_are_closed_at_exit(outputs, tmp_path):
    """Iterators still open when the interpreter exits are closed by an atexit hook (their readers and files
    with them), before pyarrow is torn down; and the reads start none of Arrow's pool threads."""
    script = tmp_path / "live.py"
    script.write_text(f"""
import os
import numcodecs
from neuco_io.loader import ShardDataset
from neuco_io.loader import datasets
import pyarrow.parquet
numcodecs.blosc.use_threads = False  # Parquet arrays are Blosc values: Blosc's own decoder threads are not Arrow's
threads = len(os.listdir("/proc/self/task"))
alive = []
for _ in range(3):
    it = iter(ShardDataset({str(outputs["parquet"])!r}, modalities=["s1", "s2l2a"]))
    next(it)
    alive.append(it)
assert len(datasets._LIVE) == 3
datasets._close_live_iterations()
assert all(it.gi_frame is None for it in alive)  # closed, and their readers with them
assert len(os.listdir("/proc/self/task")) <= threads + 1, "Arrow started a thread pool"
again = iter(ShardDataset({str(outputs["parquet"])!r}, modalities=["s1"]))
next(again)
""")
    result = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=HANG_GUARD,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


# -- fuzzing ---------------------------------------------------------------------------------------------------
FUZZ_CASES = 240


def _mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["flip", "flip", "bytes", "truncate", "zero-block"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        i = rng.randrange(len(data))
        data[i:i + 16] = bytes(rng.randrange(256) for _ in range(16))
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    else:
        i = rng.randrange(len(data)) // 512 * 512
        data[i:i + 512] = bytes(512)
    return bytes(data)


def _fuzz(folders: dict[str, str], cases: int, seed: int) -> dict[str, int]:
    """Mutate shards and manifests; every outcome must be records or a ShardError."""
    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    work = Path(folders["work"])
    for case in range(cases):
        flavour = rng.choice(["wds", "npy", "parquet"])
        target_name = rng.choice(["shard-000000", "shard-000001", "manifest"])
        folder = work / f"case-{case}"
        shutil.copytree(folders[flavour], folder)
        suffix = ".parquet" if flavour == "parquet" else ".tar"
        target = folder / ("manifest.json" if target_name == "manifest" else target_name + suffix)
        target.write_bytes(_mutate(target.read_bytes(), rng))
        outcome = "records"
        try:
            dataset = ShardDataset(folder, return_id=True, on_error=rng.choice(["raise", "warn"]), dtype="native",
                                   tasks=["fixture_height"] if rng.random() < 0.3 else None)
            for sample in dataset:
                assert isinstance(sample["id"], str)
        except ShardError:
            outcome = "ShardError"
        except UsageError as exc:  # only for a manifest so broken that it is no longer one
            assert target_name == "manifest" and "no manifest" in str(exc), exc
            outcome = "UsageError"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        shutil.rmtree(folder)
    return outcomes


def test_fuzzed_shards_and_manifests_give_records_or_shard_errors(outputs, tmp_path):
    """A few hundred seeded mutations, in a subprocess so a hang or a crash fails the test instead of stalling."""
    folders = {name: str(path) for name, path in outputs.items()} | {"work": str(tmp_path)}
    code = (f"import json, test_hostile_shards as t; "
            f"print(json.dumps(t._fuzz({folders!r}, {FUZZ_CASES}, seed=12)))")
    here = Path(__file__).parent
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD * 2,
                            cwd=here, env={**os.environ, "PYTHONPATH": f"{REPO}:{here}"})
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert sum(outcomes.values()) == FUZZ_CASES
    assert outcomes.get("ShardError", 0) > FUZZ_CASES // 4 and outcomes.get("records", 0) > 0, outcomes


@pytest.mark.parametrize("seed", range(5))
def test_fuzzed_outputs_through_verify_and_embed_exit_0_or_1(seed, outputs, tmp_path):
    rng = random.Random(seed)
    flavour = ["wds", "npy", "parquet"][seed % 3]
    folder = Path(shutil.copytree(outputs[flavour], tmp_path / flavour))
    suffix = ".parquet" if flavour == "parquet" else ".tar"
    target = folder / rng.choice(["manifest.json", f"shard-000000{suffix}", f"shard-000001{suffix}"])
    target.write_bytes(_mutate(target.read_bytes(), rng))
    verify = run_cli("verify", str(DOWNSTREAM), str(folder), "--quiet")
    assert verify.returncode == 1, (verify.stdout, verify.stderr)  # the sha256 (or the manifest) no longer match
    embed = run_cli("embed", str(folder), "--encoder", "mean", "--out", str(tmp_path / "e.csv"), "--quiet")
    assert embed.returncode in (0, 1), embed.stderr
    assert "internal error" not in embed.stderr and "Traceback" not in embed.stderr
