#!/usr/bin/env bash
# Set up .venv and run neuco-io end to end on a sample dataset it writes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-demo-output}
rm -rf "$OUT"
run() { echo "+ $*" >&2; "$@"; }
run .venv/bin/neuco-io sample "$OUT/sample" --locations 12 --seed 0
run .venv/bin/neuco-io validate "$OUT/sample"
run .venv/bin/neuco-io validate "$OUT/sample" --deep --format json > "$OUT/validate.json"
echo "demo finished: outputs in $OUT/" >&2
