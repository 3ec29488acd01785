#!/usr/bin/env bash
# Create .venv with $PYTHON (default python3) unless it exists. A .venv made with another interpreter than
# an explicit PYTHON asks for is recreated, with a message, rather than silently reused.
set -euo pipefail
if [ -x .venv/bin/python ] && [ -n "${PYTHON:-}" ]; then
  describe='import sys; print(sys.version.split()[0], sys.base_prefix)'
  wanted=$("$PYTHON" -c "$describe")
  have=$(.venv/bin/python -c "$describe")
  if [ "$wanted" != "$have" ]; then
    echo "setup: .venv has Python $have; PYTHON=$PYTHON is Python $wanted: recreating .venv" >&2
    "$PYTHON" -m venv --clear .venv
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
