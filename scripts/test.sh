#!/usr/bin/env bash
# The project's test command (README): the default tier, which fits in 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && . .venv/bin/activate
# Static checks first: a lint or type error fails the run like a test does.
python -m ruff check nbml tests benchmarks
python -m mypy nbml
# The documentation site (mkdocs.yml, docs/): built with warnings as errors, into a folder thrown away after.
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
# The sidebar's TypeScript: eslint and prettier, from labextension/node_modules (.ci/steps/50-labextension.sh).
(cd labextension && { [ -x node_modules/.bin/eslint ] || jlpm install; } && jlpm run lint:check)
# The default tier leaves out tests marked slow; pass -m slow (or -m "") to choose otherwise. The 15 slowest
# tests are listed at the end; the session fails if a process a test started outlives it (tests/conftest.py).
if printf '%s\n' "$@" | grep -qx -- '-m'; then
    exec python -m pytest -p no:cacheprovider --durations=15 "$@"
fi
exec python -m pytest -p no:cacheprovider --durations=15 -m "not slow" "$@"
