from odoo import api, fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    pipemail_ai_summary = fields.Boolean(string="AI thread summaries", default=True)
    pipemail_ai_compose = fields.Boolean(string="AI compose", default=True)
    pipemail_ai_suggest = fields.Boolean(string="AI suggested replies", default=True)
    pipemail_ai_available = fields.Boolean(related="company_id.pipemail_ai_enabled")

    @property
    def SELF_READABLE_FIELDS(self):
        return [
            *super().SELF_READABLE_FIELDS,
            *self._pipemail_ai_pref_fields(),
            "pipemail_ai_available",
        ]

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return [*super().SELF_WRITEABLE_FIELDS, *self._pipemail_ai_pref_fields()]

    @api.model
    def _pipemail_ai_pref_fields(self):
        return ["pipemail_ai_summary", "pipemail_ai_compose", "pipemail_ai_suggest"]
