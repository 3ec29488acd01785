"""`submission check`: an embedding CSV against the NeuCo-Bench evaluator's rules (docs/format.md).

Two profiles. `benchmark` reports what the evaluation code does silently
(zero-padding, unparsable values and NaN turned into 0, ids outside the
labels dropped) as warnings and notes; `challenge` is strict and makes every
deviation an error. The file is streamed in blocks with pyarrow's CSV reader,
so a 13,260 x 1,024 file (~250 MB) is checked in bounded memory: ids, and
per-dimension statistics, are all that is kept.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuco_io import evaluator, spec
from neuco_io.errors import UsageError
from neuco_io.execution import Progress
from neuco_io.findings import Finding, Report, Severity
from neuco_io.storage.local import require_regular_file
from neuco_io.tasks.labels import lost_leading_zeros
from neuco_io.wording import plural

__all__ = ["PROFILES", "check_submission", "expected_ids", "read_id_list"]

PROFILES = ("benchmark", "challenge")
SHOWN = 20
"""Findings listed per code (with locations); the counts are always complete."""
_INFORMATIVE = frozenset({"submission.padding"})
"""Notes about what the user asked for: the challenge profile does not make them errors."""
BOM = b"\xef\xbb\xbf"


def expected_ids(*, dataset: str | os.PathLike[str] | None = None, labels: str | os.PathLike[str] | None = None,
                 ids_file: str | os.PathLike[str] | None = None) -> set[str] | None:
    """The ids a submission should cover: a dataset's locations, the labelled ids of a label folder, or a list."""
    given = [x for x in (dataset, labels, ids_file) if x is not None]
    if len(given) > 1:
        raise UsageError("give one of --dataset, --labels, --ids")
    if dataset is not None:
        from neuco_io.layout import discover

        ds = discover(dataset)
        if ds.layout == "downstream":
            return {loc.id for loc in ds.downstream_locations()}
        from neuco_io.cube.reader import Cube

        ids: set[str] = set()
        for files in ds.v11_files():
            with Cube(next(iter(files.values())).path) as cube:
                ids.update(cube.sample_ids)
        return ids
    if labels is not None:
        from neuco_io.tasks.tasklist import dataset_tasks

        folder = Path(labels)
        if not folder.is_dir():
            raise UsageError(f"--labels {folder}: not a folder")
        return {loc_id for task in dataset_tasks(folder, strict=False).values() for loc_id in task.labels()}
    if ids_file is not None:
        return {spec.strip_cube_suffix(loc_id) for loc_id in read_id_list(ids_file)}
    return None


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """The ids of an `--ids` file: one per line, blank lines skipped (a BOM is tolerated: this is input)."""
    try:
        require_regular_file(path)
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--ids {path}: {exc}") from None
    return [line.strip() for line in lines if line.strip()]


@dataclass
class _Column:
    """Running statistics of one dimension column."""

    name: str
    minimum: float = np.inf
    maximum: float = -np.inf
    nonzero: bool = False


class _Checker:
    def __init__(self, path: Path, profile: str, ids: set[str] | None, report: Report) -> None:
        self.path, self.profile, self.expected, self.report = path, profile, ids, report

    def _level(self, code: str) -> Severity | None:
        return Severity.ERROR if self.profile == "challenge" and code not in _INFORMATIVE else None

    def add(self, code: str, message: str, **kw: Any) -> None:
        """A finding; the challenge profile makes warnings and notes errors."""
        self.report.add(Finding(code, str(self.path), message, level=self._level(code), **kw))

    def add_unlisted(self, code: str, n: int) -> None:
        """`n` findings of `code` counted in a block of rows but not built."""
        self.report.add_unlisted(code, str(self.path), n, self._level(code))



def _header(raw: bytes) -> list[str]:
    first = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
    return next(csv.reader(io.StringIO(first)), [])


def _dimension_columns(header: list[str], checker: _Checker) -> tuple[list[str], list[str]]:
    """(dimension columns in evaluator order, ignored columns), with findings on the names."""
    others = [c for c in header if c != "id"]
    digits = [c for c in others if c.isdigit()]
    if not digits:
        if others:
            checker.add("submission.column-names", f"no integer-named column: the evaluator uses all {len(others)} "
                        "other columns as dimensions, in file order", got=others[:5])
        return others, []
    ignored = [c for c in others if not c.isdigit()]
    for name in ignored:
        checker.add("submission.extra-column", f"column {name!r} is not a dimension: the evaluator ignores it",
                    column=name)
    ordered = sorted(digits, key=int)
    numbers = [int(c) for c in ordered]
    if len(set(numbers)) != len(numbers) or len(set(digits)) != len(digits):
        checker.add("submission.column-names", "dimension columns repeat a number", got=ordered[:10])
    elif numbers not in (list(range(len(numbers))), list(range(1, len(numbers) + 1))):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        checker.add("submission.column-names", f"dimension columns are not 0..{len(numbers) - 1} nor "
                    f"1..{len(numbers)}" + (f" (missing {missing[:5]})" if missing else ""),
                    got=[ordered[0], ordered[-1]])
    return ordered, ignored


RANGE_BYTES = 16 << 20
"""Bytes of CSV parsed per task: a few of them in flight bound the memory, whatever the file size."""


@dataclass
class _Block:
    """What one byte range of the file holds, summarized (the pixels of the file are never all in memory)."""

    ids: list[str]
    minimum: np.ndarray
    maximum: np.ndarray
    nonzero: np.ndarray
    cells: dict[str, list[tuple[int, int, Any]]]
    """code -> first cells (row in block, column, detail)."""
    counts: dict[str, int]
    error: str | None = None
    size: int = 0
    """Bytes of the file this range holds."""


def _line_ranges(path: Path, start: int, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about RANGE_BYTES that start and end on line boundaries."""
    bounds = [start]
    with open(path, "rb") as fh:
        while bounds[-1] + RANGE_BYTES < size:
            fh.seek(bounds[-1] + RANGE_BYTES)
            fh.readline()
            if fh.tell() >= size:
                break
            bounds.append(fh.tell())
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _first(mask: np.ndarray, detail) -> tuple[list[tuple[int, int, Any]], int]:
    total = int(np.count_nonzero(mask))
    if not total:
        return [], 0
    rows, cols = np.nonzero(mask)
    return [(int(i), int(j), detail(int(i), int(j))) for i, j in zip(rows[:SHOWN], cols[:SHOWN])], total


def _parse_with_polars(data: bytes, header: list[str], dims: list[str]):
    """(ids, values) when polars parses the range into the very table pyarrow would, else None.

    polars parses float text about twice as fast as pyarrow, but it is lenient where pyarrow is
    strict: a short row gets nulls and a blank line becomes a row of nulls (a long row is
    refused). A range without nulls is therefore exact; one with nulls is accepted only when its
    comma count proves that every row has every column. Anything else goes to pyarrow. Values it
    reads as finite numbers are the evaluator's (the tests prove it on a corpus of spellings);
    every other value is judged by pandas afterwards (`_judge_nonfinite`).
    """
    try:
        import polars as pl
    except ImportError:  # pragma: no cover - polars is a dependency; a broken install falls back
        return None
    if len(set(header)) != len(header):
        return None
    numeric = set(dims)
    schema = {name: pl.Float32 if name in numeric else pl.String for name in header}
    try:
        frame = pl.read_csv(data, has_header=False, schema=schema)  # an empty field is null
    except Exception:  # any polars refusal means: let pyarrow decide, with its exact messages
        return None
    if frame["id"].null_count():
        return None
    # the usual file (`id` first, then 0..D-1 in order) is sliced: selecting 1,024 columns by name costs
    # polars about as much as a third of the parse
    values = frame[:, 1:] if header[0] == "id" and header[1:] == dims else frame.select(dims)
    if any(values.null_count().row(0)):
        # bytes.count holds the GIL; numpy does not, so the parsing threads keep going
        raw = np.frombuffer(data, dtype=np.uint8)
        if np.count_nonzero(raw == ord('"')) or np.count_nonzero(raw == ord(",")) != frame.height * (len(header) - 1):
            return None
    matrix = values.to_numpy(order="fortran").astype(np.float32, copy=False)
    # polars hands out a read-only view of a single float32 column (an all-NaN one, say): it is written to later
    return frame["id"].to_list(), matrix if matrix.flags.writeable else matrix.copy(order="F")


def _text_columns(data: bytes, header: list[str], names: list[str]):
    """The fields of some columns of a range, as text exactly as written (CSV quoting removed)."""
    import pyarrow as pa
    import pyarrow.csv as pc

    read = pc.ReadOptions(column_names=header, use_threads=False)
    table = pc.read_csv(io.BytesIO(data), read_options=read, convert_options=pc.ConvertOptions(
        column_types={n: pa.string() for n in names}, include_columns=names, strings_can_be_null=False))
    return [col.to_pylist() for col in table.columns]


def _parse_with_pyarrow(data: bytes, header: list[str], dims: list[str]):
    """(ids, values, columns judged by pandas) or the error of a range that is not a table.

    Columns pyarrow cannot convert to float are read as text and converted by pandas as the
    evaluator converts them: {column: (values, category per row, texts)}.
    """
    import pyarrow as pa
    import pyarrow.csv as pc

    read = pc.ReadOptions(column_names=header, use_threads=False)
    # float32: what the evaluator converts to, so "constant" means constant for it too
    types = {name: pa.float32() for name in dims}
    types["id"] = pa.string()
    judged: dict[int, tuple[np.ndarray, np.ndarray, Any]] = {}
    try:
        table = pc.read_csv(io.BytesIO(data), read_options=read, convert_options=pc.ConvertOptions(
            column_types=types, include_columns=["id", *dims], null_values=[""], strings_can_be_null=False))
        columns = table.columns[1:]  # positional: a lookup by name per column is quadratic in the width
    except pa.ArrowInvalid as exc:
        if "conversion error" not in str(exc):
            return str(exc).splitlines()[0]
        # slow path, for this range only: text, converted column by column; pandas for the ones pyarrow refuses
        table = pc.read_csv(io.BytesIO(data), read_options=read, convert_options=pc.ConvertOptions(
            column_types={n: pa.string() for n in ["id", *dims]}, include_columns=["id", *dims],
            strings_can_be_null=False))
        columns = []
        for j, col in enumerate(table.columns[1:]):
            try:
                columns.append(col.cast(pa.float32()))
            except pa.ArrowInvalid:  # blanks, NaN spellings and text: all of it for pandas to judge
                texts = col.to_pylist()
                values, category = evaluator.read_numbers(texts)
                judged[j] = (values, category, texts)
                columns.append(pa.array(values, pa.float32()))
    # column-major: each column is copied in one contiguous stretch
    matrix = np.empty((table.num_rows, len(dims)), dtype=np.float32, order="F")
    for j, col in enumerate(columns):
        matrix[:, j] = col.to_numpy(zero_copy_only=False)
    return table.columns[0].to_pylist(), matrix, judged


def _fields_by_line(data: bytes, header: list[str], dims: list[str], cells: dict[int, np.ndarray]):
    """{column: {row: text}} cut straight from the lines of a range whose rows are its lines (no quotes, no
    blank lines: what polars accepted), or None when a line does not have the header's fields."""
    rows_needed = sorted({int(i) for rows in cells.values() for i in rows})
    position = {name: k for k, name in enumerate(header)}
    lines: dict[int, list[str]] = {}
    start, line = 0, 0
    for row in rows_needed:
        while line < row:
            start = data.index(b"\n", start) + 1
            line += 1
        end = data.find(b"\n", start)
        fields = data[start:end if end >= 0 else len(data)].rstrip(b"\r").decode("utf-8").split(",")
        if len(fields) != len(header):
            return None
        lines[row] = fields
    return {j: {int(i): lines[int(i)][position[dims[j]]] for i in rows} for j, rows in cells.items()}


def _judge_nonfinite(data: bytes, header: list[str], dims: list[str], matrix: np.ndarray, nonfinite: np.ndarray,
                     judged: dict[int, tuple[np.ndarray, np.ndarray, Any]], by_line: bool) -> None:
    """pandas' verdict on every NaN, empty or infinite value the fast readers left, added to `judged`.

    Text such as `1e400` is infinity for them and for pandas 3, but not a number for pandas 2.2;
    `  ` is empty for polars: only the evaluator's own pandas says what it makes of them. The text
    comes from the lines themselves when rows are lines (`by_line`), else from pyarrow.
    """
    columns = [j for j in np.flatnonzero(nonfinite.any(axis=0)) if j not in judged]
    if not columns:
        return
    cells = {int(j): np.flatnonzero(nonfinite[:, j]) for j in columns}
    fields = _fields_by_line(data, header, dims, cells) if by_line and b'"' not in data else None
    if fields is None:
        texts = _text_columns(data, header, [dims[j] for j in columns])
        fields = {int(j): dict(enumerate(column)) for j, column in zip(columns, texts)}
    for j, rows in cells.items():
        column_texts = fields[j]
        values, category = evaluator.read_numbers([column_texts[int(i)] for i in rows])
        full_values = matrix[:, j].astype(np.float64)
        full_values[rows] = values
        full_category = np.full(len(matrix), evaluator.FINITE, dtype=np.int8)
        full_category[rows] = category
        judged[j] = (full_values, full_category, column_texts)


def _parse_range(task: tuple[Path, int, int, list[str], list[str]]) -> _Block:
    """Parse one range (in a thread: polars, pyarrow and numpy release the GIL) and summarize it."""
    path, a, b, header, dims = task
    block = _summarize_range(path, a, b, header, dims)
    block.size = b - a
    return block


def _summarize_range(path: Path, a: int, b: int, header: list[str], dims: list[str]) -> _Block:
    with open(path, "rb") as fh:
        fh.seek(a)
        data = fh.read(b - a)
    fast = _parse_with_polars(data, header, dims)
    if fast is not None:
        ids, matrix = fast
        judged: dict[int, tuple[np.ndarray, np.ndarray, Any]] = {}
    else:
        parsed = _parse_with_pyarrow(data, header, dims)
        if isinstance(parsed, str):
            return _Block([], *([np.array([])] * 3), {}, {}, error=parsed)
        ids, matrix, judged = parsed
    nonfinite = ~np.isfinite(matrix)
    if judged or nonfinite.any():
        _judge_nonfinite(data, header, dims, matrix, nonfinite, judged, by_line=fast is not None)
    cells: dict[str, list] = {code: [] for code in _CATEGORY_CODES.values()}
    counts: dict[str, int] = dict.fromkeys(_CATEGORY_CODES.values(), 0)
    for j, (values, category, texts) in sorted(judged.items()):
        with np.errstate(over="ignore"):
            as_float32 = values.astype(np.float32)  # the evaluator's to_numpy(dtype=np.float32)
        # a number beyond float32's range (3.5e38) is infinite to the evaluator
        category = np.where((category == evaluator.FINITE) & np.isinf(as_float32), evaluator.INFINITE, category)
        for kind, code in _CATEGORY_CODES.items():
            rows = np.flatnonzero(category == kind)
            counts[code] += len(rows)
            room = SHOWN - len(cells[code])
            cells[code].extend((int(i), j, (texts[i], float(values[i]))) for i in rows[:max(room, 0)])
        matrix[:, j] = np.where(category == evaluator.UNPARSABLE, np.float32(0), as_float32)  # the evaluator's 0
        nonfinite[:, j] = ~np.isfinite(matrix[:, j])
    # the evaluator's values now; NaN means missing (made 0 by the evaluator, left out of the statistics here)
    if nonfinite.any():
        finite = np.where(nonfinite, np.nan, matrix)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
        nonzero = (np.nan_to_num(finite) != 0).any(axis=0)
    elif len(matrix):
        lo, hi = matrix.min(axis=0), matrix.max(axis=0)
        nonzero = matrix.any(axis=0)
    else:
        lo = hi = np.full(len(dims), np.nan, dtype=np.float32)
        nonzero = matrix.any(axis=0)
    return _Block(ids, lo, hi, nonzero, cells, counts)


_CATEGORY_CODES = {evaluator.UNPARSABLE: "submission.not-numeric", evaluator.MISSING: "submission.nan",
                   evaluator.INFINITE: "submission.infinite"}


def _blocks(path: Path, start: int, header: list[str], dims: list[str]):
    """Summaries of the file's ranges, in order, parsed by a few threads at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from neuco_io.execution import default_jobs

    size = path.stat().st_size
    ranges = _line_ranges(path, start, size) if start < size else []
    workers = max(1, min(default_jobs(), len(ranges)))
    with ThreadPoolExecutor(workers) as pool:
        pending = []
        for a, b in ranges:
            pending.append(pool.submit(_parse_range, (path, a, b, header, dims)))
            if len(pending) > 2 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def check_submission(path: str | os.PathLike[str], *, ids: set[str] | None = None, dim: int | None = None,
                     profile: str = "benchmark", padding: int = 0, progress: Progress | None = None,
                     on_start: Callable[[int], None] | None = None) -> Report:
    """Check an embedding CSV. `ids`: the ids it should cover (None: not checked). `padding`: how many
    trailing zero columns the writer added on request (`submission pack --dim`): one note, not a warning each.
    `on_start(total bytes)` once, then `progress(bytes)` as ranges of the file are checked."""
    import pyarrow as pa

    if profile not in PROFILES:
        raise UsageError(f"--profile must be one of {', '.join(PROFILES)}")
    path = Path(path)
    report = Report(str(path), "submission", checks=("submission",), listed_per_code=SHOWN)
    checker = _Checker(path, profile, ids, report)
    try:
        require_regular_file(path)
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    raw_head_bom = head.startswith(BOM)
    if raw_head_bom:
        checker.add("submission.bom", "the file starts with a UTF-8 BOM; save it as plain UTF-8")
        head = head[len(BOM):]
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\r" in first_line:
        checker.add("submission.unreadable", "lines end with a bare carriage return (CR, old Mac line endings); "
                    "save the file with LF or CRLF line endings")
        return _finish(report, checker, {})
    try:
        header = _header(head)
    except UnicodeDecodeError as exc:
        checker.add("submission.unreadable", f"the header is not UTF-8 text: {exc}")
        return _finish(report, checker, {})
    if "id" not in header:
        checker.add("submission.no-id-column", f"no `id` column in the header {header[:5]}", got=header[:5])
        return _finish(report, checker, {"columns": len(header)})
    if header.count("id") > 1:
        checker.add("submission.no-id-column", "more than one `id` column")
        return _finish(report, checker, {"columns": len(header)})
    dims, ignored = _dimension_columns(header, checker)
    if dim is not None and len(dims) > dim:
        checker.add("submission.too-many-dims", f"{len(dims)} dimension columns, more than --dim {dim}",
                    expected=dim, got=len(dims))
    elif dim is not None and len(dims) < dim:
        checker.add("submission.too-few-dims", f"{len(dims)} dimension columns for --dim {dim}: the evaluator "
                    f"pads {dim - len(dims)} zeros", expected=dim, got=len(dims))
    stats = [_Column(name) for name in dims]
    all_ids: list[str] = []
    rows = 0
    body_start = len(BOM) * (raw_head_bom) + len(head.split(b"\n", 1)[0]) + 1
    try:
        if on_start:
            on_start(path.stat().st_size)
        for block in _blocks(path, body_start, header, dims):
            if progress:
                progress(block.size)
            if block.error is not None:
                checker.add("submission.unreadable", f"not a readable CSV table near line {rows + 2}: {block.error}")
                return _finish(report, checker, {"columns": len(header)})
            _merge(block, checker, stats, all_ids, rows, dims)
            rows += len(block.ids)
    except (OSError, UnicodeDecodeError, pa.ArrowInvalid) as exc:
        checker.add("submission.unreadable", f"not a readable CSV table: {exc}")
        return _finish(report, checker, {"columns": len(header)})
    if rows == 0:
        checker.add("submission.empty", "no embedding rows")
    seen = _check_ids(checker, all_ids, len(header))
    constant = [s for s in stats if s.minimum == s.maximum]
    _constant_findings(checker, stats, padding, dim)
    summary = {"profile": profile, "rows": rows, "columns": len(header), "dimensions": len(dims),
               "ignored_columns": ignored, "constant_dimensions": len(constant)}
    if ids is not None:
        stripped = set(seen)
        summary.update(expected_ids=len(ids), matched_ids=len(stripped & ids), missing_ids=len(ids - stripped),
                       unknown_ids=len(stripped - ids))
    return _finish(report, checker, summary)


def _constant_findings(checker: _Checker, stats: list[_Column], padding: int, dim: int | None) -> None:
    """A constant dimension is a warning; a trailing run of zero columns is one finding (padding), and one
    note when the writer added it on request."""
    zero_run = 0
    while zero_run < len(stats) and _is_zero(stats[len(stats) - 1 - zero_run]):
        zero_run += 1
    asked = min(padding, zero_run)
    tail = stats[len(stats) - zero_run:] if zero_run > 1 or asked else []
    for s in stats[:len(stats) - len(tail)]:
        if s.minimum == s.maximum:
            what = "0 in every row" if not s.nonzero else f"{s.minimum:g} in every row"
            checker.add("submission.constant-dim", f"dimension {s.name} is {what}", column=s.name)
    unasked = tail[:len(tail) - asked]
    if unasked:
        checker.add("submission.constant-dim", f"dimensions {unasked[0].name}..{unasked[-1].name} "
                    f"({len(unasked)}) are 0 in every row: zero padding carries no information",
                    column=unasked[0].name)
    if asked:
        padded = tail[len(tail) - asked:]
        checker.add("submission.padding", f"dimensions {padded[0].name}..{padded[-1].name} ({asked}) are the zero "
                    f"padding asked for{f' (--dim {dim})' if dim else ''}", column=padded[0].name)


def _is_zero(column: _Column) -> bool:
    return column.minimum == column.maximum == 0


def _merge(block: _Block, checker: _Checker, stats: list[_Column], all_ids: list[str], first: int,
           dims: list[str]) -> None:
    """Fold one range's summary into the whole file's findings and statistics."""
    describe = {
        "submission.not-numeric": lambda text, _: (f"{text!r} is not a number to the evaluator (pandas' "
                                                   "to_numeric): it makes it 0", text),
        "submission.nan": lambda text, _: ((f"{text!r} reads as NaN" if text.strip() else "empty value")
                                           + ": the evaluator makes it 0", text or None),
        "submission.infinite": lambda text, value: (f"{text!r} is infinite to the evaluator (as float32)", text),
    }
    for code, cells in block.cells.items():
        for i, j, detail in cells:
            message, got = describe[code](*detail)
            checker.add(code, message, id=block.ids[i], row=first + i + 2, column=dims[j], got=got)
        checker.add_unlisted(code, block.counts[code] - len(cells))
    all_ids.extend(block.ids)
    for j, s in enumerate(stats):
        if j < len(block.minimum) and not np.isnan(block.minimum[j]):
            s.minimum = min(s.minimum, float(block.minimum[j]))
            s.maximum = max(s.maximum, float(block.maximum[j]))
        if j < len(block.nonzero):
            s.nonzero = s.nonzero or bool(block.nonzero[j])


def _check_ids(checker: _Checker, all_ids: list[str], width: int) -> dict[str, int]:
    """Findings on the ids, read as the evaluator reads them; returns every id it sees -> its first line."""
    read = evaluator.read_ids(all_ids, width)
    block = evaluator.buffer_rows(width)
    seen: dict[str, int] = {}
    changed: set[str] = set()  # both spellings of ids the evaluator changes: id-changed says all there is to say
    for row, (raw, loc_id) in enumerate(zip(all_ids, read), start=2):
        written = spec.strip_cube_suffix(raw)
        if loc_id == raw:  # the usual id: read as written
            pass
        elif loc_id is None or loc_id != written:
            what = "a missing value" if loc_id is None else repr(loc_id)
            checker.add("submission.id-changed", f"the evaluator reads id {raw!r} as {what} "
                        f"({_why_changed(raw, block)}): it matches no label written {written!r}",
                        id=raw, row=row, got=loc_id)
            changed.add(written)
            if loc_id is None:
                continue
            changed.add(loc_id)
        else:
            checker.add("submission.id-suffix", f"the evaluator strips {raw[len(loc_id):]!r} from this id", id=raw,
                        row=row)
        if loc_id in seen:
            checker.add("submission.duplicate-id", f"id also on line {seen[loc_id]}", id=loc_id, row=row)
        else:
            seen[loc_id] = row
    if checker.expected is not None:
        lost = lost_leading_zeros(seen.keys() - checker.expected - changed, checker.expected)
        if lost:
            written, meant = min(lost.items(), key=lambda kv: seen[kv[0]])
            checker.add("submission.leading-zeros", f"{plural(len(lost), 'id')} without the leading zeros of the "
                        f"expected id ({written} is {meant}): a spreadsheet read the id column as numbers; keep it "
                        "as text, or write the file with `neuco-io submission pack`", id=written, row=seen[written])
        for loc_id in sorted(checker.expected - seen.keys() - set(lost.values()) - changed):
            checker.add("submission.missing-id", "no embedding for this id: the evaluator leaves it out", id=loc_id)
        for loc_id, row in sorted(seen.items(), key=lambda kv: kv[1]):
            if loc_id not in checker.expected and loc_id not in lost and loc_id not in changed:
                checker.add("submission.unknown-id", "id not in the dataset/labels: the evaluator ignores it",
                            id=loc_id, row=row)
    return seen


def _why_changed(raw: str, block: int) -> str:
    if ".zarr" in spec.strip_cube_suffix(raw):
        return "it removes `.zarr` wherever it occurs in an id"
    return (f"pandas infers the id column's type per block of {block} rows, and reads ids that all look like "
            "numbers, true/false or NA as such")


def _finish(report: Report, checker: _Checker, summary: dict[str, Any]) -> Report:
    report.summary = {**summary, "counts": report.code_counts(), "unlisted": report.unlisted_counts()}
    return report
