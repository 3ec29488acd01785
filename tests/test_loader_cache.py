"""The local cache of URL shards (issue 16): filled once, LRU within its limit, checked against the manifest."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import multiprocessing
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from test_remote import _RangeHandler

from neuco_io.converters import convert
from neuco_io.errors import UsageError
from neuco_io.loader import ShardDataset

OPTIONS = {"modalities": ["s2rgb"], "return_id": True}


class ServedBytes(_RangeHandler):
    """Counts the bytes of every GET answer when it is prepared, before the client can see any of them (so a
    count read after the client finished is complete: no race with the server thread)."""

    sent = 0

    def send_head(self):
        body = super().send_head()
        if body is not None and self.command == "GET":
            size = len(body.getvalue()) if isinstance(body, io.BytesIO) else os.fstat(body.fileno()).st_size
            type(self).sent += size
        return body

    def copyfile(self, source, outputfile):  # counted in send_head already
        http.server.SimpleHTTPRequestHandler.copyfile(self, source, outputfile)


@contextlib.contextmanager
def serve(folder: Path):
    """Serve `folder` on 127.0.0.1 with range requests; yields (base URL, handler class counting bytes sent)."""
    handler = type("Handler", (ServedBytes,), {"sent": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(sample_v11, tmp_path_factory):
    """The v1.1 sample (7 locations) as tar and Parquet shards of 2, served on 127.0.0.1 with range requests;
    yields (folder, base URL, handler counting the bytes sent)."""
    folder = tmp_path_factory.mktemp("cache") / "served"
    for fmt in ("webdataset", "parquet"):
        convert(sample_v11, folder / fmt, to=fmt, jobs=1, max_records=2)
    with serve(folder) as (base, handler):
        yield folder, base, handler


def cache_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if not p.name.endswith(".lock"))


def by_id(ds) -> dict:
    return {s["id"]: s["data"] for s in ds}


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_second_epoch_reads_nothing_from_the_network(served, tmp_path, fmt):
    folder, base, handler = served
    local = by_id(ShardDataset(folder / fmt, **OPTIONS))
    ds = ShardDataset(f"{base}/{fmt}/", cache_dir=tmp_path / "cache", **OPTIONS)
    before = handler.sent
    first = by_id(ds)
    shard_bytes = sum(s["bytes"] for s in json.loads((folder / fmt / "manifest.json").read_text())["shards"])
    assert handler.sent - before == shard_bytes  # each shard fetched once, whole
    before = handler.sent
    ds.set_epoch(1)
    second = by_id(ds)
    assert handler.sent == before  # not one byte
    other = ShardDataset(f"{base}/{fmt}/", cache_dir=tmp_path / "cache", **OPTIONS)  # another object: reads
    before = handler.sent  # the manifest, then
    again = by_id(other)
    assert handler.sent == before
    for got in (first, second, again):
        assert got.keys() == local.keys()
        for loc_id, data in got.items():
            np.testing.assert_array_equal(data, local[loc_id])


def test_the_cache_never_exceeds_its_limit_and_evicts_the_least_recently_used(served, tmp_path):
    folder, base, handler = served
    shards = json.loads((folder / "webdataset" / "manifest.json").read_text())["shards"]
    limit = sum(sorted(s["bytes"] for s in shards)[-2:]) + 100  # room for the two largest shards
    cache = tmp_path / "cache"
    ds = ShardDataset(f"{base}/webdataset/", cache_dir=cache, cache_limit=limit, **OPTIONS)
    seen = []
    for sample in ds:
        seen.append(sample["id"])
        assert cache_bytes(cache) <= limit
    assert len(seen) == sum(s["records"] for s in shards)
    cached = sorted(p.name.split("-", 1)[1] for p in cache.iterdir() if p.name.endswith(".tar"))
    assert cached == [s["name"] for s in shards][-len(cached):] and 1 <= len(cached) < len(shards)
    before = handler.sent
    list(ds)  # the evicted shards come back from the network, the kept ones do not
    evicted = sum(s["bytes"] for s in shards if s["name"] not in cached)
    assert handler.sent - before >= evicted
    assert cache_bytes(cache) <= limit


def test_a_corrupted_cached_shard_is_detected_and_fetched_again(served, tmp_path):
    folder, base, handler = served
    cache = tmp_path / "cache"
    list(ShardDataset(f"{base}/webdataset/", cache_dir=cache, **OPTIONS))
    victim = sorted(p for p in cache.iterdir() if p.name.endswith(".tar"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    fresh = ShardDataset(f"{base}/webdataset/", cache_dir=cache, **OPTIONS)
    before = handler.sent
    again = by_id(fresh)
    assert handler.sent - before == len(data)  # that shard, and only it, fetched again
    local = by_id(ShardDataset(folder / "webdataset", **OPTIONS))
    for loc_id, arr in again.items():
        np.testing.assert_array_equal(arr, local[loc_id])


def _fill(url: str, cache: str, out) -> None:
    out.put(sorted(s["id"] for s in ShardDataset(url, cache_dir=cache, **OPTIONS)))


def test_processes_share_one_cache(served, tmp_path):
    """Two processes reading the same shards at once into one cache: both get every record, every shard is
    in the cache once, whole and verified."""
    folder, base, _ = served
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_fill, args=(f"{base}/webdataset/", str(tmp_path / "cache"), out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
    expected = sorted(by_id(ShardDataset(folder / "webdataset", **OPTIONS)))
    assert results == [expected, expected]
    shards = json.loads((folder / "webdataset" / "manifest.json").read_text())["shards"]
    cached = sorted(p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tar"))
    assert len(cached) == len(shards) and not list((tmp_path / "cache").glob("*.partial"))


def test_cache_options_are_checked(served, tmp_path):
    _, base, _ = served
    with pytest.raises(UsageError, match="cache_limit"):
        ShardDataset(f"{base}/webdataset/", cache_dir=tmp_path / "c", cache_limit="lots", **OPTIONS)
    with pytest.raises(UsageError, match="give cache_dir"):
        ShardDataset(f"{base}/webdataset/", cache_limit="1GB", **OPTIONS)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UsageError, match="a-file: exists and is not a folder"):
        ShardDataset(f"{base}/webdataset/", cache_dir=tmp_path / "a-file", **OPTIONS)


@pytest.mark.parametrize("limit", ["0", "-1", "lots", "inf", float("nan"), True])
def test_cache_options_are_checked_for_local_shards_too(served, tmp_path, limit):
    """Local shards are read in place, so the cache is unused: a mistyped option still says so."""
    folder, _, _ = served
    with pytest.raises(UsageError, match="cache_limit"):
        ShardDataset(folder / "webdataset", cache_dir=tmp_path / "c", cache_limit=limit, **OPTIONS)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_ids_use_cached_copies_and_never_fill(served, tmp_path, fmt):
    folder, base, handler = served
    cache = tmp_path / "cache"
    wanted = sorted(json.loads((folder / fmt / "manifest.json").read_text())["index"])[:2]
    picked = ShardDataset(f"{base}/{fmt}/", cache_dir=cache, ids=wanted, **OPTIONS)
    assert sorted(by_id(picked)) == wanted
    assert not list(cache.glob(f"*.{'tar' if fmt == 'webdataset' else 'parquet'}"))  # ranges: nothing cached
    list(ShardDataset(f"{base}/{fmt}/", cache_dir=cache, **OPTIONS))  # a whole epoch fills the cache
    before = handler.sent
    assert sorted(by_id(picked)) == wanted and picked.get(wanted[0])["id"] == wanted[0]
    assert handler.sent == before  # from the cached copies
