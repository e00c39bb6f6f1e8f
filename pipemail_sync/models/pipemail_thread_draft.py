"""A conversation shows the caller's own drafts that answer it."""

from odoo import _, api, fields, models
from odoo.exceptions import UserError


class PipemailThread(models.Model):
    _inherit = "pipemail.thread"

    my_draft_count = fields.Integer(string="My Drafts", compute="_compute_my_draft_count")

    @api.depends_context("uid")
    def _compute_my_draft_count(self):
        # the record rule keeps the count to the caller's own drafts
        counts = dict(
            self.env["pipemail.draft"]._read_group(
                [("thread_id", "in", self.ids)], ["thread_id"], ["__count"]
            )
        )
        for thread in self:
            thread.my_draft_count = counts.get(thread, 0)

    def action_open_my_draft(self):
        """Reopen the caller's latest draft of this conversation."""
        self.ensure_one()
        self.check_access("read")
        draft = self.env["pipemail.draft"].search([("thread_id", "=", self.id)], limit=1)
        if not draft:
            raise UserError(_("You have no draft in this conversation."))
        return draft.action_open()
