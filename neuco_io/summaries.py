"""Readable text for `info` and `stats` results. Pure functions: they return text, the CLI prints it."""

from __future__ import annotations

from typing import Any

from neuco_io.render import human_bytes

__all__ = ["comparison_text", "info_text", "stats_text"]


def _codec(config: dict | None) -> str:
    if not config:
        return "uncompressed"
    extras = ", ".join(f"{k} {v}" for k, v in config.items() if k not in ("id", "blocksize"))
    return f"{config.get('id')} ({extras})" if extras else str(config.get("id"))


def _cube_text(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['path']}: cube, {d['modality'] or 'unknown modality'}, {human_bytes(d['bytes'])}, "
             f"{d['samples']} sample(s), {'consolidated' if d['consolidated'] else 'NOT consolidated'} metadata, "
             f"{'deflated' if d['zip_compressed'] else 'stored'} zip",
             f"  bands    {' '.join(d['bands']) or '(no band coordinate)'}",
             f"  seasons  {' '.join(d['seasons'])}",
             f"  ids      {', '.join(d['sample_ids'])}{' ...' if d['samples'] > len(d['sample_ids']) else ''}"]
    for name, a in d["arrays"].items():
        lines.append(f"  {name:<10} {a['dtype']:<8} {'x'.join(map(str, a['shape'])):<20} dims "
                     f"({', '.join(a['dims'])}) chunks {'x'.join(map(str, a['chunks']))} {_codec(a['compressor'])}")
    return lines


def _dataset_text(d: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{m} {n}" for m, n in d["cubes_by_modality"].items())
    what = (f"{d['locations']} locations ({d['complete_locations']} with every modality)" if "locations" in d
            else f"{d['files']} files per modality")
    lines = [f"{d['root']}: {d['layout']} layout, {what}, {d['cubes']} cubes ({counts}), {human_bytes(d['bytes'])}",
             f"  groups   {' '.join(d['groups']) or '-'}"]
    for m, f in d["cube_format"].items():
        if "error" in f:
            lines.append(f"  {m:<8} example {f['example']}: {f['error']}")
            continue
        lines.append(f"  {m:<8} {f['dtype']} {'x'.join(map(str, f['shape']))}, chunks {'x'.join(map(str, f['chunks']))}"
                     f", {_codec(f['compressor'])}, {human_bytes(d['bytes_by_modality'].get(m, 0))}")
        lines.append(f"           bands {' '.join(f['bands'])}; seasons {' '.join(f['seasons'])}")
    for t in d.get("tasks", []):
        if "error" in t:
            lines.append(f"  task     {t['file']}: {t['error']}")
        else:
            lines.append(f"  task     {t['task']} ({t['kind'] or 'unknown type ' + repr(t['type'])}): {t['labelled']} "
                         f"labelled of {t['rows']} rows")
    if "splits" in d:
        lines.append(f"  splits   {' '.join(d['splits']) or '(no split lists)'}")
    return lines


def _shards_text(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['source']}: {d['shards']} {d['format']} shards, {d['records']} records, {human_bytes(d['bytes'])}"]
    if not d["manifest"]:
        lines.append("  no manifest.json: counts read from the shards")
        return lines
    lines += [f"  format   version {d['format_version']}, written by neuco-io {d['tool_version']}, codec {d['codec']}",
              f"  source   {d['source_layout']} layout at {d['source_root']}; s2_offset {d['s2_offset']}",
              f"  arrays   {', '.join(d['modalities'] or [])}; seasons {' '.join(d['seasons'] or [])}",
              f"  tasks    {', '.join(d['tasks'] or []) or '-'}",
              f"  sha256   {'every shard' if d['sha256'] else 'MISSING for some shards'}; skipped inputs "
              f"{d['skipped']}",
              f"  options  {', '.join(f'{k}={v}' for k, v in (d['options'] or {}).items())}"]
    return lines


def info_text(d: dict[str, Any]) -> str:
    render = {"cube": _cube_text, "dataset": _dataset_text, "shards": _shards_text}[d["kind"]]
    return "\n".join(render(d))


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"


def stats_text(d: dict[str, Any], seasons: bool = False) -> str:
    sample = f", a sample of {d['sample']['locations']} (seed {d['sample']['seed']})" if d.get("sample") else ""
    lines = [f"{d['source']}: {d['input']}, {d['layout'] or 'unknown'} layout, s2_offset {d['s2_offset']}{sample}"]
    columns = ("mean", "std", "min", "max", "p1", "p50", "p99", "zero_fraction", "nan_fraction")
    header = "  " + f"{'band':<8}" + "".join(f"{c.replace('_fraction', '%'):>10}" for c in columns)
    for m, e in d["modalities"].items():
        lines.append(f"{m}: {e['locations']} locations, {e['dtype']}")
        blocks = [("all seasons", e)] + (list(e["seasons"].items()) if seasons else [])
        for title, block in blocks:
            if seasons:
                lines.append(f" {title}")
            lines.append(header)
            for i, band in enumerate(e["bands"]):
                cells = []
                for c in columns:
                    v = block[c][i]
                    cells.append(f"{100 * v:>9.2f}%" if c.endswith("_fraction") and v is not None else
                                 f"{_number(v):>10}")
                lines.append(f"  {band:<8}" + "".join(cells))
    return "\n".join(lines)


def comparison_text(c: dict[str, Any]) -> str:
    lines = [f"compared with {c['reference']} (reference s2_offset {c['reference_s2_offset']}, data s2_offset "
             f"{c['data_s2_offset']})"]
    for f in c["flags"]:
        lines.append(f"  {f['severity']:<7} {f['code']:<17} {f['message']}")
    errors = sum(1 for f in c["flags"] if f["severity"] == "error")
    lines.append(f"{'OK' if not errors else 'FLAGGED'}: {errors} error(s), {len(c['flags']) - errors} warning(s)")
    return "\n".join(lines)
