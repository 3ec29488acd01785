"""Dataset checks that return findings (`neuco_io.findings`) and never print.

`validate(root)` runs them all (see `validators.run`); the submodules are the
checks, one family each. `validate` is resolved lazily so that importing one
check (the converter uses the cube checks) does not load pandas and pandera.
"""

from __future__ import annotations

from typing import Any

__all__ = ["validate"]


def __getattr__(name: str) -> Any:
    if name == "validate":
        from neuco_io.validators.run import validate

        return validate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
