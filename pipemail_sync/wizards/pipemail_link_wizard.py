from odoo import _, api, fields, models
from odoo.exceptions import UserError

from .. import access

USER_FIELDS = frozenset({"thread_id", "target", "lead_id", "project_id"})


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
    suggestion_ids = fields.Many2many(
        "pipemail.link.suggestion", compute="_compute_thread_details", string="Suggestions"
    )
    partner_ids = fields.Many2many(
        "res.partner", compute="_compute_thread_details", string="Participants"
    )

    @api.depends("thread_id")
    @api.depends_context("uid")
    def _compute_thread_details(self):
        """Read as the user, and only for a conversation they may link: a wizard made by
        hand over RPC for someone else's conversation shows nothing of it."""
        for wizard in self:
            thread = wizard.thread_id
            if thread and thread._origin.has_access("write"):
                wizard.suggestion_ids = thread.suggestion_ids
                wizard.partner_ids = thread.partner_ids
            else:
                wizard.suggestion_ids = False
                wizard.partner_ids = False

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            access.check_values(self, vals, USER_FIELDS)
        wizards = super().create(vals_list)
        # create() leaves every x2many empty in cache, computed ones too
        wizards.invalidate_recordset(["suggestion_ids", "partner_ids"])
        wizards._check_thread()
        return wizards

    def write(self, vals):
        access.check_values(self, vals, USER_FIELDS)
        res = super().write(vals)
        self._check_thread()
        return res

    def _check_thread(self):
        # linking changes the conversation: holders only, whatever path made the wizard
        if not self.env.su:
            self.sudo().thread_id.with_env(self.env).check_access("write")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        thread = self.env["pipemail.thread"].browse(values.get("thread_id")).exists()
        if thread:
            # opening the wizard is already changing the conversation: holders only
            thread.check_access("write")
            best = thread.suggestion_ids.filtered(lambda s: s._record())[:1]
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
