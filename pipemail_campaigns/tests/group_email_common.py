"""What the group email test classes share."""

from odoo import Command
from odoo.tests import new_test_user


def company_user(env, login, groups):
    """An internal (or portal) user of the current company, mailed at ourco.example."""
    company = env.company
    return new_test_user(
        env,
        login,
        name=login.title(),
        email=f"{login}@ourco.example",
        groups=groups,
        company_id=company.id,
        company_ids=[Command.set(company.ids)],
    )
