"""Summarise scripts/test.sh's pytest runs from their JUnit XML: one line per stack, then the totals.

    python3 scripts/test_summary.py STACK EXIT SECONDS [STACK EXIT SECONDS ...]
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(path: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) of one run; failed includes errors."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def main(args: list[str]) -> None:
    passed = failed = skipped = 0
    for stack, code, seconds in zip(args[::3], args[1::3], args[2::3]):
        report = Path(".test-results") / f"{stack}.xml"
        if not report.is_file():
            print(f"{stack} stack: pytest exit {code}, no report ({seconds} s with setup)")
            failed += 1
            continue
        p, f, s = counts(report)
        passed, failed, skipped = passed + p, failed + f, skipped + s
        print(f"{stack} stack: {p} passed, {f} failed, {s} skipped; pytest exit {code}, {seconds} s with setup")
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main(sys.argv[1:])
