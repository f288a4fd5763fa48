#!/usr/bin/env bash
# Sets everything up and runs prefloop on the embedded default: SQLite, the bundled policy, a local worker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
.venv/bin/prefloop db upgrade
.venv/bin/prefloop bootstrap      # builds the embedded policy and demo prompts once; a no-op afterwards
exec .venv/bin/prefloop serve "$@"
