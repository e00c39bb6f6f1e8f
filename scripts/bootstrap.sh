#!/usr/bin/env bash
# Installs what pipemail's tests and demo need on a Debian machine, and nothing twice:
# Debian's Dovecot and PostgreSQL (real servers the tests start privately) and the
# engine with its test extras. Safe to run again; prints only what it changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
for pkg in dovecot-imapd dovecot-core postgresql openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing Debian packages: ${need_apt[*]} (run: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install ${need_apt[*]}"
  apt-get update -qq
  # policy-rc.d keeps the system services stopped: tests start their own private ones.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The packaged services are not used; stop them if the install started them.
for svc in dovecot postgresql; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done

if ! "$PY" -c "import pipemail, imapclient, msal, google.auth, lxml, openai, aiosmtpd, hypothesis, pytest, ruff, pylint_odoo" >/dev/null 2>&1; then
  echo "bootstrap: pip install -e .[test,dev]"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[test,dev]"
fi
