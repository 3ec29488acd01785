"""The `neuco-io` command line: parse options, call the library, print, pick the exit code.

Exit codes (every command):
  0  success / no errors
  1  the data has errors (validate, verify, check), or some input was refused
  2  usage error: bad option, unreadable ROOT, refused output location
  3  internal error (a bug: please report it; NEUCO_IO_DEBUG=1 shows the traceback)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .errors import NeucoError, UsageError
from .progress import ProgressBar

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _fail(message: str, code: int) -> None:
    click.echo(f"neuco-io: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Map library exceptions to messages and exit codes: no tracebacks for users."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args, **kwargs)
        except UsageError as exc:
            _fail(str(exc), EXIT_USAGE)
        except NeucoError as exc:
            _fail(str(exc), EXIT_FAILED)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:
            sys.exit(EXIT_OK)
        except Exception as exc:
            if os.environ.get("NEUCO_IO_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set NEUCO_IO_DEBUG=1 for a traceback)",
                  EXIT_INTERNAL)

    return wrapper


def format_option(fn: Callable) -> Callable:
    return click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Report as readable text or one JSON object on stdout.")(fn)


def quiet_option(fn: Callable) -> Callable:
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(fn)


def jobs_option(fn: Callable) -> Callable:
    return click.option("--jobs", "-j", type=click.IntRange(min=0), default=None,
                        help="Worker processes (default: all cores; 0 means all cores).")(fn)


def progress_bar(label: str, quiet: bool, unit: str = "files") -> ProgressBar:
    return ProgressBar(label, sys.stderr, enabled=not quiet, unit=unit)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="neuco-io")
def main() -> None:
    """Validate, convert and stream the NeuCo-Bench / SSL4EO-S12 datasets.

    Exit codes: 0 success, 1 errors in the data (or input refused), 2 usage
    error or unreadable ROOT, 3 internal error, 130 interrupted.
    """


# -- sample --------------------------------------------------------------------
@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--layout", type=click.Choice(["downstream", "v1.1"]), default="downstream", show_default=True)
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
    from .sample import write_sample

    with progress_bar("sample", quiet or output_format == "json", unit="locations") as bar:
        bar.start(locations)
        summary = write_sample(out, layout=layout, locations=locations, seed=seed,
                               samples_per_file=samples_per_file, overwrite=overwrite, progress=bar)
    data = {"root": str(summary.root), "layout": summary.layout, "locations": summary.locations,
            "files": summary.files, "bytes": summary.bytes, "tasks": summary.tasks}
    if output_format == "json":
        _emit_json(data)
    else:
        from .render import human_bytes

        tasks = f"; tasks: {', '.join(summary.tasks)}" if summary.tasks else ""
        click.echo(f"wrote {summary.root}: {summary.layout} layout, {summary.locations} locations, "
                   f"{summary.files} cubes, {human_bytes(summary.bytes)}{tasks}")


# -- validate ------------------------------------------------------------------
@main.command()
@click.argument("root", type=click.Path())
@click.option("--layout", type=click.Choice(["downstream", "v1.1"]), default=None,
              help="Skip layout detection.")
@click.option("--deep", is_flag=True, help="Decode every chunk: corrupt chunks, empty timestamps, NaN in S2.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option("--max-findings", type=click.IntRange(min=0), default=10, show_default=True,
              help="Text report: findings shown per check.")
@jobs_option
@format_option
@quiet_option
@handle_errors
def validate(root: str, layout: str | None, deep: bool, strict: bool, max_findings: int, jobs: int | None,
             output_format: str, quiet: bool) -> None:
    """Check a dataset: layout, every cube, ids across modalities, labels and splits.

    Exit 0 when there are no errors (with --strict: no warnings either), 1
    when there are, 2 for a usage error or an unreadable ROOT. Every finding
    code is listed in the README.
    """
    from .render import validation_text
    from .validators import validate as run_validate

    with progress_bar("validate", quiet) as bar:
        report = run_validate(root, layout=layout, deep=deep, jobs=jobs, progress=bar, on_start=bar.start)
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        click.echo(validation_text(report, max_findings=max_findings))
    failed = not report.ok or (strict and report.warnings)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
