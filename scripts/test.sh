#!/usr/bin/env bash
# The project's test command (README): the default tier, which fits in 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && . .venv/bin/activate
exec python -m pytest -p no:cacheprovider "$@"
