"""Discover a dataset on disk: which layout, which cubes, labels and split lists.

Discovery records what is there, including what does not belong; turning that
into findings is the layout validator's job, and converters and loaders use
the same inventory to find their cubes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from neuco_io import spec
from neuco_io.errors import UsageError
from neuco_io.storage import LocalTree, Store, open_store

Layout = Literal["downstream", "v1.1"]
LAYOUTS: tuple[str, ...] = ("downstream", "v1.1")

__all__ = ["LAYOUTS", "CubeFile", "Dataset", "Layout", "Location", "detect_layout", "discover"]


@dataclass(frozen=True)
class CubeFile:
    """One `.zarr.zip` file in its place in the layout."""

    path: Path
    modality: str
    """Modality name (s1, s2l1c, s2l2a, s2rgb), whatever the folder is called in the layout."""
    group: str
    """Downstream: the data folder (`data`, `data_dev`, `data_eval`); v1.1: the split."""
    part: str | None
    """Downstream part folder (`part-000000`); None in v1.1."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        """The file name without `.zarr.zip`: the id (downstream) or the v1.1 file stem."""
        return spec.strip_cube_suffix(self.path.name)


@dataclass(frozen=True)
class Location:
    """One location: its id and, per modality, the file and the sample index in it."""

    id: str
    files: dict[str, CubeFile]
    sample: int = 0


@dataclass
class Dataset:
    """Inventory of a dataset root."""

    root: Path
    layout: Layout
    groups: list[str] = field(default_factory=list)
    """Data folders (downstream) or splits (v1.1) present."""
    modality_dirs: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(group, modality) -> folder, for the known modalities present."""
    missing_dirs: list[Path] = field(default_factory=list)
    """Required folders that are absent."""
    missing_optional: list[Path] = field(default_factory=list)
    unknown_dirs: list[Path] = field(default_factory=list)
    odd_part_dirs: list[Path] = field(default_factory=list)
    """Downstream folders inside a modality folder not named `part-NNNNNN`."""
    part_sizes: dict[Path, int] = field(default_factory=dict)
    cubes: list[CubeFile] = field(default_factory=list)
    outside_part: list[Path] = field(default_factory=list)
    """Downstream cubes lying directly in a modality folder (the reference loader misses them)."""
    strays: list[Path] = field(default_factory=list)
    labels_dir: Path | None = None
    label_files: list[Path] = field(default_factory=list)
    splits_dir: Path | None = None
    split_lists: dict[str, Path] = field(default_factory=dict)
    store: Store | None = field(default=None, repr=False, compare=False)
    """The root as a Store (made once by `discover`, passed on to readers and converters)."""

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in spec order."""
        present = {m for _, m in self.modality_dirs}
        return [m for m in spec.MODALITIES if m in present]

    def cubes_by_group(self) -> dict[str, dict[str, list[CubeFile]]]:
        """group -> modality -> cube files (sorted by path)."""
        out: dict[str, dict[str, list[CubeFile]]] = defaultdict(lambda: defaultdict(list))
        for cube in self.cubes:
            out[cube.group][cube.modality].append(cube)
        return out

    def downstream_files(self, modalities: list[str] | None = None) -> dict[str, dict[str, CubeFile]]:
        """id -> {modality: cube} for every downstream id, sorted by id.

        An id found in several data folders (the public `data/` holds the union
        of `data_dev/` and `data_eval/`) is taken from the first folder, in
        `spec.DOWNSTREAM_DATA_DIRS` order, that holds all its requested
        modalities, else from the folder holding most of them.
        """
        wanted = modalities or list(spec.DOWNSTREAM_MODALITIES)
        by_group: dict[str, dict[str, dict[str, CubeFile]]] = defaultdict(lambda: defaultdict(dict))
        for cube in sorted(self.cubes, key=lambda c: str(c.path)):
            if cube.modality in wanted:
                by_group[cube.group][cube.stem].setdefault(cube.modality, cube)
        order = [g for g in spec.DOWNSTREAM_DATA_DIRS if g in by_group] + sorted(
            g for g in by_group if g not in spec.DOWNSTREAM_DATA_DIRS)
        chosen: dict[str, dict[str, CubeFile]] = {}
        for group in order:
            for loc_id, files in by_group[group].items():
                if len(files) > len(chosen.get(loc_id, {})):
                    chosen[loc_id] = dict(files)
        return {loc_id: chosen[loc_id] for loc_id in sorted(chosen)}

    def downstream_locations(self, modalities: list[str] | None = None) -> list[Location]:
        """Downstream locations having every requested modality, sorted by id."""
        wanted = modalities or list(spec.DOWNSTREAM_MODALITIES)
        return [Location(loc_id, {m: files[m] for m in wanted})
                for loc_id, files in self.downstream_files(wanted).items() if all(m in files for m in wanted)]

    def v11_file_groups(self, modalities: list[str] | None = None) -> list[tuple[tuple[str, str], dict[str, CubeFile]]]:
        """((split, file name), {modality: cube}) for every v1.1 file name, train before val, by name."""
        wanted = modalities or self.modalities
        by_name: dict[tuple[str, str], dict[str, CubeFile]] = defaultdict(dict)
        for cube in self.cubes:
            if cube.modality in wanted:
                by_name[(cube.group, cube.name)][cube.modality] = cube
        rank = {s: i for i, s in enumerate(spec.V11_SPLITS)}
        return sorted(by_name.items(), key=lambda kv: (rank.get(kv[0][0], 99), kv[0][1]))

    def v11_files(self, modalities: list[str] | None = None) -> list[dict[str, CubeFile]]:
        """v1.1 file groups holding every requested modality (default: all but S2RGB)."""
        wanted = modalities or [m for m in self.modalities if m != "s2rgb"]
        return [{m: files[m] for m in wanted} for _, files in self.v11_file_groups(wanted)
                if all(m in files for m in wanted)]


def detect_layout(root: Path, tree=None) -> Layout:
    """Guess the layout from the folders at the root; UsageError when it is not a dataset."""
    tree = tree or LocalTree()
    names = {e.name for e in tree.entries(root) if e.is_dir}
    downstream = bool(names & {*spec.DOWNSTREAM_DATA_DIRS, *spec.DOWNSTREAM_MODALITIES, "labels"})
    v11 = bool(names & {*spec.V11_SPLITS, "splits"})
    if downstream and v11:
        raise UsageError(f"{root}: holds folders of both layouts ({', '.join(sorted(names))}); pass --layout")
    if downstream:
        return "downstream"
    if v11:
        return "v1.1"
    raise UsageError(
        f"{root}: not a dataset root: expected data/ and labels/ (downstream) or train/, val/ and splits/ (v1.1)"
    )


def discover(root: str | os.PathLike[str] | Path | Store, layout: Layout | None = None,
             storage_options: dict | None = None) -> Dataset:
    """Inventory a dataset root (a folder, an fsspec URL or a Store). UsageError if ROOT cannot be read or is no
    dataset."""
    store = open_store(root, storage_options)
    root = store.path
    tree = store.tree()
    try:
        layout = layout or detect_layout(root, tree)
    except PermissionError:
        raise UsageError(f"{root}: permission denied") from None
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    ds = Dataset(root=root, layout=layout, store=store)
    try:
        (_discover_downstream if layout == "downstream" else _discover_v11)(ds, tree)
    except PermissionError as exc:
        raise UsageError(f"{exc.filename or root}: permission denied") from None
    return ds


def _discover_downstream(ds: Dataset, tree) -> None:
    root = ds.root
    data_dirs = [root / d for d in spec.DOWNSTREAM_DATA_DIRS if tree.is_dir(root / d)]
    if not data_dirs and any(tree.is_dir(root / m) for m in spec.DOWNSTREAM_MODALITIES):
        data_dirs = [root]  # ROOT is a data folder itself (what the reference loader's data_path points at)
    if not data_dirs:
        ds.missing_dirs.append(root / "data")
    for data_dir in data_dirs:
        group = data_dir.name if data_dir != root else "."
        ds.groups.append(group)
        for entry in tree.entries(data_dir):
            if entry.name.startswith(".") or data_dir == root:
                continue
            if entry.is_dir and entry.name not in spec.DOWNSTREAM_MODALITIES:
                ds.unknown_dirs.append(entry.path)
            elif not entry.is_dir:
                ds.strays.append(entry.path)
        for modality in spec.DOWNSTREAM_MODALITIES:
            mdir = data_dir / modality
            if not tree.is_dir(mdir):
                ds.missing_dirs.append(mdir)
                continue
            ds.modality_dirs[(group, modality)] = mdir
            _scan_modality_downstream(ds, tree, mdir, group, modality)
    labels = root / "labels"
    if tree.is_dir(labels):
        ds.labels_dir = labels
        for entry in tree.entries(labels):
            if entry.name.endswith(".csv") and not entry.is_dir:
                ds.label_files.append(entry.path)
            elif not entry.name.startswith("."):
                ds.strays.append(entry.path)
    elif data_dirs != [root]:
        ds.missing_optional.append(labels)


def _scan_modality_downstream(ds: Dataset, tree, mdir: Path, group: str, modality: str) -> None:
    for entry in tree.entries(mdir):
        if entry.name.endswith(spec.CUBE_SUFFIX):
            ds.outside_part.append(entry.path)
        elif not entry.is_dir:
            ds.strays.append(entry.path)
        else:
            if not spec.PART_RE.match(entry.name):
                ds.odd_part_dirs.append(entry.path)
            items = tree.entries(entry.path)
            for item in items:
                if item.name.endswith(spec.CUBE_SUFFIX):
                    ds.cubes.append(CubeFile(item.path, modality, group, entry.name))
                else:
                    ds.strays.append(item.path)
            ds.part_sizes[entry.path] = len(items)


def _discover_v11(ds: Dataset, tree) -> None:
    root = ds.root
    splits = [s for s in spec.V11_SPLITS if tree.is_dir(root / s)]
    if not splits:
        ds.missing_dirs.append(root / "train")
    for split in spec.V11_SPLITS:
        if split not in splits:
            if splits:
                ds.missing_optional.append(root / split)
            continue
        ds.groups.append(split)
        sdir = root / split
        for entry in tree.entries(sdir):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir:
                ds.strays.append(entry.path)
            elif entry.name not in spec.V11_FOLDERS:
                ds.unknown_dirs.append(entry.path)
        for folder, modality in spec.V11_FOLDERS.items():
            mdir = sdir / folder
            if not tree.is_dir(mdir):
                if folder in spec.V11_REQUIRED:
                    ds.missing_dirs.append(mdir)
                continue
            ds.modality_dirs[(split, modality)] = mdir
            for item in tree.entries(mdir):
                if item.name.endswith(spec.CUBE_SUFFIX):
                    ds.cubes.append(CubeFile(item.path, modality, split, None))
                else:
                    ds.strays.append(item.path)
    splits_dir = root / "splits"
    if tree.is_dir(splits_dir):
        ds.splits_dir = splits_dir
        for split in spec.V11_SPLITS:
            path = splits_dir / spec.v11_split_list(split)
            if tree.is_file(path):
                ds.split_lists[split] = path
            elif split in splits:
                ds.missing_optional.append(path)
    else:
        ds.missing_optional.append(splits_dir)
