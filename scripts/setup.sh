#!/usr/bin/env bash
# Sets everything up and runs the demo: installs Dovecot/PostgreSQL/the engine when
# missing, then starts a demo mailbox on a local Dovecot and, where an Odoo 18 is found,
# a local Odoo with the three addons on http://localhost:8069, the mailbox connected
# and synced, served until Ctrl-C (--no-serve, or CI set: stop once synced). Without Odoo
# it says loudly what is missing, then the engine alone syncs the demo mailbox, lists
# the conversations it stored and exits 0. Arguments go to tools/demo.py (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. scripts/python.sh  # after bootstrap: it may have made .venv
exec "$PY" tools/demo.py "$@"
