"""`IndexedShardDataset`: map-style access to converted shards, one record per positioned read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from neuco_io.loader.datasets import ShardDataset, _MapBase
from neuco_io.loader.select import manifest_index, read_id_list, select_ids

__all__ = ["IndexedShardDataset"]


class IndexedShardDataset(_MapBase):
    """Map-style dataset over `convert`'s shards: `ds[i]` reads the i-th id (all ids in manifest order, or
    `ids`) with one positioned read through the manifest's index, so any sampler (random, weighted,
    distributed) can be used. Options are those of `ShardDataset`."""

    def __init__(self, source: Any, ids: str | os.PathLike[str] | Sequence[str] | None = None, **options: Any
                 ) -> None:
        self.shards = ShardDataset(source, **options)
        manifest = self.shards.source.manifest
        names = [p.name for p in self.shards.source.paths]
        if ids is None:
            index = manifest_index(manifest, "IndexedShardDataset")
            read = set(names)
            listed = [s["name"] for s in manifest["shards"]]
            self.ids = [i for i, e in index.items() if listed[e[0]] in read]
        else:
            self.ids = read_id_list(ids)
            select_ids(self.ids, manifest, names)  # every id known, or a UsageError naming the unknown

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        return self.shards.get(self.ids[index])

    def set_epoch(self, epoch: int) -> None:
        """A new season draw per epoch (`randomize_seasons`)."""
        self.shards.set_epoch(epoch)
