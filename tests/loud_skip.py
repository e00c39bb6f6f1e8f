"""Skips that must not pass unnoticed: a missing Odoo, a missing corpus.

A test that cannot run because a whole part of the suite is absent calls
``loud_skip(title, why, hint)`` instead of ``pytest.skip``. The run then ends with one
banner per title, in capitals, just above pytest's closing counts line (which stays last
for tools that read it; tests/conftest.py prints them), so nobody mistakes a partial run
for a full one.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

_BANNERS: dict[str, tuple[str, str]] = {}


def in_ci() -> bool:
    """CI set (CI=true), as tools/demo.py reads it: there, nothing may be skipped away."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def loud_skip(title: str, why: str, hint: str = "") -> NoReturn:
    """Skip the current test and show ``TITLE: why`` (and ``hint``) at the end of the run."""
    _BANNERS.setdefault(title, (why, hint))
    pytest.skip(f"{title}: {why}")


def write_banners(terminalreporter: pytest.TerminalReporter) -> None:
    for title, (why, hint) in _BANNERS.items():
        terminalreporter.write_sep("!", title, red=True, bold=True)
        terminalreporter.write_line(f"{title}: {why}", red=True, bold=True)
        if hint:
            terminalreporter.write_line(hint)
