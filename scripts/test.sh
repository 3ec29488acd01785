#!/usr/bin/env bash
# Set up .venv with the test extras (and the CPU build of torch 2.13.0), then run ruff and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- headless browser for tests/test_report.py (validate --report) ---------------------------------
# The HTML report is rendered by a real headless Chromium (Debian's `chromium` package). In CI, running as
# root with apt-get, install it; elsewhere the test skips and says why (install it with apt-get yourself).
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || echo "scripts/test.sh: could not install chromium; the browser test of the report will skip" >&2
fi
# --- end of the headless browser block ----------------------------------------------------------------

bash scripts/setup.sh
# torch is optional for users; the tests exercise the torch integration. 2.13.0 is the CPU build on this
# machine's disk: an unpinned torch would pull a multi-GB CUDA build.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
bash scripts/setup.sh test
.venv/bin/ruff check neuco_io tests benchmarks scripts
.venv/bin/python -m pytest -q "$@"
