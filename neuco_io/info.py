"""`neuco-io info PATH`: what a cube, a dataset ROOT or a convert output holds, without decoding images.

Returns plain dicts (the `--format json` output); `summaries.info_text`
renders them. Reads metadata only: the cube reader's metadata path, layout
discovery, the label files and a conversion's manifest.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from neuco_io import spec
from neuco_io.cube.reader import Cube, CubeInfo
from neuco_io.errors import NeucoError, UsageError
from neuco_io.layout import Dataset, discover
from neuco_io.storage import as_path, open_store, size_or_zero
from neuco_io.tasks.labels import parse_task_name, read_label_table

__all__ = ["cube_info", "dataset_info", "info", "shards_info"]

SHOWN_IDS = 5


def _modality_of(info: CubeInfo, hint: str = "") -> str | None:
    """The modality whose band names the cube carries (or whose folder name the path holds)."""
    names = info.band_names
    for name, modality in spec.MODALITIES.items():
        if names == list(modality.bands):
            return name
    for folder, name in spec.V11_FOLDERS.items():
        if f"/{folder}/" in hint or f"/{name}/" in hint:
            return name
    return None


def _array_dict(array) -> dict[str, Any]:
    return {"dims": list(array.dims), "shape": list(array.shape), "chunks": list(array.chunks),
            "dtype": array.dtype, "compressor": array.compressor, "bytes": array.nbytes,
            **({"attrs": array.attrs} if array.attrs else {})}


def cube_info(path: Any) -> dict[str, Any]:
    """Arrays, codecs, chunking, bands, seasons and ids of one `.zarr.zip` cube."""
    with Cube(path) as cube:
        info = cube.info()
    bands = info.bands
    times = info.coords.get("time", list(range(bands.shape[1])) if bands is not None and len(bands.shape) > 1 else [])
    samples = info.sample_ids
    return {
        "kind": "cube",
        "path": str(path),
        "bytes": info.size,
        "modality": _modality_of(info, str(path)),
        "consolidated": info.consolidated,
        "zip_compressed": info.zip_compressed,
        "samples": len(samples),
        "sample_ids": samples[:SHOWN_IDS],
        "bands": info.band_names,
        "seasons": [spec.SEASONS[t] if isinstance(t, int) and 0 <= t < spec.N_TIMES else str(t) for t in times],
        "arrays": {name: _array_dict(a) for name, a in sorted(info.arrays.items())},
        "group_attrs": info.group_attrs,
    }


def _label_summary(path: Any) -> dict[str, Any]:
    name = parse_task_name(path)
    entry: dict[str, Any] = {"file": getattr(path, "name", str(path)),
                             "task": name.task if name else None,
                             "type": name.type if name else None,
                             "kind": name.kind if name else None}
    try:
        table = read_label_table(path)
    except (NeucoError, OSError, ValueError) as exc:
        entry["error"] = str(exc)
        return entry
    entry["rows"] = len(table.rows)
    entry["labelled"] = len(table.labelled)
    return entry




def _example_cubes(ds: Dataset) -> dict[str, dict[str, Any]]:
    """Per modality, what its first cube says (dtype, shape, chunks, codec, bands); errors as text."""
    out: dict[str, dict[str, Any]] = {}
    for cube_file in sorted(ds.cubes, key=lambda c: (c.modality, str(c.path))):
        if cube_file.modality in out:
            continue
        try:
            example = cube_info(cube_file.path)
        except NeucoError as exc:
            out[cube_file.modality] = {"example": str(cube_file.path), "error": str(exc)}
            continue
        bands = example["arrays"].get(spec.BANDS_VAR, {})
        out[cube_file.modality] = {"example": str(cube_file.path), "dtype": bands.get("dtype"),
                                   "shape": bands.get("shape"), "chunks": bands.get("chunks"),
                                   "compressor": bands.get("compressor"), "bands": example["bands"],
                                   "seasons": example["seasons"],
                                   "variables": sorted(example["arrays"])}
    return out


def dataset_info(root: Any, layout: str | None = None, storage_options: dict | None = None) -> dict[str, Any]:
    """Layout, modalities, counts, sizes, one example cube per modality, and the label files."""
    ds = discover(root, layout, storage_options)  # type: ignore[arg-type]
    per_modality = Counter(c.modality for c in ds.cubes)
    sizes: Counter[str] = Counter()
    for cube_file in ds.cubes:
        sizes[cube_file.modality] += size_or_zero(cube_file.path)
    out: dict[str, Any] = {
        "kind": "dataset",
        "root": str(ds.root),
        "layout": ds.layout,
        "groups": ds.groups,
        "modalities": ds.modalities,
        "cubes": len(ds.cubes),
        "cubes_by_modality": {m: per_modality[m] for m in spec.MODALITIES if per_modality[m]},
        "bytes": sum(sizes.values()),
        "bytes_by_modality": {m: sizes[m] for m in spec.MODALITIES if sizes[m]},
        "cube_format": _example_cubes(ds),
    }
    if ds.layout == "downstream":
        out["locations"] = len(ds.downstream_files())
        out["complete_locations"] = len(ds.downstream_locations(ds.modalities or None))
        out["tasks"] = [_label_summary(p) for p in ds.label_files]
    else:
        out["files"] = len(ds.v11_file_groups())
        out["splits"] = sorted(ds.split_lists)
    return out


def shards_info(source: Any, storage_options: dict | None = None) -> dict[str, Any]:
    """A conversion's manifest (format version, options, shards, sha256) or, without one, the shards found."""
    from neuco_io.loader.sources import resolve_shards

    shards = resolve_shards(source, storage_options)
    manifest = shards.manifest
    out: dict[str, Any] = {
        "kind": "shards",
        "source": str(source),
        "format": shards.format,
        "shards": len(shards.paths),
        "records": sum(shards.counts),
        "manifest": manifest is not None,
    }
    if manifest is None:
        out["bytes"] = sum(size_or_zero(p) for p in shards.paths)
        return out
    entries = manifest.get("shards", [])
    out.update({
        "format_version": manifest.get("format_version"),
        "tool_version": manifest.get("tool_version"),
        "codec": manifest.get("codec"),
        "options": manifest.get("options"),
        "source_layout": (manifest.get("source") or {}).get("layout"),
        "source_root": (manifest.get("source") or {}).get("root"),
        "modalities": manifest.get("modalities"),
        "bands": manifest.get("bands"),
        "seasons": manifest.get("seasons"),
        "s2_offset": manifest.get("s2_offset"),
        "tasks": manifest.get("tasks"),
        "bytes": sum(int(s.get("bytes") or 0) for s in entries),
        "sha256": bool(entries) and all(s.get("sha256") for s in entries),
        "skipped": len(manifest.get("skipped") or []),
    })
    return out


def info(path: str | os.PathLike[str], *, layout: str | None = None,
         storage_options: dict | None = None) -> dict[str, Any]:
    """What PATH is and holds: a cube file, a convert output (or shard files), or a dataset ROOT."""
    from neuco_io.shards.manifest import is_shard_source

    text = os.fspath(path)
    if text.endswith(spec.CUBE_SUFFIX):
        return cube_info(as_path(path, storage_options))
    if is_shard_source(path, storage_options):
        return shards_info(path, storage_options)
    target = open_store(path, storage_options)
    if target.supports_listing and target.is_file():
        raise UsageError(f"{path}: not a cube ({spec.CUBE_SUFFIX}), a shard (.tar, .parquet) or a folder")
    return dataset_info(path, layout, storage_options)
