#!/usr/bin/env bash
# Creates .venv (if missing) and installs prefloop from this checkout. Usage: scripts/setup-venv.sh [EXTRAS]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The CPU build of torch first: asking for it by exact version keeps pip from pulling CUDA wheels.
.venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
extras="${1:-}"
.venv/bin/pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
