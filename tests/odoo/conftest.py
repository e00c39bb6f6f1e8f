"""The Odoo tier: the addons' own tests inside a real Odoo 18, run as one pytest test.

When no Odoo 18 is found the tier is skipped, and the run says so in capitals at the
end of the output (just above pytest's closing counts line, which stays last for tools
that read it), so nobody mistakes an engine-only run for a full one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import odoo_tier  # noqa: E402

_SKIPPED: list[str] = []


@pytest.fixture(scope="session")
def odoo_install() -> odoo_tier.OdooInstall:
    try:
        odoo = odoo_tier.find_odoo()
    except odoo_tier.TierUnavailable as exc:
        _SKIPPED.append(str(exc))
        pytest.skip(f"ODOO TIER SKIPPED: {exc}")
    odoo_tier.ensure_engine_deps(odoo)
    return odoo


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):  # noqa: ANN001, ANN201 - pytest hook
    # Outermost wrapper: the banner comes after pytest's short test summary, right
    # above the final "N passed, N skipped" line, where nobody scrolls past it.
    yield
    if _SKIPPED:
        terminalreporter.write_sep("!", "ODOO TIER SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"ODOO TIER SKIPPED: {_SKIPPED[0]}", red=True, bold=True)
        terminalreporter.write_line("Only the engine tier ran. See README.md, 'Odoo tier'.")
