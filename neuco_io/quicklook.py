"""Pictures of locations: S2 true colour, S1 VV/VH false colour, one column per season.

Pillow draws and encodes the images. It is one wheel with no system
dependencies, where matplotlib pulls half a dozen packages and embeds its
version in every PNG; the figures here are tiles and text, which Pillow does
exactly and deterministically (the same data and Pillow version give the same
PNG bytes). It is the optional extra `neuco-io[quicklook]`.

- S2 (L1C, L2A): B04/B03/B02 as red/green/blue, with one stretch for all
  seasons of the location (so seasons compare, and an offset or a dark
  season shows): from the median over seasons of the 2nd percentile of the
  three bands to the median of the 98th (a cloudy season saturates instead
  of darkening the others). No-data (0) is left out. S2RGB (v1.1) is shown
  as stored.
- S1: VV as red, VH as green, VV-VH as blue, on fixed dB ranges, so
  backscatter is comparable between locations and values that are not in dB
  stand out.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.errors import UsageError

__all__ = ["LocationImages", "contact_sheet", "location_figure", "modality_tiles", "plot_sample", "png_bytes",
           "require_pillow"]

S1_RANGES_DB: tuple[tuple[float, float], ...] = ((-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0))
"""dB ranges mapped to 0..255 for VV (red), VH (green) and VV-VH (blue)."""
STRETCH_PERCENTILES = (2.0, 98.0)
LABELS = {"s2l2a": "S2 L2A", "s2l1c": "S2 L1C", "s1": "S1 VV/VH", "s2rgb": "S2 RGB"}
ROW_ORDER = ("s2l2a", "s2l1c", "s2rgb", "s1")
"""Modalities top to bottom in a figure."""
TILE = spec.SIZE
GAP = 4
INSTALL_HINT = "pip install 'neuco-io[quicklook]' (or: pip install pillow)"


def require_pillow() -> None:
    """Raise a UsageError saying how to install Pillow when it is missing."""
    try:
        from PIL import Image, ImageDraw, ImageFont  # noqa: F401
    except ImportError:
        raise UsageError(f"pictures need Pillow: {INSTALL_HINT}") from None


# -- values to colours (numpy only) ------------------------------------------------------------
def _band_index(bands: Sequence[str], name: str, fallback: int) -> int:
    return list(bands).index(name) if name in bands else fallback


def _to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (values.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).astype(np.uint8)


def _s2_rgb(array: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """(time, band, y, x) S2 -> (time, y, x, 3) uint8, one robust stretch for every season."""
    picks = [_band_index(bands, "B04", 3), _band_index(bands, "B03", 2), _band_index(bands, "B02", 1)]
    rgb = array[:, picks].astype(np.float32)                                     # (time, 3, y, x)
    bounds = []
    for season in rgb[:, :, ::2, ::2]:
        valid = season[np.isfinite(season) & (season != 0)]
        if valid.size:
            bounds.append(np.percentile(valid, STRETCH_PERCENTILES))
    lo, hi = np.median(bounds, axis=0) if bounds else (0.0, 1.0)
    return _to_uint8(rgb, float(lo), float(hi)).transpose(0, 2, 3, 1)


def _s1_false_colour(array: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """(time, band, y, x) S1 in dB -> (time, y, x, 3): VV, VH, VV-VH on fixed ranges."""
    vv = array[:, _band_index(bands, "vv", 0)].astype(np.float32)
    vh = array[:, _band_index(bands, "vh", 1)].astype(np.float32)
    channels = [_to_uint8(c, lo, hi) for c, (lo, hi) in zip((vv, vh, vv - vh), S1_RANGES_DB)]
    return np.stack(channels, axis=-1)


def _as_stored(array: np.ndarray) -> np.ndarray:
    """uint8 R, G, B (S2RGB) -> (time, y, x, 3)."""
    return np.clip(array[:, :3], 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def modality_tiles(modality: str, array: np.ndarray, bands: Sequence[str] | None = None) -> np.ndarray:
    """One RGB tile per timestamp, (time, y, x, 3) uint8, for a (time, band, y, x) array of a modality."""
    bands = list(bands or spec.MODALITIES[modality].bands)
    if modality == "s1":
        return _s1_false_colour(array, bands)
    if modality == "s2rgb":
        return _as_stored(array)
    return _s2_rgb(array, bands)


# -- figures (Pillow) -----------------------------------------------------------------------------
@dataclass
class LocationImages:
    """The tiles of one location: title, season names (columns) and per modality a row of tiles."""

    title: str
    seasons: list[str]
    rows: dict[str, np.ndarray]
    """modality -> (time, y, x, 3) uint8."""

    @classmethod
    def from_arrays(cls, title: str, arrays: Mapping[str, np.ndarray], bands: Mapping[str, Sequence[str]] | None = None,
                    seasons: Sequence[int | str] | None = None) -> LocationImages:
        """From (time, band, y, x) arrays per modality; `seasons` are indices or names of the time axis."""
        rows = {m: modality_tiles(m, arrays[m], (bands or {}).get(m)) for m in _ordered(arrays)}
        n = next(iter(rows.values())).shape[0] if rows else 0
        names = [spec.SEASONS[s] if isinstance(s, (int, np.integer)) and 0 <= s < spec.N_TIMES else str(s)
                 for s in (seasons if seasons is not None else range(n))]
        return cls(title, names, rows)


def _ordered(arrays: Mapping[str, Any]) -> list[str]:
    return [m for m in ROW_ORDER if m in arrays] + sorted(m for m in arrays if m not in ROW_ORDER)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _tile_image(tile: np.ndarray, size: int):
    from PIL import Image

    image = Image.fromarray(tile, "RGB")
    return image if size == tile.shape[0] else image.resize((size, size), Image.Resampling.BOX)


def location_figure(images: LocationImages, tile: int = TILE):
    """A PIL image: the title, season names over the columns, a row per modality."""
    require_pillow()
    from PIL import Image, ImageDraw

    font, small = _font(16), _font(13)
    label_w, title_h, header_h = 84, 28, 20
    n_cols = max(len(images.seasons), 1)
    width = label_w + n_cols * (tile + GAP) + GAP
    height = title_h + header_h + len(images.rows) * (tile + GAP) + GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 5), images.title, fill="black", font=font)
    for c, season in enumerate(images.seasons):
        draw.text((label_w + c * (tile + GAP), title_h + 2), season, fill="black", font=small)
    for r, (modality, tiles) in enumerate(images.rows.items()):
        y = title_h + header_h + r * (tile + GAP)
        draw.text((GAP, y + tile // 2 - 8), LABELS.get(modality, modality), fill="black", font=small)
        for c in range(tiles.shape[0]):
            canvas.paste(_tile_image(tiles[c], tile), (label_w + c * (tile + GAP), y))
    return canvas


def contact_sheet(locations: Sequence[LocationImages], tile: int = 64, title: str = ""):
    """Many locations on one page: a row per location, its modalities' seasons side by side."""
    require_pillow()
    from PIL import Image, ImageDraw

    font = _font(12)
    modalities = [m for m in ROW_ORDER if any(m in loc.rows for loc in locations)] + sorted(
        {m for loc in locations for m in loc.rows} - set(ROW_ORDER))
    n_seasons = max((len(loc.seasons) for loc in locations), default=0)
    label_w, header_h, row_h = 160, 52, tile + GAP
    group_w = n_seasons * (tile + 1) + 3 * GAP
    width = label_w + len(modalities) * group_w
    height = header_h + len(locations) * row_h + GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 2), title, fill="black", font=font)
    seasons = next((loc.seasons for loc in locations if len(loc.seasons) == n_seasons), [])
    for g, modality in enumerate(modalities):
        x0 = label_w + g * group_w
        draw.text((x0, 18), LABELS.get(modality, modality), fill="black", font=font)
        for c, season in enumerate(seasons):
            draw.text((x0 + c * (tile + 1), 34), season[:6], fill="black", font=font)
    for r, loc in enumerate(locations):
        y = header_h + r * row_h
        name = loc.title if len(loc.title) <= 20 else loc.title[:9] + "…" + loc.title[-8:]
        draw.text((GAP, y + tile // 2 - 7), name, fill="black", font=font)
        for g, modality in enumerate(modalities):
            tiles = loc.rows.get(modality)
            for c in range(0 if tiles is None else tiles.shape[0]):
                canvas.paste(_tile_image(tiles[c], tile), (label_w + g * group_w + c * (tile + 1), y))
    return canvas


def png_bytes(image) -> bytes:
    """PNG bytes with no metadata (no time, no software): the same image gives the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=1)  # level 1: 3x faster, no larger here
    return buffer.getvalue()


def plot_sample(sample: Any, options: Any, tile: int = TILE):
    """A figure of one sample a loader yielded (`{"id", "data"}`, a dict per modality, or the concatenated
    array), split by the loader's `SampleOptions` (modalities in order, seasons)."""
    loc_id = "sample"
    data = sample
    if isinstance(sample, Mapping) and "data" in sample:
        loc_id, data = str(sample.get("id", loc_id)), sample["data"]
    if isinstance(data, Mapping):
        arrays = {m: np.asarray(v) for m, v in data.items()}
    else:
        joined = np.asarray(data)
        if joined.ndim != 4:
            raise UsageError(f"plot one sample (time, band, y, x), not an array of shape {joined.shape}")
        arrays, start = {}, 0
        for m in options.modalities:
            n = len(options.band_names(m))
            arrays[m] = joined[:, start:start + n]
            start += n
    first = next(iter(arrays.values()))
    seasons: Sequence[int | str] = (options.season_indices(loc_id) if not options.randomize_seasons
                                    else [f"t{t}" for t in range(first.shape[0])])
    bands = {m: options.band_names(m) for m in arrays if m in options.modalities}
    return location_figure(LocationImages.from_arrays(loc_id, arrays, bands, seasons=seasons), tile)
