#!/usr/bin/env bash
# Set up .venv and run neuco-io end to end on a sample dataset it writes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-demo-output}
rm -rf "$OUT"
run() { echo "+ $*" >&2; "$@"; }
NEUCO=.venv/bin/neuco-io
run $NEUCO sample "$OUT/sample" --locations 12 --seed 0
run $NEUCO validate "$OUT/sample"
run $NEUCO validate "$OUT/sample" --deep --format json > "$OUT/validate.json"
run $NEUCO convert "$OUT/sample" "$OUT/shards" --to webdataset --shard-size 50MB
run $NEUCO verify "$OUT/sample" "$OUT/shards"
run $NEUCO embed "$OUT/shards" --encoder mean --out "$OUT/embeddings.csv"
run $NEUCO labels export "$OUT/shards" "$OUT/labels"
run $NEUCO submission check "$OUT/embeddings.csv" --labels "$OUT/labels" --dim 1024
echo "demo finished: outputs in $OUT/" >&2
