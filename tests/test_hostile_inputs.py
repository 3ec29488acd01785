"""Every file a user names on the command line may be a FIFO or a device: it is refused, naming it, and
nothing blocks on it (a reader of a FIFO would wait forever for a writer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("neuco-io"))

COMMANDS = {
    "submission check": ["submission", "check", "{fifo}", "--dim", "4"],
    "submission check --ids": ["submission", "check", "{ok}", "--dim", "4", "--ids", "{fifo}"],
    "submission pack": ["submission", "pack", "{fifo}", "--out", "{tmp}/out.csv"],
    "task labels --from": ["task", "labels", "t", "{root}", "--type", "regr", "--from", "{fifo}"],
    "task import TABLE": ["task", "import", "{fifo}", "{tmp}/new"],
    "labels fix": ["labels", "fix", "{fifo}"],
    "embed --ids": ["embed", "{root}", "--encoder", "mean", "--out", "{tmp}/e.csv", "--ids", "{fifo}"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_fifo_named_as_input_is_refused_not_waited_on(command, downstream, tmp_path):
    fifo = tmp_path / "input.csv"
    os.mkfifo(fifo)
    ok = tmp_path / "ok.csv"
    ok.write_text("id,0\n")
    args = [a.format(fifo=fifo, ok=ok, tmp=tmp_path, root=downstream) for a in COMMANDS[command]]
    done = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "input.csv" in done.stderr and "not a regular file" in done.stderr, done.stderr
