"""A mailbox's sending pace: its provider quota, the history every send of it is
counted in (group email copies and the person's own 1:1 mail), and the slow-down
after a "rate limited" answer. The arithmetic is :mod:`pipemail.pacing`'s."""

from datetime import timedelta

from odoo import fields, models
from odoo.tools import SQL

from odoo.addons.pipemail_sync.engine import pacing as pm_pacing

CONSUMER_GMAIL = ("gmail.com", "googlemail.com")
PARAM_PER_MINUTE = "pipemail_campaigns.imap_per_minute"
PARAM_PER_DAY = "pipemail_campaigns.imap_per_day"


class PipemailAccount(models.Model):
    _inherit = "pipemail.account"

    pipemail_blocked_until = fields.Datetime(
        string="Slowed Down Until",
        readonly=True,
        copy=False,
        help="The mail server answered 'too fast': no group email copy leaves before this.",
    )
    pipemail_rate_strikes = fields.Integer(readonly=True, copy=False)

    def _pipemail_quota_kind(self):
        self.ensure_one()
        account = self.sudo()
        if account.provider == "gmail":
            domain = (account.email or "").rpartition("@")[2].lower()
            return "gmail" if domain in CONSUMER_GMAIL else "gmail_workspace"
        if account.provider == "microsoft":
            return "microsoft"
        return "imap"

    def _pipemail_quota(self):
        kind = self._pipemail_quota_kind()
        quota = pm_pacing.PROVIDER_QUOTAS[kind]
        if kind != "imap":
            return quota
        params = self.env["ir.config_parameter"].sudo()

        def number(key, default):
            try:
                return max(1, int(params.get_param(key) or default))
            except ValueError:
                return default

        return pm_pacing.Quota(
            per_minute=number(PARAM_PER_MINUTE, quota.per_minute),
            per_day=number(PARAM_PER_DAY, quota.per_day),
        )

    def _pipemail_send_history(self, now):
        """``[(when, recipients)]`` of this mailbox's last day: copies the quota let
        go (their slot, taken before sending) and every other email it sent."""
        self.ensure_one()
        since = now - timedelta(days=1)
        self.env.flush_all()
        rows = self.env.execute_query(
            SQL(
                """
                SELECT r.slot_date, 1
                  FROM pipemail_group_email_recipient r
                  JOIN pipemail_group_email g ON g.id = r.group_id
                 WHERE g.account_id = %(account)s AND r.slot_date > %(since)s
                UNION ALL
                SELECT COALESCE(o.sent_date, o.sending_since, o.create_date),
                       GREATEST(1, json_array_length(COALESCE(o.rcpt_accepted, '[]')::json))
                  FROM pipemail_outbox o
                 WHERE o.account_id = %(account)s
                   AND o.pipemail_group_recipient_id IS NULL
                   AND o.state IN ('sending', 'sent', 'uncertain')
                   AND COALESCE(o.sent_date, o.sending_since, o.create_date) > %(since)s
                """,
                account=self.id,
                since=since,
            )
        )
        return [(when, count) for when, count in rows]

    def _pipemail_rate_limited(self):
        """The server said "too fast": pause this mailbox's group email copies, longer
        at each answer in a row (1, 2, 4... minutes)."""
        account = self.sudo()
        strikes = account.pipemail_rate_strikes + 1
        account.write(
            {
                "pipemail_rate_strikes": strikes,
                "pipemail_blocked_until": fields.Datetime.now() + pm_pacing.slowdown(strikes),
            }
        )
