"""A copy of a group email is an ordinary outbox row that knows its recipient row:
it carries the RFC 8058 one-click unsubscribe headers."""

from odoo import fields, models

from odoo.addons.pipemail_sync.engine import unsubscribe as pm_unsubscribe


class PipemailOutbox(models.Model):
    _inherit = "pipemail.outbox"

    pipemail_group_recipient_id = fields.Many2one(
        "pipemail.group.email.recipient",
        string="Group Email Recipient",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
        copy=False,
    )

    def _pipemail_untracked_prefixes(self, base):
        return [*super()._pipemail_untracked_prefixes(base), base + pm_unsubscribe.UNSUBSCRIBE_PATH]

    def _pipemail_extra_headers(self):
        headers = super()._pipemail_extra_headers()
        recipient = self.sudo().pipemail_group_recipient_id
        if recipient:
            headers.update(
                pm_unsubscribe.list_unsubscribe_headers(recipient._pipemail_unsubscribe_url())
            )
        return headers
