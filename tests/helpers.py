"""Builders and editors for small test datasets (real cubes, written with neuco-io's writer)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from neuco_io import spec
from neuco_io.cube.writer import BLOSC_LZ4, CubeWriter

FIXTURES = Path(__file__).parent / "fixtures"
ORIGINAL = FIXTURES / "original"
SIZE = spec.SIZE


def tiny_bands(modality: str, seed: int, n_samples: int = 1, *, offset: bool = False,
               times: int = spec.N_TIMES, dtype=None) -> np.ndarray:
    """Blocky, low-entropy (sample, time, band, y, x) values in realistic ranges (compress to a few KB)."""
    mod = spec.MODALITIES[modality]
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, size=(n_samples, times, mod.n_bands, 8, 8))
    field = np.kron(coarse, np.ones((1, 1, 1, 33, 33)))
    if modality == "s1":
        values = -20 + 15 * field
    elif modality == "s2rgb":
        values = 40 + 150 * field
    else:
        values = 100 + 2500 * field + (spec.S2_OFFSET if offset else 0)
    return np.round(values).astype(dtype or mod.dtype)


def write_location(root: Path, loc_id: str, *, group: str = "data", part: str = "part-000000",
                   modalities=spec.DOWNSTREAM_MODALITIES, seed: int = 0, **kwargs) -> None:
    for i, modality in enumerate(modalities):
        path = root / group / modality / part / f"{loc_id}{spec.CUBE_SUFFIX}"
        bands = tiny_bands(modality, seed * 10 + i)
        with CubeWriter(path, modality, [loc_id], overwrite=True, fsync=False, **kwargs) as writer:
            writer.write_sample(0, bands[0])


TINY_IDS = [f"{i:02d}" + "ab" * 31 for i in range(4)]


def build_downstream(root: Path) -> Path:
    """4 locations, three tasks (one with an empty label, CRLF line endings in another)."""
    for n, loc_id in enumerate(TINY_IDS):
        write_location(root, loc_id, seed=n)
    labels = root / "labels"
    labels.mkdir(parents=True)
    (labels / "height__regr.csv").write_text("id,label\n" + "".join(
        f"{loc_id},{1.5 * n}\n" for n, loc_id in enumerate(TINY_IDS)))
    (labels / "water__cls.csv").write_bytes(("id,label\r\n" + "".join(
        f"{loc_id},{n % 2}\r\n" for n, loc_id in enumerate(TINY_IDS))).encode())
    (labels / "subset__regr.csv").write_text("id,label\n" + "".join(
        f"{loc_id},{'' if n == 0 else n}\n" for n, loc_id in enumerate(TINY_IDS)))
    return root


V11_PLAN = {"train": [["0000001", "0000002"], ["0000003", "0000004"]], "val": [["0000005", "0000006"]]}


def v11_meta(ids: list[str]) -> dict:
    n = len(ids)
    return {
        "center_lat": (("sample",), np.linspace(10, 20, n), {}),
        "center_lon": (("sample",), np.linspace(30, 40, n), {}),
        "crs": (("sample",), np.full(n, 32633, dtype=np.int64), {}),
    }


def write_v11_file(root: Path, split: str, number: int, ids: list[str], *, offset: bool = True,
                   modalities=("s1", "s2l1c", "s2l2a"), order: dict[str, list[str]] | None = None) -> None:
    name = spec.v11_file_name(split, number)
    for i, modality in enumerate(modalities):
        sample_ids = (order or {}).get(modality, ids)
        bands = tiny_bands(modality, number * 10 + i, len(sample_ids), offset=offset)
        folder = root / split / spec.MODALITIES[modality].v11_folder
        with CubeWriter(folder / name, modality, sample_ids, extra=v11_meta(sample_ids), overwrite=True,
                        fsync=False) as writer:
            for s in range(len(sample_ids)):
                writer.write_sample(s, bands[s])


def build_v11(root: Path, *, offset: bool = True) -> Path:
    for split, files in V11_PLAN.items():
        names = []
        for number, ids in enumerate(files, start=1):
            write_v11_file(root, split, number, ids, offset=offset)
            names.append(spec.v11_file_name(split, number))
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / spec.v11_split_list(split)).write_text("".join(f"{n}\n" for n in names))
    return root


# -- editing zips -----------------------------------------------------------------
def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def edit_cube(path: Path, edit: Callable[[dict[str, bytes]], None], **kwargs) -> None:
    members = read_members(path)
    edit(members)
    write_members(path, members, **kwargs)


def edit_metadata(members: dict[str, bytes], key: str, change: Callable[[dict], None]) -> None:
    """Apply `change` to one metadata document, in its own member and in .zmetadata."""
    if key in members:
        doc = json.loads(members[key])
        change(doc)
        members[key] = json.dumps(doc).encode()
    if ".zmetadata" in members:
        meta = json.loads(members[".zmetadata"])
        change(meta["metadata"][key])
        members[".zmetadata"] = json.dumps(meta).encode()


def set_chunk(members: dict[str, bytes], key: str, values: np.ndarray) -> None:
    members[key] = BLOSC_LZ4.encode(np.ascontiguousarray(values))


def cube_path(root: Path, modality: str, loc_id: str, group: str = "data", part: str = "part-000000") -> Path:
    return root / group / modality / part / f"{loc_id}{spec.CUBE_SUFFIX}"
