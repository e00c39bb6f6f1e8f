#!/usr/bin/env bash
# Ruff lint and format check over the whole repository, mypy (strict) over the engine
# pipemail/ (configuration of both in pyproject.toml), then pylint-odoo's mandatory
# checks over the addons. .pre-commit-config.yaml runs the same commands.
# scripts/lint.sh --fix rewrites what ruff can fix.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python.sh
if [ "${1:-}" = "--fix" ]; then
  "$PY" -m ruff check --fix .
  "$PY" -m ruff format .
else
  "$PY" -m ruff check --output-format concise .
  "$PY" -m ruff format --check .
fi
"$PY" -m mypy  # files and options: [tool.mypy] in pyproject.toml
# pylint-odoo's mandatory checks over the addons (.pylintrc-mandatory)
"$PY" -m pylint --rcfile=.pylintrc-mandatory pipemail_sync pipemail_ai pipemail_campaigns
