"""Resuming a ShardDataset mid-epoch (issue 16): canonical order, state_dict/load_state_dict, StatefulDataLoader."""

from __future__ import annotations

import itertools

import pytest

from neuco_io.converters import convert
from neuco_io.errors import UsageError
from neuco_io.loader import ShardDataset
from neuco_io.loader.order import Generation, consumer_plan, remaining_positions
from neuco_io.loader.split import Consumer, canonical_order

OPTIONS = {"modalities": ["s2rgb"], "return_id": True, "shuffle": 4, "seed": 7}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """14 v1.1 locations (cheap S2RGB records) in 7 shards of 2."""
    from neuco_io.sample import write_sample

    base = tmp_path_factory.mktemp("resume")
    root = write_sample(base / "v11", layout="v1.1", locations=14, seed=1, samples_per_file=4).root
    convert(root, base / "shards", to="webdataset", jobs=1, max_records=2)
    return base / "shards"


def ids(samples) -> list[str]:
    return [s["id"] for s in samples]


def consumers(world: int, workers: int):
    return [Consumer(r, world, w, workers) for r in range(world) for w in range(workers)]


@pytest.mark.parametrize("counts", [[3, 3, 2], [5], [1, 1, 1, 1, 1, 1, 1], [4, 0, 4, 1]])
@pytest.mark.parametrize("world, workers", [(1, 1), (1, 3), (2, 2), (3, 2), (5, 1), (4, 4)])
def test_every_setup_splits_the_canonical_order_once(counts, world, workers):
    order = canonical_order(counts, epoch=3, seed=1, shuffle=True)
    assert sorted(order.tolist()) == list(range(sum(counts)))
    assert (order == canonical_order(counts, epoch=3, seed=1, shuffle=True)).all()  # nothing else decides it
    got = [rec for c in consumers(world, workers)
           for rec in consumer_plan(counts, c, order, epoch=3, seed=1, shuffle=4, equal_per_rank=False).records()]
    assert sorted(got) == sorted(order.tolist())


def test_remaining_positions_leave_out_exactly_what_was_yielded():
    counts = [3, 3, 2, 4]
    kw = {"epoch": 1, "seed": 2, "shuffle": 3, "equal_per_rank": False}
    canonical = canonical_order(counts, epoch=1, seed=2, shuffle=True)
    yielded = {0: 2, 1: 0, 2: 3, 3: 1}
    plans = {c.index: consumer_plan(counts, c, canonical, **kw).records().tolist() for c in consumers(2, 2)}
    done = [rec for i, recs in plans.items() for rec in recs[:yielded[i]]]
    rest = canonical[remaining_positions(counts, [Generation(2, 2, yielded)], canonical, **kw)].tolist()
    assert sorted(done + rest) == list(range(sum(counts)))
    assert not set(done) & set(rest)


def test_resume_in_the_same_process_setup_continues_the_same_order(shards):
    full = ids(ShardDataset(shards, **OPTIONS))
    ds = ShardDataset(shards, **OPTIONS)
    it = iter(ds)
    first = ids(itertools.islice(it, 5))
    state = ds.state_dict()
    it.close()
    again = ShardDataset(shards, **OPTIONS)
    again.load_state_dict(state)
    assert first + ids(again) == full
    assert ids(again) == full  # the resumed epoch is over: the next iteration is a whole epoch


def _run_as(ds: ShardDataset, consumer: Consumer, n: int | None):
    """Iterate as one DataLoader worker of one rank would, stopping after n records; its state."""
    import neuco_io.loader.datasets as datasets

    original = datasets.current_consumer
    datasets.current_consumer = lambda rank=None, world_size=None: consumer
    try:
        it = iter(ds)
        got = ids(itertools.islice(it, n))
        state = ds.state_dict()
        it.close()
        return got, state
    finally:
        datasets.current_consumer = original


def test_resume_twice_on_other_numbers_of_ranks_and_workers(shards):
    seen, states = [], []
    for i, c in enumerate(consumers(2, 2)):  # interrupted: each consumer got a different distance
        got, state = _run_as(ShardDataset(shards, **OPTIONS), c, n=i)
        seen += got
        states.append(state)
    states2 = []
    for i, c in enumerate(consumers(3, 1)):  # resumed on 3 ranks, interrupted again
        ds = ShardDataset(shards, **OPTIONS)
        ds.load_state_dict(states)
        got, state = _run_as(ds, c, n=2 - i)
        seen += got
        states2.append(state)
    assert len(states2[0]["history"]) == 1
    final = ShardDataset(shards, **OPTIONS)
    final.load_state_dict(states2)
    seen += ids(final)
    assert sorted(seen) == sorted(ids(ShardDataset(shards, **OPTIONS)))


def test_bad_states_are_usage_errors(shards):
    ds = ShardDataset(shards, **OPTIONS)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    it.close()
    other = ShardDataset(shards, **{**OPTIONS, "seed": 8})
    with pytest.raises(UsageError, match="seed"):
        other.load_state_dict(state)
    with pytest.raises(UsageError, match="not a ShardDataset"):
        other.load_state_dict({"epoch": 3})
    partial = ShardDataset(shards, **OPTIONS)
    _, one = _run_as(partial, Consumer(0, 2, 0, 1), n=1)
    two_ranks = ShardDataset(shards, **OPTIONS)
    two_ranks.load_state_dict(one)  # one rank's state only: enough to resume that rank on the same set-up
    with pytest.raises(UsageError, match="states of every rank"):
        list(two_ranks)


def test_a_tampered_state_claiming_huge_setups_fails_or_resumes_at_once(shards):
    """A state naming 10**18 consumers must not make the loader count through them (it hung)."""
    ds = ShardDataset(shards, **OPTIONS)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    it.close()
    huge = {"world_size": 10**9, "num_workers": 10**9, "yielded": {"0": 1}}
    tampered = ShardDataset(shards, **OPTIONS)
    tampered.load_state_dict({**state, "current": huge})
    with pytest.raises(UsageError, match="1 of the 1000000000000000000 consumers"):
        list(tampered)
    replayed = ShardDataset(shards, **OPTIONS)
    replayed.load_state_dict({**state, "history": [huge], "current": None})
    assert 0 < len(list(replayed)) <= len(list(ShardDataset(shards, **OPTIONS)))  # replayed on positions, at once


def test_epochs_after_a_resume(shards):
    ds = ShardDataset(shards, **OPTIONS)
    ds.set_epoch(4)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    it.close()
    again = ShardDataset(shards, **OPTIONS)
    again.load_state_dict(state)
    assert again.epoch == 4
    again.set_epoch(5)  # another epoch: the saved position does not apply to it
    fresh = ShardDataset(shards, **OPTIONS)
    fresh.set_epoch(5)
    assert ids(again) == ids(fresh)


# -- torchdata's StatefulDataLoader ------------------------------------------------------------------------
def _loader(ds, workers: int):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    return stateful.StatefulDataLoader(ds, batch_size=2, num_workers=workers, collate_fn=lambda batch: batch)


def test_stateful_dataloader_same_setup_continues_the_uninterrupted_order(shards):
    full = [s["id"] for batch in _loader(ShardDataset(shards, **OPTIONS), 2) for s in batch]
    loader = _loader(ShardDataset(shards, **OPTIONS), 2)
    it = iter(loader)
    first = [s["id"] for batch in itertools.islice(it, 3) for s in batch]
    state = loader.state_dict()
    del it, loader  # the workers stop: the run is interrupted
    resumed = _loader(ShardDataset(shards, **OPTIONS), 2)
    resumed.load_state_dict(state)
    rest = [s["id"] for batch in resumed for s in batch]
    assert first + rest == full


def test_stateful_dataloader_interrupted_then_resumed_on_other_workers_and_ranks(shards):
    """The issue's test: 2 workers interrupted mid-epoch; resumed on 2 ranks of 3 workers each; the union of
    ids yielded is the epoch, each once."""
    loader = _loader(ShardDataset(shards, **OPTIONS), 2)
    it = iter(loader)
    seen = [s["id"] for batch in itertools.islice(it, 3) for s in batch]
    state = loader.state_dict()
    del it, loader
    for rank in range(2):
        ds = ShardDataset(shards, **OPTIONS, rank=rank, world_size=2)
        ds.load_state_dict(state)
        seen += [s["id"] for batch in _loader(ds, 3) for s in batch]
    assert sorted(seen) == sorted(ids(ShardDataset(shards, **OPTIONS)))
    assert len(seen) == len(set(seen)) == 14


KILLED_RUN = """
import json, os, signal, sys
from torchdata.stateful_dataloader import StatefulDataLoader
from neuco_io.loader import ShardDataset

ds = ShardDataset(sys.argv[1], modalities=["s2rgb"], return_id=True, shuffle=4, seed=7)
loader = StatefulDataLoader(ds, batch_size=2, num_workers=2, collate_fn=lambda b: b)
for step, batch in enumerate(loader):
    with open(sys.argv[2], "a") as fh:
        fh.write("".join(s["id"] + "\\n" for s in batch))
    with open(sys.argv[3] + ".tmp", "w") as fh:
        json.dump(loader.state_dict(), fh)
    os.replace(sys.argv[3] + ".tmp", sys.argv[3])
    if step == 2:
        os.killpg(0, signal.SIGKILL)  # the whole job dies mid-epoch, workers included
"""


def test_a_killed_run_resumes_on_other_workers_and_ranks(shards, tmp_path):
    """A training process and its 2 workers killed mid-epoch (SIGKILL); the saved JSON state resumed on 2
    ranks x 3 workers and, for one rank, 0 workers: every record of the epoch once."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("torchdata.stateful_dataloader")
    script = tmp_path / "train.py"
    script.write_text(KILLED_RUN)
    done, saved = tmp_path / "done.txt", tmp_path / "state.json"
    run = subprocess.run([sys.executable, str(script), str(shards), str(done), str(saved)], timeout=120,
                         start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == -9
    seen = done.read_text().split()
    assert len(seen) == 6
    state = json.loads(saved.read_text())
    for rank, workers in ((0, 3), (1, 0)):
        ds = ShardDataset(shards, **OPTIONS, rank=rank, world_size=2)
        ds.load_state_dict(state)
        seen += [s["id"] for batch in _loader(ds, workers) for s in batch]
    assert sorted(seen) == sorted(ids(ShardDataset(shards, **OPTIONS)))
    assert len(seen) == len(set(seen)) == 14


def test_a_state_from_other_data_with_the_same_counts_is_refused(shards, tmp_path):
    """Same seed, shuffle and record counts, other records: replaying the plan would skip the wrong ones."""
    from neuco_io.sample import write_sample

    root = write_sample(tmp_path / "v11", layout="v1.1", locations=14, seed=2, samples_per_file=4).root
    convert(root, tmp_path / "other", to="webdataset", jobs=1, max_records=2)
    ds = ShardDataset(shards, **OPTIONS)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    it.close()
    for other in (ShardDataset(tmp_path / "other", **OPTIONS), ShardDataset(shards, **OPTIONS, epoch_size=14),
                  ShardDataset(shards, **OPTIONS, epoch_size=14, resampled=True)):
        with pytest.raises(UsageError, match="saved from other data"):
            other.load_state_dict(state)
    same = ShardDataset(str(shards), **OPTIONS)  # the same data by another spelling of its path: fine
    same.load_state_dict(state)
    assert len(ids(same)) == 13
