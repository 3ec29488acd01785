"""The dataset card (`README.md`) written next to Parquet shards, so a folder uploaded to the Hugging Face Hub
gets a working viewer and `load_dataset(repo)`: YAML front matter (`configs:` naming every shard, features,
a licence placeholder, the source), then how to decode the arrays."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CARD", "CARD_MARKER", "dataset_card", "is_our_card"]

CARD = "README.md"
CARD_MARKER = "<!-- written by neuco-io convert; `convert --overwrite` replaces this file -->"

_HF_DTYPES = {"string": "string", "large_string": "large_string", "binary": "binary",
              "large_binary": "large_binary", "double": "float64", "float": "float32", "int64": "int64",
              "int32": "int32"}


def is_our_card(text: str) -> bool:
    return CARD_MARKER in text


def _q(value: Any) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML."""
    return json.dumps(value, ensure_ascii=False)


def _features(schema: Any) -> list[str]:
    lines = []
    for field in schema:
        dtype = _HF_DTYPES.get(str(field.type))
        if dtype is None:  # fixed_shape_tensor: the Hub has no equivalent type
            return []
        lines += [f"  - name: {_q(field.name)}", f"    dtype: {dtype}"]
    return ["  features:", *lines]


def dataset_card(manifest: dict[str, Any], schema: Any) -> str:
    """Card text for a finished Parquet conversion (`schema`: the Arrow schema of its shards, or None)."""
    shards = [s["name"] for s in manifest["shards"]]
    records = manifest["records"]
    arrays = manifest["options"].get("parquet_arrays", "binary")
    layout = manifest["source"]["layout"]
    features = _features(schema) if schema is not None else []
    front = [
        "---",
        "license: other  # placeholder: state the licence of the source data (SSL4EO-S12: CC-BY-4.0)",
        f"pretty_name: {_q(f'SSL4EO-S12 {layout} locations (neuco-io Parquet shards)')}",
        "tags: [earth-observation, sentinel-1, sentinel-2, neuco-bench, neuco-io]",
        "neuco_io:",
        f"  source: {_q(manifest['source']['root'])}",
        f"  layout: {_q(layout)}",
        f"  tool_version: {_q(manifest.get('tool_version'))}",
        f"  format_version: {_q(manifest.get('format_version'))}",
        f"  parquet_arrays: {_q(arrays)}",
        f"  codec: {_q(manifest.get('codec'))}",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path:",
        *[f"    - {_q(name)}" for name in shards],
        "dataset_info:",
        *features,
        "  splits:",
        "  - name: train",
        f"    num_bytes: {sum(int(s['bytes']) for s in manifest['shards'])}",
        f"    num_examples: {int(records)}",
        "---",
    ]
    modalities = ", ".join(manifest["modalities"])
    decode = (
        "import json, numpy as np, pyarrow.parquet as pq\n"
        f"table = pq.read_table({_q(shards[0] if shards else 'shard-000000.parquet')})\n"
    )
    if arrays == "tensor":
        decode += "s2l1c = table[\"s2l1c\"].combine_chunks().to_numpy_ndarray()  # (rows, time, band, y, x)\n"
        note = ("Arrays are `fixed_shape_tensor` columns (nested lists for DuckDB and polars). The Hugging Face "
                "`datasets` library cannot read that type: convert with the default `--parquet-arrays binary` "
                "to publish on the Hub.")
    elif manifest.get("codec") == "none":
        decode += ("field = table.schema.field(\"s2l1c\").metadata\n"
                   "s2l1c = np.frombuffer(table[\"s2l1c\"][0].as_buffer(), field[b\"dtype\"].decode())"
                   ".reshape(json.loads(field[b\"shape\"]))\n")
        note = ("Each array is one binary value: its raw little-endian bytes in C order; the field metadata "
                "(`dtype`, `shape`, `bands`) and the JSON `record` say how to read them.")
    else:
        decode = "from neuco_io.shards.codecs import decode_member  # pip install neuco-io\n" + decode
        decode += ("s2l1c = decode_member(\"s2l1c.blosc\", table[\"s2l1c\"][0].as_buffer())  # (time, band, y, x)\n")
        note = ("Each array is one binary value: a small container (`NEUCOBL1`, a uint32 header length, a JSON "
                "header `{dtype, shape, frames}`, then one Blosc frame per timestamp) holding the source cubes' "
                "own compressed chunks. The field metadata (`dtype`, `shape`, `bands`, `encoding`) and the JSON "
                "`record` describe each array.")
    body = [
        "",
        CARD_MARKER,
        "",
        f"# SSL4EO-S12 {layout} locations as Parquet",
        "",
        f"{records} locations in {len(shards)} Parquet shards written by `neuco-io convert` "
        f"(tool {manifest.get('tool_version')}, format version {manifest.get('format_version')}) from "
        f"`{manifest['source']['root']}` ({layout} layout). One row per location: `id`, one column per array "
        f"({modalities}; shape `(time, band, y, x)`, native dtype, seasons spring, summer, fall, winter), "
        "`label_<task>` columns, and `record`, the JSON record with bands, dtypes, shapes, metadata and labels. "
        "`manifest.json` lists every shard with its sha256; `labels.parquet` (when present) holds the labels.",
        "",
        note,
        "",
        "```python",
        decode.rstrip("\n"),
        "```",
        "",
        "With neuco-io: `neuco_io.loader.ShardDataset(\"<this folder>\")` streams the locations (PyTorch-ready).",
        "",
        "**Licence**: set `license:` above to the source data's licence before publishing.",
        "",
    ]
    return "\n".join(front + body)
