"""`epoch_size=`, `resampled=True` and `MixedDataset` (issue 16)."""

from __future__ import annotations

import collections
import itertools

import pytest
from test_loader_resume import _run_as

from neuco_io.converters import convert
from neuco_io.errors import UsageError
from neuco_io.loader import MixedDataset, ShardDataset
from neuco_io.loader.split import Consumer

from helpers import ORIGINAL


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    base = tmp_path_factory.mktemp("mix")
    convert(ORIGINAL / "v11", base / "v11", to="webdataset", jobs=1, max_records=2)  # 5 records, 3 shards
    convert(ORIGINAL / "downstream", base / "down", to="webdataset", jobs=1, max_records=2)  # 3 records
    return base


def v11(shards, **kw) -> ShardDataset:
    return ShardDataset(shards / "v11", modalities=["s2rgb"], return_id=True, **kw)


def down(shards, **kw) -> ShardDataset:
    return ShardDataset(shards / "down", modalities=["s1"], return_id=True, **kw)


def ids(samples) -> list[str]:
    return [s["id"] for s in samples]


def test_epoch_size_repeats_or_cuts_the_data(shards):
    every = ids(v11(shards))
    cut = v11(shards, epoch_size=3, shuffle=2)
    assert len(cut) == 3 and len(ids(cut)) == 3 and set(ids(cut)) <= set(every)
    more = ids(v11(shards, epoch_size=12, shuffle=2))
    assert len(more) == 12 and all(n >= 2 for n in collections.Counter(more).values())
    drawn = v11(shards, epoch_size=40, resampled=True, seed=3)
    assert len(drawn) == 40 and len(ids(drawn)) == 40 and set(ids(drawn)) <= set(every)
    assert ids(drawn) == ids(v11(shards, epoch_size=40, resampled=True, seed=3))
    with pytest.raises(UsageError, match="give epoch_size"):
        v11(shards, resampled=True)
    with pytest.raises(UsageError, match="epoch_size"):
        v11(shards, epoch_size=0)


def test_epoch_size_with_repeats_resumes_on_another_setup(shards):
    """Records repeat within the epoch: what is left is counted per occurrence, not per id."""
    options = {"epoch_size": 13, "shuffle": 3, "seed": 5}
    whole = collections.Counter(ids(v11(shards, **options)))
    seen, states = [], []
    for i, consumer in enumerate([Consumer(0, 1, w, 2) for w in range(2)]):
        got, state = _run_as(v11(shards, **options), consumer, n=2 + i)
        seen += got
        states.append(state)
    for consumer in [Consumer(r, 3, 0, 1) for r in range(3)]:
        ds = v11(shards, **options)
        ds.load_state_dict(states)
        seen += _run_as(ds, consumer, n=None)[0]
    assert collections.Counter(seen) == whole


def test_mixing_proportions_within_tolerance(shards):
    a = v11(shards, epoch_size=400, resampled=True, seed=1)
    b = down(shards, epoch_size=400, resampled=True, seed=2)
    mixed = ids(MixedDataset([a, b], weights=[0.8, 0.2], seed=9))
    from_a = sum(len(i) < 20 for i in mixed)  # v1.1 ids are short, downstream ones are 64 hex characters
    assert from_a == 400  # the epoch ends when a source runs out: here the heavier one
    share = from_a / len(mixed)
    assert abs(share - 0.8) < 0.08, share  # n ~ 500: 4 standard deviations


def test_mixing_is_deterministic_per_epoch_and_resumable(shards):
    def mixed(seed=9):
        return MixedDataset([v11(shards, epoch_size=30, resampled=True), down(shards, shuffle=2)],
                            weights=[0.5, 0.5], seed=seed)

    first = ids(mixed())
    assert first == ids(mixed())
    other = mixed()
    other.set_epoch(1)
    assert ids(other) != first
    ds = mixed()
    it = iter(ds)
    head = ids(itertools.islice(it, 4))
    state = ds.state_dict()
    it.close()
    again = mixed()
    again.load_state_dict(state)
    assert head + ids(again) == first
    with pytest.raises(UsageError, match="seed"):
        mixed(seed=10).load_state_dict(state)
    with pytest.raises(UsageError, match="weights"):
        MixedDataset([v11(shards)], weights=[-1])


def test_mixing_through_a_stateful_dataloader_resumes_on_other_workers(shards):
    """Interrupted in 2 workers, resumed in 3: every record of the source that is read whole comes once."""
    stateful = pytest.importorskip("torchdata.stateful_dataloader")

    def mixed():
        return MixedDataset([v11(shards, epoch_size=400, resampled=True), down(shards, shuffle=2)],
                            weights=[0.9, 0.1], seed=4)

    def loader(ds, workers):
        return stateful.StatefulDataLoader(ds, batch_size=2, num_workers=workers, collate_fn=lambda b: b)

    first = loader(mixed(), 2)
    it = iter(first)
    seen = [s["id"] for batch in itertools.islice(it, 2) for s in batch]
    state = first.state_dict()
    del it, first
    again = mixed()
    again.load_state_dict(state)
    seen += [s["id"] for batch in loader(again, 3) for s in batch]
    from_down = sorted(i for i in seen if len(i) > 20)
    assert from_down == sorted(ids(down(shards)))  # 3 records, each once (the epoch ended when one ran out)
