"""The Odoo tier: the addons' own tests inside a real Odoo 18, run as one pytest test.

When no Odoo 18 is found the tier is skipped loudly (tests/loud_skip.py): the run ends
with an ODOO TIER SKIPPED banner, so nobody mistakes an engine-only run for a full one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from loud_skip import loud_skip

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import odoo_tier  # noqa: E402


@pytest.fixture(scope="session")
def odoo_found() -> odoo_tier.OdooInstall:
    """The Odoo 18 found (README.md, 'Odoo tier'), as it is."""
    try:
        return odoo_tier.find_odoo()
    except odoo_tier.TierUnavailable as exc:
        loud_skip(
            "ODOO TIER SKIPPED",
            str(exc),
            "Only the engine tier ran. See README.md, 'Odoo tier'.",
        )


@pytest.fixture(scope="session")
def odoo_install(odoo_found: odoo_tier.OdooInstall) -> odoo_tier.OdooInstall:
    """The Odoo 18 found, with the engine's packages in its Python."""
    odoo_tier.ensure_engine_deps(odoo_found)
    return odoo_found
