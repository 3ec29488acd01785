"""A baseline that loads cubes the way NeuCo-Bench's reference `SSL4EODownstreamDataset` does.

Per location and modality: `xarray.open_zarr` (dask-backed, its default),
`.isel(time=...)`, `["bands"].values`, `+1000` on S2 if asked, concatenate on
the band axis, float32, `torch.from_numpy`. The one change: the reference
passes the file path, which fails on zarr 3, so there the zip is opened with an
explicit `zarr.storage.ZipStore` (docs/format.md); on zarr 2 (NeuCo-Bench's
pinned stack) the path is passed as the reference does.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import xarray as xr
import zarr

ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3


class ReferenceLikeDataset:
    def __init__(self, data_path: str, modalities: list[str], seasons: int = 4, shift_s2_channels: bool = False):
        self.data_path = data_path
        self.modalities = modalities
        self.seasons = list(range(seasons))
        self.shift_s2_channels = shift_s2_channels
        self.samples = sorted(glob.glob(os.path.join(data_path, modalities[0], "*", "*.zarr.zip")))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int):
        import torch

        sample_path = self.samples[idx]
        paths = [sample_path] + [sample_path.replace(self.modalities[0] + "/", m + "/") for m in self.modalities[1:]]
        data = {}
        for modality, path in zip(self.modalities, paths):
            season_index = xr.DataArray(self.seasons, dims="time")
            data[modality] = _open(path).isel(time=season_index)["bands"].values
            if self.shift_s2_channels and modality in ("s2l1c", "s2l2a"):
                data[modality] += 1000
        array = np.concatenate(list(data.values()), axis=-3).astype(np.float32)
        return torch.from_numpy(array)


def _open(path: str) -> xr.Dataset:
    if not ZARR_3:
        return xr.open_zarr(path)
    from zarr.storage import ZipStore

    return xr.open_zarr(ZipStore(path, mode="r"), zarr_format=2)
