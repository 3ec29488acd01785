"""Dataset checks that return findings and never print.

`validate(root)` runs them all (see `validators.run`); the submodules are the
checks, one family each. Names are resolved lazily so that importing one
check (the converter uses the cube checks) does not load pandas and pandera.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CHECKS", "CODES", "Code", "Finding", "Report", "Severity", "validate"]

_WHERE = {
    "CHECKS": "codes", "CODES": "codes", "Code": "codes", "Severity": "codes",
    "Finding": "findings", "Report": "findings", "validate": "run",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
