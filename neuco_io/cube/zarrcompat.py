"""zarr 2.18 and zarr 3.x behind the few calls neuco-io makes to zarr itself.

NeuCo-Bench's own environment pins zarr 2.18 (with xarray 2024.3); current
stacks have zarr 3. The hot paths read zip members with numcodecs and need
neither; zarr is used only for the xarray view (`view`) and the metadata
documents the cube writer lets zarr write. zarr is imported on first use,
never at import time of neuco_io.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["format2_metadata", "is_zarr3", "open_format2_group", "open_xarray", "zip_store"]


def is_zarr3() -> bool:
    import zarr

    return int(zarr.__version__.split(".")[0]) >= 3


def zip_store(path: str | os.PathLike[str], mode: str = "r"):  # -> zarr.storage.ZipStore
    """A zarr ZipStore (both versions have one with the same constructor)."""
    from zarr.storage import ZipStore

    return ZipStore(os.fspath(path), mode=mode)


def open_format2_group(store: Any, consolidated: bool):  # -> zarr.Group
    """A Zarr format-2 group, read-only, through its consolidated metadata when there is some."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_zarr3():
            return zarr.open_group(store, mode="r", zarr_format=2, use_consolidated=consolidated)
        return zarr.open_consolidated(store, mode="r") if consolidated else zarr.open_group(store, mode="r")


def open_xarray(store: Any, consolidated: bool | None):  # -> xarray.Dataset
    """`xarray.open_zarr` without dask, on a format-2 store (zarr 3 must be told the format)."""
    import xarray as xr

    extra = {"zarr_format": 2} if is_zarr3() else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(store, consolidated=consolidated, chunks=None, **extra)


def format2_metadata(dataset: Any, compressor: Any, chunks: Mapping[str, tuple[int, ...]],
                     array: Mapping[str, Any]) -> dict[str, bytes]:
    """Every member of a Zarr format-2 group, written in memory: `dataset` (an xarray Dataset, through
    `to_zarr`, each variable compressed with `compressor`, `chunks` where given) plus one empty `array`
    (name, shape, chunks, dtype, fill_value, dims), with consolidated `.zmetadata`."""
    import zarr

    encoding: dict[str, dict[str, Any]] = {}
    zarr3 = is_zarr3()
    for name in dataset.variables:
        encoding[name] = {"compressors": compressor} if zarr3 else {"compressor": compressor}
        if name in chunks:
            encoding[name]["chunks"] = chunks[name]
    attributes = {"_ARRAY_DIMENSIONS": list(array["dims"])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if zarr3:
            from zarr.storage import MemoryStore

            store_dict: dict = {}
            store = MemoryStore(store_dict)
            dataset.to_zarr(store, mode="w", zarr_format=2, consolidated=False, encoding=encoding,
                            write_empty_chunks=True)
            group = zarr.open_group(store, mode="a", zarr_format=2)
            group.create_array(array["name"], shape=array["shape"], chunks=array["chunks"], dtype=array["dtype"],
                               compressors=compressor, fill_value=array["fill_value"], attributes=attributes)
            zarr.consolidate_metadata(store, zarr_format=2)
            return {key: buf.to_bytes() for key, buf in store_dict.items()}
        store_dict = {}
        dataset.to_zarr(store_dict, mode="w", consolidated=False, encoding=encoding, write_empty_chunks=True)
        group = zarr.open_group(store_dict, mode="a")
        created = group.create(array["name"], shape=array["shape"], chunks=array["chunks"], dtype=array["dtype"],
                               compressor=compressor, fill_value=array["fill_value"])
        created.attrs.update(attributes)
        zarr.consolidate_metadata(store_dict)
        return {key: bytes(value) for key, value in store_dict.items()}
