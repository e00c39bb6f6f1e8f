from odoo import fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    pipemail_thread_count = fields.Integer(
        string="Email Conversations", compute="_compute_pipemail_thread_count"
    )

    def _pipemail_thread_domain(self):
        """Conversations of this contact, or of any contact of this company."""
        self.ensure_one()
        partners = self.with_context(active_test=False).search(
            [("id", "child_of", self.commercial_partner_id.id if self.is_company else self.id)]
        )
        return [("partner_ids", "in", partners.ids)]

    def _compute_pipemail_thread_count(self):
        Thread = self.env["pipemail.thread"]
        for partner in self:
            if not partner.id:
                partner.pipemail_thread_count = 0
                continue
            partner.pipemail_thread_count = Thread.search_count(partner._pipemail_thread_domain())

    def action_view_pipemail_threads(self):
        self.ensure_one()
        return self.env["pipemail.thread"]._action_for_records(
            self._pipemail_thread_domain(), {}, record=self
        )
