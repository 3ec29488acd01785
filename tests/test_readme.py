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


# -- the README's `$ neuco-io ...` examples print what the commands print -------------------------------------
_SIZE = re.compile(r"(\d+(?:\.\d+)?) (B|KB|MB|GB|TB)\b")
NOT_RUN = {("labels", "fix"), ("task", "import")}
"""Examples on the reader's own files (a label file from Excel, GeoTIFFs), not on the sample data."""


def examples() -> list[tuple[str, str]]:
    """(command, expected output) of every plain block that starts with `$ neuco-io`."""
    return [(body.split("\n", 1)[0][2:], body.split("\n", 1)[1])
            for language, body in code_blocks(README.read_text(encoding="utf-8"))
            if not language and body.startswith("$ neuco-io ")]


def _sizes_close(expected: str, got: str) -> None:
    """Sizes may move a little with compressor versions: within 5%, in the same places and units."""
    want, have = _SIZE.findall(expected), _SIZE.findall(got)
    assert [u for _, u in want] == [u for _, u in have], (expected, got)
    for (a, _), (b, _) in zip(want, have):
        assert abs(float(a) - float(b)) <= 0.05 * float(a), (expected, got)


def _break_copy(sample: Path, broken: Path) -> None:
    """What the README says demo-output/broken is: one S1 cube emptied, a label file with the row `nope,1`."""
    import shutil

    shutil.copytree(sample, broken)
    (min((broken / "data" / "s1" / "part-000000").iterdir())).write_bytes(b"")
    (broken / "labels" / "x__cls.csv").write_text("id,label\nnope,1\n")


def test_readme_examples_print_what_the_commands_print(tmp_path, monkeypatch):
    import shlex

    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    run, skipped = [], set()
    for command, expected in examples():
        args = shlex.split(command)[1:]
        if not any(a.startswith("demo-output/") for a in args):
            skipped.add(tuple(args[:2]))
            continue
        if "demo-output/broken" in args:
            _break_copy(Path("demo-output/sample"), Path("demo-output/broken"))
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code in (0, 1), result.output
        _sizes_close(expected, result.stdout)
        assert _SIZE.sub("SIZE", result.stdout) == _SIZE.sub("SIZE", expected), f"$ {command}"
        run.append(args[0])
    assert skipped == NOT_RUN
    assert run == ["sample", "validate", "convert", "verify", "embed", "labels", "submission", "info", "stats"]
    _run_webdataset_example()
    _run_api_example_as_a_script(tmp_path)


def _run_api_example_as_a_script(tmp_path: Path) -> None:
    """The Python API example works saved as a script, without an `if __name__ == "__main__":` guard."""
    import os
    import subprocess
    import sys

    text = README.read_text(encoding="utf-8")
    api = next(body for language, body in code_blocks(text[text.index("## Python API"):]) if language == "python")
    assert "__main__" not in api
    (tmp_path / "api.py").write_text(api)
    env = {**os.environ, "PYTHONPATH": str(README.parent)}
    proc = subprocess.run([sys.executable, "api.py"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "True 0 36"


def _run_webdataset_example() -> None:
    """The README's webdataset snippet runs as written on the shards above, without webdataset's warnings."""
    import textwrap
    import warnings

    snippet = next(textwrap.dedent(body) for language, body in code_blocks(
        "\n".join(line.strip() if line.strip().startswith("```") else line
                  for line in README.read_text(encoding="utf-8").splitlines()) + "\n")
        if language == "python" and "wds.WebDataset(urls" in body)
    snippet = snippet.replace('sample["s2l2a.blosc"]', 'seen.append(sample["s2l2a.blosc"])')
    scope: dict = {"seen": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(snippet, "README.md", "exec"), scope)
    assert len(scope["seen"]) == 12 and scope["seen"][0].shape == (4, 12, 264, 264)
    assert not [w for w in caught if "shardshuffle" in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:  # what it would warn without shardshuffle=False
        warnings.simplefilter("always")
        exec(compile(snippet.replace("shardshuffle=False", ""), "README.md", "exec"), {"seen": []})
    assert [w for w in caught if "shardshuffle" in str(w.message)]
