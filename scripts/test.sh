#!/usr/bin/env bash
# Runs every test: lint, the engine tier (always) and the Odoo tier (when an Odoo 18
# is found; otherwise the output ends with a loud ODOO TIER SKIPPED line).
# Extra arguments go to pytest, e.g. scripts/test.sh -k sync -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/bootstrap.sh
bash scripts/lint.sh
exec "$PY" -m pytest "$@"
