"""`validate --report report.html`: a validation report people can look at, in one self-contained file.

No network is needed to open it: styles are inline and pictures are base64
PNG data URIs. It holds the summary, every finding grouped by check with a
link to its file, a thumbnail (the seasons of the cube's first sample) of
each cube with a finding and of a sample of clean cubes, and the per-band
statistics when they were computed (`--deep`). A small inline script counts
the thumbnails the browser decoded into `data-thumbnails-loaded` on <body>,
which the tests read back from a real headless browser.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import spec
from neuco_io.cube.reader import Cube
from neuco_io.errors import NeucoError
from neuco_io.findings import CHECKS, Finding, Report
from neuco_io.layout import CubeFile, discover
from neuco_io.quicklook import GAP, modality_tiles, png_bytes, require_pillow
from neuco_io.render import _relative

__all__ = ["MAX_FINDING_THUMBNAILS", "Thumbnail", "cube_thumbnails", "report_html"]

MAX_FINDING_THUMBNAILS = 200
"""Cubes with findings drawn at most (the first, by path); the rest are counted."""
CLEAN_THUMBNAILS = 8
"""Clean cubes drawn, evenly spread over the sorted list."""
THUMB = 96


@dataclass
class Thumbnail:
    path: str
    modality: str
    png: bytes | None
    error: str | None = None


def _strip(modality: str, array: np.ndarray, bands: Sequence[str]) -> bytes:
    from PIL import Image

    tiles = modality_tiles(modality, array, bands)
    canvas = Image.new("RGB", (tiles.shape[0] * (THUMB + GAP) - GAP, THUMB), "white")
    for t, tile in enumerate(tiles):
        image = Image.fromarray(tile, "RGB").resize((THUMB, THUMB), Image.Resampling.BOX)
        canvas.paste(image, (t * (THUMB + GAP), 0))
    return png_bytes(canvas)


def _thumbnail(cube_file: CubeFile) -> Thumbnail:
    try:
        with Cube(cube_file.path) as cube:
            try:
                bands = cube.band_names
            except NeucoError:
                bands = list(spec.MODALITIES[cube_file.modality].bands)
            png = _strip(cube_file.modality, cube.read_location(0), bands)
        return Thumbnail(str(cube_file.path), cube_file.modality, png)
    except (NeucoError, ValueError, IndexError) as exc:
        return Thumbnail(str(cube_file.path), cube_file.modality, None, str(exc))


def cube_thumbnails(report: Report, progress: Callable[[int], None] | None = None,
                    storage_options: dict | None = None) -> tuple[list[Thumbnail], list[Thumbnail], int]:
    """(thumbnails of cubes with findings, of a sample of clean cubes, cubes with findings not drawn)."""
    require_pillow()
    ds = discover(report.root, report.layout, storage_options)  # type: ignore[arg-type]
    cubes = sorted(ds.cubes, key=lambda c: str(c.path))
    flagged = {f.path for f in report.findings}
    with_findings = [c for c in cubes if str(c.path) in flagged]
    clean = [c for c in cubes if str(c.path) not in flagged]
    step = max(1, len(clean) // CLEAN_THUMBNAILS)
    chosen = clean[::step][:CLEAN_THUMBNAILS]
    drawn = []
    for group in (with_findings[:MAX_FINDING_THUMBNAILS], chosen):
        out = []
        for cube_file in group:
            out.append(_thumbnail(cube_file))
            if progress:
                progress(1)
        drawn.append(out)
    return drawn[0], drawn[1], max(0, len(with_findings) - MAX_FINDING_THUMBNAILS)


# -- HTML ---------------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 12px}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.error{color:#b00020;font-weight:600}.warning{color:#a65b00;font-weight:600}.note{color:#555}
.ok{color:#1b7f3b;font-weight:600}.failed{color:#b00020;font-weight:600}
td{word-break:break-word}.thumbs{display:flex;flex-wrap:wrap;gap:14px}
.thumb{font-size:12px;width:396px;word-break:break-all}
.thumb img{display:block;border:1px solid #ccc;image-rendering:pixelated}
code{font-size:12px}td code{white-space:nowrap}
"""
_SCRIPT = """
window.addEventListener('load',function(){var n=0;document.querySelectorAll('img.thumbnail').forEach(
function(i){if(i.complete&&i.naturalWidth>0){n++;}});document.body.setAttribute('data-thumbnails-loaded',n);});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _href(path: str) -> str:
    if "://" in path:  # a URL (s3://, https://, file://...) links as it is
        return path
    return Path(os.path.abspath(path)).as_uri()


def _link(path: str, root: str) -> str:
    return f'<a href="{_e(_href(path))}">{_e(_relative(path, root))}</a>'


def _finding_row(f: Finding, root: str) -> str:
    where = "" if f.row is None else f":{f.row}"
    return (f'<tr><td class="{f.severity.value}">{f.severity.value}</td><td><code>{_e(f.code)}</code></td>'
            f"<td>{_link(f.path, root)}{_e(where)}</td><td>{_e(f.id or '')}</td><td>{_e(f.message)}</td></tr>")


def _thumb_html(t: Thumbnail, root: str, codes: Sequence[str]) -> str:
    caption = f"{_link(t.path, root)}<br>{_e(t.modality)}"
    if codes:
        caption += "<br>" + ", ".join(f"<code>{_e(c)}</code>" for c in codes)
    if t.png is None:
        return f'<div class="thumb">{caption}<br><span class="error">no picture: {_e(t.error)}</span></div>'
    data = base64.b64encode(t.png).decode("ascii")
    return (f'<div class="thumb"><img class="thumbnail" alt="{_e(Path(t.path).name)}" '
            f'src="data:image/png;base64,{data}">{caption}</div>')


def _stats_html(stats: dict[str, Any]) -> list[str]:
    parts = ["<h2>Per-band statistics</h2>",
             f"<p>Every value of every chunk (exact histograms; std over finite values, ddof=0); S2 "
             f"{'includes' if stats.get('s2_offset') else 'without'} the +1000 offset."
             + (f" {len(stats['skipped_cubes'])} cube(s) with blocking findings left out."
                if stats.get("skipped_cubes") else "") + "</p>"]
    columns = ("mean", "std", "min", "max", "p1", "p50", "p99", "zero_fraction", "nan_fraction")
    for modality, entry in stats["modalities"].items():
        parts.append(f"<h3>{_e(modality)} ({_e(entry['dtype'])}, {entry['locations']} locations)</h3><table><tr>"
                     "<th>band</th>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>")
        for i, band in enumerate(entry["bands"]):
            cells = []
            for c in columns:
                v = entry[c][i]
                cells.append("-" if v is None else f"{100 * v:.2f}%" if c.endswith("fraction") else f"{v:.6g}")
            parts.append(f"<tr><td>{_e(band)}</td>" + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
        parts.append("</table>")
    return parts


def report_html(report: Report, flagged: Sequence[Thumbnail], clean: Sequence[Thumbnail], not_drawn: int = 0,
                stats: dict[str, Any] | None = None, stats_error: str | None = None) -> str:
    """The whole page, as text."""
    s = report.summary
    counts = report.counts()
    verdict = ('<span class="ok">OK</span>' if report.ok else '<span class="failed">FAILED</span>')
    what = ", ".join(f"{k.replace('_', ' ')}: {_e(s[k])}" for k in ("cubes", "locations", "samples") if k in s)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>neuco-io validate: {_e(report.root)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>neuco-io validate: {_e(report.root)}</h1>",
             f"<p>{verdict}: {len(report.errors)} errors, {len(report.warnings)} warnings, {len(report.notes)} notes. "
             f"{_e(report.layout)} layout; {what}; {'deep' if s.get('deep') else 'metadata'} check.</p>",
             "<h2>Summary</h2><table><tr><th>check</th><th>errors</th><th>warnings</th><th>notes</th></tr>"]
    for check in CHECKS:
        c = counts.get(check, {})
        parts.append(f'<tr><td><a href="#check-{check}">{check}</a></td><td class="num">{c.get("errors", 0)}</td>'
                     f'<td class="num">{c.get("warnings", 0)}</td><td class="num">{c.get("notes", 0)}</td></tr>')
    parts.append("</table>")
    by_path: dict[str, list[str]] = {}
    for f in report.findings:
        by_path.setdefault(f.path, []).append(f.code)
    parts.append("<h2>Findings</h2>")
    for check in CHECKS:
        found = [f for f in report.findings if f.check == check]
        parts.append(f'<h3 id="check-{check}">{check}: {len(found)} finding(s)</h3>')
        if found:
            parts.append("<table><tr><th>severity</th><th>code</th><th>file</th><th>id</th><th>message</th></tr>")
            parts.extend(_finding_row(f, report.root) for f in found)
            parts.append("</table>")
    parts.append("<h2>Cubes with findings</h2><p>Each picture: the cube's first sample, a tile per season "
                 f"({', '.join(spec.SEASONS)}); S2 in true colour, S1 as VV/VH/VV-VH in dB.</p>")
    if flagged:
        parts.append('<div class="thumbs">')
        parts.extend(_thumb_html(t, report.root, sorted(set(by_path.get(t.path, [])))) for t in flagged)
        parts.append("</div>")
        if not_drawn:
            parts.append(f"<p>... and {not_drawn} more cubes with findings, not drawn.</p>")
    else:
        parts.append("<p>No cube has a finding.</p>")
    parts.append(f"<h2>A sample of clean cubes ({len(clean)})</h2>")
    parts.append('<div class="thumbs">' + "".join(_thumb_html(t, report.root, []) for t in clean) + "</div>")
    if stats is not None:
        parts.extend(_stats_html(stats))
    elif stats_error:
        parts.append(f'<h2>Per-band statistics</h2><p class="error">not computed: {_e(stats_error)}</p>')
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
