"""Which Odoo log lines make the Odoo tier unclean (tools/odoo_tier.py problems); needs no
Odoo: the lines are Odoo 18's own, as logged by an Odoo tree holding two enterprise
modules without the modules they depend on."""

from __future__ import annotations

import odoo_tier

UNMET = (
    "2026-12-05 17:20:47,641 30106 INFO db odoo.modules.graph: module account_online_payment: "
    "Unmet dependencies: account_online_synchronization, account_iso20022\n"
    "2026-12-05 17:20:47,641 30106 INFO db odoo.modules.graph: module "
    "spreadsheet_dashboard_marketing_automation: Unmet dependencies: marketing_automation\n"
)
INCONSISTENT = (
    "2026-12-05 17:20:48,287 30106 ERROR db odoo.modules.loading: Some modules have "
    "inconsistent states, some dependencies may be missing: {}\n"
)
FOREIGN = "['account_online_payment', 'spreadsheet_dashboard_marketing_automation']"


def test_foreign_modules_with_unmet_dependencies_are_not_a_problem() -> None:
    assert odoo_tier.problems(UNMET + INCONSISTENT.format(FOREIGN), warnings=True) == []


def test_inconsistent_states_without_unmet_lines_is_a_problem() -> None:
    line = INCONSISTENT.format(FOREIGN)
    assert odoo_tier.problems(line, warnings=False) == [line.rstrip("\n")]


def test_inconsistent_states_naming_an_addon_is_a_problem() -> None:
    unmet = UNMET + UNMET.replace("account_online_payment", "pipemail_sync")
    line = INCONSISTENT.format("['account_online_payment', 'pipemail_sync']")
    assert odoo_tier.problems(unmet + line, warnings=False) == [line.rstrip("\n")]
