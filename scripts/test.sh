#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (unit, PostgreSQL, browser and slow tests), or with
# --fast the edit-test loop's lane: everything but the slow and the browser tests, on every core
# (pytest-xdist; add -n 0 to run in one process, e.g. with a debugger).
# PostgreSQL tests run when PREFLOOP_TEST_POSTGRES_URL is set, e.g.
#   PREFLOOP_TEST_POSTGRES_URL=postgresql+psycopg://root@127.0.0.1:5432/test scripts/test.sh
# Other arguments go to pytest: scripts/test.sh --fast tests/queue -x
set -euo pipefail
cd "$(dirname "$0")/.."
fast=false
args=()
for arg in "$@"; do
  if [ "$arg" = --fast ]; then fast=true; else args+=("$arg"); fi
done
scripts/setup-venv.sh test
if $fast; then
  exec .venv/bin/python -m pytest -n auto -m "not slow and not browser" "${args[@]}"
fi
if [ ! -x /usr/bin/chromium ]; then
  # Browser tests drive Debian's Chromium (Playwright cannot download its own browsers offline).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium missing; install Debian's chromium to run the browser tests" >&2
  fi
fi
exec .venv/bin/python -m pytest "${args[@]}"
