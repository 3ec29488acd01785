"""`CubeDataset` and `ShardDataset`: PyTorch-ready datasets over cubes and over converted shards.

Without torch they are plain Python objects (index them, iterate them) that
yield numpy arrays; with torch installed they subclass torch's `Dataset` and
`IterableDataset`, so `DataLoader` takes them as they are. Files are opened
lazily in the process that reads them: a DataLoader worker never reuses a zip
or tar handle opened in the parent (that fails with CRC or BadZipFile errors
after fork).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.cube.pool import CubePool
from neuco_io.cube.reader import Cube
from neuco_io.errors import CubeError, ShardError, UsageError
from neuco_io.execution import single_threaded_codecs
from neuco_io.layout import CubeFile, Layout, discover
from neuco_io.loader.assemble import SampleOptions
from neuco_io.loader.cache import ShardCache, check_cache_options
from neuco_io.loader.epoch import EpochMixin, SharedEpoch
from neuco_io.loader.order import Generation, consumer_plan, in_order, remaining_positions
from neuco_io.loader.select import locate, read_id_list, read_ranges, select_ids
from neuco_io.loader.sources import resolve_shards
from neuco_io.loader.split import Consumer, canonical_order, current_consumer, records_per_rank
from neuco_io.loader.state import LoaderState, loader_states, merge
from neuco_io.shards.parquet import open_parquet_shard
from neuco_io.shards.tar import decode_record, iter_tar_records, read_tar_range
from neuco_io.storage import open_read, open_store
from neuco_io.tasks.tasklist import check_tasks, dataset_tasks
from neuco_io.validators.cubes import require_usable
from neuco_io.wording import first_few

__all__ = ["CubeDataset", "DoubleShiftWarning", "ShardDataset"]

log = logging.getLogger("neuco_io.loader")

try:  # torch is optional: subclass its datasets when it is there
    from torch.utils.data import Dataset as _MapBase
    from torch.utils.data import IterableDataset as _IterBase
except ImportError:  # pragma: no cover - exercised in environments without torch
    _MapBase = object  # type: ignore[assignment,misc]
    _IterBase = object  # type: ignore[assignment,misc]


class DoubleShiftWarning(UserWarning):
    """`shift_s2=True` on data that already has the +1000 offset (SSL4EO-S12 v1.1): S2 ends up +2000."""


def warn_double_shift(options: SampleOptions, s2_offset: bool, source: Any) -> None:
    """Warn when an explicit `shift_s2=True` adds the offset a second time."""
    if options.shift_s2 is True and s2_offset:
        warnings.warn(f"{source}: its S2 values already include the +{spec.S2_OFFSET} offset (SSL4EO-S12 v1.1); "
                      f"shift_s2=True adds it a second time (+{2 * spec.S2_OFFSET} in all); the default 'auto' "
                      f"leaves them as they are", DoubleShiftWarning, stacklevel=3)


def _options(modalities, seasons, randomize_seasons, concat, transform, shift_s2, return_id, tasks, dtype, output,
             seed, default_modalities, bands=None, normalize=None) -> SampleOptions:
    return SampleOptions(modalities=list(default_modalities if modalities is None else modalities), seasons=seasons,
                         randomize_seasons=randomize_seasons, concat=concat, transform=transform, shift_s2=shift_s2,
                         return_id=return_id, tasks=list(tasks) if tasks is not None else None, dtype=dtype,
                         output=output, seed=seed, bands=bands, normalize=normalize)


class CubeDataset(EpochMixin, _MapBase):
    """Map-style dataset over the `.zarr.zip` cubes of either layout (one item per location).

    Options follow the NeuCo-Bench reference loader: `modalities` (in the
    order given), `seasons` (the first n, or a list of season indices),
    `randomize_seasons`, `concat`, `transform` (applied to the concatenated
    float32 array before splitting), `shift_s2` ("auto": S2 in the v1.1
    convention, i.e. +1000 on downstream data and v1.1 data untouched; True
    adds 1000 whatever the source, warning on v1.1 data; False never; no
    overflow), `return_id`; plus `tasks` (attach labels; missing ones are NaN), `dtype`
    ("float32" or "native"), `output` ("numpy" or "torch"), `bands` (pick and
    reorder bands by name per modality, `{"s2l2a": ["B04", "B03", "B02"]}`) and
    `normalize` ("ssl4eo-s12", a stats.json path, or `{modality: (means, stds)}`;
    see `neuco_io.loader.normalize` for the S2 offset), `ids` (only those
    locations: a list or a file). A sample is
    `[T, C, 264, 264]` (or a dict per modality), or with `return_id`/`tasks`
    a dict `{"id", "data", "labels"}`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        modalities: Sequence[str] | None = None,
        seasons: int | Sequence[int] = spec.N_TIMES,
        randomize_seasons: bool = False,
        concat: bool = True,
        transform: Callable[[Any], Any] | None = None,
        shift_s2: bool | str = "auto",
        return_id: bool = False,
        tasks: Sequence[str] | None = None,
        dtype: str = "float32",
        output: str = "numpy",
        layout: Layout | None = None,
        seed: int = 0,
        storage_options: dict[str, Any] | None = None,
        bands: dict[str, Sequence[str]] | None = None,
        normalize: Any = None,
        ids: str | os.PathLike[str] | Sequence[str] | None = None,
    ) -> None:
        ds = discover(root, layout, storage_options)
        default = list(spec.DOWNSTREAM_MODALITIES) if ds.layout == "downstream" else \
            [m for m in ds.modalities if m != "s2rgb"]
        self.options = _options(modalities, seasons, randomize_seasons, concat, transform, shift_s2, return_id,
                                tasks, dtype, output, seed, default, bands, normalize)
        self.root = ds.root
        self.layout = ds.layout
        self.s2_offset = ds.layout == "v1.1"
        warn_double_shift(self.options, self.s2_offset, ds.root)
        self._epoch = SharedEpoch()  # shared: persistent DataLoader workers see set_epoch too
        mods = self.options.modalities
        self._items: list[tuple[str, dict[str, Any], int]] = []  # paths stay Path/UPath: URLs keep options
        if ds.layout == "downstream":
            for loc in ds.downstream_locations(mods):
                self._items.append((loc.id, {m: f.path for m, f in loc.files.items()}, 0))
        else:
            for files in ds.v11_files(mods):
                first = files[mods[0]].path
                with Cube(first) as cube:
                    sids = cube.sample_ids
                self._items.extend((sid, {m: f.path for m, f in files.items()}, i) for i, sid in enumerate(sids))
        if ids is not None:
            self._items = _pick_items(self._items, read_id_list(ids), ds.root)
        self.labels: dict[str, dict[str, float]] = {}
        if self.options.tasks:
            self.labels = _read_tasks(ds, self.options.tasks)
        self._cubes: CubePool[Cube] = CubePool()  # emptied in forked workers, and when pickled for spawned ones
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ids(self) -> list[str]:
        return [item[0] for item in self._items]

    def close(self) -> None:
        """Close the cubes this dataset holds open (they are reopened if it is read again)."""
        self._cubes.close()

    def _cube(self, path: Any, modality: str) -> Cube:
        if os.getpid() != self._pid:  # a DataLoader worker (the pool opens its own cubes there): one core each
            self._pid = os.getpid()
            single_threaded_codecs()
        return self._cubes.get(path, lambda: self._open_checked(path, modality))

    def _open_checked(self, path: Any, modality: str) -> Cube:
        """A cube whose metadata disagrees with the format is refused before any value is read."""
        cube = Cube(path)
        try:
            require_usable(cube, CubeFile(path, modality, "", None), self.layout)
        except CubeError:
            cube.close()
            raise
        return cube

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} locations")
        loc_id, files, sample = self._items[index]
        times = self.options.season_indices(loc_id, self.epoch)
        arrays = {m: self._cube(files[m], m).read_location(sample, times) for m in self.options.modalities}
        labels = {t: v[loc_id] for t, v in self.labels.items() if loc_id in v}
        return self.options.build(loc_id, arrays, labels, selected=True, s2_offset=self.s2_offset)

    def plot(self, index: int, tile: int = spec.SIZE):
        """Location `index` as a PIL image (shown inline in notebooks): S2 true colour, S1 VV/VH in dB, one
        column per season this dataset reads. Needs Pillow (`pip install 'neuco-io[quicklook]'`)."""
        from neuco_io.quicklook import LocationImages, location_figure

        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} locations")
        loc_id, files, sample = self._items[index]
        times = self.options.season_indices(loc_id, self.epoch)
        arrays = {m: self._cube(files[m], m).read_location(sample, times) for m in self.options.modalities}
        return location_figure(LocationImages.from_arrays(loc_id, arrays, seasons=times), tile)


def _pick_items(items: list, ids: list[str], root: Any) -> list:
    """The locations of `ids`, in dataset order; an id without cubes is a UsageError naming the first few."""
    known = {item[0] for item in items}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UsageError(f"ids: {len(unknown)} of {len(ids)} ids have no cubes in {root}: {first_few(unknown)}")
    wanted = set(ids)
    return [item for item in items if item[0] in wanted]


def _read_tasks(ds, tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    found = dataset_tasks(ds, tasks, strict=False)
    return {task: found[task].labels() for task in tasks}


def _fetched(path: Any) -> bool:
    """Shards without an OS path (URLs) are what a cache_dir holds copies of; local ones are read in place."""
    return not open_store(path).os_paths


class ShardDataset(EpochMixin, _IterBase):
    """Iterable dataset over the WebDataset or Parquet shards written by `convert`.

    `source`: the output folder of `convert` (its manifest gives shards and
    record counts), a list of shard paths, a brace pattern
    (`out/shard-{000000..000009}.tar`) or a glob (`out/shard-*.tar`). Each shard is read sequentially.
    Sample options are those of `CubeDataset`; the same location gives
    identical arrays from both.

    Splitting: records are split across torch.distributed ranks (or explicit
    `rank`/`world_size`) and across DataLoader workers, each record once per
    epoch, whatever the number of shards. `equal_per_rank` ("pad" or True, or
    "drop") gives every rank the same count, as DDP requires. `shuffle=N`
    shuffles a rank's shard order and records through an N-record buffer,
    seeded by `seed` and the epoch (`set_epoch`). `on_error="warn"` logs and
    skips a corrupt record or shard instead of raising. `epoch_size=N`: N
    records per epoch over all ranks (the first of the epoch's order, or the
    data again when there are fewer); with `resampled=True` shards are drawn
    with replacement until N. `ids`: only those records (manifest index).
    `cache_dir`/`cache_limit`: URL shards kept in a local LRU cache
    (`loader.cache`). `state_dict`/`load_state_dict` resume mid-epoch.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        modalities: Sequence[str] | None = None,
        seasons: int | Sequence[int] = spec.N_TIMES,
        randomize_seasons: bool = False,
        concat: bool = True,
        transform: Callable[[Any], Any] | None = None,
        shift_s2: bool | str = "auto",
        return_id: bool = False,
        tasks: Sequence[str] | None = None,
        dtype: str = "float32",
        output: str = "numpy",
        storage_options: dict[str, Any] | None = None,
        shuffle: int = 0,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        equal_per_rank: bool | str = False,
        on_error: str = "raise",
        bands: dict[str, Sequence[str]] | None = None,
        normalize: Any = None,
        ids: str | os.PathLike[str] | Sequence[str] | None = None,
        epoch_size: int | None = None,
        resampled: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_limit: int | str | None = None,
    ) -> None:
        self.source = resolve_shards(source, storage_options)
        default = (self.source.manifest or {}).get("modalities") or list(spec.DOWNSTREAM_MODALITIES)
        self.options = _options(modalities, seasons, randomize_seasons, concat, transform, shift_s2, return_id,
                                tasks, dtype, output, seed, default, bands, normalize)
        if self.source.manifest:
            warn_double_shift(self.options, bool(self.source.manifest.get("s2_offset")), source)
        if on_error not in ("raise", "warn"):
            raise UsageError(f"on_error: expected 'raise' or 'warn', got {on_error!r}")
        if equal_per_rank not in (False, True, "pad", "drop"):
            raise UsageError(f"equal_per_rank: expected False, True, 'pad' or 'drop', got {equal_per_rank!r}")
        if self.options.tasks:
            if self.source.manifest is None:
                raise UsageError("tasks: these shards have no manifest.json beside them, so their tasks are "
                                 "unknown; pass the convert output folder (or its shards with the manifest)")
            check_tasks(self.options.tasks, list(self.source.tasks), "the manifest")
        self.shuffle = int(shuffle)
        self.seed = seed
        if epoch_size is not None and (isinstance(epoch_size, bool) or not isinstance(epoch_size, (int, np.integer))
                                       or epoch_size < 1):
            raise UsageError(f"epoch_size: expected a positive number of records, got {epoch_size!r}")
        if resampled and epoch_size is None:
            raise UsageError("resampled=True draws shards with replacement forever: give epoch_size too")
        self.epoch_size = None if epoch_size is None else int(epoch_size)
        self.resampled = bool(resampled)
        self.rank, self.world_size = rank, world_size
        self.equal_per_rank = equal_per_rank
        self.on_error = on_error
        self._epoch = SharedEpoch()  # shared: persistent DataLoader workers see set_epoch too
        self._cache = self._shard_cache(cache_dir, cache_limit)
        self._picked = None if ids is None else \
            select_ids(read_id_list(ids), self.source.manifest, [p.name for p in self.source.paths])
        """With `ids`: the rows read per shard and their byte ranges."""
        self._fingerprint_cache: str | None = None
        self._resume: LoaderState | None = None
        """A loaded state: the epoch it names continues where it stopped."""
        self._progress: LoaderState | None = None
        """The position of the iteration running (or last run) in this process."""

    def _shard_cache(self, cache_dir: Any, cache_limit: Any) -> tuple[ShardCache, dict[str, dict]] | None:
        """The cache of URL shards (None for local shards: they are read in place) and the manifest's
        size and sha256 of each shard, which every fill is checked against."""
        if cache_dir is None:
            if cache_limit is not None:
                raise UsageError("cache_limit: give cache_dir too")
            return None
        if not any(_fetched(p) for p in self.source.paths):
            check_cache_options(cache_dir, cache_limit)  # unused with local shards, but a typo is still one
            return None
        if self.source.manifest is None:
            raise UsageError("cache_dir: these shards have no manifest.json beside them, so a fetched shard "
                             "cannot be checked (sha256); pass the convert output folder")
        return ShardCache(cache_dir, cache_limit), {s["name"]: s for s in self.source.manifest["shards"]}

    def _open(self, path: Any, sequential: bool = True) -> Any:
        """A shard for reading: from the cache (fetched into it first if need be), or as it is."""
        if self._cache is None or not _fetched(path):
            return open_read(path, sequential=sequential)
        cache, known = self._cache
        info = known[path.name]
        return cache.open(path, path.name, info["bytes"], info["sha256"])

    def _ranges_source(self, path: Any) -> Any:
        """Where byte ranges are read: a cached copy when there is one (a range is never worth a fill)."""
        if self._cache is not None and _fetched(path):
            cache, known = self._cache
            local = cache.cached(str(path), path.name, known[path.name]["sha256"])
            if local is not None:
                return local
        return path

    @property
    def counts(self) -> list[int]:
        """Records read per shard (all, or those `ids` picked)."""
        return self._picked.counts if self._picked is not None else self.source.counts

    def __len__(self) -> int:
        consumer = current_consumer(self.rank, self.world_size)
        return records_per_rank(self.counts, consumer.rank, consumer.world_size, self.equal_per_rank,
                                self.epoch_records)

    @property
    def epoch_records(self) -> int:
        """Records in an epoch, over every rank: `epoch_size`, or every record once."""
        return sum(self.counts) if self.epoch_size is None else self.epoch_size

    def _canonical(self, epoch: int) -> np.ndarray:
        return canonical_order(self.counts, epoch=epoch, seed=self.seed, shuffle=self.shuffle > 0,
                               size=self.epoch_size, resampled=self.resampled)

    def __iter__(self) -> Iterator[Any]:
        iteration = self._iterate()
        _LIVE.add(iteration)  # closed at exit at the latest, before the modules it uses are torn down
        return iteration

    def _iterate(self) -> Iterator[Any]:
        consumer = current_consumer(self.rank, self.world_size)
        if consumer.num_workers > 1:
            single_threaded_codecs()  # a DataLoader worker: one core each
        epoch = self.epoch  # read once: the plan and the buffer shuffle must agree
        history, skip = self._start(consumer, epoch)
        canonical = self._canonical(epoch)
        positions = remaining_positions(self.counts, history, canonical, epoch=epoch, seed=self.seed,
                                        shuffle=self.shuffle, equal_per_rank=self.equal_per_rank) if history else None
        plan = consumer_plan(self.counts, consumer, canonical, epoch=epoch, seed=self.seed, shuffle=self.shuffle,
                             equal_per_rank=self.equal_per_rank, positions=positions, generation=len(history))
        progress = LoaderState(epoch, self.seed, self.shuffle, self.equal_per_rank, self.epoch_records,
                               history, Generation(consumer.world_size, consumer.num_workers, {consumer.index: skip}),
                               self._fingerprint())
        self._progress = progress
        records = in_order(plan, plan.order[skip:], self._read)
        warned = bool(self.source.manifest)
        try:
            for loc_id, arrays, labels, s2_offset in records:
                if not warned and s2_offset and self.options.shift_s2 is True:
                    warn_double_shift(self.options, s2_offset, self.source.paths[0].parent)
                    warned = True
                sample = self.options.build(loc_id, arrays, labels, selected=True, s2_offset=s2_offset)
                progress.current.yielded[consumer.index] += 1
                yield sample
            self._resume = None  # the resumed epoch is over: the next iteration starts afresh
        finally:  # close the shard readers now, not whenever the garbage collector gets to them
            records.close()

    # -- resuming ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where this dataset stands in its epoch, as a plain dict (JSON-serializable): what the iteration
        running in this process yielded, or where the next one will start. Inside a torchdata
        `StatefulDataLoader`, every worker reports its own; `load_state_dict` takes the loader's state."""
        if self._progress is not None and self._progress.epoch == self.epoch:
            return self._progress.to_dict()
        consumer = current_consumer(self.rank, self.world_size)  # not iterated yet: where it will start
        history, skip = self._start(consumer, self.epoch)
        setup = Generation(consumer.world_size, consumer.num_workers, {consumer.index: skip})
        return LoaderState(self.epoch, self.seed, self.shuffle, self.equal_per_rank, self.epoch_records,
                           history, setup, self._fingerprint()).to_dict()

    def _fingerprint(self) -> str:
        """What a saved position depends on besides seed, shuffle and counts: which shards (their sha256 when
        the manifest gives it, else name and records), which records of them (`ids`), `epoch_size` and
        `resampled`. Two conversions of different data with the same record counts differ here."""
        if self._fingerprint_cache is None:
            known = {s["name"]: s.get("sha256") for s in self.source.manifest["shards"]} if self.source.manifest \
                else {}
            shards = [[p.name, n, known.get(p.name)] for p, n in zip(self.source.paths, self.source.counts)]
            picked = None if self._picked is None else [list(rows) for rows in self._picked.rows]
            doc = json.dumps([shards, picked, self.epoch_size, self.resampled], sort_keys=True, default=str)
            self._fingerprint_cache = hashlib.sha256(doc.encode()).hexdigest()[:16]
        return self._fingerprint_cache

    def load_state_dict(self, state: Any) -> None:
        """Continue an epoch where a saved state left it: `state_dict()` of this dataset, a
        `StatefulDataLoader.state_dict()`, or a list of them (every rank's, to resume on another number of
        ranks). On the same number of workers and ranks, each consumer yields the rest of what it would have
        yielded, in the same order; on another, what is left of the epoch is split among the new consumers.
        Either way each record of the epoch is yielded once. Sets the epoch to the state's."""
        states = [LoaderState.from_dict(s) for s in loader_states(state)]
        if not states:
            raise UsageError("load_state_dict: the state holds no ShardDataset position")
        merged = merge(states)
        mine = (self.seed, self.shuffle, self.equal_per_rank, self.epoch_records)
        theirs = (merged.seed, merged.shuffle, merged.equal_per_rank, merged.records)
        if mine != theirs:
            raise UsageError(f"load_state_dict: the state was saved with seed, shuffle, equal_per_rank, records = "
                             f"{theirs}; this dataset has {mine}")
        if merged.dataset != self._fingerprint():
            raise UsageError("load_state_dict: the state was saved from other data (other shards or shard contents, "
                             "or another ids=, epoch_size or resampled); resume with the dataset it was saved from")
        self._resume = merged
        self._progress = None
        self.set_epoch(merged.epoch)

    def _start(self, consumer: Consumer, epoch: int) -> tuple[list[Generation], int]:
        """The set-ups this epoch already ran under, and how many records this consumer already yielded."""
        resume = self._resume
        if resume is None or resume.epoch != epoch:
            return [], 0
        current = resume.current
        if current is None:
            return list(resume.history), 0
        if (current.world_size, current.num_workers) == (consumer.world_size, consumer.num_workers):
            if consumer.index not in current.yielded:
                raise UsageError(f"load_state_dict: the state has no position for rank {consumer.rank} worker "
                                 f"{consumer.worker}; pass the states of every rank (a list)")
            return list(resume.history), current.yielded[consumer.index]
        if len(current.yielded) < current.consumers:  # its keys are distinct consumers of the set-up
            raise UsageError(f"load_state_dict: the state has positions for {len(current.yielded)} of the "
                             f"{current.consumers} consumers ({current.world_size} rank(s) x {current.num_workers} "
                             f"worker(s)) it was saved from; to resume on another number of workers or ranks, pass "
                             f"the states of every rank (a list)")
        return [*resume.history, current], 0

    def plot(self, sample: Any, tile: int = spec.SIZE):
        """A sample this dataset yielded, as a PIL image (see `CubeDataset.plot`). Values are drawn as given:
        plot samples before a normalizing `transform`. Needs Pillow."""
        from neuco_io.quicklook import plot_sample

        return plot_sample(sample, self.options, tile)

    # -- reading ----------------------------------------------------------------------
    def _fail(self, exc: ShardError) -> None:
        if self.on_error == "raise":
            raise exc
        log.warning("skipping: %s", exc)

    def _selection(self, loc_id: str) -> list[int]:
        return self.options.season_indices(loc_id, self.epoch)

    @staticmethod
    def _s2_offset(meta: dict) -> bool:
        """Whether this record's S2 values include +1000 (shards record it; v1.1 ones always do)."""
        return bool(meta.get("s2_offset", meta.get("layout") == "v1.1"))

    def _labels(self, meta: dict) -> dict[str, float]:
        labels = meta.get("labels") or {}
        return {t: labels[t] for t in self.options.tasks or () if t in labels}

    def _read(self, shard: int, rows: list[int]
              ) -> Iterator[tuple[int, tuple[str, dict[str, np.ndarray], dict[str, float], bool]]]:
        """(row, record) for the ascending `rows` of a shard (rows among those `ids` picked, if given); a
        record skipped by on_error="warn" is missing."""
        path = self.source.paths[shard]
        count = self.source.counts[shard]
        try:
            if self._picked is not None:
                yield from self._read_picked(shard, rows)
            elif self.source.format == "parquet":
                yield from self._read_parquet(path, set(rows), max(rows, default=-1), count)
            else:
                yield from self._read_tar(path, set(rows), max(rows, default=-1), count)
        except ShardError as exc:
            self._fail(exc)
        except OSError as exc:  # the shard vanished or the connection broke
            self._fail(ShardError(path, f"cannot read: {exc}"))

    def _read_picked(self, shard: int, rows: list[int]):
        """Only the picked records: Parquet row groups holding them, tar byte ranges from the manifest."""
        path = self.source.paths[shard]
        actual = [self._picked.rows[shard][r] for r in rows]
        if self.source.format == "parquet":
            local = {row: r for r, row in zip(rows, actual)}
            for row, record in self._read_parquet(path, set(actual), max(actual), self.source.counts[shard],
                                                  fill=False):
                yield local[row], record
            return
        ranges = [self._picked.ranges[shard][r] for r in rows]
        for i, data in read_ranges(self._ranges_source(path), ranges):
            try:
                yield rows[i], self._record(read_tar_range(data, path.name))
            except ShardError as exc:
                self._fail(exc)

    def _record(self, raw: Any) -> tuple[str, dict[str, np.ndarray], dict[str, float], bool]:
        loc_id = raw.id
        arrays = decode_record(raw, self.options.modalities, self._selection(loc_id))
        return loc_id, arrays, self._labels(raw.meta), self._s2_offset(raw.meta)

    def get(self, loc_id: str) -> Any:
        """The sample of one id, read with one positioned read (one range request on a URL) through the
        manifest's index. KeyError when the index does not know it."""
        try:
            shard, row, offset, size = locate(loc_id, self.source.manifest, [p.name for p in self.source.paths])
        except ShardError:  # a ValueError too: the index places the id outside its shard
            raise
        except (KeyError, ValueError):
            raise KeyError(f"{loc_id!r}: not an id of these shards (see the manifest's index)") from None
        path = self.source.paths[shard]
        try:
            if self.source.format == "parquet":
                records = self._read_parquet(path, {row}, row, self.source.counts[shard], fill=False)
                _, (found, arrays, labels, s2_offset) = next(records)
                records.close()
            else:
                _, data = next(read_ranges(self._ranges_source(path), [(offset, size)]))
                found, arrays, labels, s2_offset = self._record(read_tar_range(data, path.name))
        except OSError as exc:
            raise ShardError(path, f"cannot read: {exc}") from None
        if found != loc_id:
            raise ShardError(path.name, f"row {row} holds {found!r}, the manifest's index says {loc_id!r}")
        return self.options.build(loc_id, arrays, labels, self.epoch, selected=True, s2_offset=s2_offset)

    def _read_tar(self, path: Any, wanted: set[int], last: int, count: int):
        with self._open(path) as fh:
            # Records are decoded before the next is read: compressed members can share buffers.
            records = iter_tar_records(fh, path.name, reuse_buffers=True)
            try:
                for row, raw in _counted(records, path.name, last, count, lambda raw: raw.key):
                    if row not in wanted:
                        continue
                    try:
                        record = self._record(raw)
                    except ShardError as exc:
                        self._fail(exc)
                        continue
                    yield row, record
            finally:
                records.close()

    def _read_parquet(self, path: Any, wanted: set[int], last: int, count: int, fill: bool = True):
        """`fill`: through the cache, fetching the shard into it; else a cached copy if any, or the shard."""
        # Closed when the generator ends or is dropped: no reader left for interpreter exit to tear down.
        handle = self._open(path, sequential=False) if self._cache is not None and fill else None  # a cached copy
        source = handle or (path if fill else self._ranges_source(path))
        with contextlib.closing(handle) if handle else contextlib.nullcontext(), \
                open_parquet_shard(source, path.name) as shard:
            if shard.num_rows != count:  # DataLoader lengths and equal_per_rank rely on the manifest's counts
                raise ShardError(path.name, f"holds {shard.num_rows} records, the manifest says {count}")
            rows = shard.rows(self.options.modalities, wanted.__contains__, last)
            try:
                for row in rows:
                    try:
                        arrays = row.arrays(self.options.modalities, self._selection(row.id))
                    except ShardError as exc:
                        self._fail(exc)
                        continue
                    yield row.number, (row.id, arrays, self._labels(row.meta), self._s2_offset(row.meta))
            finally:
                rows.close()


_LIVE: weakref.WeakSet = weakref.WeakSet()
"""ShardDataset iterations not yet finished: closed at interpreter exit, while pyarrow still works."""


@atexit.register
def _close_live_iterations() -> None:
    for iteration in list(_LIVE):
        iteration.close()


def _counted(items: Iterator, shard: str, last: int, count: int, key: Callable[[Any], Any]) -> Iterator:
    """(row, item) up to row `last`; a shard holding fewer or more records than the manifest says is a
    ShardError (DataLoader lengths and equal_per_rank rely on the counts)."""
    seen = 0
    for row, item in enumerate(items):
        if row >= count:
            raise ShardError(shard, f"holds more records than the {count} the manifest gives it", key=key(item))
        if row > last:
            return
        seen = row + 1
        yield row, item
    if seen != count:
        raise ShardError(shard, f"holds {seen} records, the manifest says {count}")
