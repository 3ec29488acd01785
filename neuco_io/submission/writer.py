"""Write embedding files: the NeuCo-Bench CSV (`id,0,1,...,D-1`) or Parquet with the same columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["EmbeddingWriter"]


class EmbeddingWriter:
    """Streams rows to `path` with pyarrow: CSV with a plain header and float32 values written in their
    shortest exact form, or Parquet (zstd). The caller owns `path` (a temporary name to rename later)."""

    def __init__(self, path: str | Path, dim: int, *, parquet: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.csv as pc
        import pyarrow.parquet as pq

        self.names = ["id", *(str(i) for i in range(dim))]
        self.schema = pa.schema([pa.field("id", pa.string())] + [pa.field(n, pa.float32()) for n in self.names[1:]])
        self._fh = None
        if parquet:
            self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        else:
            self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
            self._fh.write((",".join(self.names) + "\n").encode())
            self._writer = pc.CSVWriter(self._fh, self.schema,
                                        write_options=pc.WriteOptions(include_header=False, quoting_style="none"))

    def write(self, ids: list[str], matrix: np.ndarray) -> None:
        import pyarrow as pa

        matrix = np.asarray(matrix, dtype=np.float32)
        columns = [pa.array(ids, pa.string())] + [pa.array(matrix[:, j]) for j in range(matrix.shape[1])]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        self._writer.close()
        if self._fh is not None:
            self._fh.close()
