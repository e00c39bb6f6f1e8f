"""18.0.2.0.0: the record rules of issue 9 reach databases installed before it.

The rules are shipped in a noupdate file (an administrator may tighten them), and an
upgrade never rewrites an existing record of such a file: the old, too wide rules
would stay (folders writable by team members, write-back rows readable with their
Private messages' subjects). This post-migration loads the file once more as an
install would, which rewrites this module's rules; later upgrades leave them alone
again. Access rights (ir.model.access) are not noupdate: the upgrade drops the removed
create/write rows by itself.
"""

from odoo import SUPERUSER_ID, api
from odoo.tools import SQL, convert_file


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    convert_file(
        env, "pipemail_sync", "security/pipemail_rules.xml", {}, mode="init", noupdate=True
    )
    cr.execute(
        SQL(
            "UPDATE ir_model_data SET noupdate = true"
            " WHERE module = 'pipemail_sync' AND model = 'ir.rule'"
        )
    )
