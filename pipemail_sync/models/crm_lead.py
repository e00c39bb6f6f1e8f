from odoo import api, fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

    pipemail_thread_ids = fields.One2many("pipemail.thread", "lead_id", string="Emails")
    pipemail_thread_count = fields.Integer(
        string="Email Conversations", compute="_compute_pipemail_thread_count"
    )

    def _compute_pipemail_thread_count(self):
        # counted through the user's own access: hidden conversations are not counted
        counts = dict(
            self.env["pipemail.thread"]._read_group(
                [("lead_id", "in", self.ids)], ["lead_id"], ["__count"]
            )
        )
        for lead in self:
            lead.pipemail_thread_count = counts.get(lead, 0)

    @api.model_create_multi
    def create(self, vals_list):
        leads = super().create(vals_list)
        self.env["pipemail.thread"]._link_retroactive(
            leads.filtered(lambda lead: lead.partner_id or lead.email_from)
        )
        return leads

    def write(self, vals):
        res = super().write(vals)
        if "partner_id" in vals or "email_from" in vals:
            self.env["pipemail.thread"]._link_retroactive(self)
        return res

    def action_view_pipemail_threads(self):
        self.ensure_one()
        return self.env["pipemail.thread"]._action_for_records(
            [("lead_id", "=", self.id)], {"default_lead_id": self.id}, record=self
        )
