"""Check that the installed packages still satisfy a requirements file (all of it, or the names given).

    python scripts/check_pins.py scripts/pinned-stack.txt [zarr numpy ...]

scripts/test.sh runs it after `pip install -e .` into NeuCo-Bench's pinned environment: installing neuco-io
must change none of those pins. Exit 1, naming each package that moved.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def main(argv: list[str]) -> int:
    lines = Path(argv[0]).read_text().splitlines()
    only = {canonicalize_name(n) for n in argv[1:]}
    moved = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        req = Requirement(text)
        if only and canonicalize_name(req.name) not in only:
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            moved.append(f"{req.name}: not installed (wants {req.specifier})")
            continue
        if not req.specifier.contains(installed.split("+")[0], prereleases=True):
            moved.append(f"{req.name}: {installed} installed, pinned {req.specifier}")
    for text in moved:
        print(f"check_pins: {text}", file=sys.stderr)
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
