from odoo import fields, models

USER_FIELDS = frozenset({"name", "color", "company_id"})
"""Users make CRM labels (no mailbox); a mailbox's own labels come from its server."""


class PipemailLabel(models.Model):
    _name = "pipemail.label"
    _inherit = ["pipemail.guarded.mixin"]
    _pipemail_user_create = USER_FIELDS
    _pipemail_user_write = USER_FIELDS
    _description = "Conversation Label"
    _order = "name"

    name = fields.Char(required=True, translate=False)
    color = fields.Integer()
    account_id = fields.Many2one(
        "pipemail.account",
        ondelete="cascade",
        index=True,
        help="Set for labels that come from the mailbox (Gmail labels); empty for CRM labels.",
    )
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, index=True)

    _sql_constraints = [
        ("name_account_uniq", "UNIQUE(name, account_id)", "This label exists already."),
    ]

    def _pipemail_hidden_name(self):
        return self.env._("Label")
