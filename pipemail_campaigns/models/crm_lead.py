from odoo import fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

    pipemail_followup_ids = fields.One2many(
        "pipemail.followup", "lead_id", string="Follow-ups If No Reply"
    )
    pipemail_followup_count = fields.Integer(
        string="Follow-ups", compute="_compute_pipemail_followup_count"
    )

    def _compute_pipemail_followup_count(self):
        # through the reader's own access: only their own follow-ups are counted
        counts = dict(
            self.env["pipemail.followup"]._read_group(
                [("lead_id", "in", self.ids), ("state", "=", "pending")], ["lead_id"], ["__count"]
            )
        )
        for lead in self:
            lead.pipemail_followup_count = counts.get(lead, 0)

    def write(self, vals):
        res = super().write(vals)
        if {"active", "stage_id", "probability"} & set(vals):
            # won, lost or archived: pending follow-ups stop now (the cron checks again)
            closed = self.filtered(
                lambda lead: not lead.active or lead.stage_id.is_won or lead.probability >= 100
            )
            if closed:
                self.env["pipemail.followup"].sudo().search(
                    [("lead_id", "in", closed.ids), ("state", "=", "pending")]
                )._pipemail_cancel("closed")
        return res
