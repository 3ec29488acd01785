"""Rewrite the README's tables of codes from the registry in `neuco_io.findings` (`--check`: only compare).

Each table sits between `<!-- codes:SECTION -->` and `<!-- /codes -->`; tests/test_cli.py fails when one
differs from what this script writes, so a new or changed code is documented in the same commit.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from neuco_io.findings import SECTIONS, codes_table

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- codes:(?P<section>[a-z]+) -->.*?<!-- /codes -->", re.DOTALL)


def generated(text: str) -> str:
    """`text` with every table of codes rewritten from the registry."""
    # blank lines around the table: Markdown then sees a table, not HTML
    return BLOCK.sub(lambda m: f"<!-- codes:{m['section']} -->\n\n{codes_table(m['section'])}\n\n<!-- /codes -->", text)


def sections(text: str) -> list[str]:
    return [m.group("section") for m in BLOCK.finditer(text)]


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    missing = [s for s in SECTIONS if s not in sections(text)]
    if missing:
        print(f"README.md has no table for {', '.join(missing)} (add <!-- codes:NAME --><!-- /codes -->)")
        return 1
    new = generated(text)
    if "--check" in argv:
        if new != text:
            print("README.md's tables of codes are out of date: run python scripts/readme_codes.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
