"""18.0.2.0.0: the AI API key moves from a clear system parameter to an encrypted one.

A post-migration script rather than a hook: it runs exactly once, on the upgrade that
crosses this version, after the new code is loaded (so the model's helper encrypts it
with the same key and context the settings use); an install has nothing to migrate.
"""

from odoo import SUPERUSER_ID, api
from odoo.tools import SQL


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["res.config.settings"]._pipemail_ai_migrate_api_key()
    # The field was stored on the settings' transient table, so every settings save
    # left the clear key in a row there until the vacuum; the field is computed now and
    # Odoo keeps the orphan column, so drop it with what it holds.
    cr.execute(SQL("ALTER TABLE res_config_settings DROP COLUMN IF EXISTS pipemail_ai_api_key"))
