#!/usr/bin/env bash
# Sets everything up and runs the demo: installs Dovecot/PostgreSQL/the engine when
# missing, then starts a demo mailbox on a local Dovecot and, where an Odoo 18 is found,
# a local Odoo with the three addons on http://localhost:8069, the mailbox connected
# and synced. Without Odoo it says what is missing and shows the engine alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/bootstrap.sh
exec "$PY" tools/demo.py "$@"
