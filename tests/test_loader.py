"""The streaming loader: parity between sources, splitting, shuffling, safety, torch integration."""

from __future__ import annotations

import io
import itertools
import tarfile
from pathlib import Path

import numpy as np
import pytest

from neuco_io.converters import convert
from neuco_io.cube.reader import Cube
from neuco_io.errors import ShardError, UsageError
from neuco_io.loader import CubeDataset, ShardDataset
from neuco_io.loader.split import Consumer, rank_records, records_per_rank

from helpers import ORIGINAL

DOWNSTREAM = ORIGINAL / "downstream"
V11 = ORIGINAL / "v11"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Both layouts converted to every shard flavour (max 2 records a shard)."""
    out = {}
    base = tmp_path_factory.mktemp("shards")
    for layout, root in (("downstream", DOWNSTREAM), ("v11", V11)):
        for fmt, codec in (("webdataset", "blosc"), ("webdataset", "none"), ("parquet", "blosc")):
            folder = base / f"{layout}-{fmt}-{codec}"
            convert(root, folder, to=fmt, codec=codec, jobs=1, max_records=2)
            out[(layout, fmt, codec)] = folder
    return out


def as_dict(sample):
    """(id, data) from any sample form, numpy everywhere."""
    data = sample["data"] if isinstance(sample, dict) and "data" in sample else sample
    data = {k: np.asarray(v) for k, v in data.items()} if isinstance(data, dict) else np.asarray(data)
    return sample.get("id") if isinstance(sample, dict) else None, data


OPTION_SETS = [
    {},
    {"modalities": ["s2l2a", "s1"], "seasons": 2},
    {"seasons": [3, 1], "concat": False},
    {"randomize_seasons": True, "seasons": 3, "seed": 7},
    {"shift_s2": True, "dtype": "native", "concat": False},
    {"shift_s2": True, "modalities": ["s2l1c"]},
    {"dtype": "native"},
    {"transform": lambda a: a * 2 - 1, "concat": False},
    {"tasks": ["fixture_height", "fixture_subset"]},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("flavour", [("webdataset", "blosc"), ("webdataset", "none"), ("parquet", "blosc")],
                         ids=lambda f: "-".join(f))
def test_parity_cubes_and_shards(shards, options, flavour):
    opts = dict(options, return_id=True)
    if "tasks" in opts and "downstream" not in str(shards[("downstream", *flavour)]):
        pytest.skip()
    cubes = {s["id"]: s for s in (CubeDataset(DOWNSTREAM, **opts)[i] for i in range(3))}
    streamed = {s["id"]: s for s in ShardDataset(shards[("downstream", *flavour)], **opts)}
    assert cubes.keys() == streamed.keys()
    for loc_id, sample in cubes.items():
        _, a = as_dict(sample)
        _, b = as_dict(streamed[loc_id])
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
        else:
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        if "tasks" in opts:
            np.testing.assert_equal(sample["labels"], streamed[loc_id]["labels"])


def test_sample_semantics_match_the_reference_loader():
    ds = CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"], seasons=2, return_id=True, shift_s2=True)
    sample = ds[0]
    with Cube(next((DOWNSTREAM / "data" / "s2l2a").glob(f"*/{sample['id']}.zarr.zip"))) as cube:
        s2 = cube.read("bands")[0, :2].astype(np.float32) + 1000
    with Cube(next((DOWNSTREAM / "data" / "s1").glob(f"*/{sample['id']}.zarr.zip"))) as cube:
        s1 = cube.read("bands")[0, :2].astype(np.float32)
    data = sample["data"]
    assert data.shape == (2, 12 + 2, 264, 264) and data.dtype == np.float32
    np.testing.assert_array_equal(data[:, :12], s2)  # modalities in the order given, bands concatenated
    np.testing.assert_array_equal(data[:, 12:], s1)  # no offset on S1


def test_shift_s2_native_does_not_overflow(tmp_path):
    from neuco_io.cube.writer import write_cube

    from helpers import write_location

    root = tmp_path / "ds"
    write_location(root, "a")
    bands = np.full((1, 4, 12, 264, 264), 32000, dtype=np.int16)
    write_cube(root / "data/s2l2a/part-000000/a.zarr.zip", "s2l2a", bands, ["a"], overwrite=True, fsync=False)
    native = CubeDataset(root, modalities=["s2l2a"], shift_s2=True, dtype="native")[0]
    assert native.dtype == np.int32 and int(native.max()) == 33000
    assert float(CubeDataset(root, modalities=["s2l2a"], shift_s2=True)[0].max()) == 33000.0


def test_randomize_seasons_is_seeded_per_location_and_epoch():
    ds = CubeDataset(DOWNSTREAM, randomize_seasons=True, seasons=2, seed=3, modalities=["s1"])
    first = [ds.options.season_indices(i, 0) for i in ds.ids]
    assert first == [ds.options.season_indices(i, 0) for i in ds.ids]
    assert all(len(set(t)) == 2 and set(t) <= {0, 1, 2, 3} for t in first)
    draws = {tuple(ds.options.season_indices(ds.ids[0], e)) for e in range(20)}
    assert len(draws) > 3


def test_v11_cube_and_shard_parity(shards):
    cubes = [CubeDataset(V11, return_id=True, modalities=["s2rgb", "s1"])[i] for i in range(5)]
    streamed = list(ShardDataset(shards[("v11", "webdataset", "blosc")], return_id=True, modalities=["s2rgb", "s1"]))
    assert [s["id"] for s in cubes] == [s["id"] for s in streamed] == ["0080717", "0060573", "0001234", "0179869",
                                                                      "0012333"]
    for a, b in zip(cubes, streamed):
        assert a["data"].tobytes() == b["data"].tobytes()


@pytest.mark.parametrize(("world", "workers"), [(1, 1), (1, 3), (2, 2), (3, 2), (4, 1)])
def test_every_record_once_per_epoch(shards, world, workers):
    folder = shards[("downstream", "webdataset", "blosc")]  # 2 shards, 3 records
    seen = []
    for rank in range(world):
        ds = ShardDataset(folder, return_id=True, rank=rank, world_size=world, modalities=["s1"], shuffle=2)
        ds.set_epoch(1)
        for worker in range(workers):
            plan_consumer = Consumer(rank, world, worker, workers)
            seen += [s["id"] for s in _iterate_as(ds, plan_consumer)]
    assert sorted(seen) == sorted(CubeDataset(DOWNSTREAM).ids)


def _iterate_as(ds: ShardDataset, consumer: Consumer):
    """Iterate as one DataLoader worker of one rank would."""
    import neuco_io.loader.datasets as datasets

    original = datasets.current_consumer
    datasets.current_consumer = lambda rank=None, world_size=None: consumer
    try:
        return list(ds)
    finally:
        datasets.current_consumer = original


@pytest.mark.parametrize("mode", [True, "pad", "drop"])
def test_equal_per_rank(shards, mode):
    folder = shards[("v11", "webdataset", "blosc")]  # 3 shards: 2, 2, 1 records
    counts = []
    for rank in range(2):
        ds = ShardDataset(folder, rank=rank, world_size=2, equal_per_rank=mode, modalities=["s1"])
        counts.append((len(ds), len(list(ds))))
    assert counts[0] == counts[1]
    assert counts[0][0] == counts[0][1] == (3 if mode != "drop" else 2)


def test_shuffle_is_deterministic_and_changes_per_epoch(shards):
    folder = shards[("v11", "webdataset", "none")]

    def order(epoch, seed=0):
        ds = ShardDataset(folder, return_id=True, shuffle=4, seed=seed, modalities=["s2rgb"])
        ds.set_epoch(epoch)
        return [s["id"] for s in ds]

    assert order(0) == order(0)
    assert sorted(order(0)) == sorted(order(1))
    assert len({tuple(order(e)) for e in range(6)}) > 1
    assert order(0) != [s["id"] for s in ShardDataset(folder, return_id=True, modalities=["s2rgb"])] or \
        order(1) != order(0)


def test_sources_paths_and_patterns(shards):
    folder = shards[("downstream", "webdataset", "blosc")]
    paths = sorted(str(p) for p in folder.glob("shard-*.tar"))
    by_list = [s["id"] for s in ShardDataset(paths, return_id=True, modalities=["s1"])]
    pattern = str(folder / "shard-{000000..000001}.tar")
    by_pattern = [s["id"] for s in ShardDataset(pattern, return_id=True, modalities=["s1"])]
    by_folder = [s["id"] for s in ShardDataset(folder, return_id=True, modalities=["s1"])]
    assert by_list == by_pattern == by_folder
    assert len(ShardDataset(pattern, modalities=["s1"])) == 3
    # without a manifest next to them, record counts come from the shards themselves
    lone = folder.parent / "lone"
    lone.mkdir()
    for p in paths:
        (lone / Path(p).name).write_bytes(Path(p).read_bytes())
    assert len(ShardDataset(str(lone / "shard-{000000..000001}.tar"), modalities=["s1"])) == 3


def _rewrite_tar(src: Path, dst: Path, edit) -> None:
    with tarfile.open(src) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(dst, "w") as out:
        for info, data in edit(members):
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def test_malicious_and_corrupt_shards(shards, tmp_path, caplog):
    src = next(shards[("downstream", "webdataset", "none")].glob("shard-000000.tar"))
    # a pickled member next to the arrays: never read, never unpickled
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    def add_pickle(members):  # inside the first record, next to its JSON
        info = tarfile.TarInfo(members[0][0].name.split(".")[0] + ".evil.pyd")
        return [members[0], (info, pickle.dumps(Boom())), *members[1:]]

    evil = tmp_path / "evil.tar"
    _rewrite_tar(src, evil, add_pickle)
    assert len(list(ShardDataset(str(evil), modalities=["s1"]))) == 2

    # an .npy member declaring an object dtype (would need pickle)
    def object_npy(members):
        out = []
        for info, data in members:
            if info.name.endswith(".s1.npy"):
                buf = io.BytesIO()
                np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)
                data = buf.getvalue()
            out.append((info, data))
        return out

    bad_npy = tmp_path / "objects.tar"
    _rewrite_tar(src, bad_npy, object_npy)
    with pytest.raises(ShardError, match=r"objects\.tar"):
        list(ShardDataset(str(bad_npy), modalities=["s1"]))

    # a member whose shape disagrees with the JSON record
    def wrong_shape(members):
        out = []
        for info, data in members:
            if info.name.endswith(".s1.npy"):
                buf = io.BytesIO()
                np.save(buf, np.zeros((4, 2, 10, 10), np.float16))
                data = buf.getvalue()
            out.append((info, data))
        return out

    shaped = tmp_path / "shape.tar"
    _rewrite_tar(src, shaped, wrong_shape)
    with pytest.raises(ShardError) as info:
        list(ShardDataset(str(shaped), modalities=["s1"]))
    assert "shape.tar" in str(info.value) and info.value.key

    # a shard truncated after conversion: the error names it; with on_error="warn" it is logged and skipped
    import shutil

    folder = Path(shutil.copytree(src.parent, tmp_path / "damaged"))
    cut = folder / "shard-000000.tar"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2 + 100])
    with pytest.raises(ShardError, match=r"shard-000000\.tar"):
        list(ShardDataset(folder, modalities=["s2l2a"]))
    with caplog.at_level("WARNING", logger="neuco_io.loader"):
        got = list(ShardDataset(folder, modalities=["s2l2a"], on_error="warn", return_id=True))
    assert "shard-000000.tar" in caplog.text
    assert 1 <= len(got) < 3  # the other shard's record, and whatever the damaged one still held
    # a lone truncated shard (no manifest to count from) is refused up front, by name
    with pytest.raises(ShardError, match=r"cut\.tar"):
        lone = tmp_path / "cut.tar"
        lone.write_bytes(cut.read_bytes())
        ShardDataset(str(lone), modalities=["s2l2a"])


def test_bad_options_are_usage_errors():
    for kwargs in ({"seasons": 0}, {"seasons": [0, 0]}, {"seasons": [4]}, {"modalities": ["s3"]},
                   {"dtype": "float64"}, {"modalities": []}):
        with pytest.raises(UsageError):
            CubeDataset(DOWNSTREAM, **kwargs)


# -- with torch ----------------------------------------------------------------------------
def test_torch_dataloader_default_collate_matches_reference_batches(shards):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    ds = ShardDataset(shards[("downstream", "webdataset", "blosc")], modalities=["s2l2a", "s1"])
    assert isinstance(ds, torch.utils.data.IterableDataset)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch.shape == (3, 4, 14, 264, 264) and batch.dtype == torch.float32
    # the reference collate concatenates [1, T, C, H, W] samples: the same tensor
    reference = torch.cat([torch.from_numpy(CubeDataset(DOWNSTREAM, modalities=["s2l2a", "s1"])[i][None])
                           for i in range(3)])
    assert torch.equal(batch, reference)


@pytest.mark.parametrize("workers", [0, 2, 5])
def test_dataloader_workers_fork_safely_and_see_each_record_once(shards, workers):
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    for ds in (ShardDataset(shards[("v11", "webdataset", "blosc")], return_id=True, modalities=["s1"]),
               CubeDataset(V11, return_id=True, modalities=["s1"])):
        iter(ds) if isinstance(ds, ShardDataset) else ds[0]  # touch files in the parent first
        ids = [i for batch in DataLoader(ds, batch_size=2, num_workers=workers) for i in batch["id"]]
        assert sorted(ids) == sorted(["0080717", "0060573", "0001234", "0179869", "0012333"])


def test_output_torch_and_transform_receive_tensors():
    torch = pytest.importorskip("torch")
    seen = []

    def transform(x):
        seen.append(type(x))
        return x / 10000

    sample = CubeDataset(DOWNSTREAM, output="torch", transform=transform, concat=False)[0]
    assert seen == [torch.Tensor] and isinstance(sample["s1"], torch.Tensor)
    assert sample["s2l1c"].shape == (4, 13, 264, 264)


COMBOS = list(itertools.product([4, 2, [3, 1]], [True, False], ["float32", "native"], [False, True], [False, True]))


@pytest.mark.parametrize(("seasons", "concat", "dtype", "shift_s2", "randomize"), COMBOS,
                         ids=[f"s{c[0]}-{'cat' if c[1] else 'dict'}-{c[2]}-{'shift' if c[3] else 'raw'}-"
                              f"{'rand' if c[4] else 'fixed'}" for c in COMBOS])
def test_parity_option_grid(shards, seasons, concat, dtype, shift_s2, randomize):
    """Every combination of the sample options gives identical arrays from cubes and from shards."""
    index = COMBOS.index((seasons, concat, dtype, shift_s2, randomize))
    flavour = [("webdataset", "blosc"), ("webdataset", "none"), ("parquet", "blosc")][index % 3]
    modalities = [["s1", "s2l1c", "s2l2a"], ["s2l2a", "s1"], ["s2l1c"]][index % 3]
    opts = {"seasons": seasons, "concat": concat, "dtype": dtype, "shift_s2": shift_s2,
            "randomize_seasons": randomize, "modalities": modalities, "return_id": True, "seed": index}
    cubes = CubeDataset(DOWNSTREAM, **opts)
    cubes.set_epoch(2)
    streamed = ShardDataset(shards[("downstream", *flavour)], **opts)
    streamed.set_epoch(2)
    expected = {s["id"]: as_dict(s)[1] for s in (cubes[i] for i in range(len(cubes)))}
    got = {s["id"]: as_dict(s)[1] for s in streamed}
    assert expected.keys() == got.keys()
    for loc_id, a in expected.items():
        b = got[loc_id]
        pairs = [(a[k], b[k]) for k in a] if isinstance(a, dict) else [(a, b)]
        for x, y in pairs:
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def test_works_without_torch(tmp_path):
    """With torch unimportable, the datasets are plain iterables of numpy arrays."""
    import subprocess
    import sys

    code = textwrap_dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from neuco_io.loader import CubeDataset, ShardDataset
        assert not [c for c in CubeDataset.__mro__ + ShardDataset.__mro__ if c.__module__.startswith("torch")]
        cubes = CubeDataset({str(DOWNSTREAM)!r}, modalities=["s1"])
        assert isinstance(cubes[0], np.ndarray) and cubes[0].shape == (4, 2, 264, 264)
        from neuco_io.converters import convert
        convert({str(DOWNSTREAM)!r}, {str(tmp_path / "out")!r}, to="webdataset", jobs=1)
        samples = list(ShardDataset({str(tmp_path / "out")!r}, modalities=["s1"], return_id=True))
        assert len(samples) == 3 and isinstance(samples[0]["data"], np.ndarray)
        try:
            CubeDataset({str(DOWNSTREAM)!r}, output="torch")
        except Exception as exc:
            assert "needs PyTorch" in str(exc)
        else:
            raise AssertionError("output='torch' without torch should fail")
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def textwrap_dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


@pytest.mark.parametrize("counts", [[], [0], [5], [3, 0, 7], [4, 4, 4, 1], [0, 0, 2]])
def test_records_per_rank_counts_what_rank_records_lists(counts):
    for world_size in (1, 2, 3, 5):
        for rank in range(world_size):
            for equal in (False, "pad", "drop"):
                listed = rank_records(counts, rank, world_size, equal_per_rank=equal)
                assert records_per_rank(counts, rank, world_size, equal) == len(listed)
