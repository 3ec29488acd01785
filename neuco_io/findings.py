"""Findings: every code (its check, severity and trigger) and the report every command returns, as data.

Codes are stable: scripts and tests match on them, never on message text. The
README's table of codes is generated from this registry (and a test keeps the
two in step). Nothing here prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["CHECKS", "CODES", "MAX_LISTED", "Code", "Finding", "Report", "Severity", "listed"]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"
    """Worth knowing, never a failure (not even with --strict)."""


@dataclass(frozen=True)
class Code:
    code: str
    severity: Severity
    trigger: str

    @property
    def check(self) -> str:
        return self.code.split(".", 1)[0]


CHECKS: tuple[str, ...] = ("layout", "cubes", "ids", "labels", "splits")
"""The checks `validate` reports on, in report order."""

E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE
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
         "no read permission."),
    Code("cubes.not-zarr", E, "The zip does not hold a valid Zarr format-2 group at its root (no .zgroup, broken "
         "metadata, or a Zarr format-3 store)."),
    Code("cubes.codec", E, "An array names a compressor or filter outside the allow-list (Blosc, Zstd, LZ4, Zlib, "
         "GZip, BZ2, LZMA; the vlen-utf8 filter for object strings), e.g. `pickle`: the cube is not decoded."),
    Code("cubes.too-large", E, "The metadata claims more than the format allows: a chunk over 256 MiB decoded, "
         "over 1,048,576 chunks in one array, over 1,000 arrays, a metadata document over 16 MiB, a coordinate "
         "over 16 MiB, a read over 1 GiB. Nothing that large is allocated."),
    Code("cubes.not-consolidated", W, "No consolidated metadata (.zmetadata); readers fall back to slower listing."),
    Code("cubes.zip-compressed", W, "Zip members are deflated; the public files are stored (uncompressed zip)."),
    Code("cubes.missing-bands", E, "The cube has no `bands` variable."),
    Code("cubes.dims", E, "`bands` does not have dims (sample, time, band, y, x)."),
    Code("cubes.shape", E, "`bands` does not hold 4 timestamps of 264x264 pixels with the modality's band count, "
         "or a downstream cube does not hold exactly one sample."),
    Code("cubes.band-names", E, "The `band` coordinate is missing or its names differ from the modality's bands."),
    Code("cubes.dtype", E, "`bands` has a dtype the modality does not accept (S1 float16/float32, S2 int16/uint16, "
         "S2RGB uint8)."),
    Code("cubes.sample-id", E, "The `sample` coordinate is missing, or (downstream) differs from the file's id."),
    Code("cubes.duplicate-sample", E, "A v1.1 cube lists the same sample id twice."),
    Code("cubes.coords", W, "The time, y or x coordinate is missing or is not 0..n-1."),
    Code("cubes.georef", E, "A downstream cube carries georeferencing (lat/lon, CRS, UTM coordinates, transform "
         "attributes): it leaks the location the benchmark hides."),
    Code("cubes.extra-variable", W, "A downstream cube holds variables other than `bands` and its coordinates."),
    Code("cubes.chunking", W, "A `bands` chunk spans more than one timestamp (the public files chunk per "
         "timestamp)."),
    Code("cubes.corrupt-chunk", E, "A chunk does not decode (--deep), or cannot be read."),
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
    Code("submission.leading-zeros", W, "Ids are expected ids without their leading zeros (7 for 007), as a "
         "spreadsheet writes them: one finding for all of them (the evaluator misses these ids)."),
    Code("submission.unknown-id", W, "An id is not in the dataset (or labels, or --ids): the evaluator ignores "
         "it."),
    Code("submission.not-numeric", E, "A value is not a number to pandas (the evaluator's `to_numeric`): `１２`, "
         "`1_0`, `0x10`, `one`; the evaluator silently turns it into 0."),
    Code("submission.nan", W, "A value is NaN or empty: the evaluator silently turns it into 0."),
    Code("submission.infinite", E, "A value is infinite, or beyond float32's range: the evaluator's "
         "standardization then yields NaN everywhere."),
    Code("submission.padding", N, "Trailing zero columns that `submission pack --dim` added on request (one note)."),
    Code("submission.constant-dim", W, "A dimension has the same value (often 0) in every row: it carries no "
         "information."),
]
del E, W, N

CODES: dict[str, Code] = {c.code: c for c in _ALL}


MAX_LISTED = 5
"""How many items (chunk keys, timestamps, columns) one message lists."""


def listed(items: list[str], limit: int = MAX_LISTED, width: int = 60) -> str:
    """The first few items, each cut to `width` characters, and how many more: messages stay short."""
    shown = [item if len(item) <= width else item[:width] + "..." for item in map(str, items[:limit])]
    more = f" and {len(items) - limit:,} more" if len(items) > limit else ""
    return ", ".join(shown) + more


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
        for key in ("id", "row", "column", "expected", "got"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Report:
    """The outcome of a check (`validate`, `submission check`): findings plus a summary."""

    root: str
    layout: str
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checks: tuple[str, ...] = CHECKS
    strict: bool = False
    """Warnings fail too (`--strict`): `ok`, the verdict and the exit code then agree."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.NOTE]

    @property
    def ok(self) -> bool:
        return not self.errors and not (self.strict and self.warnings)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per check: how many errors and warnings."""
        tally = Counter((f.check, f.severity.value) for f in self.findings)
        return {check: {"errors": tally[(check, "error")], "warnings": tally[(check, "warning")],
                        "notes": tally[(check, "note")]}
                for check in self.checks}

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "notes": [f.to_dict() for f in self.notes],
            "summary": {"root": self.root, "layout": self.layout, **self.summary, "checks": self.counts()},
        }
