"""An administrator's install: a fresh venv of Odoo's requirements.txt plus the project's
installs the three addons (tools/odoo_requirements.py).

Stock Odoo has no ``packaging``, so this also shows that Odoo checks the manifests'
external_dependencies without it. The venv is cached under ~/.cache/pipemail/: the first
run on a machine builds it (a minute or two), later runs reuse it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import odoo_requirements
import odoo_tier
from loud_skip import loud_skip

LOG_DIR = Path(__file__).resolve().parents[2] / "var"


def test_requirements_install_into_stock_odoo(odoo_found: odoo_tier.OdooInstall) -> None:
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / "odoo-requirements.log"
    log.unlink(missing_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pipemail-odoo-") as tmp:
        try:
            venv, bad = odoo_requirements.run_check(odoo_found, Path(tmp), log)
        except odoo_tier.TierUnavailable as exc:
            loud_skip("ODOO REQUIREMENTS CHECK SKIPPED", str(exc), "See README.md, 'Odoo tier'.")
    how = f"built in {venv.build_seconds:.0f} s" if venv.built_now else "reused"
    print(
        f"odoo requirements: venv {venv.path} ({how}); Odoo's packages changed on purpose: "
        f"{odoo_requirements.raised_pins(venv) or 'none'}; {time.monotonic() - start:.0f} s"
    )
    assert not bad, f"install from requirements.txt not clean (log {log}):\n" + "\n".join(bad[:20])
