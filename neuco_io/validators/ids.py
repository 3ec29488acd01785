"""Id checks across modalities and part folders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from neuco_io import evaluator, spec
from neuco_io.findings import Finding
from neuco_io.layout import Dataset
from neuco_io.validators.cubes import CubeResult


def _modalities_of(ds: Dataset, group: str) -> list[str]:
    return [m for m in spec.MODALITIES if (group, m) in ds.modality_dirs]


def check_downstream_ids(ds: Dataset) -> Iterator[Finding]:
    """Every id in every modality of its data folder, and in one part folder only."""
    for group, by_modality in sorted(ds.cubes_by_group().items()):
        ids: dict[str, set[str]] = {}
        for modality in _modalities_of(ds, group):
            places: dict[str, list[str]] = defaultdict(list)
            for cube in by_modality.get(modality, []):
                places[cube.stem].append(str(cube.path))
            ids[modality] = set(places)
            for loc_id, paths in sorted(places.items()):
                if len(paths) > 1:
                    yield Finding("ids.duplicate", paths[1], f"id in {len(paths)} part folders of {modality}: "
                                  f"{', '.join(paths)}", id=loc_id, got=paths)
        everywhere = set().union(*ids.values())
        for modality, have in ids.items():
            for loc_id in sorted(everywhere - have):
                others = [m for m, s in ids.items() if loc_id in s]
                yield Finding("ids.missing-modality", str(ds.modality_dirs[(group, modality)]),
                              f"id has {', '.join(others)} but no {modality} cube in {group}/", id=loc_id,
                              expected=modality)


def check_evaluator_ids(ds: Dataset) -> Iterator[Finding]:
    """Ids that NeuCo-Bench's evaluator may read as something else in a submission (neuco_io.evaluator)."""
    where: dict[str, str] = {}
    for cube in sorted(ds.cubes, key=lambda c: str(c.path)):
        where.setdefault(cube.stem, str(cube.path))
    for loc_id, read in sorted(evaluator.ids_at_risk(where).items()):
        yield Finding("ids.evaluator-changes", where[loc_id], evaluator.risk_message(loc_id, read), id=loc_id,
                      got=read)


def _reference_modality(modalities) -> str | None:
    """The modality other files are compared with: the first present in spec order."""
    return next((m for m in spec.MODALITIES if m in modalities), None)


def check_v11_ids(ds: Dataset, results: list[CubeResult]) -> Iterator[Finding]:
    """Every file in every modality of its split, holding the same samples in the same order."""
    by_file: dict[tuple[str, str], dict[str, CubeResult]] = defaultdict(dict)
    for result in results:
        by_file[(result.cube.group, result.cube.name)][result.cube.modality] = result
    for (split, name), files in sorted(by_file.items()):
        for modality in _modalities_of(ds, split):
            if modality not in files:
                folder = ds.modality_dirs[(split, modality)]
                yield Finding("ids.missing-modality", str(folder / name), f"{name} is missing from {folder.name}/ "
                              f"while {', '.join(sorted(files))} have it", expected=modality)
        readable = {m: r for m, r in files.items() if r.sample_ids is not None}
        ref_modality = _reference_modality(readable)
        if ref_modality is None:
            continue
        reference = readable[ref_modality]
        for _, result in sorted(readable.items()):
            if result.sample_ids != reference.sample_ids:
                same_set = sorted(result.sample_ids) == sorted(reference.sample_ids)
                what = "the same samples in another order" if same_set else "other samples"
                yield Finding("ids.sample-mismatch", str(result.cube.path), f"holds {what} than {reference.cube.path}",
                              expected=reference.sample_ids[:5], got=result.sample_ids[:5])
    # A location (sample id) belongs to one file: compare files of one modality only.
    ref_modality = _reference_modality({r.cube.modality for r in results if r.sample_ids is not None})
    seen: dict[str, str] = {}
    for result in sorted(results, key=lambda r: str(r.cube.path)):
        if result.sample_ids is None or result.cube.modality != ref_modality:
            continue
        where = f"{result.cube.group}/{result.cube.name}"
        for sample in result.sample_ids:
            if seen.setdefault(sample, where) != where:
                yield Finding("ids.duplicate", str(result.cube.path), f"sample id also in {seen[sample]}", id=sample)
