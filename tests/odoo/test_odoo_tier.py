"""Install, test, upgrade and uninstall the three addons in a real Odoo 18."""

from __future__ import annotations

import tempfile
from pathlib import Path

import odoo_tier

LOG_DIR = Path(__file__).resolve().parents[2] / "var"


def test_addon_tests_pass_in_fresh_database(odoo_install: odoo_tier.OdooInstall) -> None:
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / "odoo-tests.log"
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipemail-odoo-") as tmp:
        ran, failed, errors, bad = odoo_tier.run_tests(odoo_install, Path(tmp), log)
    print(f"odoo tier: Odoo {odoo_install.version}: {ran} tests, {failed} failed, {errors} errors")
    assert ran > 0, f"no Odoo test ran; see {log}"
    assert (failed, errors) == (0, 0), f"Odoo tests failed; see {log}"
    assert not bad, "errors in the Odoo log:\n" + "\n".join(bad[:20])


def test_install_upgrade_uninstall_log_clean(odoo_install: odoo_tier.OdooInstall) -> None:
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / "odoo-lifecycle.log"
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipemail-odoo-") as tmp:
        bad = odoo_tier.run_lifecycle(odoo_install, Path(tmp), log)
    assert not bad, "install/upgrade/uninstall not clean:\n" + "\n".join(bad[:20])
