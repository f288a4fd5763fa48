#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (unit, PostgreSQL, browser and slow tests).
# PostgreSQL tests run when PREFLOOP_TEST_POSTGRES_URL is set, e.g.
#   PREFLOOP_TEST_POSTGRES_URL=postgresql+psycopg://root@127.0.0.1:5432/test scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh test
if [ ! -x /usr/bin/chromium ]; then
  # Browser tests drive Debian's Chromium (Playwright cannot download its own browsers offline).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium missing; install Debian's chromium to run the browser tests" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
