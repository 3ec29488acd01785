"""The output folder of a conversion: where it may be, who may write it, and which files in it are ours.

A conversion only ever removes or replaces files it can prove it wrote: the
ones a finished run's `manifest.json` lists, or the ones an unfinished run's
journal (`.neuco-io/plan.json`) planned. Anything else in OUT, even if its
name looks like a shard, belongs to the user and is left alone (or, if a
planned shard would land on it, the run is refused before writing).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuco_io.errors import UsageError
from neuco_io.shards.manifest import JOURNAL, MANIFEST, STATE_DIR
from neuco_io.storage import Store

__all__ = [
    "JOURNAL",
    "LABELS",
    "LOCK",
    "MANIFEST",
    "STAGING",
    "STATE_DIR",
    "OutState",
    "OutputBusyError",
    "OutputLock",
    "check_location",
    "inspect",
    "remove_finished",
    "remove_journal",
    "state_name",
]

LABELS = "labels.parquet"
STAGING = f"{STATE_DIR}/staging"
"""Where `--overwrite` writes the new shards while the old output stays intact (local OUT)."""
LOCK = ".neuco-io.lock"


def state_name(name: str) -> str:
    """The state file recording that shard `name` is finished."""
    return f"{STATE_DIR}/shards/{name}.json"


def plain_name(name: Any) -> bool:
    """A file name read from a manifest or journal: used only when it cannot point outside OUT."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)


def check_location(root: Store, out: Store) -> None:
    """Refuse an OUT that is ROOT or inside it, a dangling symlink, or a path under a file (exit 2)."""
    if out.os_paths:
        _check_local_folder(Path(out.path))
    target, source = out.describe().rstrip("/"), root.describe().rstrip("/")
    if target == source or target.startswith(source + "/"):
        raise UsageError(f"{out.path}: OUT is {'ROOT' if target == source else 'inside ROOT'} ({source}); write "
                         "the shards somewhere else")


def _check_local_folder(path: Path) -> None:
    """A local OUT must not be a dangling symlink or lie under a file."""
    if path.is_symlink() and not path.exists():
        raise UsageError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist")
    for parent in [path, *path.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                what = "is" if parent == path else f"is under {parent}, which is"
                raise UsageError(f"{path}: OUT {what} a file, not a folder")
            break


@dataclass
class OutState:
    """What a previous conversion left in OUT."""

    names: list[str]
    manifest: dict | None = None
    """A finished conversion's manifest (None when absent or unreadable)."""
    journal: dict | None = None
    """An unfinished run's plan.json (None when there is none)."""
    finished_shards: list[str] = field(default_factory=list)
    """Shards the unfinished run completed (those with a state file)."""

    def finished_output(self) -> set[str]:
        """The files of the finished conversion, per its manifest (the manifest included)."""
        if self.manifest is None:
            return set()
        names = {s.get("name") for s in self.manifest.get("shards", []) if isinstance(s, dict)}
        names.add(self.manifest.get("card"))  # the dataset card of a Parquet conversion
        return {MANIFEST} | ({LABELS} if self.manifest.get("labels") else set()) | {n for n in names if plain_name(n)}

    def planned(self) -> set[str]:
        """The shards an unfinished run planned or finished, per its journal and state files."""
        if self.journal is None:
            return set()
        return {n for n in self.journal.get("files", []) if plain_name(n)} | set(self.finished_shards)

    def owned(self) -> set[str]:
        """Every file name in OUT this tool wrote (or may have written), per the manifest and the journal."""
        return self.finished_output() | self.planned() | ({LABELS} if self.journal is not None else set())


def _read_json(out: Store, name: str) -> dict | None:
    try:
        data = json.loads(out.read_text(name))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def inspect(out: Store) -> OutState:
    """Read (never change) what OUT holds."""
    names = out.names()
    state = OutState(names)
    if MANIFEST in names:
        state.manifest = _read_json(out, MANIFEST)
        if state.manifest is None or state.manifest.get("format") != "neuco-io.manifest":
            raise UsageError(f"{out.path / MANIFEST}: not a neuco-io manifest; OUT holds files of something else, "
                             "choose another folder")
    if STATE_DIR in names and out.has(JOURNAL):
        state.journal = _read_json(out, JOURNAL) or {}
        with contextlib.suppress(OSError):
            state.finished_shards = sorted(
                name[:-len(".json")] for name in out.names(f"{STATE_DIR}/shards")
                if name.endswith(".json") and plain_name(name[:-len(".json")]))
    return state


def remove_state(out: Store, names: set[str]) -> None:
    """Remove the journal, the state files and the staging area of a run that planned `names` (its own
    entries only, including the temporary files of a worker killed mid-write: a folder is removed when
    that leaves it empty)."""
    for name in names:
        out.remove(state_name(name))
        out.remove(f"{STAGING}/{name}")
    out.remove(f"{STAGING}/{LABELS}")
    out.remove(JOURNAL)
    out.remove_partials("", names | {LABELS, MANIFEST})
    out.remove_partials(STAGING, names | {LABELS})
    out.remove_partials(f"{STATE_DIR}/shards", {f"{name}.json" for name in names})
    for folder in (STAGING, f"{STATE_DIR}/shards", STATE_DIR):
        out.remove_if_empty(folder)  # a user's own files there are kept


def remove_journal(out: Store, state: OutState) -> None:
    """Remove an unfinished run: the shards it wrote, its state files and staging area, and nothing else."""
    if state.journal is None:
        return
    planned = state.planned()
    if not state.journal.get("staging"):
        for name in planned - state.finished_output():
            out.remove(name)
    remove_state(out, planned)
    state.journal, state.finished_shards = None, []


def remove_finished(out: Store, state: OutState, keep: set[str] = frozenset()) -> None:
    """Remove the finished conversion the manifest describes, except the names in `keep`; the manifest
    goes first, so an interruption leaves an unfinished output (resumable), never a wrong manifest."""
    names = state.finished_output()
    if MANIFEST in names:
        out.remove(MANIFEST)
    for name in sorted(names - keep - {MANIFEST}):
        out.remove(name)
    state.manifest = None


# -- locking ------------------------------------------------------------------------------------------------


class OutputBusyError(UsageError):
    """Another conversion holds OUT's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """`OUT/.neuco-io.lock` while a conversion writes: the holder's pid, host and start time.

    Locally the lock file is created exclusively (O_EXCL), so two runs cannot both take it; a lock left by a
    process that is gone (same host, dead pid) is taken over, and `notes` says so. On an object store there
    is no exclusive create: the lock is checked, then written, which catches runs started seconds apart but
    not two started in the same instant (documented).
    """

    def __init__(self, out: Store) -> None:
        self.out = out
        self.notes: list[str] = []
        self.held = False
        self.me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    @property
    def path(self) -> Path:
        return self.out.path / LOCK

    def _holder(self) -> dict | None:
        data = _read_json(self.out, LOCK)
        return data if data is not None else ({} if self.out.has(LOCK) else None)

    def _refuse_or_take_over(self, holder: dict) -> None:
        pid, host = holder.get("pid"), holder.get("host")
        if host == self.me["host"] and isinstance(pid, int) and not _alive(pid):
            self.notes.append(f"{self.path}: stale lock of process {pid} (no longer running) taken over")
            self.out.remove(LOCK)
            return
        who = f"process {pid} on {host} since {holder.get('since')}" if holder else "an unreadable lock"
        raise OutputBusyError(f"{self.out.path}: another conversion is writing here ({who}); wait for it, or if it "
                              f"is gone, delete {self.path}")

    def __enter__(self) -> OutputLock:
        try:
            self.out.mkdir()
        except OSError as exc:
            raise UsageError(f"{self.out.path}: cannot create OUT: {exc.strerror or exc}") from None
        for _ in range(2):
            try:
                created = self.out.create(LOCK, json.dumps(self.me))
            except OSError as exc:
                raise UsageError(f"{self.out.path}: cannot write in OUT: {exc.strerror or exc}") from None
            if created:
                self.held = True
                return self
            holder = self._holder()
            self._refuse_or_take_over(holder if holder is not None else {})
        raise OutputBusyError(f"{self.out.path}: another conversion took the lock {self.path} meanwhile")

    def __exit__(self, *exc: object) -> None:
        if self.held and (self._holder() or {}).get("pid") == self.me["pid"]:
            self.out.remove(LOCK)
        self.held = False
