"""What NeuCo-Bench's evaluator makes of a submission's ids and numbers, computed with pandas itself.

The evaluator's `load_submission` (benchmark/data/embeddings.py) reads the file with a bare
`pd.read_csv(path)`, turns the `id` column into text with `.astype(str)`, removes `.zarr.zip` and
then `.zarr` wherever they occur, and converts every dimension column with
`pd.to_numeric(errors="coerce")` followed by `fillna(0)`. Two consequences a file's author does not see:

- ids: pandas infers the id column's type. Where every id looks like a number, `000123` becomes
  `123`, `1.50` becomes `1.5` and `12` next to `1.5` becomes `12.0`; `true` becomes `True`; `NA`
  becomes a missing value. pandas infers types per block of rows (its `low_memory` reader works in
  blocks of `buffer_rows(width)` rows, 512 for a 1,024-dimension file) and then joins the blocks,
  so one block of numeric-looking ids is enough, even in a file whose other ids hold letters.
- numbers: pandas' float syntax, not Python's: `１２` (full-width digits), `1_0` or `١٢` are not
  numbers for it and silently become 0; `1e400` is not a number for pandas 2.2 (it is infinity for
  pandas 3).

Nothing here re-implements pandas' parsing: each function hands the exact text to the same pandas
calls (the installed pandas, i.e. NeuCo-Bench's own in its environment) and reports what comes out.
The one piece of pandas internals copied is the block size of its low-memory reader
(`buffer_rows`), which the tests check against a full `pd.read_csv` of real files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["FINITE", "INFINITE", "MISSING", "UNPARSABLE", "buffer_rows", "evaluator_id_text", "ids_at_risk",
           "read_ids", "read_numbers", "risk_message", "unusable_id"]

FINITE, MISSING, UNPARSABLE, INFINITE = 0, 1, 2, 3
"""What a value is to the evaluator: a number; NaN or empty (made 0); text pandas cannot parse (made 0); +-inf."""

PROBES = 10_000
"""Distinct NaN-reading texts examined one by one to tell `NAN` (a NaN) from `abc` (unparsable); beyond: unparsable."""


def buffer_rows(table_width: int) -> int:
    """Rows per block of pandas' C reader with `low_memory=True` (its default) for a file this many columns wide.

    pandas (parsers.pyx, `TextReader.__cinit__`): the largest power of two whose double reaches
    2**20 // width; types are inferred per block and the blocks joined (int + float -> float,
    anything + text -> object).
    """
    heuristic = 2**20 // max(table_width, 1)
    rows = 1
    while rows * 2 < heuristic:
        rows *= 2
    return rows


def _quoted_csv(rows: Iterable[Sequence[str]], width: int) -> str:
    """A CSV (header c0..c{width-1}) with every field quoted, so each field reaches pandas exactly as written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow([f"c{i}" for i in range(width)])
    writer.writerows(rows)
    buffer.seek(0)
    return buffer.getvalue()


def evaluator_id_text(series) -> list[str | None]:
    """`.astype(str)` and the `.zarr.zip`/`.zarr` removal of load_submission; None for a missing value
    (pandas 3 keeps NaN through `astype(str)`, pandas 2 writes `nan`: either way it matches no label)."""
    text = series.astype(str).str.replace(".zarr.zip", "", regex=False).str.replace(".zarr", "", regex=False)
    return [t if isinstance(t, str) else None for t in text]


def read_ids(raw_ids: Sequence[str], table_width: int) -> list[str | None]:
    """The ids of a submission as load_submission sees them (None: a missing value).

    `raw_ids`: the id fields as written (CSV quoting removed), in file order; `table_width`: the
    file's number of columns, which sets pandas' block size. A block holding an id that pandas
    surely reads as text is read as text whatever else it holds, and there each value is read on
    its own: the doubtful ids of all such blocks go to pandas together, beside one text id. Blocks
    of doubtful ids only are read as they are, and joined as pandas joins blocks (int and float
    blocks make floats, unless a text block makes everything objects). The tests compare the
    result with a full `pd.read_csv` of the file. A file of ordinary ids never imports pandas.
    """
    words = _spellings()
    out: list[str | None] = list(raw_ids)
    step = buffer_rows(table_width)
    text_id: str | None = None
    in_text_blocks: list[int] = []
    pure_blocks: list[list[int]] = []
    for a in range(0, len(raw_ids), step):
        block = raw_ids[a:a + step]
        doubtful = [a + k for k, loc_id in enumerate(block) if _maybe_not_text(loc_id, words)]
        if len(doubtful) == len(block):
            pure_blocks.append(doubtful)
            continue
        if text_id is None:
            text_id = next(i for i in block if not _maybe_not_text(i, words))
        in_text_blocks.extend(doubtful)
    if in_text_blocks:
        rows = in_text_blocks
        read = _read_block([text_id, *(raw_ids[k] for k in rows)])  # type: ignore[list-item]
        for k, value in zip(rows, evaluator_id_text(read)[1:]):
            out[k] = value
    if pure_blocks:
        import pandas as pd

        reads = [_read_block([raw_ids[k] for k in rows]) for rows in pure_blocks]
        if text_id is None:  # no text block: pandas joins the blocks' types (int + float -> float)
            reads = [pd.concat(reads, ignore_index=True)] if len(reads) > 1 else reads
            pure_blocks = [[k for rows in pure_blocks for k in rows]]
        for rows, read in zip(pure_blocks, reads):
            for k, value in zip(rows, evaluator_id_text(read)):
                out[k] = value
    return out


def _read_block(fields: list[str]):
    """pandas' reading of some id fields as one block of a column (a Series)."""
    import pandas as pd

    return pd.read_csv(io.StringIO(_quoted_csv(([f] for f in fields), 1)))["c0"]


_NA_SPELLINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                           "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
"""pandas' default missing-value spellings (`pandas._libs.parsers.STR_NA_VALUES`; a test keeps them in step),
written out so the pre-filter does not import pandas."""


def _spellings() -> frozenset[str]:
    """Missing-value spellings and bool words, lower-cased (a pre-filter: pandas itself decides)."""
    return frozenset(w.lower() for w in _NA_SPELLINGS) | {"true", "false"}


def _maybe_not_text(loc_id: str, words: frozenset[str]) -> bool:
    """False when pandas surely reads the id as text and keeps it: no number, bool or NA spelling, no `.zarr`,
    no surrounding whitespace. Python's float() accepts more than pandas (`1_0`, other scripts' digits): a
    superset is what a pre-filter needs; pandas itself decides on what passes it."""
    if ".zarr" in loc_id:
        return True
    stripped = loc_id.strip()
    if stripped != loc_id or stripped.lower() in words:
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def _read_columns(rows: list[Sequence[str]], width: int):
    """Each column of `rows` read by pandas on its own (one column per value: per-value type inference)."""
    import pandas as pd

    return pd.read_csv(io.StringIO(_quoted_csv(rows, width)))


def ids_at_risk(ids: Iterable[str]) -> dict[str, str]:
    """Ids that a submission may hand to the evaluator changed -> what it may read instead.

    An id is at risk when pandas changes it in a block of ids that all look like numbers: alone
    (`000123` -> `123`, `1.50` -> `1.5`, `1e3` -> `1000.0`, `true` -> `True`, `NA` -> `nan`, `.zarr`
    removed), or next to another id of the dataset that reads as a float or a missing value
    (`12` -> `12.0` beside `1.5`). Which ids share a block depends on the submission's order and
    width, so every id that can be changed is reported.
    """
    words = _spellings()
    candidates = sorted({i for i in ids if _maybe_not_text(i, words)})
    if not candidates:
        return {}
    width = len(candidates)
    alone = _read_columns([candidates], width)
    read_alone = evaluator_id_text(alone.iloc[0])
    risk = {x: r if r is not None else "a missing value" for x, r in zip(candidates, read_alone) if r != x}
    kinds = [alone[f"c{k}"].dtype.kind for k in range(width)]
    # a float (or NaN: a missing value makes the block float) turns every integer-looking id of its block into a float
    spoiler = next((x for x, kind in zip(candidates, kinds) if kind == "f"), None)
    integers = [x for x, kind in zip(candidates, kinds) if kind in "iu" and x not in risk]
    if spoiler is not None and integers:
        paired = _read_columns([integers, [spoiler] * len(integers)], len(integers))
        for x, r in zip(integers, evaluator_id_text(paired.iloc[0])):
            if r != x:
                risk[x] = f"{r} (in a block of ids with {spoiler!r})"
    return risk


def risk_message(loc_id: str, read: str) -> str:
    """Why a submission cannot carry this id to the evaluator unchanged, and what to do."""
    if ".zarr" in loc_id:
        why = "it removes `.zarr` wherever it occurs in an id"
    else:
        why = ("pandas reads ids that all look like numbers (or true/false, NA), in any block of rows of a "
               "submission, as such")
    return (f"NeuCo-Bench's evaluator may read this id as {read} ({why}): its embedding would then match no "
            "label; rename the location (letters make an id safe; `task import --ids hash` gives safe ids)")


def unusable_id(loc_id: str) -> str | None:
    """Why an id cannot name a location at all (None when it can): `.`/`..`, or text the evaluator strips."""
    if loc_id in (".", ".."):
        return f"{loc_id!r} names a folder, not a location"
    if ".zarr" in loc_id:
        return "NeuCo-Bench's evaluator removes `.zarr` from ids, so this id would reach it changed"
    return None


def read_numbers(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fields of a dimension column -> (float64 values as the evaluator converts them, category per field).

    `pd.read_csv` keeps a field as written unless it is one of pandas' missing-value spellings
    (empty, `NA`, `nan`, `null`, ...), then `pd.to_numeric(errors="coerce")` converts it. The value
    of a field does not depend on its neighbours (whether pandas inferred the column as float or
    as text: the tests prove it on a corpus); the category tells NaN written as a number (`NAN`)
    from text pandas cannot parse (`1_0`), which the evaluator both makes 0.
    """
    import pandas as pd

    if not texts:
        return np.zeros(0), np.zeros(0, dtype=np.int8)
    fields = pd.read_csv(io.StringIO(_quoted_csv(([t] for t in texts), 1)), dtype=object)["c0"]
    missing = fields.isna().to_numpy()
    values = pd.to_numeric(fields, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    category = np.full(len(texts), FINITE, dtype=np.int8)
    category[np.isinf(values)] = INFINITE
    category[missing] = MISSING
    undecided = np.isnan(values) & ~missing
    if undecided.any():
        verdict: dict[str, int] = {}
        for k in np.flatnonzero(undecided):
            text = texts[k]
            if text not in verdict:
                verdict[text] = _nan_or_unparsable(text) if len(verdict) < PROBES else UNPARSABLE
            category[k] = verdict[text]
    return values, category


def _nan_or_unparsable(text: str) -> int:
    import pandas as pd

    try:
        pd.to_numeric(pd.Series([text], dtype=object), errors="raise")
    except (ValueError, TypeError):
        return UNPARSABLE
    return MISSING
