#!/usr/bin/env bash
# Create .venv (if needed) and install neuco-io into it with the given extras.
# Usage: scripts/setup.sh [extras]   e.g. scripts/setup.sh test,dask
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh  # .venv with $PYTHON (recreated if PYTHON names another interpreter)
export PYTHONWARNINGS=ignore  # setuptools build-backend notices are noise here
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ -n "${1:-}" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$1]"
else
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
