from odoo import _, api, fields, models
from odoo.exceptions import UserError


class PipemailLinkWizard(models.TransientModel):
    """Link a conversation by hand: pick a lead, opportunity or project, or take one of
    the suggestions in one click (each shows why it was suggested)."""

    _name = "pipemail.link.wizard"
    _description = "Link a Conversation"

    thread_id = fields.Many2one("pipemail.thread", required=True, ondelete="cascade")
    target = fields.Selection(
        [("crm.lead", "Lead / Opportunity"), ("project.project", "Project")],
        required=True,
        default="crm.lead",
    )
    lead_id = fields.Many2one("crm.lead", string="Lead / Opportunity")
    project_id = fields.Many2one("project.project")
    suggestion_ids = fields.One2many(related="thread_id.suggestion_ids", readonly=True)
    partner_ids = fields.Many2many(related="thread_id.partner_ids", readonly=True)

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        thread = self.env["pipemail.thread"].browse(values.get("thread_id")).exists()
        if thread:
            # opening the wizard is already changing the conversation: holders only
            thread.check_access("write")
            best = thread.suggestion_ids[:1]
            if best.res_model == "crm.lead":
                values.setdefault("lead_id", best.res_id)
            elif best.res_model == "project.project":
                values.setdefault("target", "project.project")
                values.setdefault("project_id", best.res_id)
            elif thread.project_id and not thread.lead_id:
                values.setdefault("target", "project.project")
        return values

    def action_link(self):
        self.ensure_one()
        record = self.lead_id if self.target == "crm.lead" else self.project_id
        if not record:
            raise UserError(_("Choose the record to link this conversation to."))
        self.thread_id.action_link(record)
        return {"type": "ir.actions.act_window_close"}
