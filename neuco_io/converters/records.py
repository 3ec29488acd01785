"""Build one record per location from its cubes: arrays, reusable frames, and the JSON record."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.converters.plan import Source
from neuco_io.cube.passthrough import read_sample, sample_frames
from neuco_io.cube.pool import CubePool
from neuco_io.cube.reader import Cube
from neuco_io.cube.times import decode_times
from neuco_io.errors import CubeError, CubeFormatError
from neuco_io.layout import CubeFile
from neuco_io.shards.codecs import encode_key
from neuco_io.shards.record import Record, format_stamp
from neuco_io.storage import as_path
from neuco_io.validators.cubes import require_usable

__all__ = ["Record", "RecordBuilder"]


def _json_value(values: np.ndarray) -> Any:
    """A JSON-safe, lossless rendering of a small metadata array (non-finite floats as strings)."""
    if values.dtype.kind == "M":
        return [str(v) for v in values.ravel()] if values.ndim else str(values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return [v if math.isfinite(v) else str(v) for v in values.ravel().tolist()]
    return values.tolist()


class _OpenFile:
    """A cube kept open while its samples are converted, with its metadata variables loaded once.

    With `check`, the metadata-level cube checks run first and a cube they
    find unusable raises CubeFormatError naming the finding.
    """

    def __init__(self, path: Path, check: CubeFile | None = None, layout: str = "downstream") -> None:
        self.cube = Cube(path)
        self.band_names: list[str] | None = None
        if check is not None:
            try:
                self.band_names = require_usable(self.cube, check, layout).band_names
            except CubeError:
                self.cube.close()
                raise
        self.metadata: dict[str, np.ndarray] = {}
        """Per-sample metadata variables (center_lat, time_...), decoded once per file."""
        self.images: list[str] = []
        """Per-sample image variables (cloud_mask): array members, read sample by sample."""
        for name in self.cube.array_names:
            if name == spec.BANDS_VAR or name in spec.COORDINATES or self.cube.dims(name)[:1] != ("sample",):
                continue
            if len(self.cube.shape(name)) >= 3:
                self.images.append(name)
            else:
                info = self.cube.array_info(name)
                try:
                    self.metadata[name] = decode_times(name, self.cube.read(name), info.attrs)
                except (ValueError, ImportError, OverflowError) as exc:  # e.g. a calendar that needs cftime
                    self.cube.close()
                    raise CubeFormatError(path, f"{name}: cannot decode its times ({info.attrs.get('units')}): "
                                                f"{str(exc).splitlines()[0]}", reason="cubes.bad-times") from None

    def close(self) -> None:
        self.cube.close()


PROVE_PASSTHROUGH = True
"""Decode pass-through chunks once before copying them (BENCHMARKS.md: what it costs); off only to measure."""


class RecordBuilder:
    """Reads locations from a dataset root; keeps the few cubes it needs open (a `CubePool`: forked workers open
    their own)."""

    def __init__(self, root: str | Path, layout: str, modalities: list[str], tasks: dict[str, dict],
                 labels: dict[str, dict[str, float]], keep_open: int = 8, decode: bool = True) -> None:
        self.decode = decode
        """False: keep reusable chunks compressed for pass-through (still decoded once to prove them sound,
        unless PROVE_PASSTHROUGH is off); the decoded arrays are then not kept."""
        self.root = as_path(root)
        self.layout = layout
        self.modalities = modalities
        self.tasks = tasks
        self.labels = labels
        self._open: CubePool[_OpenFile] = CubePool(max(keep_open, len(modalities)))

    def _file(self, rel: str, modality: str, group: str) -> _OpenFile:
        path = self.root / rel
        return self._open.get(path, lambda: self._open_file(path, modality, group))

    def _open_file(self, path: Path, modality: str, group: str) -> _OpenFile:
        # Downstream cubes are checked here, once (the plan only listed them); v1.1 files were
        # checked by the plan, which needed their sample ids.
        check = CubeFile(path, modality, group, None) if self.layout == "downstream" else None
        return _OpenFile(path, check, self.layout)

    def close(self) -> None:
        self._open.close()

    def __enter__(self) -> RecordBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self, source: Source) -> Record:
        """Read and decode one location (decoding proves every chunk sound). Raises CubeError."""
        record = Record(source.id, encode_key(source.id), {})
        handles = {m: self._file(source.files[m], m, source.group) for m in self.modalities}
        # Image-like metadata (cloud_mask) become array members, named after the variable unless
        # several modalities carry one of that name.
        image_vars = {m: h.images for m, h in handles.items()}
        counts = Counter(n for names in image_vars.values() for n in names)
        bands, dtypes, shapes, metadata, extras = {}, {}, {}, {}, {}
        for modality, handle in handles.items():
            cube = handle.cube
            self._read(record, cube, modality, spec.BANDS_VAR, source.sample)
            dtype, shape = record.specs[modality]
            bands[modality] = handle.band_names or cube.band_names
            dtypes[modality] = str(dtype)
            shapes[modality] = list(shape)
            for name in image_vars[modality]:
                member = name if counts[name] == 1 else f"{modality}_{name}"
                self._read(record, cube, member, name, source.sample)
                dtype, shape = record.specs[member]
                extras[member] = {"source": modality, "variable": name, "dtype": str(dtype), "shape": list(shape)}
            values = {name: _json_value(data[source.sample]) for name, data in handle.metadata.items()}
            if values:
                metadata[modality] = values
        record.meta = {
            **format_stamp("record"), "id": source.id, "key": record.key, "layout": self.layout, "group": source.group,
            "modalities": list(self.modalities), "bands": bands, "dtypes": dtypes, "shapes": shapes,
            "seasons": list(spec.SEASONS), "s2_offset": self.layout == "v1.1",
            "source": dict(source.files), "sample_index": source.sample,
        }
        if extras:
            record.meta["arrays"] = extras
        if metadata:
            record.meta["metadata"] = metadata
            first = metadata[next(iter(metadata))]
            for name in ("center_lat", "center_lon", "crs"):
                if name in first:
                    record.meta[name] = first[name]
        labels = {task: values[source.id] for task, values in self.labels.items() if source.id in values}
        if labels:
            record.meta["labels"] = labels
        return record

    def _read(self, record: Record, cube: Cube, member: str, variable: str, sample: int) -> None:
        frames = None if self.decode or PROVE_PASSTHROUGH else sample_frames(cube, variable, sample)
        if frames is None:
            # Decoding proves every chunk sound: a Blosc payload can be corrupt under a valid header and a
            # valid zip CRC, and pass-through must not copy it into a shard as if it were data.
            array, frames = read_sample(cube, variable, sample)
            if self.decode or frames is None:
                record.arrays[member] = array
        shape = cube.shape(variable)[1:]
        record.specs[member] = (cube.dtype(variable), tuple(shape))
        if frames is not None:
            record.frames[member] = frames
