"""The `neuco-io` command line: parse options, call the library, print, pick the exit code.

Exit codes (every command):
  0  success / no errors
  1  the data has errors (validate, verify, check), or some input was refused
  2  usage error: bad option, unreadable ROOT, refused output location
  3  internal error (a bug: please report it; NEUCO_IO_DEBUG=1 shows the traceback)
  130 interrupted (Ctrl-C), 143 terminated (SIGTERM)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from neuco_io import __version__, spec
from neuco_io.errors import NO_SPACE, NeucoError, UsageError
from neuco_io.execution import UnitFailed, WorkerDiedError, single_threaded_codecs
from neuco_io.layout import LAYOUTS
from neuco_io.progress import ProgressBar
from neuco_io.wording import plural

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: workers stopped, temporary files removed."""


STOP_GRACE = 30.0
"""Seconds an interrupted command gets to stop its workers and clean up before it is ended forcibly."""
_stop_signals: list[int] = []


def _stop_code() -> int:
    return EXIT_TERMINATED if _stop_signals and _stop_signals[0] == signal.SIGTERM else EXIT_INTERRUPTED


def _force_exit() -> None:
    """The clean-up after an interrupt did not end in time, or a second signal came: kill the workers and
    leave now (their temporary files carry the .partial suffix that --resume removes)."""
    from neuco_io.execution import kill_all_workers

    kill_all_workers()
    with contextlib.suppress(Exception):
        sys.stderr.write(f"neuco-io: {'terminated' if _stop_code() == EXIT_TERMINATED else 'interrupted'}\n")
        sys.stderr.flush()
    os._exit(_stop_code())


def _on_stop_signal(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: unwind (workers stopped, temporary files removed) within STOP_GRACE seconds; a
    second signal meanwhile ends the command at once. (The grace timer is meant for a process that is
    exiting: a real signal sent to an in-process CliRunner call ends that process too.)"""
    if _stop_signals:
        _force_exit()
    _stop_signals.append(signum)
    timer = threading.Timer(STOP_GRACE, _force_exit)
    timer.daemon = True
    timer.start()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


_ERROR_KINDS = {EXIT_FAILED: "failed", EXIT_USAGE: "usage", EXIT_INTERNAL: "internal",
                EXIT_INTERRUPTED: "interrupted", EXIT_TERMINATED: "terminated"}


def _error_json(message: str, code: int) -> None:
    """With --format json, a run that stops still prints one JSON object on stdout."""
    _emit_json({"ok": False, "error": {"kind": _ERROR_KINDS.get(code, "failed"), "message": message,
                                       "exit_code": code}})


def _echo(text: str = "", err: bool = False, clear_line: bool = False) -> None:
    """Every line of text output: control characters from ids, paths and labels escaped (render.printable).
    `clear_line` first erases a progress bar drawn on the same line."""
    from neuco_io.render import printable

    click.echo(("\r\033[K" if clear_line else "") + printable(text), err=err)


def _fail(message: str, code: int, *, as_json: bool = False) -> None:
    if as_json:
        _error_json(message, code)
    _echo(f"neuco-io: {message}", err=True)
    sys.exit(code)


def _json_requested(args: list[str]) -> bool:
    return "--format=json" in args or any(pair == ("--format", "json") for pair in itertools.pairwise(args))


class Group(click.Group):
    """A command group whose usage errors (bad option, bad value) are JSON on stdout with --format json."""

    group_class = type  # its subgroups are Groups too

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("neuco_io.argv", list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if not _json_requested(ctx.meta.get("neuco_io.argv", [])):
                raise
            _error_json(exc.format_message(), exc.exit_code)
            exc.show()
            ctx.exit(exc.exit_code)


def handle_errors(fn: Callable) -> Callable:
    """Map library exceptions to messages and exit codes: no tracebacks for users."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _stop_signals.clear()
        signal.signal(signal.SIGTERM, _on_stop_signal)
        signal.signal(signal.SIGINT, _on_stop_signal)
        single_threaded_codecs()
        # Helper processes inherit these flags: after Ctrl-C, multiprocessing's resource tracker would
        # otherwise warn about queue semaphores it is about to clean up anyway.
        if "ignore::UserWarning:multiprocessing.resource_tracker" not in sys.warnoptions:
            sys.warnoptions.append("ignore::UserWarning:multiprocessing.resource_tracker")
        as_json = kwargs.get("output_format") == "json"
        try:
            with warnings.catch_warnings():
                # Deprecation notices of zarr, xarray, pandas... across the two supported stacks are not the
                # user's to act on; other warnings (theirs, their encoder's, ours) follow Python's defaults.
                for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                    warnings.simplefilter("ignore", category)
                return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BaseException as exc:
            # A signal wins over whatever error it caused on its way (a worker it ended, a broken pool).
            if _stop_signals or isinstance(exc, KeyboardInterrupt):
                if not _stop_signals:
                    _stop_signals.append(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
                # Cleaned up: further signals are ignored from here (Python would reset its handlers to the
                # default while exiting, and a late second Ctrl-C would then end the process as killed).
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                word = "terminated" if _stop_code() == EXIT_TERMINATED else "interrupted"
                hint = getattr(exc, "neuco_hint", None)
                _fail(f"{word}; {hint}" if hint else word, _stop_code(), as_json=as_json)
            _fail_for(exc, as_json)

    return wrapper


def _fail_for(exc: BaseException, as_json: bool) -> None:
    """The message and exit code of an error that is not an interrupt."""
    if isinstance(exc, UsageError):
        _fail(str(exc), EXIT_USAGE, as_json=as_json)
    if isinstance(exc, NeucoError):
        _fail(str(exc), EXIT_FAILED, as_json=as_json)
    if isinstance(exc, BrokenPipeError):
        sys.exit(EXIT_OK)
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror} ({errno.errorcode.get(exc.errno, '?')}); the output does not fit", EXIT_FAILED,
              as_json=as_json)
    if os.environ.get("NEUCO_IO_DEBUG"):
        raise exc
    _fail(f"internal error: {type(exc).__name__}: {exc} (set NEUCO_IO_DEBUG=1 for a traceback)", EXIT_INTERNAL,
          as_json=as_json)


@contextlib.contextmanager
def _resume_hint(out: str, storage_options: dict[str, Any] | None) -> Iterator[None]:
    """A failed unit, a dead worker or an interrupt stops a conversion with the finished shards kept: say
    how to finish it (only when OUT holds a resumable run)."""
    hint = "finished shards are kept; rerun with --resume to finish the conversion"
    try:
        yield
    except (UnitFailed, WorkerDiedError) as exc:
        raise NeucoError(f"{exc}\n{hint}") from None
    except KeyboardInterrupt as exc:
        with contextlib.suppress(Exception):
            from neuco_io.converters.outdir import JOURNAL
            from neuco_io.storage import open_store

            if open_store(out, storage_options).has(JOURNAL):
                exc.neuco_hint = hint  # type: ignore[attr-defined]
        raise


def format_option(fn: Callable) -> Callable:
    return click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Report as readable text or one JSON object on stdout.")(fn)


def layout_option(fn: Callable) -> Callable:
    return click.option("--layout", type=click.Choice(LAYOUTS), default=None, help="Skip layout detection.")(fn)


def quiet_option(fn: Callable) -> Callable:
    """Every command takes --quiet, also those without a progress bar (yet), so scripts can pass it everywhere."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(fn)


def jobs_option(fn: Callable) -> Callable:
    return click.option("--jobs", "-j", type=click.IntRange(min=0), default=None,
                        help="Worker processes (default: all cores; 0 means all cores).")(fn)


def scheduler_option(fn: Callable) -> Callable:
    return click.option("--scheduler", default=None, metavar="ADDRESS|local[:N]",
                        help="Run on a dask.distributed cluster: a scheduler address (tcp://host:8786), or local:N "
                             "to start N worker processes here.")(fn)


def storage_option(fn: Callable) -> Callable:
    return click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
                        help="fsspec option for URLs (repeatable), e.g. endpoint_url=http://127.0.0.1:9000 or "
                             "anon=true.")(fn)


def run_options(fn: Callable) -> Callable:
    """--jobs, --scheduler and --storage-option: how a command that reads many cubes or shards runs."""
    return jobs_option(scheduler_option(storage_option(fn)))


def _storage(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    from neuco_io.storage import parse_storage_options

    return parse_storage_options(pairs) or None


def progress_bar(label: str, quiet: bool, unit: str = "files") -> ProgressBar:
    return ProgressBar(label, sys.stderr, enabled=not quiet, unit=unit)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="neuco-io")
def main() -> None:
    """Validate, convert and stream the NeuCo-Bench / SSL4EO-S12 datasets.

    Exit codes: 0 success, 1 errors in the data (or input refused), 2 usage
    error or unreadable ROOT, 3 internal error, 130 interrupted, 143 terminated.
    """


# -- sample --------------------------------------------------------------------
@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--layout", type=click.Choice(LAYOUTS), default="downstream", show_default=True)
@click.option("--locations", type=click.IntRange(min=2), default=24, show_default=True,
              help="Number of locations to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--samples-per-file", type=click.IntRange(min=1), default=64, show_default=True,
              help="v1.1 only: samples per cube file (the public files hold 64).")
@click.option("--overwrite", is_flag=True, help="Write into OUT even if it is not empty.")
@format_option
@quiet_option
@handle_errors
def sample(out: str, layout: str, locations: int, seed: int, samples_per_file: int, overwrite: bool,
           output_format: str, quiet: bool) -> None:
    """Write a small synthetic dataset to OUT that follows the format exactly.

    Smooth, realistic-looking S1, S2 L1C and S2 L2A imagery for four seasons,
    and (downstream) label files for two regression tasks and one binary
    classification task, one with empty labels. Deterministic for a seed.
    """
    from neuco_io.sample import write_sample

    with progress_bar("sample", quiet or output_format == "json", unit="locations") as bar:
        bar.start(locations)
        summary = write_sample(out, layout=layout, locations=locations, seed=seed,
                               samples_per_file=samples_per_file, overwrite=overwrite, progress=bar)
    if output_format == "json":
        _emit_json(summary.to_dict())
    else:
        from neuco_io.render import human_bytes

        tasks = f"; tasks: {', '.join(summary.tasks)}" if summary.tasks else ""
        _echo(f"wrote {summary.root}: {summary.layout} layout, {summary.locations} locations, "
                   f"{summary.files} cubes, {human_bytes(summary.bytes)}{tasks}")


# -- validate ------------------------------------------------------------------
@main.command()
@click.argument("root")
@layout_option
@click.option("--deep", is_flag=True, help="Decode every chunk: corrupt chunks, empty timestamps, NaN in S2.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option("--max-findings", type=click.IntRange(min=0), default=10, show_default=True,
              help="Text report: findings shown per check.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a self-contained HTML report (findings, thumbnails; statistics with --deep).")
@run_options
@format_option
@quiet_option
@handle_errors
def validate(root: str, layout: str | None, deep: bool, strict: bool, max_findings: int, report_path: str | None,
             jobs: int | None, scheduler: str | None, storage_options: tuple[str, ...], output_format: str,
             quiet: bool) -> None:
    """Check a dataset: layout, every cube, ids across modalities, labels and splits.

    Exit 0 when there are no errors (with --strict: no warnings either), 1
    when there are, 2 for a usage error or an unreadable ROOT. Every finding
    code is listed in the README.
    """
    from neuco_io.render import validation_text
    from neuco_io.validators import validate as run_validate

    if report_path:
        from neuco_io.quicklook import require_pillow

        require_pillow()  # before the work, not after it
    with progress_bar("validate", quiet) as bar:
        report = run_validate(root, layout=layout, deep=deep, jobs=jobs, progress=bar, on_start=bar.start,
                              storage_options=_storage(storage_options), scheduler=scheduler)
    report.strict = strict
    if report_path:
        _html_report(report, report_path, deep=deep, jobs=jobs, scheduler=scheduler,
                     storage_options=_storage(storage_options), quiet=quiet)
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        _echo(validation_text(report, max_findings=max_findings))
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


def _html_report(report, path: str, *, deep: bool, jobs: int | None, scheduler: str | None,
                 storage_options: dict | None, quiet: bool) -> None:
    """Thumbnails, per-band statistics after --deep (a second pass: `stats`), then the HTML file."""
    from neuco_io.errors import NeucoError
    from neuco_io.htmlreport import cube_thumbnails, report_html

    with progress_bar("thumbnails", quiet, unit="cubes") as bar:
        flagged, clean, not_drawn = cube_thumbnails(report, progress=bar, storage_options=storage_options)
    stats, stats_error = None, None
    if deep:
        from neuco_io.findings import CODES
        from neuco_io.stats import dataset_stats

        unusable = {f.path for f in report.findings if CODES[f.code].blocking}
        try:
            with progress_bar("statistics", quiet) as bar:
                stats = dataset_stats(report.root, layout=report.layout, jobs=jobs, scheduler=scheduler,
                                      progress=bar, on_start=bar.start, storage_options=storage_options,
                                      skip=unusable).to_dict()
            stats["skipped_cubes"] = sorted(unusable)
        except NeucoError as exc:  # a cube that does not decode: the findings say which
            stats_error = str(exc)
    _write_text(path, report_html(report, flagged, clean, not_drawn, stats, stats_error))


def _write_text(path: str, text: str) -> None:
    from neuco_io.storage.atomic import atomic_path

    try:
        with atomic_path(path, fsync=False) as temp:
            temp.write_text(text, encoding="utf-8")
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


# -- convert / verify ----------------------------------------------------------------
class ByteSize(click.ParamType):
    """`1GB`, `500MB`, `1GiB` or a plain number of bytes."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from neuco_io.sizes import parse_size

        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@main.command()
@click.argument("root")
@click.argument("out")
@click.option("--to", "to", type=click.Choice(["webdataset", "parquet"]), required=True, help="Output format.")
@layout_option
@click.option("--shard-size", type=ByteSize(), default="1GB", show_default=True,
              help="Target bytes per shard (1GB, 500MB, 2GiB...).")
@click.option("--max-records", type=click.IntRange(min=1), default=None, help="At most this many records per shard.")
@click.option("--modalities", default=None, help="Comma-separated subset, e.g. s2l1c,s2l2a (default: all).")
@click.option("--tasks", default=None, help="Comma-separated task names whose labels to include (default: all).")
@click.option("--codec", type=click.Choice(["blosc", "none"]), default="blosc", show_default=True,
              help="blosc: the source's compressed chunks, passed through (lossless, ~1x the source bytes); "
                   "none: plain .npy members any tool reads (Parquet: raw array bytes in zstd pages).")
@click.option("--prefix", default="shard", show_default=True, help="Shard file name prefix.")
@click.option("--row-group-size", type=click.IntRange(min=1), default=None,
              help="Parquet only: rows per row group (bounds memory)  [default: 2]")
@click.option("--parquet-arrays", type=click.Choice(["binary", "tensor"]), default=None,
              help="Parquet only: binary (one value per array: fast, about the source bytes) or tensor "
                   "(fixed_shape_tensor columns, read as lists by DuckDB/polars; several times slower)  "
                   "[default: binary]")
@click.option("--resume", is_flag=True, help="Finish an interrupted conversion in OUT, keeping finished shards.")
@click.option("--overwrite", is_flag=True, help="Replace a previous conversion in OUT (other files are kept).")
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid cubes (listed in the manifest) and go on; "
              "the run then exits 1.")
@click.option("--dry-run", is_flag=True, help="Print the plan (records, shards, estimated bytes and time) and "
              "write nothing.")
@run_options
@format_option
@quiet_option
@handle_errors
def convert(root: str, out: str, to: str, layout: str | None, shard_size: int, max_records: int | None,
            modalities: str | None, tasks: str | None, codec: str, prefix: str, row_group_size: int | None,
            parquet_arrays: str | None, resume: bool,
            overwrite: bool, skip_invalid: bool, dry_run: bool, jobs: int | None, scheduler: str | None,
            storage_options: tuple[str, ...], output_format: str, quiet: bool) -> None:
    """Convert the cubes under ROOT to WebDataset or Parquet shards in OUT.

    One record per location (v1.1 files are split into their 64 samples),
    arrays in their native dtype as (time, band, y, x), a JSON record with
    ids, bands, seasons, metadata and labels; OUT/manifest.json lists every
    shard with its sha256 and maps each id to its shard. Writes are atomic and
    deterministic; an interrupted run is finished with --resume.
    """
    from neuco_io.converters import convert as run_convert

    def note(text: str) -> None:
        _echo(f"neuco-io: note: {text}", err=True, clear_line=bar.enabled)

    options = _storage(storage_options)
    with progress_bar("convert", quiet or dry_run, unit="records") as bar, _resume_hint(out, options):
        result = run_convert(root, out, to=to, layout=layout, shard_size=shard_size, max_records=max_records,
                             modalities=_csv_list(modalities), tasks=_csv_list(tasks), codec=codec, prefix=prefix,
                             row_group_size=row_group_size, parquet_arrays=parquet_arrays, jobs=jobs, resume=resume,
                             overwrite=overwrite,
                             skip_invalid=skip_invalid, dry_run=dry_run, progress=bar, on_start=bar.start,
                             on_note=None if output_format == "json" else note, storage_options=options,
                             scheduler=scheduler)
    if dry_run:
        _print_dry_run(result, output_format)
        sys.exit(EXIT_OK)
    if output_format == "json":
        _emit_json(result.to_dict())
    else:
        from neuco_io.render import human_bytes, skip_line

        kept = result.shards - result.written
        reused = {"interrupted": f" ({kept} reused from the interrupted run)",
                  "finished": f" ({kept} kept: already complete and their sources unchanged)"}.get(
                      result.reused_from or "", "")
        _echo(f"wrote {plural(result.records, 'record')} in {plural(result.shards, result.format + ' shard')}"
                   f"{reused}, {human_bytes(result.bytes)}, to {result.out}")
        for skipped in result.skipped:
            _echo(skip_line(skipped, "skipped"))
    sys.exit(EXIT_FAILED if result.skipped else EXIT_OK)


def _print_dry_run(plan: Any, output_format: str) -> None:
    """`convert --dry-run`: the plan and the estimate, nothing written."""
    from neuco_io.render import human_bytes, skip_line

    if output_format == "json":
        _emit_json(plan.to_dict())
        return
    action = {"new": "write a new conversion", "resume": "resume the conversion there",
              "replace": "replace the finished conversion there (kept until the new one is complete)"}[plan.action]
    _echo(f"dry run: would {action} in {plan.out}")
    _echo(f"  {plural(plan.records, 'record')} in {plural(plan.shards, plan.format + ' shard')}, about "
               f"{human_bytes(plan.bytes)}")
    if plan.seconds is not None:
        _echo(f"  {_duration(plan.seconds)} with {min(plan.jobs, max(plan.shards, 1))} of {plan.jobs} jobs "
                   f"(measured here: {human_bytes(plan.rate)}/s per job on one record)")
    for skipped in plan.skipped:
        _echo(skip_line(skipped, "would skip"))
    for text in plan.notes:
        _echo(f"  note: {text}")
    _echo("nothing was written")


def _duration(seconds: float) -> str:
    """An estimate in words ("about 0 s" read as a broken estimate)."""
    if seconds < 0.5:
        return "under 1 s"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


@main.command()
@click.argument("root")
@click.argument("out")
@click.option("--max-findings", type=click.IntRange(min=0), default=20, show_default=True,
              help="Text report: mismatches shown.")
@run_options
@format_option
@quiet_option
@handle_errors
def verify(root: str, out: str, max_findings: int, jobs: int | None, scheduler: str | None,
           storage_options: tuple[str, ...], output_format: str, quiet: bool) -> None:
    """Check a conversion in OUT against its source ROOT, bit for bit.

    Shard sizes and sha256 against the manifest, every array against the
    source cube, every label against the label files. Exit 0 when all match.
    """
    from neuco_io.converters import verify as run_verify
    from neuco_io.render import findings_lines

    with progress_bar("verify", quiet, unit="shards") as bar:
        report = run_verify(root, out, jobs=jobs, progress=bar, on_start=bar.start,
                            storage_options=_storage(storage_options), scheduler=scheduler)
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        s = report.summary
        _echo(f"{out}: {plural(s['records'], 'record')} in {plural(s['shards'], s['format'] + ' shard')} "
                   f"checked against {root}")
        for line in findings_lines(report.findings, out, max_findings=max_findings, report=report):
            _echo(line)
        _echo("OK: every shard, array and label matches" if report.ok else
                   f"FAILED: {plural(len(report.findings), 'mismatch', 'mismatches')}")
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


# -- embed / labels ------------------------------------------------------------------
def _seasons(value: str) -> int | list[int]:
    """`4` (the first n) or `0,2` (season indices; names like spring,fall work too)."""
    from neuco_io import spec

    if "," not in value and value.strip().isdigit():
        return int(value)
    return [spec.season_index(part) for part in value.split(",")]


@main.command()
@click.argument("source")
@click.option("--encoder", required=True, help="'mean' (built-in baseline), 'module:callable' or 'file.py:callable'.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="EMB.csv (NeuCo-Bench format) or EMB.parquet.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes (needs torch).")
@click.option("--modalities", default=None, help="Comma-separated subset, in the order the encoder wants.")
@click.option("--seasons", default="4", show_default=True, help="The first n, or indices/names: 0,2 or spring,fall.")
@click.option("--shift-s2", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              is_flag=False, flag_value="on",
              help="+1000 on S2 values. auto: downstream data gets it, v1.1 data has it (the v1.1 convention); "
                   "on: always (warns on v1.1 data); off: never.")
@click.option("--bands", "bands", multiple=True, metavar="MODALITY=BAND,...",
              help="Bands the encoder gets for a modality, by name and in this order (e.g. s2l2a=B04,B03,B02); "
                   "repeat for more modalities. Default: every band.")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False), default=None,
              help="Embed only the ids in this file (one per line); shards are read through their index.")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False), default=None,
              help="Embed only the ids labelled in this label folder (any task).")
@click.option("--dim", type=click.IntRange(min=1), default=None,
              help="Pad embeddings with zeros to this size; refuse an encoder that returns more.")
@layout_option
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@storage_option
@format_option
@quiet_option
@handle_errors
def embed(source: str, encoder: str, out_path: str, batch_size: int, workers: int, modalities: str | None,
          seasons: str, shift_s2: str, bands: tuple[str, ...], ids_file: str | None, labels_dir: str | None,
          dim: int | None, layout: str | None, overwrite: bool,
          storage_options: tuple[str, ...], output_format: str, quiet: bool) -> None:
    """Embed every location of SOURCE (a dataset ROOT or converted shards) with an encoder.

    The encoder takes a batch {"id": [...], "<modality>": float32 [B, T, C, H, W]} and
    returns [B, D]. The output is written atomically.
    """
    from neuco_io.embed import embed as run_embed
    from neuco_io.loader.bands import parse_bands

    try:
        season_arg = _seasons(seasons)
    except ValueError as exc:
        raise click.BadParameter(f"{seasons!r}: the first n (a number), or season names or indices separated by "
                                 f"commas; {exc}", param_hint="--seasons") from None
    from neuco_io.loader import DoubleShiftWarning

    notes: list[str] = []

    def show_double_shift(message, category, *args, **kwargs) -> None:  # as soon as the dataset is opened
        if not issubclass(category, DoubleShiftWarning):
            return shown(message, category, *args, **kwargs)
        notes.append(str(message).replace("shift_s2=True", "--shift-s2 on"))
        if output_format != "json":
            _echo(f"warning: {notes[-1]}", err=True)

    shift = {"auto": "auto", "on": True, "off": False}[shift_s2]
    with progress_bar("embed", quiet, unit="locations") as bar, warnings.catch_warnings():
        shown, warnings.showwarning = warnings.showwarning, show_double_shift
        warnings.simplefilter("always", DoubleShiftWarning)
        result = run_embed(source, encoder, out_path, batch_size=batch_size, workers=workers,
                           modalities=_csv_list(modalities), seasons=season_arg, shift_s2=shift, dim=dim,
                           layout=layout, overwrite=overwrite, progress=bar, on_start=bar.start,
                           storage_options=_storage(storage_options), bands=parse_bands(bands) or None,
                           ids=ids_file, labels=labels_dir)
    if output_format == "json":
        _emit_json({**result.to_dict(), "warnings": notes})
    else:
        padded = f" (encoder: {result.encoder_dim}, zero-padded)" if result.dim != result.encoder_dim else ""
        _echo(f"wrote {plural(result.rows, 'embedding')} of {plural(result.dim, 'dimension')}{padded} "
                   f"to {result.out}")


@main.group()
def labels() -> None:
    """Label files: export the folder the NeuCo-Bench evaluation reads, or fix files it would misread."""


@labels.command("export")
@click.argument("source", type=click.Path())
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--tasks", default=None, help="Comma-separated task names (default: all).")
@click.option("--overwrite", is_flag=True, help="Replace label files that exist in OUT_DIR.")
@click.option("--rename-types", is_flag=True,
              help="Write a task type the evaluator refuses under the accepted spelling it means (reg -> regr).")
@format_option
@quiet_option
@handle_errors
def labels_export(source: str, out_dir: str, tasks: str | None, overwrite: bool, rename_types: bool,
                  output_format: str, quiet: bool) -> None:
    """Write <task>__<type>.csv files (id,label) from a dataset ROOT or converted shards.

    Refuses (exit 1, nothing written) a task type NeuCo-Bench's evaluator does
    not accept (it takes exactly regression, regr, classification, cls), unless
    --rename-types, and an OUT_DIR holding other CSV files the evaluator would
    stop on.
    """
    from neuco_io.tasks.export import export_labels

    written = export_labels(source, out_dir, tasks=_csv_list(tasks), overwrite=overwrite, rename_types=rename_types)
    if output_format == "json":
        _emit_json({"out_dir": out_dir, "files": [str(p) for p in written]})
    else:
        _echo(f"wrote {len(written)} label files to {out_dir}: {', '.join(p.name for p in written)}")


@labels.command("fix")
@click.argument("target", type=click.Path(exists=True))
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@format_option
@quiet_option
@handle_errors
def labels_fix(target: str, dry_run: bool, output_format: str, quiet: bool) -> None:
    """Repair label files in place: strip a UTF-8 BOM, make line endings LF, drop .zarr.zip/.zarr from ids.

    TARGET is a CSV file, a folder of them, or a dataset ROOT (its labels/).
    Each file is rewritten atomically, labels untouched. Exit 1 if a file
    cannot be read or is not UTF-8.
    """
    from neuco_io.render import label_fix_line
    from neuco_io.tasks.labelfix import fix_labels

    fixes = fix_labels(target, dry_run=dry_run)
    failed = [f for f in fixes if f.error]
    changed = [f for f in fixes if f.changed and not f.error]
    if output_format == "json":
        _emit_json({"ok": not failed, "dry_run": dry_run, "files": [f.to_dict() for f in fixes]})
    else:
        for fix in fixes:
            _echo(label_fix_line(fix, dry_run))
        verb = "would fix" if dry_run else "fixed"
        _echo(f"{verb} {plural(len(changed), 'file')}, {len(fixes) - len(changed) - len(failed)} already fine"
                   + (f", {plural(len(failed), 'error')}" if failed else ""))
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


# -- task ----------------------------------------------------------------------------
@main.group()
def task() -> None:
    """Custom tasks: import imagery as cubes, write a label file, pack a contribution bundle."""


@task.command("import")
@click.argument("src", type=click.Path())
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--pattern", default=None,
              help="When SRC is a folder: where files are, e.g. '{id}/{modality}_{season}.tif'.")
@click.option("--ids", "id_mode", type=click.Choice(["keep", "hash"]), default="keep", show_default=True,
              help="keep: the ids as given; hash: 64-hex content hashes, mapping written outside ROOT.")
@click.option("--mapping", type=click.Path(dir_okay=False), default=None,
              help="The id mapping file (--ids hash; default: ROOT.ids.csv beside ROOT).")
@click.option("--locations", type=click.Path(dir_okay=False), default=None,
              help="Keep the GeoTIFFs' georeferencing here (a private JSON file outside ROOT).")
@click.option("--resample", type=click.Choice(["nearest", "bilinear"]), default=None,
              help="Resample images that are not 264x264 (default: refuse them).")
@jobs_option
@format_option
@quiet_option
@handle_errors
def task_import(src: str, root: str, pattern: str | None, id_mode: str, mapping: str | None,
                locations: str | None, resample: str | None, jobs: int | None, output_format: str,
                quiet: bool) -> None:
    """Build downstream-layout cubes in ROOT from GeoTIFF or .npy files listed in SRC.

    SRC is a CSV table (id, modality, season, path) or a folder searched with
    --pattern. Each file holds one season of one modality as (band, y, x).
    Locations that cannot be imported are listed and the others go on; the
    command then exits 1. A rerun skips the cubes already written.
    """
    from neuco_io.render import refusal_line
    from neuco_io.tasks.importer import import_task

    with progress_bar("import", quiet, unit="locations") as bar:
        result = import_task(src, root, pattern=pattern, ids=id_mode, mapping=mapping, locations=locations,
                             resample_method=resample, jobs=jobs, progress=bar)
    if output_format == "json":
        _emit_json(result.to_dict())
    else:
        _echo(f"{root}: imported {plural(len(result.imported), 'location')}, {len(result.skipped)} already there, "
                   f"{len(result.refused)} refused")
        for refusal in result.refused:
            _echo(refusal_line(refusal, "refused"))
        for refusal in result.flagged:
            _echo(refusal_line(refusal, "flagged"))
        if result.mapping and id_mode == "hash":
            _echo(f"id mapping (keep it private): {result.mapping}")
    sys.exit(EXIT_FAILED if result.refused or result.flagged else EXIT_OK)


@task.command("labels")
@click.argument("name")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--type", "task_type", type=click.Choice(list(spec.TASK_TYPES)), required=True,
              help="The task type in the file name: exactly what NeuCo-Bench's evaluator accepts.")
@click.option("--from", "source", type=click.Path(dir_okay=False), required=True, help="Your CSV of labels.")
@click.option("--id-col", default="id", show_default=True)
@click.option("--label-col", default="label", show_default=True)
@click.option("--mapping", type=click.Path(dir_okay=False), default=None,
              help="Id mapping of `task import --ids hash` (default: ROOT.ids.csv, when it exists).")
@click.option("--overwrite", is_flag=True)
@format_option
@quiet_option
@handle_errors
def task_labels(name: str, root: str, task_type: str, source: str, id_col: str, label_col: str,
                mapping: str | None, overwrite: bool, output_format: str, quiet: bool) -> None:
    """Write ROOT/labels/NAME__<type>.csv from your table, if it follows every label rule."""
    from neuco_io.render import findings_lines
    from neuco_io.tasks.usertable import make_task_labels

    result = make_task_labels(root, name, task_type, source, id_col=id_col, label_col=label_col, mapping=mapping,
                              overwrite=overwrite)
    if output_format == "json":
        _emit_json({"ok": result.ok, "path": str(result.path) if result.path else None, **result.report.verdict_dict(),
                    "summary": {**result.summary, "unlisted": result.report.unlisted_counts()}})
    else:
        for line in findings_lines(result.findings, ".", max_findings=50, report=result.report, option=False):
            _echo(line)
        s = result.summary
        stats = ", ".join(f"{key.replace('_', ' ')} {value:.4g}" for key, value in s["statistics"].items())
        _echo(f"{plural(s['rows'], 'row')}: {s['labelled']} labelled, {s['skipped_empty']} empty (skipped), "
                   f"{plural(s['identical_duplicates'], 'identical duplicate')} dropped"
                   + (f"; labels: {stats}" if stats else ""))
        _echo(f"wrote {result.path}" if result.path else "FAILED: nothing written")
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


@task.command("pack")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--task", "task_name", required=True, help="The task to pack (its label file's task name).")
@click.option("--out", "out_path", required=True, type=click.Path(), help="BUNDLE folder, or BUNDLE.zip.")
@click.option("--description", default="", help="For the data card.")
@click.option("--source", "data_source", default="", help="Where the data comes from (data card).")
@click.option("--licence", "--license", "licence", default="", help="Licence of the data (data card).")
@click.option("--overwrite", is_flag=True)
@jobs_option
@format_option
@quiet_option
@handle_errors
def task_pack(root: str, task_name: str, out_path: str, description: str, data_source: str, licence: str,
              overwrite: bool, jobs: int | None, output_format: str, quiet: bool) -> None:
    """Bundle a task (its cubes, label file, data card, manifest) after validating the dataset."""
    from neuco_io.render import findings_lines
    from neuco_io.tasks.pack import PackRefused, pack_task
    from neuco_io.validators import validate as run_validate

    try:
        with progress_bar("validate", quiet) as bar:
            report = run_validate(root, layout="downstream", jobs=jobs, progress=bar, on_start=bar.start)
        result = pack_task(root, task_name, out_path, validation=report, description=description,
                           source=data_source, licence=licence, overwrite=overwrite)
    except PackRefused as exc:
        if output_format == "json":
            _emit_json({"ok": False, "errors": [f.to_dict() for f in exc.findings]})
        else:
            for line in findings_lines(exc.findings, root, max_findings=20, option=False):
                _echo(line)
        _fail(str(exc), EXIT_FAILED)
    if output_format == "json":
        _emit_json(result.to_dict())
    else:
        _echo(f"packed {plural(result.locations, 'location')} ({plural(result.files, 'file')}) "
                   f"into {result.bundle}")


# -- submission ----------------------------------------------------------------------------
@main.group()
def submission() -> None:
    """Embedding files: check one against the NeuCo-Bench rules, or write a correct one."""


def _expected(dataset: str | None, labels_dir: str | None, ids_file: str | None):
    from neuco_io.submission import expected_ids

    return expected_ids(dataset=dataset, labels=labels_dir, ids_file=ids_file)


@submission.command("check")
@click.argument("emb", type=click.Path(dir_okay=False))
@click.option("--dataset", type=click.Path(file_okay=False), default=None, help="Expected ids: a dataset ROOT.")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False), default=None,
              help="Expected ids: the labelled ids of a label folder.")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False), default=None,
              help="Expected ids: a file with one id per line.")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="The benchmark's dimension limit (e.g. 1024).")
@click.option("--profile", type=click.Choice(["benchmark", "challenge"]), default="benchmark", show_default=True,
              help="benchmark: report what the evaluator does silently; challenge: strict, every deviation fails.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option("--max-findings", type=click.IntRange(min=0), default=20, show_default=True)
@format_option
@quiet_option
@handle_errors
def submission_check(emb: str, dataset: str | None, labels_dir: str | None, ids_file: str | None, dim: int | None,
                     profile: str, strict: bool, max_findings: int, output_format: str, quiet: bool) -> None:
    """Check EMB.csv (id,0,1,...) before it is evaluated or submitted."""
    from neuco_io.render import findings_lines
    from neuco_io.submission import check_submission

    expected = _expected(dataset, labels_dir, ids_file)
    with progress_bar("check", quiet, unit="bytes") as bar:
        report = check_submission(emb, ids=expected, dim=dim, profile=profile, progress=bar, on_start=bar.start)
    report.strict = strict
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        s = report.summary
        _echo(f"{emb}: {plural(s.get('rows', 0), 'row')}, {plural(s.get('dimensions', 0), 'dimension')} "
                   f"({profile} profile)")
        for line in findings_lines(report.findings, str(Path(emb).parent), max_findings=max_findings, report=report):
            _echo(line)
        totals = report.totals()
        if "expected_ids" in s:
            _echo(f"ids: {s['matched_ids']} of {s['expected_ids']} expected present, {s['missing_ids']} "
                       f"missing, {s['unknown_ids']} unknown")
        _echo(f"{'OK' if report.ok else 'FAILED'}: {plural(totals['error'], 'error')}, "
                   f"{plural(totals['warning'], 'warning')}, {plural(totals['note'], 'note')}")
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@submission.command("pack")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False), default=None,
              help="One id per line, in row order (required for .npy).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="EMB.csv to write.")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Pad to this many dimensions (zeros).")
@click.option("--dataset", type=click.Path(file_okay=False), default=None, help="Check ids against a dataset.")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False), default=None,
              help="Check ids against a label folder.")
@click.option("--profile", type=click.Choice(["benchmark", "challenge"]), default="benchmark", show_default=True)
@click.option("--overwrite", is_flag=True)
@format_option
@quiet_option
@handle_errors
def submission_pack(source: str, ids_file: str | None, out_path: str, dim: int | None, dataset: str | None,
                    labels_dir: str | None, profile: str, overwrite: bool, output_format: str, quiet: bool) -> None:
    """Write a correct submission CSV from EMB.npy + --ids, a Parquet file, or a sloppy CSV."""
    from neuco_io.render import findings_lines
    from neuco_io.submission import pack_submission
    from neuco_io.submission.pack import PackRefused

    expected = _expected(dataset, labels_dir, None)
    try:
        result = pack_submission(source, out_path, ids=ids_file, dim=dim, expected=expected, profile=profile,
                                 overwrite=overwrite)
    except PackRefused as exc:
        if output_format == "json":
            _emit_json(exc.report.to_dict())
        else:
            for line in findings_lines(exc.report.errors, ".", max_findings=20, option=False):
                _echo(line)
        _fail(str(exc), EXIT_FAILED)
    if output_format == "json":
        _emit_json({"out": str(result.out), "rows": result.rows, "dim": result.dim, **result.report.to_dict()})
    else:
        totals = result.report.totals()
        _echo(f"wrote {result.out}: {plural(result.rows, 'row')}, {plural(result.dim, 'dimension')}; check: "
                   f"{plural(totals['warning'], 'warning')}, {plural(totals['note'], 'note')}")
        for line in findings_lines(result.report.findings, ".", max_findings=20, report=result.report,
                                   option=False):
            _echo(line)


# -- info / stats ----------------------------------------------------------------------------
@main.command()
@click.argument("path")
@layout_option
@storage_option
@format_option
@quiet_option
@handle_errors
def info(path: str, layout: str | None, storage_options: tuple[str, ...], output_format: str, quiet: bool) -> None:
    """Describe a cube, a dataset ROOT or a convert output, from metadata only.

    Cube: arrays, dtypes, shapes, chunking, codecs, bands, seasons, ids. ROOT:
    layout, modalities, counts, sizes, one example cube per modality, tasks
    with label counts. Shards: the manifest (format version, options, shard
    count, records, sha256).
    """
    from neuco_io.info import info as describe
    from neuco_io.summaries import info_text

    data = describe(path, layout=layout, storage_options=_storage(storage_options))
    if output_format == "json":
        _emit_json(data)
    else:
        _echo(info_text(data))


@main.command()
@click.argument("source")
@layout_option
@click.option("--sample", "sample_size", type=click.IntRange(min=1), default=None,
              help="Read only N locations (records), chosen at random with --seed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample: same seed, same locations.")
@click.option("--compare", "reference", type=click.Choice(sorted(spec.REFERENCE_STATISTICS)), default=None,
              help="Check means and stds against published statistics (offset, scaling, band order).")
@click.option("--seasons", "per_season", is_flag=True, help="Text output: a table per season too.")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Count every N-th row of pixels (N times fewer values, faster; 1: every value).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the statistics to this JSON file (the loader's normalize= reads it).")
@run_options
@format_option
@quiet_option
@handle_errors
def stats(source: str, layout: str | None, sample_size: int | None, seed: int, reference: str | None,
          per_season: bool, stride: int, out_path: str | None, jobs: int | None, scheduler: str | None,
          storage_options: tuple[str, ...], output_format: str, quiet: bool) -> None:
    """Per-band statistics of a dataset ROOT or converted shards, per modality and season.

    count, mean, std, min, max, percentiles 1/50/99 and the fractions of zeros
    and NaN, from exact histograms (every value counted; results do not depend
    on --jobs). With --compare, exit 1 when an offset or band-order error is
    flagged.
    """
    from neuco_io.stats import dataset_stats
    from neuco_io.statscompare import compare
    from neuco_io.summaries import comparison_text, stats_text

    with progress_bar("stats", quiet) as bar:
        result = dataset_stats(source, layout=layout, sample=sample_size, seed=seed, jobs=jobs, scheduler=scheduler,
                               progress=bar, on_start=bar.start, storage_options=_storage(storage_options),
                               stride=stride)
    data = result.to_dict()
    comparison = compare(result, reference) if reference else None
    if comparison is not None:
        data["comparison"] = comparison.to_dict()
    if out_path:
        _write_text(out_path, json.dumps(data, indent=2) + "\n")
    if output_format == "json":
        _emit_json(data)
    else:
        _echo(stats_text(data, seasons=per_season))
        if comparison is not None:
            _echo(comparison_text(data["comparison"]))
        if out_path:
            _echo(f"wrote {out_path}")
    sys.exit(EXIT_FAILED if comparison is not None and comparison.errors else EXIT_OK)


# -- quicklook -------------------------------------------------------------------------------
@main.command()
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for <id>.png per location and contact-sheet-NNNN.png.")
@click.option("--ids", default=None, help="Comma-separated ids to draw (default: every location).")
@click.option("--sample", "sample_size", type=click.IntRange(min=1), default=None,
              help="Draw N locations chosen at random with --seed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@layout_option
@click.option("--tile", type=click.IntRange(min=8), default=264, show_default=True,
              help="Pixels per season tile in the per-location images.")
@click.option("--per-page", type=click.IntRange(min=1), default=24, show_default=True,
              help="Locations per contact sheet.")
@click.option("--sheet-tile", type=click.IntRange(min=8), default=64, show_default=True,
              help="Pixels per season tile on the contact sheets.")
@storage_option
@format_option
@quiet_option
@handle_errors
def quicklook(source: str, out_dir: str, ids: str | None, sample_size: int | None, seed: int, layout: str | None,
              tile: int, per_page: int, sheet_tile: int, storage_options: tuple[str, ...], output_format: str,
              quiet: bool) -> None:
    """Draw locations of a dataset ROOT or converted shards as PNG images in OUT.

    S2 L2A/L1C true colour (B04/B03/B02, robust stretch), S1 VV/VH false
    colour (dB), one column per season, titled with the id; contact sheets
    of many locations per page. Same data, same PNG bytes. Needs Pillow:
    pip install 'neuco-io[quicklook]'.
    """
    from neuco_io.gallery import write_quicklooks

    if ids and sample_size:
        raise UsageError("--ids and --sample exclude each other")
    with progress_bar("quicklook", quiet, unit="locations") as bar:
        result = write_quicklooks(source, out_dir, ids=_csv_list(ids), sample=sample_size, seed=seed, layout=layout,
                                  tile=tile, per_page=per_page, sheet_tile=sheet_tile, progress=bar,
                                  on_start=bar.start, storage_options=_storage(storage_options))
    if output_format == "json":
        _emit_json({"out": str(result.out), "locations": len(result.ids), "images": [str(p) for p in result.images],
                    "contact_sheets": [str(p) for p in result.sheets]})
    else:
        _echo(f"wrote {len(result.images)} location images and {len(result.sheets)} contact sheet(s) to "
                   f"{result.out}")


def run() -> None:
    """The console entry point: `main`, then leave without the interpreter's teardown.

    Once a command has finished and flushed its output there is nothing left to do, and tearing down
    the native libraries it loaded (pyarrow's thread pools after worker processes ran) can abort the
    process ("terminate called without an active exception", SIGABRT) after a correct run.
    """
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # before a command's own handling started (while click parsed the options)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # outside a command's error handling: a bug of ours, never a traceback
        if os.environ.get("NEUCO_IO_DEBUG"):
            import traceback

            traceback.print_exc()
        with contextlib.suppress(Exception):
            _echo(f"neuco-io: internal error: {type(exc).__name__}: {exc} (set NEUCO_IO_DEBUG=1 for a traceback)",
                  err=True)
        code = EXIT_INTERNAL
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
    if code is None:
        code = 0
    elif not isinstance(code, int):  # click and sys.exit accept a message: printed, exit 1
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{code}\n")
            sys.stderr.flush()
        code = 1
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
