"""The one pool of open cubes (convert, verify, the loader): LRU by path, empty in forked and spawned workers."""

from __future__ import annotations

import copy
import hashlib
import multiprocessing
import pickle
from pathlib import Path

import pytest

from neuco_io.cube.pool import CubePool
from neuco_io.cube.reader import Cube

from helpers import ORIGINAL

CUBES = sorted(ORIGINAL.rglob("*.zarr.zip"))[:3]


def _digest(cube: Cube) -> str:
    return hashlib.sha256(cube.read("bands").tobytes()).hexdigest()


class _Handle:
    """An opened object that remembers being closed (the pool keeps anything with a close())."""

    def __init__(self, path: Path) -> None:
        self.cube = Cube(path)
        self.closed = False

    def close(self) -> None:
        self.cube.close()
        self.closed = True


def test_same_path_gives_the_same_open_cube_and_counts_opens():
    with CubePool() as pool:
        first = pool.get(CUBES[0])
        assert pool.get(str(CUBES[0])) is first  # keyed by the path's text
        assert isinstance(first, Cube) and pool.opened == 1
        pool.get(CUBES[1])
        assert pool.opened == 2 and len(pool) == 2


def test_least_recently_used_is_closed_first():
    pool: CubePool[_Handle] = CubePool(capacity=2)
    a, b = (pool.get(p, lambda p=p: _Handle(p)) for p in CUBES[:2])
    pool.get(CUBES[0], lambda: _Handle(CUBES[0]))  # a is now the most recent
    c = pool.get(CUBES[2], lambda: _Handle(CUBES[2]))
    assert b.closed and not a.closed and not c.closed
    assert CUBES[1] not in pool and CUBES[0] in pool
    assert pool.opened == 3
    pool.close()
    assert a.closed and c.closed and len(pool) == 0


def test_a_failed_open_is_not_kept(tmp_path):
    pool = CubePool()
    missing = tmp_path / "missing.zarr.zip"
    with pytest.raises(Exception, match="file not found"):
        pool.get(missing)
    assert missing not in pool and pool.opened == 0


def _in_child(pool: CubePool, path: Path, digest: str) -> None:
    ok = len(pool) == 0  # the parent's handles were dropped at fork
    cube = pool.get(path)
    ok = ok and _digest(cube) == digest and pool.opened == 2
    raise SystemExit(0 if ok else 1)


def test_a_forked_child_opens_its_own_cubes_and_the_parent_keeps_reading():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    with CubePool() as pool:
        cube = pool.get(CUBES[0])
        digest = _digest(cube)
        child = multiprocessing.get_context("fork").Process(target=_in_child, args=(pool, CUBES[0], digest))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == 0
        assert pool.get(CUBES[0]) is cube and _digest(cube) == digest


@pytest.mark.parametrize("clone", [lambda p: pickle.loads(pickle.dumps(p)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_copied_pool_holds_no_handles(clone):
    with CubePool(capacity=3) as pool:
        pool.get(CUBES[0])
        copied = clone(pool)
        assert len(copied) == 0 and copied.capacity == 3 and copied.opened == 1
        assert _digest(copied.get(CUBES[0])) == _digest(pool.get(CUBES[0]))
        copied.close()
