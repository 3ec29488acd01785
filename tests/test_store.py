"""One suite for every Store: the same tests over a local folder, memory:// and S3 (a moto server).

In the spirit of zarr-python's `StoreTests`: each backend gets a fresh empty
store, and files are put and got through a back door (the filesystem itself,
never the store), so a store method is checked against the backend rather
than against another store method.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import pytest
from test_remote import BUCKET, s3  # noqa: F401 - the S3 server fixture, shared with the remote tests

from neuco_io.errors import UsageError
from neuco_io.storage import FsspecStore, LocalStore, Store, file_size, glob_files, open_read, open_store
from neuco_io.storage.atomic import atomic_path

BACKENDS = ["local", "memory", "s3"]

CAPABILITIES = {
    # read_only, positioned_reads, os_paths, in_process_only, atomic_rename, supports_listing
    "local": (False, True, True, False, True, True),
    "memory": (False, False, False, True, False, True),
    "s3": (False, False, False, False, False, True),
}


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store(backend, request, tmp_path) -> Store:
    """A fresh, empty store on the backend."""
    if backend == "local":
        return open_store(tmp_path / "store")
    if backend == "memory":
        return open_store(f"memory://neuco-{uuid.uuid4().hex[:8]}/store")
    _, options = request.getfixturevalue("s3")
    return open_store(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/store", options)


def put(store: Store, name: str, data: bytes) -> None:
    """Write a file behind the store's back."""
    if isinstance(store, LocalStore):
        path = store.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store.path.fs.pipe_file(f"{store.path.path}/{name}", data)


def get(store: Store, name: str) -> bytes | None:
    """Read a file behind the store's back (None when absent)."""
    try:
        if isinstance(store, LocalStore):
            return (store.path / name).read_bytes()
        return store.path.fs.cat_file(f"{store.path.path}/{name}")
    except FileNotFoundError:
        return None


class TestStore:
    """What every store does alike; capabilities say where they differ."""

    def test_capabilities_are_declared(self, store, backend):
        declared = (store.read_only, store.positioned_reads, store.os_paths, store.in_process_only,
                    store.atomic_rename, store.supports_listing)
        assert declared == CAPABILITIES[backend]

    def test_open_store_keeps_a_store_and_finds_the_same_one_again(self, store):
        assert open_store(store) is store
        assert open_store(store.path) == store
        assert (store / "a" / "b") == open_store(store.path / "a" / "b")
        assert str(store) in repr(store)

    def test_size_has_and_info_of_a_file(self, store):
        put(store, "data/x.bin", b"12345")
        assert store.size("data/x.bin") == 5
        assert store.has("data/x.bin") and store.is_file("data/x.bin") and not store.is_dir("data/x.bin")
        info = store.info("data/x.bin")
        assert (info.size, info.is_dir, info.kind) == (5, False, None)
        assert store.is_dir("data") and not store.is_file("data") and store.info("data").is_dir

    def test_what_is_not_there(self, store):
        assert store.size("nothing.bin") is None
        assert not store.has("nothing.bin") and not store.exists("nothing.bin")
        assert store.names("nowhere") == []
        assert store.signature("nothing.bin") == [-1, -1]
        with pytest.raises(FileNotFoundError):
            store.info("nothing.bin")
        with pytest.raises(OSError):
            store.open("nothing.bin").close()

    def test_open_reads_at_any_offset_and_front_to_back(self, store):
        data = os.urandom(300_000)
        put(store, "x.bin", data)
        with store.open("x.bin") as fh:
            fh.seek(123_456)
            assert fh.read(1000) == data[123_456:124_456]
            fh.seek(0)
            assert fh.read() == data
        with store.open("x.bin", sequential=True) as fh:
            assert fh.read() == data
        assert store.sha256("x.bin") == hashlib.sha256(data).hexdigest()

    def test_read_ranges_gives_each_span(self, store):
        data = bytes(range(256)) * 40
        put(store, "x.bin", data)
        spans = [(0, 10), (100, 356), (10_000, 10_240)]
        assert list(store.read_ranges("x.bin", spans)) == [data[a:b] for a, b in spans]
        assert list(store.read_ranges("x.bin", [(10_230, 10_300)])) == [data[10_230:]]  # short at the end

    def test_positioned_reads_use_the_descriptor(self, store):
        put(store, "x.bin", b"abcdef")
        with store.open("x.bin") as fh:
            if store.positioned_reads:
                assert os.pread(fh.fileno(), 3, 2) == b"cde"
            else:
                fh.seek(2)
                assert fh.read(3) == b"cde"

    def test_a_written_file_appears_only_when_complete(self, store):
        with store.writing("deep/er/out.txt") as temp:
            temp.write_bytes(b"half")
            assert get(store, "deep/er/out.txt") is None
            temp.write_bytes(b"whole")
        assert get(store, "deep/er/out.txt") == b"whole"
        assert not temp.exists()

    def test_a_failed_write_leaves_nothing(self, store):
        put(store, "keep.txt", b"old")
        with pytest.raises(RuntimeError), store.writing("keep.txt") as temp:
            temp.write_bytes(b"new")
            raise RuntimeError("writer failed")
        assert get(store, "keep.txt") == b"old"
        assert store.names() == ["keep.txt"]
        assert not temp.exists()

    def test_text_round_trip(self, store):
        store.write_text("a/notes.txt", "grüße\n")
        assert store.read_text("a/notes.txt") == "grüße\n"
        assert get(store, "a/notes.txt") == "grüße\n".encode()

    def test_names_lists_one_folder_sorted(self, store):
        for name in ("b.txt", "a.txt", "sub/c.txt", "sub/deeper/d.txt"):
            put(store, name, b"x")
        assert store.names() == ["a.txt", "b.txt", "sub"]
        assert store.names("sub") == ["c.txt", "deeper"]
        assert (store / "sub").names() == ["c.txt", "deeper"]

    def test_tree_lists_everything_under_the_root(self, store):
        for name in ("s1/part-000000/x.zarr.zip", "s1/part-000000/y.zarr.zip", "labels/t.csv"):
            put(store, name, b"x")
        tree = store.tree()
        root = store.path
        assert [(e.name, e.is_dir) for e in tree.entries(root)] == [("labels", True), ("s1", True)]
        part = tree.entries(root / "s1")[0]
        assert (part.name, part.is_dir) == ("part-000000", True)
        assert [e.name for e in tree.entries(part.path)] == ["x.zarr.zip", "y.zarr.zip"]
        assert tree.is_dir(root / "labels") and tree.is_file(root / "labels" / "t.csv")
        assert not tree.is_file(root / "labels") and not tree.is_dir(root / "nothing")

    def test_glob_finds_files_that_open(self, store):
        for name in ("shard-000001.tar", "shard-000000.tar", "other.txt"):
            put(store, name, name.encode())
        found = store.glob("shard-*.tar")
        assert [f.rpartition("/")[2] for f in found] == ["shard-000000.tar", "shard-000001.tar"]
        options = getattr(store.path, "storage_options", None)
        pattern = str(store.path / "shard-*.tar")
        assert glob_files(pattern, dict(options) if options else None) == found
        with open_read(store.path / "shard-000001.tar") as fh:
            assert fh.read() == b"shard-000001.tar"

    def test_create_does_not_replace(self, store):
        store.mkdir()
        assert store.create("lock", "first")
        assert not store.create("lock", "second")
        assert store.read_text("lock") == "first"

    def test_remove_files_and_folders(self, store):
        for name in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
            put(store, name, b"x")
        store.remove("a.txt")
        store.remove("sub")
        store.remove("never-there")
        assert get(store, "a.txt") is None and get(store, "sub/deeper/c.txt") is None
        assert store.names() == []

    def test_remove_if_empty_keeps_a_users_files(self, store):
        put(store, "state/mine.txt", b"mine")
        store.remove_if_empty("state")
        assert get(store, "state/mine.txt") == b"mine"

    def test_signature_tells_a_changed_file(self, store):
        put(store, "x.bin", b"one")
        before = store.signature("x.bin")
        assert before[0] == 3
        put(store, "x.bin", b"three")
        assert store.signature("x.bin") != before

    def test_partials_only_where_writes_are_renamed(self, store):
        if store.atomic_rename:
            store.mkdir()
            with pytest.raises(RuntimeError), atomic_path(store.location("x.tar")) as temp:
                temp.write_bytes(b"half")
                os.link(temp, store.location(f"{temp.name}.kept"))  # what a killed writer leaves behind
                raise RuntimeError
            os.rename(store.location(f"{temp.name}.kept"), temp)
            assert store.remove_partials("", {"x.tar"}) == 1
        else:
            put(store, ".x.tar.1-0badcafe.partial", b"not ours to judge")
            assert store.remove_partials("", {"x.tar"}) == 0  # uploads never leave any
        assert store.names() == ([] if store.atomic_rename else [".x.tar.1-0badcafe.partial"])

    def test_describe_names_the_root_absolutely(self, store):
        text = store.describe()
        assert text == str(Path(store.path).resolve()) if store.os_paths else text == str(store.path)

    def test_a_store_rooted_at_a_file_reads_it(self, store):
        put(store, "f/x.bin", b"abc")
        one = open_store(store.path / "f" / "x.bin")
        assert one == store / "f" / "x.bin" and one.size() == 3 and one.info().size == 3
        with one.open() as fh:
            assert fh.read() == b"abc"
        assert file_size(store.path / "f" / "x.bin") == 3
        assert file_size(store.path / "f" / "y.bin") is None

    def test_a_shard_folder_without_manifest_says_so(self, store):
        from neuco_io.loader.sources import resolve_shards

        put(store, "shard-000000.tar", b"x")
        with pytest.raises(UsageError, match=r"no manifest\.json"):
            resolve_shards(store.path)

    def test_info_of_a_file_that_is_no_cube_or_shard(self, store):
        from neuco_io.info import info

        put(store, "notes.txt", b"x")
        options = getattr(store.path, "storage_options", None)
        with pytest.raises(UsageError, match="not a cube"):
            info(str(store.path / "notes.txt"), storage_options=dict(options) if options else None)

    def test_verify_of_a_root_that_is_not_there(self, store):
        from neuco_io.converters import verify

        with pytest.raises(UsageError, match="no such directory"):
            verify(store.path / "nothing", store.path / "out", jobs=1)


def test_memory_store_refuses_to_be_seen_by_workers():
    """in_process_only: a pool of worker processes would not see memory:// files, so the work stays here."""
    from neuco_io.execution import SerialExecutor, make_executor

    memory = open_store(f"memory://neuco-{uuid.uuid4().hex[:8]}/x")
    assert isinstance(make_executor(2, 4, places=(memory,)), SerialExecutor)
    with pytest.raises(UsageError, match="memory://"):
        make_executor(2, 4, scheduler="local:1", places=(memory.path,))


def test_http_is_read_only_and_not_listed():
    store = open_store("https://127.0.0.1:9/data")
    assert isinstance(store, FsspecStore)
    assert store.read_only and not store.supports_listing and not store.atomic_rename
    with pytest.raises(UsageError, match="read-only"), store.writing("x.txt"):
        pass  # refused before any request is made


def test_local_store_refuses_what_is_not_a_regular_file(tmp_path):
    """A FIFO named like a data file would block a reader forever: info says what it is, open refuses it."""
    store = LocalStore(tmp_path)
    os.mkfifo(tmp_path / "x.zarr.zip")
    assert store.info("x.zarr.zip").kind == "a FIFO"
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            store.open("x.zarr.zip").close()
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(120)
    assert outcome and "not a regular file (a FIFO)" in str(outcome[0])


def test_local_tree_of_a_missing_or_file_root(tmp_path):
    with pytest.raises(UsageError, match="no such directory"):
        LocalStore(tmp_path / "nothing").tree()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        LocalStore(tmp_path / "file").tree()
