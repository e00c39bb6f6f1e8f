"""18.0.2.0.0: the record rules of issue 9 reach databases installed before it.

The rules are shipped in a noupdate file (an administrator may tighten them), so an
upgrade would keep the old, too wide ones: folders writable by team members, write-back
rows readable with their Private messages' subjects. This pre-migration lets the
upgrade rewrite this module's rules once; the file marks them noupdate again as it
loads them. Access rights (ir.model.access) are not noupdate: the upgrade drops the
removed create/write rows by itself.
"""

from odoo.tools import SQL


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        SQL(
            "UPDATE ir_model_data SET noupdate = false"
            " WHERE module = 'pipemail_sync' AND model = 'ir.rule'"
        )
    )
