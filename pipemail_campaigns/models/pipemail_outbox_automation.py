from odoo import fields, models


class PipemailOutbox(models.Model):
    """Which automation rule wrote an outgoing email (the report's "automation" kind)."""

    _inherit = "pipemail.outbox"

    pipemail_action_id = fields.Many2one(
        "ir.actions.server",
        string="Automation Action",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
        copy=False,
    )
