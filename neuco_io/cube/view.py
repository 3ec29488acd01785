"""The xarray view of a cube, through zarr itself (2.18 or 3): the one path that is not the direct reader.

zarr and xarray are imported on first use only; the view needs a local file
(zarr's `ZipStore` opens paths, not store objects).
"""

from __future__ import annotations

import os
from pathlib import Path

from neuco_io.cube.zarrcompat import open_format2_group, open_xarray, zip_store
from neuco_io.errors import CubeFormatError
from neuco_io.storage import open_store

__all__ = ["ZarrView", "open_dataset"]


class ZarrView:
    """One cube's group through zarr, opened on first use and closed with the cube that holds it."""

    def __init__(self, path: Path, consolidated: bool) -> None:
        self.path = path
        self.consolidated = consolidated
        self._store = None  # zarr.storage.ZipStore
        self._group = None

    def group(self):  # -> zarr.Group
        if self._group is None:
            if not open_store(self.path).os_paths:
                raise CubeFormatError(self.path, "the xarray view reads through zarr, which needs a local copy of "
                                      "the cube", reason="remote")
            self._store = zip_store(self.path)
            self._group = open_format2_group(self._store, self.consolidated)
        return self._group

    def dataset(self):  # -> xarray.Dataset
        """A lazily loaded xarray view (no dask), valid while the view is open."""
        return open_xarray(self.group().store, self.consolidated)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._group = None


def open_dataset(path: str | os.PathLike[str]):  # -> xarray.Dataset
    """A cube as an xarray Dataset owning its zip store (the caller checked the cube first)."""
    store = zip_store(path)
    try:
        return open_xarray(store, None)
    except Exception:
        store.close()
        raise
