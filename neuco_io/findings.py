"""Findings: every code (its check, severity and trigger) and the report every command returns, as data.

Codes are stable: scripts and tests match on them, never on message text. The
README's table of codes is generated from this registry (and a test keeps the
two in step). Nothing here prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["CHECKS", "CODES", "LISTED_PER_CODE", "MAX_LISTED", "SECTIONS", "Code", "Finding", "Report", "Severity",
           "and_more", "codes_table", "listed"]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"
    """Worth knowing, never a failure (not even with --strict)."""


@dataclass(frozen=True)
class Code:
    """One registered code: what triggers it, how bad it is, and which check or command emits it."""

    code: str
    severity: Severity
    trigger: str
    blocking: bool = False
    """The cube's data is unusable: converters and the loader refuse it (the others, georeferencing, extra
    variables, chunking..., do not change what they read)."""

    @property
    def check(self) -> str:
        return self.code.split(".", 1)[0]


CHECKS: tuple[str, ...] = ("layout", "cubes", "ids", "labels", "splits")
"""The checks `validate` reports on, in report order."""

SECTIONS: tuple[str, ...] = (*CHECKS, "submission", "verify", "convert", "import")
"""Every check or command that emits codes (`submission check`/`pack`, `verify`, `convert --skip-invalid`,
`task import`): the README has one generated table of codes for each."""

E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE
B = True  # blocking
_ALL = [
    # layout
    Code("layout.missing-folder", E, "A required folder is absent: a data folder (downstream) or a split folder "
         "(v1.1), or a modality folder inside one (s1/ s2l1c/ s2l2a/; S1GRD/ S2L1C/ S2L2A/)."),
    Code("layout.missing-optional", W, "labels/ (downstream), splits/ or a split list (v1.1), or one of train/ "
         "and val/ is absent."),
    Code("layout.unknown-folder", W, "A folder where only modality folders belong that is not a known modality."),
    Code("layout.part-name", W, "A folder inside a downstream modality folder is not named part-NNNNNN."),
    Code("layout.part-too-large", E, "A part folder holds more than 1,000 files."),
    Code("layout.outside-part", E, "A downstream cube lies directly in a modality folder, where the reference "
         "loader (modality/*/*.zarr.zip) does not see it."),
    Code("layout.file-name", E, "A cube is not named <id>.zarr.zip with an id of letters, digits and _-. "
         "(downstream), or not ssl4eos12_<split>_seasonal_data_NNNNNN.zarr.zip matching its split (v1.1)."),
    Code("layout.stray-file", W, "A file that is not a cube where only cubes belong, or a non-CSV entry in labels/."),
    # cubes
    Code("cubes.unreadable", E, "The file cannot be read as a zip: zero bytes, truncated or corrupt, a directory, "
         "no read permission.", blocking=B),
    Code("cubes.not-zarr", E, "The zip does not hold a valid Zarr format-2 group at its root (no .zgroup, broken "
         "metadata, or a Zarr format-3 store).", blocking=B),
    Code("cubes.codec", E, "An array names a compressor or filter outside the allow-list (Blosc, Zstd, LZ4, Zlib, "
         "GZip, BZ2, LZMA; the vlen-utf8 filter for object strings), e.g. `pickle`: the cube is not decoded.",
         blocking=B),
    Code("cubes.too-large", E, "The metadata claims more than the format allows: a chunk over 256 MiB decoded, "
         "over 1,048,576 chunks in one array, over 1,000 arrays, a metadata document over 16 MiB, a coordinate "
         "over 16 MiB, a read over 1 GiB. Nothing that large is allocated.", blocking=B),
    Code("cubes.not-consolidated", W, "No consolidated metadata (.zmetadata); readers fall back to slower listing."),
    Code("cubes.zip-compressed", W, "Zip members are deflated; the public files are stored (uncompressed zip)."),
    Code("cubes.missing-bands", E, "The cube has no `bands` variable.", blocking=B),
    Code("cubes.dims", E, "`bands` does not have dims (sample, time, band, y, x).", blocking=B),
    Code("cubes.shape", E, "`bands` does not hold 4 timestamps of 264x264 pixels with the modality's band count, "
         "or a downstream cube does not hold exactly one sample.", blocking=B),
    Code("cubes.band-names", E, "The `band` coordinate is missing or its names differ from the modality's bands.",
         blocking=B),
    Code("cubes.dtype", E, "`bands` has a dtype the modality does not accept (S1 float16/float32, S2 int16/uint16, "
         "S2RGB uint8).", blocking=B),
    Code("cubes.sample-id", E, "The `sample` coordinate is missing, or (downstream) differs from the file's id.",
         blocking=B),
    Code("cubes.duplicate-sample", E, "A v1.1 cube lists the same sample id twice.", blocking=B),
    Code("cubes.coords", W, "The time, y or x coordinate is missing or is not 0..n-1."),
    Code("cubes.georef", E, "A downstream cube carries georeferencing (lat/lon, CRS, UTM coordinates, transform "
         "attributes): it leaks the location the benchmark hides."),
    Code("cubes.extra-variable", W, "A downstream cube holds variables other than `bands` and its coordinates."),
    Code("cubes.chunking", W, "A `bands` chunk spans more than one timestamp (the public files chunk per "
         "timestamp)."),
    Code("cubes.corrupt-chunk", E, "A chunk does not decode (--deep), or cannot be read.", blocking=B),
    Code("cubes.missing-chunk", W, "A chunk is absent and reads as the fill value (--deep)."),
    Code("cubes.empty-timestamp", W, "A timestamp is all zeros or all NaN (--deep)."),
    Code("cubes.nonfinite", W, "S2 values hold NaN or infinity (--deep)."),
    Code("cubes.s2-offset", W, "Most examined S2 cubes of a folder look offset by +1000 in downstream data "
         "(which has no offset), or not offset in v1.1 data (which has it)."),
    # ids
    Code("ids.missing-modality", E, "A location (downstream id, v1.1 file) is absent from a modality that others "
         "have."),
    Code("ids.duplicate", E, "An id is in two part folders of one modality (downstream), or a sample id is in two "
         "files (v1.1)."),
    Code("ids.sample-mismatch", E, "A v1.1 file holds other samples, or the same ones in another order, than the "
         "same file of another modality."),
    Code("ids.evaluator-changes", E, "A submission cannot carry the id to NeuCo-Bench's evaluator unchanged: "
         "pandas reads ids that all look like numbers as numbers (`000123` -> `123`, `1.50` -> `1.5`, `12` -> "
         "`12.0` beside `1.5`), `true` as `True`, `NA` as missing, and `.zarr` is removed anywhere in an id."),
    # labels
    Code("labels.file-name", E, "A label file is not named <task>__<type>.csv (the evaluator splits the name at "
         "its first `__` and stops on a name without one)."),
    Code("labels.task-type", E, "The <type> of <task>__<type>.csv is not exactly regression, regr, classification "
         "or cls, the types NeuCo-Bench's probes accept: any other (`reg`, `REGR`, `class`) stops the whole "
         "evaluation. `labels export --rename-types` writes `reg` as `regr`."),
    Code("labels.unreadable", E, "A label file cannot be read or is not UTF-8 text."),
    Code("labels.bom", E, "The file starts with a UTF-8 BOM: the evaluator's csv.DictReader then finds no `id` "
         "column."),
    Code("labels.columns", E, "The header lacks `id` or `label`."),
    Code("labels.extra-column", W, "The header has columns other than `id` and `label`."),
    Code("labels.id-format", E, "An id is empty, has surrounding spaces, ends with .zarr.zip / .zarr, or holds "
         ".zarr elsewhere (the evaluator removes it from submission ids)."),
    Code("labels.duplicate-id", E, "An id is labelled more than once."),
    Code("labels.unknown-id", E, "A labelled id has no cube in the data."),
    Code("labels.not-numeric", E, "A label does not parse as a number."),
    Code("labels.not-finite", E, "A label is NaN or infinite."),
    Code("labels.class-value", E, "A classification label is not 0 or 1 (the evaluator trains a binary probe)."),
    Code("labels.single-class", E, "A classification task has only one class."),
    Code("labels.constant", E, "A regression task has a single value (the evaluator min-max normalizes labels)."),
    Code("labels.no-labels", E, "A task has no labelled row at all."),
    # splits
    Code("splits.missing-file", E, "A split list names a file that a modality folder of that split lacks."),
    Code("splits.unlisted", E, "A cube in a split folder is not named in the split's list."),
    Code("splits.duplicate", W, "A split list names the same file twice."),
    # submission (`neuco-io submission check`; severities of the default `benchmark` profile, the
    # `challenge` profile makes every warning and note below an error)
    Code("submission.unreadable", E, "The file cannot be read, is not UTF-8 text, or is not a CSV table."),
    Code("submission.bom", E, "The file starts with a UTF-8 BOM: pandas then names the first column "
         "'\ufeffid' and the evaluator finds no `id` column."),
    Code("submission.no-id-column", E, "The header has no `id` column (the evaluator stops with an error)."),
    Code("submission.empty", E, "The file has no embedding row."),
    Code("submission.column-names", W, "Dimension columns are not 0..D-1 (or TerraTorch's 1..D): gaps, repeats, "
         "or no integer-named column at all (then every other column is a dimension)."),
    Code("submission.extra-column", W, "A column that is neither `id` nor an integer: the evaluator ignores it."),
    Code("submission.too-many-dims", E, "More dimension columns than --dim (the evaluator refuses the file)."),
    Code("submission.too-few-dims", N, "Fewer dimension columns than --dim: the evaluator zero-pads them."),
    Code("submission.id-suffix", W, "Ids end with .zarr.zip or .zarr (the evaluator strips the suffix)."),
    Code("submission.id-changed", E, "The evaluator reads an id as something else, so it matches no label: "
         "pandas' type inference turns ids that all look like numbers into numbers (`000123` -> `123`, `1.50` -> "
         "`1.5`, `12` -> `12.0`), `true` into `True`, `NA` into a missing value (it infers per block of rows: "
         "512 for 1,024 dimensions), and `.zarr` is removed anywhere in an id."),
    Code("submission.duplicate-id", E, "An id appears in more than one row (after stripping suffixes)."),
    Code("submission.missing-id", W, "An expected id has no embedding: the evaluator silently leaves it out."),
    Code("submission.leading-zeros", W, "Ids are expected ids without their leading zeros (`7` for `007`), as a "
         "spreadsheet writes them: one finding for all of them, instead of a missing and an unknown id each (the "
         "evaluator misses them all the same)."),
    Code("submission.unknown-id", W, "An id is not in the dataset (or labels, or --ids): the evaluator ignores "
         "it."),
    Code("submission.not-numeric", E, "A value is not a number to pandas (the evaluator's `to_numeric`): `１２`, "
         "`1_0`, `0x10`, `one`; the evaluator silently turns it into 0."),
    Code("submission.nan", W, "A value is NaN or empty: the evaluator silently turns it into 0."),
    Code("submission.infinite", E, "A value is infinite, or beyond float32's range: the evaluator's "
         "standardization then yields NaN everywhere."),
    Code("submission.padding", N, "Trailing zero columns that `submission pack --dim` added on request: one note "
         "(in either profile)."),
    Code("submission.constant-dim", W, "A dimension has the same value (often 0) in every row: it carries no "
         "information. A trailing run of zero columns is one finding."),
    # verify (`neuco-io verify ROOT OUT`)
    Code("verify.missing-shard", E, "A shard the manifest lists does not exist."),
    Code("verify.size", E, "A shard's size differs from the manifest's."),
    Code("verify.sha256", E, "A shard's sha256 differs from the manifest's."),
    Code("verify.records", E, "A shard's records, or its record count, differ from the manifest, or the "
         "manifest's record counts (total, shards, index) disagree."),
    Code("verify.unreadable-shard", E, "A shard cannot be read as a tar or Parquet file."),
    Code("verify.unreadable-record", E, "A record of a shard does not decode."),
    Code("verify.missing-member", E, "A record lacks an array of a converted modality."),
    Code("verify.array-mismatch", E, "An array differs from the source cube, bit for bit."),
    Code("verify.wrong-source", E, "A record's sample comes from another place of the source; or ROOT holds none "
         "of the source cubes (one finding, naming the folder the conversion was made from)."),
    Code("verify.source-unreadable", E, "The source cube of a record cannot be read."),
    Code("verify.label-mismatch", E, "A label in a record or in labels.parquet differs from the label file."),
    Code("verify.label-file", E, "A label file of the conversion cannot be read."),
    Code("verify.labels-parquet", E, "labels.parquet cannot be read, lacks a task's column, or its ids differ "
         "from the manifest's."),
    # convert (`--skip-invalid` records these in the manifest's `skipped` list)
    Code("convert.missing-modality", E, "A location (downstream id, v1.1 file name) lacks a cube of a modality "
         "being converted."),
    Code("convert.invalid-cube", E, "A cube has a blocking finding (see cubes above) or fails to read."),
    Code("convert.sample-mismatch", E, "The v1.1 files of one name hold different samples, or the same ones in "
         "another order."),
    Code("convert.duplicate-sample", E, "A v1.1 sample id was already converted from an earlier file."),
    # import (`neuco-io task import`: a refused location; the import goes on)
    Code("import.table-row", E, "A row of the source table names an unknown modality or season."),
    Code("import.duplicate-file", E, "Two files for the same location, modality and season."),
    Code("import.missing-file", E, "A location lacks a modality or season."),
    Code("import.bad-image", E, "An image cannot be read, or has the wrong band count, size or values "
         "(fractional S2)."),
    Code("import.bad-id", E, "With `--ids keep`: an id with characters other than letters, digits and `_-.`, "
         "`.` or `..`, an id holding `.zarr`, or an id too long for a file name."),
    Code("import.duplicate-imagery", E, "With `--ids hash`: identical imagery to another location (the same "
         "content id)."),
]
del E, W, N, B

CODES: dict[str, Code] = {c.code: c for c in _ALL}


def codes_table(section: str) -> str:
    """The README's Markdown table of one check's or command's codes, generated from the registry."""
    rows = [f"| `{c.code}` | {c.severity.value}{' (blocking)' if c.blocking else ''} | {c.trigger} |"
            for c in _ALL if c.check == section]
    return "\n".join(["| code | severity | triggered by |", "|---|---|---|", *rows])


LISTED_PER_CODE = 1000
"""`validate` lists at most this many findings of each code and file: a million-row label file with one
systematic fault stays readable (the rest are counted)."""

MAX_LISTED = 5
"""How many items (chunk keys, timestamps, columns) one message lists."""


def and_more(n: int, *, parens: bool = False) -> str:
    """` and 12 more` (` (and 12 more)`; nothing for 0): the one wording of a list cut short."""
    if n <= 0:
        return ""
    return f" (and {n:,} more)" if parens else f" and {n:,} more"


def listed(items: list[str], limit: int = MAX_LISTED, width: int = 60) -> str:
    """The first few items, each cut to `width` characters, and how many more: messages stay short."""
    shown = [item if len(item) <= width else item[:width] + "..." for item in map(str, items[:limit])]
    return ", ".join(shown) + and_more(len(items) - limit)


@dataclass(frozen=True)
class Finding:
    """One problem found in one place. `code` is stable; messages may change."""

    code: str
    path: str
    message: str
    id: str | None = None
    row: int | None = None
    """Line number in a CSV file (the header is line 1)."""
    column: str | None = None
    member: str | None = None
    """The part of a file it is about: a shard's member (`s2l2a.npy`) or a task."""
    expected: Any = None
    got: Any = None
    level: Severity | None = None
    """Overrides the code's default severity (a stricter profile makes some warnings errors)."""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered finding code {self.code!r}")

    @property
    def severity(self) -> Severity:
        return self.level or CODES[self.code].severity

    @property
    def check(self) -> str:
        return CODES[self.code].check

    def sort_key(self) -> tuple:
        rank = CHECKS.index(self.check) if self.check in CHECKS else len(CHECKS)
        return (rank, self.path, self.id or "", self.row or 0, self.code, self.message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "severity": self.severity.value, "check": self.check,
                               "path": self.path, "message": self.message}
        for key in ("id", "row", "column", "member", "expected", "got"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Report:
    """The outcome of a check (`validate`, `verify`, `submission check`, ...): findings plus a summary.

    Findings enter through `add`, which lists at most `listed_per_code` findings of each code and file and
    only counts the rest: the one place where reports are truncated. Totals and the verdict count them all.
    """

    root: str
    layout: str = ""
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checks: tuple[str, ...] = CHECKS
    strict: bool = False
    """Warnings fail too (`--strict`): `ok`, the verdict and the exit code then agree."""
    listed_per_code: int | None = None
    """Findings listed per code and file (None: all of them)."""
    unlisted: Counter = field(default_factory=Counter, init=False)
    """(code, severity) -> findings counted but not listed."""
    _seen: Counter = field(default_factory=Counter, init=False, repr=False)

    def add(self, finding: Finding) -> None:
        key = (finding.code, finding.path)
        self._seen[key] += 1
        if self.listed_per_code is None or self._seen[key] <= self.listed_per_code:
            self.findings.append(finding)
        else:
            self.unlisted[(finding.code, finding.severity)] += 1

    def add_unlisted(self, code: str, path: str, n: int, level: Severity | None = None) -> None:
        """`n` more findings of `code` that were counted where they were found but never built."""
        if n > 0:
            self._seen[(code, path)] += n
            self.unlisted[(code, level or CODES[code].severity)] += n

    def extend(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            self.add(finding)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.NOTE]

    def totals(self) -> dict[str, int]:
        """Errors, warnings and notes, listed or not."""
        tally = Counter(f.severity.value for f in self.findings)
        for (_, severity), n in self.unlisted.items():
            tally[severity.value] += n
        return {s.value: tally[s.value] for s in Severity}

    def hidden(self, check: str | None = None) -> int:
        """Findings counted but not listed (of one check, or all)."""
        return sum(n for (code, _), n in self.unlisted.items() if check is None or CODES[code].check == check)

    def code_counts(self) -> dict[str, int]:
        """Per code: how many findings, listed or not."""
        tally = Counter(f.code for f in self.findings)
        for (code, _), n in self.unlisted.items():
            tally[code] += n
        return dict(sorted(tally.items()))

    def unlisted_counts(self) -> dict[str, int]:
        """Per code: how many findings were counted but not listed."""
        tally: Counter = Counter()
        for (code, _), n in self.unlisted.items():
            tally[code] += n
        return dict(sorted(tally.items()))

    @property
    def ok(self) -> bool:
        totals = self.totals()
        return not totals["error"] and not (self.strict and totals["warning"])

    def counts(self) -> dict[str, dict[str, int]]:
        """Per check: how many errors, warnings and notes (listed or not)."""
        tally = Counter((f.check, f.severity.value) for f in self.findings)
        for (code, severity), n in self.unlisted.items():
            tally[(CODES[code].check, severity.value)] += n
        return {check: {"errors": tally[(check, "error")], "warnings": tally[(check, "warning")],
                        "notes": tally[(check, "note")]}
                for check in self.checks}

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def verdict_dict(self) -> dict[str, Any]:
        """`ok` and the listed findings by severity: the JSON every report shares."""
        return {"ok": self.ok, "errors": [f.to_dict() for f in self.errors],
                "warnings": [f.to_dict() for f in self.warnings], "notes": [f.to_dict() for f in self.notes]}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.verdict_dict(),
            "summary": {"root": self.root, "layout": self.layout, **self.summary, "checks": self.counts(),
                        "counts": self.code_counts(), "unlisted": self.unlisted_counts()},
        }
