from odoo import fields, models


class BaseAutomation(models.Model):
    _inherit = "base.automation"

    pipemail_category = fields.Selection(
        [("email", "Email")],
        string="Category",
        help="Ready-made automations are grouped by category; they stay inactive until "
        "an administrator turns them on.",
    )
