from odoo import _, api, fields, models
from odoo.exceptions import UserError

LINKABLE_MODELS = [("crm.lead", "Lead / Opportunity"), ("project.project", "Project")]


class PipemailLinkSuggestion(models.Model):
    """A record the conversation may belong to, with the reason, for one-click linking."""

    _name = "pipemail.link.suggestion"
    _description = "Suggested Link for a Conversation"
    _order = "score desc, id"

    thread_id = fields.Many2one("pipemail.thread", required=True, ondelete="cascade", index=True)
    res_model = fields.Selection(LINKABLE_MODELS, required=True)
    res_id = fields.Many2oneReference(model_field="res_model", required=True)
    score = fields.Float(digits=(6, 3))
    reason = fields.Char()
    record_name = fields.Char(compute="_compute_record_name")

    @api.depends("res_model", "res_id")
    def _compute_record_name(self):
        for suggestion in self:
            record = suggestion._record()
            suggestion.record_name = record.display_name if record else False

    def _record(self):
        self.ensure_one()
        if not self.res_model or not self.res_id:
            return False
        record = self.env[self.res_model].browse(self.res_id).exists()
        if not record or not record.has_access("read"):
            return False
        return record

    def action_accept(self):
        self.ensure_one()
        record = self._record()
        if not record:
            raise UserError(_("This record no longer exists or you cannot see it."))
        return self.thread_id.action_link(record)
