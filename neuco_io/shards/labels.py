"""`labels.parquet` of a convert output: one `id` column and one float64 column per task (null: unlabelled).

Written by `convert` and read by `labels export` and `verify`, here only, so all see the same table.
"""

from __future__ import annotations

import json
from typing import Any

from neuco_io.storage import open_read

__all__ = ["read_labels_parquet", "write_labels_parquet"]


def read_labels_parquet(path: Any) -> dict[str, list[Any]]:
    """column -> values. Raises what pyarrow or the store raise (OSError, ArrowInvalid...): callers say which
    output it was and what that means for them."""
    import pyarrow.parquet as pq  # pyarrow loads only where labels are read

    with open_read(path) as fh:
        return pq.read_table(fh).to_pydict()


def write_labels_parquet(path: Any, ids: list[str], labels: dict[str, dict[str, float]], tasks: dict[str, dict]
                         ) -> None:
    """One row per id, one nullable float64 column per task; `tasks` (types, source files) as metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"id": pa.array(ids, pa.string())}
    for task, values in labels.items():
        columns[task] = pa.array([values.get(i) for i in ids], pa.float64())
    table = pa.table(columns).replace_schema_metadata({"neuco-io": json.dumps({"tasks": tasks})})
    pq.write_table(table, path, compression="zstd")
