"""Bounces of group email copies, recognised as the sync stores new mail.

The reading is :mod:`pipemail.dsn`'s; this file finds the copy the bounce is about
(by Message-ID, in the mailbox that sent it), marks its recipient bounced, hard or
soft, and drops the bounce's threading headers so that it files in a conversation of
its own, not in the one with the customer.
"""

import logging

from odoo import api, models

from odoo.addons.pipemail_sync.engine import dsn as pm_dsn

_logger = logging.getLogger(__name__)


class PipemailMessage(models.Model):
    _inherit = "pipemail.message"

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
                [
                    ("account_id", "=", account.id),
                    ("message_id_header", "in", names),
                    ("pipemail_group_recipient_id", "!=", False),
                ],
                limit=1,
            )
        )
        if not outbox:
            _logger.info(
                "pipemail: bounce %s of account %s matches no group email copy",
                parsed.message_id,
                account.id,
            )
            return False
        row = outbox.pipemail_group_recipient_id
        failed = [r for r in bounce.recipients if r.email == row.email_normalized]
        if not failed and len(bounce.recipients) == 1:
            failed = list(bounce.recipients)  # the copy had one recipient: it is them
        if not failed:
            return False
        kind = pm_dsn.HARD if any(r.kind == pm_dsn.HARD for r in failed) else pm_dsn.SOFT
        if row.bounce_type != pm_dsn.HARD:
            row.write(
                {
                    "bounce_type": kind,
                    "bounce_info": " ".join(filter(None, [failed[0].status, failed[0].diagnostic]))[
                        :250
                    ]
                    or False,
                }
            )
        # its own conversation: not filed under the customer's by In-Reply-To
        parsed.in_reply_to = ""
        parsed.references = []
        return True
