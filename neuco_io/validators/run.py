"""`validate(root)`: every check of a dataset, returned as a `Report`. Nothing prints."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from neuco_io import spec
from neuco_io.execution import RunSettings, batched
from neuco_io.findings import LISTED_PER_CODE, Finding, Report
from neuco_io.layout import Dataset, Layout, discover
from neuco_io.storage import size_or_zero
from neuco_io.validators.cubes import CubeResult, CubeTask, check_cubes, majority
from neuco_io.validators.ids import check_downstream_ids, check_evaluator_ids, check_v11_ids
from neuco_io.validators.labels import check_labels
from neuco_io.validators.layout import check_layout
from neuco_io.validators.splits import check_splits

__all__ = ["validate"]

OFFSET_PROBES = 64
"""Without --deep, how many S2 cubes per folder get one timestamp decoded for the offset check."""
BATCH = 16
"""Cubes per unit sent to a worker: amortizes inter-process overhead (~0.1 ms a unit)."""


def validate(
    root: str | os.PathLike[str],
    *,
    layout: Layout | None = None,
    deep: bool = False,
    run: RunSettings | None = None,
    **run_options: Any,
) -> Report:
    """Validate a dataset root. Raises `UsageError` only when ROOT is unusable.

    `run` (or its fields as keywords: `jobs=2`, `progress=...`) says how: `progress(n)` is called as cubes
    finish, `on_start(total)` once the number of cubes is known.
    """
    run = RunSettings.of(run, run_options)
    ds = discover(root, layout, run.storage_options)
    findings = check_layout(ds)
    tasks = _cube_tasks(ds, deep)
    run.started(len(tasks))
    results = _run_cube_tasks(tasks, run, places=(ds.root,))
    for result in results:
        findings.extend(result.findings)
    findings.extend(_offset_findings(ds, results))
    if ds.layout == "downstream":
        findings.extend(check_downstream_ids(ds))
        findings.extend(check_evaluator_ids(ds))
    else:
        findings.extend(check_v11_ids(ds, results))
        findings.extend(check_splits(ds))
    label_summaries: list[dict] = []
    if ds.layout == "downstream" and ds.labels_dir is not None:
        data_ids = frozenset(c.stem for c in ds.cubes)
        label_findings, label_summaries = check_labels(ds.label_files, data_ids)
        findings.extend(label_findings)
    report = Report(root=str(ds.root), layout=ds.layout, summary=_summary(ds, results, label_summaries, deep),
                    listed_per_code=LISTED_PER_CODE)
    report.extend(findings)
    report.findings.sort(key=Finding.sort_key)
    return report


def _cube_tasks(ds: Dataset, deep: bool) -> list[CubeTask]:
    probes: set[Path] = set()
    if not deep:
        for by_modality in ds.cubes_by_group().values():
            for modality, cubes in by_modality.items():
                if spec.MODALITIES[modality].s2:
                    ordered = sorted(cubes, key=lambda c: str(c.path))
                    step = max(1, len(ordered) // OFFSET_PROBES)
                    probes.update(c.path for c in ordered[::step][:OFFSET_PROBES])
    return [CubeTask(c, ds.layout, deep, c.path in probes) for c in sorted(ds.cubes, key=lambda c: str(c.path))]


def _run_cube_tasks(tasks: list[CubeTask], run: RunSettings, places: tuple = ()) -> list[CubeResult]:
    batches = batched(tasks, BATCH)
    results: list[CubeResult] = []
    with run.pool(len(batches), places=places) as executor:
        for batch in executor.map(check_cubes, batches, names=[f"cubes {b[0].cube.path.name}.." for b in batches]):
            results.extend(batch)
            run.advance(len(batch))
    return results


def _offset_findings(ds: Dataset, results: list[CubeResult]) -> list[Finding]:
    """One warning per S2 folder whose examined cubes mostly disagree with the layout's offset convention."""
    expected = "none" if ds.layout == "downstream" else "offset"
    votes: dict[tuple[str, str], list[CubeResult]] = defaultdict(list)
    for result in results:
        if result.offset_vote:
            votes[(result.cube.group, result.cube.modality)].append(result)
    findings = []
    for (group, modality), voted in sorted(votes.items()):
        verdict = majority(r.offset_vote for r in voted)
        if verdict is None or verdict == expected:
            continue
        wrong = [r for r in voted if r.offset_vote == verdict]
        examples = ", ".join(r.cube.stem for r in wrong[:3])
        if ds.layout == "downstream":
            message = (f"{len(wrong)} of {len(voted)} examined {modality} cubes look offset by +{spec.S2_OFFSET} "
                       f"(downstream data has no offset; was shift_s2 applied before writing?), e.g. {examples}")
        else:
            message = (f"{len(wrong)} of {len(voted)} examined {modality} cubes look not offset (v1.1 data "
                       f"includes +{spec.S2_OFFSET}), e.g. {examples}")
        folder = ds.modality_dirs.get((group, modality), ds.root)
        findings.append(Finding("cubes.s2-offset", str(folder), message, expected=expected, got=verdict))
    return findings


def _summary(ds: Dataset, results: list[CubeResult], labels: list[dict], deep: bool) -> dict:
    per_modality = Counter(r.cube.modality for r in results)
    summary = {
        "deep": deep,
        "groups": ds.groups,
        "cubes": len(results),
        "cubes_by_modality": {m: per_modality[m] for m in spec.MODALITIES if per_modality[m]},
        # sizes the workers saw; only cubes that did not open are looked up again (a request each on a store)
        "bytes": sum(r.size if r.size is not None else size_or_zero(r.cube.path) for r in results),
        "offset_examined": sum(1 for r in results if r.offset_vote),
    }
    if ds.layout == "downstream":
        summary["locations"] = len({c.stem for c in ds.cubes})
        summary["labels"] = labels
    else:
        summary["samples"] = sum(len(r.sample_ids or []) for r in results
                                 if r.cube.modality == next(iter(ds.modalities), None))
        summary["splits"] = sorted(ds.split_lists)
    return summary


