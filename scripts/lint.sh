#!/usr/bin/env bash
# Ruff lint and format check over the whole repository (configuration in pyproject.toml).
# scripts/lint.sh --fix rewrites what ruff can fix.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--fix" ]; then
  "$PY" -m ruff check --fix .
  "$PY" -m ruff format .
else
  "$PY" -m ruff check --output-format concise .
  "$PY" -m ruff format --check .
fi
