#!/usr/bin/env bash
# Set up .venv with the test extras (and the CPU build of torch 2.13.0), then run ruff and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# torch is optional for users; the tests exercise the torch integration. 2.13.0 is the CPU build on this
# machine's disk: an unpinned torch would pull a multi-GB CUDA build.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
bash scripts/setup.sh test
.venv/bin/ruff check neuco_io tests benchmarks scripts
.venv/bin/python -m pytest -q "$@"
