#!/usr/bin/env bash
# Runs every test: lint, the engine tier (always) and the Odoo tier (when an Odoo 18
# is found; otherwise the output ends with a loud ODOO TIER SKIPPED line).
# Extra arguments go to pytest, e.g. scripts/test.sh -k sync -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. scripts/python.sh  # after bootstrap: it may have made .venv
bash scripts/lint.sh
exec "$PY" -m pytest "$@"
