"""`validate --report`: a self-contained HTML page, rendered by a real headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neuco_io import spec
from neuco_io.cli import main
from neuco_io.cube.reader import Cube
from neuco_io.cube.writer import CubeWriter

from helpers import TINY_IDS, cube_path

pytest.importorskip("PIL")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                  "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no headless browser: install Debian's `chromium` package (scripts/test.sh does, as root in CI)")
    return exe


def _broken_dataset(downstream: Path) -> tuple[Path, Path]:
    """One unreadable cube (no picture possible) and one readable cube with a finding (band names reversed)."""
    unreadable = cube_path(downstream, "s1", TINY_IDS[0])
    unreadable.write_bytes(b"")
    renamed = cube_path(downstream, "s2l2a", TINY_IDS[1])
    with Cube(renamed) as cube:
        data = cube.read("bands")
    with CubeWriter(renamed, "s2l2a", [TINY_IDS[1]], band_names=list(reversed(spec.MODALITIES["s2l2a"].bands)),
                    overwrite=True, fsync=False) as writer:
        writer.write_sample(0, data[0])
    return unreadable, renamed


def _report(downstream: Path, tmp_path: Path, *extra: str) -> str:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["validate", str(downstream), "--report", str(out), "--jobs", "1", *extra],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output                        # the errors still fail the run
    return out.read_text(encoding="utf-8")


def test_report_is_self_contained_with_findings_thumbnails_and_stats(downstream, tmp_path):
    unreadable, renamed = _broken_dataset(downstream)
    page = _report(downstream, tmp_path, "--deep")
    assert not re.search(r"""(src|href)=["']https?:""", page)         # nothing fetched from the network
    assert "<link" not in page and "@import" not in page
    for code in ("cubes.unreadable", "cubes.band-names"):
        assert code in page
    assert f'href="{renamed.as_uri()}"' in page and f'href="{unreadable.as_uri()}"' in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # the renamed cube, and the clean sample: every other cube of the 4 locations (at most 8)
    assert len(images) == 1 + 8
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "no picture" in page and "zero-byte file" in page
    assert "Per-band statistics" in page and "left out" in page and "B8A" in page


def test_report_without_deep_has_no_statistics(downstream, tmp_path):
    _broken_dataset(downstream)
    page = _report(downstream, tmp_path)
    assert "Per-band statistics" not in page
    assert page.count("data:image/png;base64,") == 9


def test_report_renders_in_headless_chromium(downstream, tmp_path):
    exe = _chromium()
    _broken_dataset(downstream)
    page = tmp_path / "report.html"
    page.write_text(_report(downstream, tmp_path, "--deep"), encoding="utf-8")
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the page's own script counted the thumbnails the browser decoded
    assert 'data-thumbnails-loaded="9"' in dom.stdout
    assert dom.stdout.count('class="thumbnail"') == 9
    shot = tmp_path / "shot.png"
    run = subprocess.run([*base, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert (pixels < 250).any(axis=2).mean() > 0.05                   # not a blank page: text and pictures
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500         # thumbnails bring many colours
