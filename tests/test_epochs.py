"""Epochs reach DataLoader workers: persistent workers reshuffle like fresh ones, under fork and spawn."""

from __future__ import annotations

import copy
import pickle

import pytest

from neuco_io.converters import convert
from neuco_io.errors import UsageError
from neuco_io.loader import CubeDataset, ShardDataset

from helpers import ORIGINAL

V11 = ORIGINAL / "v11"
EPOCHS = range(4)

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("epoch-shards")
    convert(V11, folder, to="webdataset", codec="none", jobs=1, max_records=1)  # 5 shards of one record
    return folder


def _as_list(batch: list) -> list:
    return batch


def _loader(ds, persistent: bool, context: str | None, batch_size: int = 1) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, num_workers=2, persistent_workers=persistent,
                      multiprocessing_context=context, collate_fn=_as_list)


def _shard_orders(folder, persistent: bool, context: str | None) -> list[list[str]]:
    ds = ShardDataset(folder, return_id=True, shuffle=3, seed=11, modalities=["s1"])
    loader = _loader(ds, persistent, context)
    orders = []
    for epoch in EPOCHS:
        ds.set_epoch(epoch)
        orders.append([s["id"] for batch in loader for s in batch])
    return orders


@pytest.mark.parametrize("context", [None, "spawn"], ids=["default", "spawn"])
def test_persistent_workers_reshuffle_like_fresh_workers(shards, context):
    in_process = []
    for epoch in EPOCHS:
        ds = ShardDataset(shards, return_id=True, shuffle=3, seed=11, modalities=["s1"])
        ds.set_epoch(epoch)
        in_process.append(sorted(s["id"] for s in ds))
    fresh = _shard_orders(shards, persistent=False, context=context)
    persistent = _shard_orders(shards, persistent=True, context=context)
    assert persistent == fresh  # the same seed and epoch give the same order in both set-ups
    for order, everything in zip(persistent, in_process):
        assert sorted(order) == everything and len(set(order)) == len(order) == 5  # every record once
    assert persistent[0] != persistent[1]  # and epoch 1 is a new order


def test_persistent_workers_redraw_seasons_per_epoch():
    ds = CubeDataset(V11, return_id=True, randomize_seasons=True, seasons=1, concat=False, modalities=["s1"],
                     seed=3)
    loader = _loader(ds, persistent=True, context=None)

    def draws(epoch):
        ds.set_epoch(epoch)
        return [s["data"]["s1"].tobytes() for batch in loader for s in batch]

    persistent = [draws(e) for e in EPOCHS]
    expected = []
    for epoch in EPOCHS:
        ds.set_epoch(epoch)
        expected.append([ds[i]["data"]["s1"].tobytes() for i in range(len(ds))])
    assert persistent == expected
    assert len(set(map(tuple, persistent))) > 1


def test_copies_of_a_dataset_keep_their_own_epoch(shards):
    ds = ShardDataset(shards, shuffle=3)
    ds.set_epoch(5)
    for clone in (pickle.loads(pickle.dumps(ds)), copy.deepcopy(ds)):
        assert clone.epoch == 5
        clone.set_epoch(6)
        assert ds.epoch == 5


@pytest.mark.parametrize("epoch", [-1, 1.5, "2", True, None, 2**63])
def test_a_bad_epoch_is_a_usage_error_naming_it(shards, epoch):
    """Not a ValueError from inside numpy's seeding (negative), nor a silent wrap-around (2**63)."""
    ds = ShardDataset(shards, shuffle=3)
    with pytest.raises(UsageError, match=r"epoch: expected a whole number .*got"):
        ds.set_epoch(epoch)
    assert ds.epoch == 0
    state = ds.state_dict()
    state["epoch"] = -1  # a tampered state
    with pytest.raises(UsageError, match="epoch"):
        ShardDataset(shards, shuffle=3).load_state_dict(state)
