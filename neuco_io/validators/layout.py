"""Layout checks: folders, part folders, file names and strays, from the inventory."""

from __future__ import annotations

from collections.abc import Iterator

from neuco_io import spec
from neuco_io.findings import Finding
from neuco_io.layout import CubeFile, Dataset


def check_folders(ds: Dataset) -> Iterator[Finding]:
    for path in ds.missing_dirs:
        yield Finding("layout.missing-folder", str(path), f"required folder {path.name}/ is missing")
    for path in ds.missing_optional:
        yield Finding("layout.missing-optional", str(path), f"{path.name} is missing")
    for path in ds.unknown_dirs:
        yield Finding("layout.unknown-folder", str(path), f"unknown folder {path.name}/ (not a known modality)")
    for path in ds.odd_part_dirs:
        yield Finding("layout.part-name", str(path), f"folder {path.name}/ is not named part-NNNNNN")


def check_parts(ds: Dataset) -> Iterator[Finding]:
    for path, count in ds.part_sizes.items():
        if count > spec.MAX_FILES_PER_PART:
            yield Finding("layout.part-too-large", str(path),
                          f"{count} files in one part folder; at most {spec.MAX_FILES_PER_PART} allowed",
                          expected=spec.MAX_FILES_PER_PART, got=count)
    for path in ds.outside_part:
        yield Finding("layout.outside-part", str(path), "cube outside a part-NNNNNN folder; the reference loader "
                      "only finds <modality>/*/<id>.zarr.zip", id=spec.strip_cube_suffix(path.name))


def file_name_problem(cube: CubeFile, layout: str) -> str | None:
    """Why a cube's file name breaks the layout's naming rule, or None."""
    if layout == "downstream":
        stem = cube.stem
        if not stem:
            return "empty id"
        if not spec.ID_RE.match(stem):
            return f"id {stem!r} has characters other than letters, digits and _-."
        return None
    match = spec.V11_FILE_RE.match(cube.name)
    if not match:
        return "not named ssl4eos12_<split>_seasonal_data_NNNNNN.zarr.zip"
    if match["split"] != cube.group:
        return f"names split {match['split']!r} but lies in {cube.group}/"
    return None


def check_file_names(ds: Dataset) -> Iterator[Finding]:
    for cube in ds.cubes:
        problem = file_name_problem(cube, ds.layout)
        if problem:
            yield Finding("layout.file-name", str(cube.path), problem,
                          id=cube.stem if ds.layout == "downstream" else None)


def check_strays(ds: Dataset) -> Iterator[Finding]:
    for path in ds.strays:
        kind = "folder" if path.is_dir() else "file"
        yield Finding("layout.stray-file", str(path), f"unexpected {kind} {path.name!r}")


LAYOUT_CHECKS = (check_folders, check_parts, check_file_names, check_strays)


def check_layout(ds: Dataset) -> list[Finding]:
    return [finding for check in LAYOUT_CHECKS for finding in check(ds)]
