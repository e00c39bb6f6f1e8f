# Sourced by the other scripts, from the repository root: sets PY, the Python that runs
# pipemail, its tests and linters: $PYTHON when set, else the checkout's .venv when
# bootstrap made one (Debian's own python3 refuses pip installs, PEP 668), else python3.
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi
