"""The README is the user's manual: every synopsis lists exactly the options the command takes."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from neuco_io.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
COMMON = ("--format", "--quiet")
"""Options every command takes."""


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    found: dict[tuple[str, ...], click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(commands(command, (*path, name)))
        else:
            found[(*path, name)] = command
    return found


def synopses() -> dict[tuple[str, ...], str]:
    """Command path -> synopsis: plain blocks starting with `neuco-io <command>` (not `$ ...` examples)."""
    found: dict[tuple[str, ...], str] = {}
    known = commands()
    for language, body in code_blocks(README.read_text(encoding="utf-8")):
        if language or not body.startswith("neuco-io "):
            continue
        words = body.split()[1:3]
        path = tuple(words[:2]) if tuple(words[:2]) in known else tuple(words[:1])
        assert path in known, f"README synopsis of an unknown command: {body.splitlines()[0]}"
        assert path not in found, f"two README synopses of {' '.join(path)}"
        found[path] = body
    return found


def long_options(command: click.Command) -> list[set[str]]:
    """Per option, its long names (`--licence`, `--license`)."""
    return [{o for o in p.opts if o.startswith("--")} for p in command.params
            if isinstance(p, click.Option) and p.name != "help"]


def test_every_command_has_a_synopsis():
    assert sorted(synopses()) == sorted(commands())


@pytest.mark.parametrize("path", sorted(commands()), ids=" ".join)
def test_synopsis_lists_exactly_the_options(path):
    written = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", synopses()[path]))
    defined = long_options(commands()[path])
    missing = sorted(min(names) for names in defined if not names & written)
    unknown = sorted(written - set().union(*defined))
    assert (missing, unknown) == ([], []), f"neuco-io {' '.join(path)}: README synopsis lacks {missing}, " \
                                           f"lists options the command does not take: {unknown}"


@pytest.mark.parametrize("path", sorted(commands()), ids=" ".join)
def test_common_options_everywhere(path):
    names = set().union(*long_options(commands()[path]))
    assert set(COMMON) <= names, f"neuco-io {' '.join(path)} lacks {sorted(set(COMMON) - names)}"
