#!/usr/bin/env bash
# Run ruff and the whole test suite on two stacks:
#   .venv         the newest releases (zarr 3, current xarray/numpy/pandas) + the CPU build of torch 2.13.0
#   .venv-pinned  NeuCo-Bench's own environment (scripts/pinned-stack.txt: zarr 2.18.0, numcodecs 0.15.1,
#                 xarray 2024.3.0, numpy 2.2.5, pandas 2.2.3, torch, the evaluator's packages); installing
#                 neuco-io there must move none of those pins, which is checked before its tests run.
# Arguments go to both pytest runs. STACKS="newest" or STACKS="pinned" runs one.
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

PYTHON=${PYTHON:-python3}
STACKS=${STACKS:-"newest pinned"}
pip_quiet=(--quiet --disable-pip-version-check)
export PYTHONWARNINGS=ignore  # pip and setuptools notices are noise here; pytest sets its own filters
if [ "${CI:-}" = "true" ]; then
  export NEUCO_IO_REQUIRE_NEUCO_BENCH=1  # the NeuCo-Bench tests must run in CI, not skip
fi

setup_newest() {
  bash scripts/setup.sh
  # torch is optional for users; the tests exercise the torch integration. 2.13.0 is the CPU build on this
  # machine's disk: an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install "${pip_quiet[@]}" "torch==2.13.0"
  bash scripts/setup.sh test
}

setup_pinned() {
  [ -x .venv-pinned/bin/python ] || "$PYTHON" -m venv .venv-pinned
  .venv-pinned/bin/python -m pip install "${pip_quiet[@]}" --upgrade pip
  .venv-pinned/bin/python -m pip install "${pip_quiet[@]}" -r scripts/pinned-stack.txt
  .venv-pinned/bin/python -m pip install "${pip_quiet[@]}" -e .
  .venv-pinned/bin/python scripts/check_pins.py scripts/pinned-stack.txt  # plain install: nothing moved
  .venv-pinned/bin/python -m pip install "${pip_quiet[@]}" -e ".[test]"
  # test tools may lift a pin of theirs (moto's cfn-lint wants a newer PyYAML); the data stack must not move
  .venv-pinned/bin/python scripts/check_pins.py scripts/pinned-stack.txt zarr numcodecs xarray numpy pandas torch
}

# The stacks run side by side (each pytest is mostly one process, and the machine has cores to spare),
# each in its own temporary folder and log; SERIAL_STACKS=1 runs them one after the other.
mkdir -p .test-results
rm -f .test-results/*.status .test-results/*.xml .test-results/*.log
run_stack() {  # STACK [pytest args]: setup, then the suite; prints "SECONDS EXIT" last
  local stack=$1; shift
  local venv=.venv started=$SECONDS rc=0
  [ "$stack" = pinned ] && venv=.venv-pinned
  "setup_$stack"
  if [ "$stack" = newest ]; then
    .venv/bin/ruff check neuco_io tests benchmarks scripts || rc=$?
  fi
  echo "== tests on the $stack stack ($($venv/bin/python -c 'import zarr, xarray, numpy, pandas; print(f"zarr {zarr.__version__}, xarray {xarray.__version__}, numpy {numpy.__version__}, pandas {pandas.__version__}")'))"
  local basetemp prc=0
  basetemp=$(mktemp -d "${TMPDIR:-/tmp}/neuco-io-tests-$stack.XXXXXX")
  PYTHONWARNINGS= NEUCO_IO_STACK=$stack $venv/bin/python -m pytest -q --basetemp="$basetemp" \
    --junitxml=".test-results/$stack.xml" "$@" || prc=$?
  rm -rf "$basetemp"
  [ "$rc" -ne 0 ] || rc=$prc
  echo "$((SECONDS - started)) $rc" > ".test-results/$stack.status"
}

status=0
summary=()
stacks=($STACKS)
if [ "${#stacks[@]}" -gt 1 ] && [ "${SERIAL_STACKS:-0}" != 1 ]; then
  pids=()
  for stack in "${stacks[@]}"; do
    run_stack "$stack" "$@" > ".test-results/$stack.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!stacks[@]}"; do
    wait "${pids[$i]}" || true
    echo "==== ${stacks[$i]} stack (log: .test-results/${stacks[$i]}.log)"
    cat ".test-results/${stacks[$i]}.log"
  done
else
  for stack in "${stacks[@]}"; do run_stack "$stack" "$@"; done
fi
for stack in "${stacks[@]}"; do
  read -r seconds rc < ".test-results/$stack.status" 2>/dev/null || { seconds=0; rc=1; }
  summary+=("$stack" "$rc" "$seconds")
  [ "$rc" -eq 0 ] || status=$rc
done
# one closing line for both runs: "tests: N passed, N failed, N skipped"
python3 scripts/test_summary.py "${summary[@]}"
exit $status
