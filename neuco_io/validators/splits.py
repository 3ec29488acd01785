"""v1.1 split checks: every listed file exists and every file is listed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from neuco_io.findings import Finding
from neuco_io.layout import Dataset
from neuco_io.storage.local import require_regular_file


def read_split_list(text: str) -> list[str]:
    """File names, one per line; blank lines and surrounding spaces ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_splits(ds: Dataset) -> Iterator[Finding]:
    present: dict[tuple[str, str], set[str]] = {}
    for cube in ds.cubes:
        present.setdefault((cube.group, cube.modality), set()).add(cube.name)
    for split, list_path in sorted(ds.split_lists.items()):
        try:
            require_regular_file(list_path)
            listed = read_split_list(list_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            yield Finding("splits.missing-file", str(list_path), f"cannot read the split list: {exc}")
            continue
        for name, n in sorted(Counter(listed).items()):
            if n > 1:
                yield Finding("splits.duplicate", str(list_path), f"{name} listed {n} times", got=name)
        listed_set = set(listed)
        if split not in ds.groups:
            continue
        for (group, modality), folder in sorted(ds.modality_dirs.items()):
            if group != split:
                continue
            have = present.get((group, modality), set())
            for name in sorted(listed_set - have):
                yield Finding("splits.missing-file", str(folder / name),
                              f"listed in {list_path.name} but absent from {split}/{folder.name}/", got=name)
            for name in sorted(have - listed_set):
                yield Finding("splits.unlisted", str(folder / name), f"not listed in {list_path.name}", got=name)
