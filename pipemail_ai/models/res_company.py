from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    pipemail_ai_enabled = fields.Boolean(
        string="Email AI",
        help="Only an administrator turns AI on for the company; users then choose "
        "which AI helpers they want in their preferences.",
    )
