"""`labels.parquet` of a convert output: one `id` column and one float64 column per task (null: unlabelled).

Read in one place so `labels export` and `verify` see the same table.
"""

from __future__ import annotations

from typing import Any

from neuco_io.storage import open_read

__all__ = ["read_labels_parquet"]


def read_labels_parquet(path: Any) -> dict[str, list[Any]]:
    """column -> values. Raises what pyarrow or the store raise (OSError, ArrowInvalid...): callers say which
    output it was and what that means for them."""
    import pyarrow.parquet as pq  # pyarrow loads only where labels are read

    with open_read(path) as fh:
        return pq.read_table(fh).to_pydict()
