"""`neuco-io quicklook`: a PNG per location and contact sheets, for a dataset ROOT or converted shards.

Locations come through the loader's datasets (`CubeDataset`, `ShardDataset`)
in their native dtype, so pictures show exactly what training code reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.errors import UsageError
from neuco_io.quicklook import LocationImages, contact_sheet, location_figure, png_bytes, require_pillow
from neuco_io.shards.manifest import is_shard_source
from neuco_io.stats import choose_sample
from neuco_io.storage.atomic import atomic_path

__all__ = ["QuicklookResult", "write_quicklooks"]

PER_PAGE = 24
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class QuicklookResult:
    out: Path
    ids: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)


def _pick(ids: list[str], wanted: Sequence[str] | None, sample: int | None, seed: int, source: Any) -> list[int]:
    """Positions of the locations to draw: the ids asked for, a seeded sample, or all."""
    if wanted:
        position = {loc_id: i for i, loc_id in enumerate(ids)}
        unknown = [w for w in wanted if w not in position]
        if unknown:
            raise UsageError(f"--ids: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} not in {source}")
        return sorted({position[w] for w in wanted})
    picked = choose_sample(len(ids), sample, seed)
    return list(range(len(ids))) if picked is None else picked


def _cube_locations(root: Any, layout: str | None, wanted, sample, seed, storage_options
                    ) -> tuple[int, Iterator[tuple[str, dict[str, np.ndarray]]]]:
    from neuco_io.loader import CubeDataset

    ds = CubeDataset(root, dtype="native", concat=False, return_id=True, layout=layout,  # type: ignore[arg-type]
                     storage_options=storage_options)
    picked = _pick(ds.ids, wanted, sample, seed, root)

    def items():
        for i in picked:
            item = ds[i]
            yield item["id"], item["data"]

    return len(picked), items()


def _shard_locations(source: Any, wanted, sample, seed, storage_options
                     ) -> tuple[int, Iterator[tuple[str, dict[str, np.ndarray]]]]:
    from neuco_io.loader import ShardDataset

    ds = ShardDataset(source, dtype="native", concat=False, return_id=True, storage_options=storage_options)
    total = sum(ds.source.counts)
    if wanted:
        targets: set[Any] = set(wanted)
        count = len(targets)
    else:
        targets = set(_pick([str(i) for i in range(total)], None, sample, seed, source))
        count = len(targets)

    def items():
        found = set()
        for row, item in enumerate(ds):
            key = item["id"] if wanted else row
            if key in targets:
                found.add(key)
                yield item["id"], item["data"]
        if wanted and found != targets:
            missing = sorted(targets - found)
            raise UsageError(f"--ids: {', '.join(missing[:5])} not in {source}")

    return count, items()


def file_name(loc_id: str) -> str:
    return _UNSAFE.sub("_", loc_id) + ".png"


def _write_png(path: Path, data: bytes) -> None:
    with atomic_path(path, fsync=False) as temp:
        temp.write_bytes(data)


def write_quicklooks(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    ids: Sequence[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
    layout: str | None = None,
    tile: int = spec.SIZE,
    per_page: int = PER_PAGE,
    sheet_tile: int = 64,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    storage_options: dict | None = None,
) -> QuicklookResult:
    """Write OUT/<id>.png per location and OUT/contact-sheet-NNNN.png (per_page locations each)."""
    require_pillow()
    if tile < 8 or sheet_tile < 8 or per_page < 1:
        raise UsageError("tile sizes must be at least 8 pixels and --per-page at least 1")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    if is_shard_source(source, storage_options):
        total, locations = _shard_locations(source, ids, sample, seed, storage_options)
    else:
        total, locations = _cube_locations(source, layout, ids, sample, seed, storage_options)
    if on_start:
        on_start(total)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = QuicklookResult(out_dir)
    page: list[LocationImages] = []

    def flush() -> None:
        number = len(result.sheets) + 1
        sheet = contact_sheet(page, tile=sheet_tile, title=f"{source} - page {number}")
        path = out_dir / f"contact-sheet-{number:04d}.png"
        _write_png(path, png_bytes(sheet))
        result.sheets.append(path)
        page.clear()

    for loc_id, arrays in locations:
        images = LocationImages.from_arrays(loc_id, arrays, seasons=range(next(iter(arrays.values())).shape[0]))
        path = out_dir / file_name(loc_id)
        _write_png(path, png_bytes(location_figure(images, tile)))
        result.ids.append(loc_id)
        result.images.append(path)
        page.append(images)
        if len(page) == per_page:
            flush()
        if progress:
            progress(1)
    if page:
        flush()
    return result
