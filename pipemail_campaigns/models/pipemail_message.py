"""Incoming mail as the campaigns see it: bounce reports, recognised as the sync stores
new mail, and replies, which change the report's figures of the emails they answer.

A bounce is read by :mod:`pipemail.dsn`; this file finds the email it is about (by
Message-ID, in the mailbox that sent it: a group email copy, a 1:1 email, an
automation or a follow-up), hands it to the one entry point for undelivered email
(``pipemail.outbox._pipemail_mark_undelivered``) and drops the bounce's threading
headers so that it files in a conversation of its own, not in the one with the
customer (where it would also count as the customer's reply).
"""

import logging

from odoo import api, models

from odoo.addons.pipemail_sync.engine import dsn as pm_dsn

_logger = logging.getLogger(__name__)

REPLY_FIELDS = frozenset({"thread_id", "direction", "date"})


class PipemailMessage(models.Model):
    _inherit = "pipemail.message"

    # ------------------------------------------------------------------ bounces

    @api.model
    def _pipemail_screen_incoming(self, account, remote):
        parsed = remote.parsed
        bounce = pm_dsn.parse_parsed(parsed, (account.sudo().email or "",))
        if bounce is None:
            return False
        ids = pm_dsn.related_message_ids(bounce, parsed)
        names = [*ids, *(f"<{i}>" for i in ids)]
        outbox = (
            self.env["pipemail.outbox"]
            .sudo()
            .search(
                [("account_id", "=", account.id), ("message_id_header", "in", names)],
                order="pipemail_group_recipient_id, id desc",
                limit=1,
            )
        )
        if not outbox:
            _logger.info(
                "pipemail: bounce %s of account %s matches no email sent from it",
                parsed.message_id,
                account.id,
            )
            return False
        failed = self._pipemail_failed_recipients(outbox, bounce)
        if not failed:
            return False
        kind = pm_dsn.HARD if any(r.kind == pm_dsn.HARD for r in failed) else pm_dsn.SOFT
        info = " ".join(filter(None, [failed[0].status, failed[0].diagnostic]))[:250]
        outbox._pipemail_mark_undelivered(kind, info or False)
        # its own conversation: not filed under the customer's by In-Reply-To
        parsed.in_reply_to = ""
        parsed.references = []
        return True

    @api.model
    def _pipemail_failed_recipients(self, outbox, bounce):
        """The bounce's failed recipients that the email was sent to; a bounce naming
        one address about an email to one recipient is about them whatever it says."""
        row = outbox.pipemail_group_recipient_id
        if row:
            sent_to = {row.email_normalized}
        else:
            to, cc, bcc = outbox._pipemail_recipients()
            sent_to = {a.email.lower() for a in [*to, *cc, *bcc]}
        failed = [r for r in bounce.recipients if (r.email or "").lower() in sent_to]
        if not failed and len(bounce.recipients) == 1 and len(sent_to) <= 1:
            failed = list(bounce.recipients)
        return failed

    # ------------------------------------------------------------------ replies

    @api.model_create_multi
    def create(self, vals_list):
        messages = super().create(vals_list)
        incoming = messages.filtered(lambda m: m.direction == "in")
        if incoming:
            self.env["pipemail.email.stat"]._pipemail_refresh_threads(incoming.thread_id.ids)
        return messages

    def write(self, vals):
        before = self.thread_id.ids if REPLY_FIELDS & set(vals) else []
        res = super().write(vals)
        if before:
            Stat = self.env["pipemail.email.stat"]
            Stat._pipemail_refresh_threads(list({*before, *self.thread_id.ids}))
        return res

    def unlink(self):
        threads = self.filtered(lambda m: m.direction == "in").thread_id.ids
        res = super().unlink()
        self.env["pipemail.email.stat"]._pipemail_refresh_threads(threads)
        return res
