#!/usr/bin/env python3
"""Regenerate the addons' translation templates (``<addon>/i18n/<addon>.pot``) with Odoo's
own exporter.

The three addons are installed in a fresh database of a real Odoo 18 (on a private
PostgreSQL started for the run, as ``tools/odoo_tier.py`` does), then each addon is
exported alone with ``odoo-bin --i18n-export=<addon>/i18n/<addon>.pot --modules=<addon>``.
Odoo is found as the tier finds it (``PIPEMAIL_ODOO``, an importable ``odoo``, or
``/opt/odoo18``); ``--odoo`` sets ``PIPEMAIL_ODOO``::

    python tools/export_pot.py --odoo /opt/odoo18

A template whose entries did not change is left alone (only its dates would differ).
Then bring the translations up to date (``msgmerge --update --no-fuzzy-matching``),
translate what is new (``msgattrib --untranslated``) and check with
``msgfmt --check-format``: the exact commands are in CONTRIBUTING.md, Translations.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import odoo_tier
from odoo_tier import ADDONS, ROOT

DATES = re.compile(r'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.M)


def entries(text: str) -> int:
    """Number of translatable entries (msgids other than the header)."""
    return len(re.findall(r"^msgid ", text, re.M)) - 1


def export(odoo: odoo_tier.OdooInstall, workdir: Path, log_path: Path) -> list[str]:
    """Install the addons, export each one's template; returns a line per addon."""
    report = []
    with odoo_tier.private_postgres(workdir) as db:
        args = odoo_tier.odoo_args(odoo, db, "pipemail_pot", workdir)
        out = odoo_tier.run_odoo([*args, "-i", ",".join(ADDONS), "--stop-after-init"], log_path)
        bad = odoo_tier.problems(out, warnings=False)
        if bad:
            raise SystemExit("install failed:\n  " + "\n  ".join(bad) + f"\nlog {log_path}")
        for addon in ADDONS:
            fresh = workdir / f"{addon}.pot"
            odoo_tier.run_odoo(
                [*args, f"--i18n-export={fresh}", f"--modules={addon}", "--stop-after-init"],
                log_path,
            )
            if not fresh.exists():
                raise SystemExit(f"{addon}: Odoo wrote no template; log {log_path}")
            target = ROOT / addon / "i18n" / f"{addon}.pot"
            new = fresh.read_text(encoding="utf-8")
            old = target.read_text(encoding="utf-8") if target.exists() else ""
            if DATES.sub("", new) == DATES.sub("", old):
                report.append(f"{addon}: {entries(new)} entries, unchanged")
                continue
            target.parent.mkdir(exist_ok=True)
            target.write_text(new, encoding="utf-8")
            report.append(f"{addon}: {entries(old)} -> {entries(new)} entries, written")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", help="an Odoo 18 source tree (the folder holding odoo-bin)")
    parser.add_argument("--log", default=str(ROOT / "var/export-pot.log"))
    opts = parser.parse_args(argv)
    if opts.odoo:
        os.environ["PIPEMAIL_ODOO"] = opts.odoo
    try:
        odoo = odoo_tier.find_odoo()
    except odoo_tier.TierUnavailable as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        return 1
    print(f"Odoo {odoo.version} at {odoo.where} (python {odoo.python})")
    odoo_tier.ensure_engine_deps(odoo)
    log_path = Path(opts.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipemail-pot-") as tmp:
        for line in export(odoo, Path(tmp), log_path):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
