"""What pipemail_campaigns adds to an outgoing email: the group email recipient row of
a copy (RFC 8058 one-click unsubscribe headers), the bounce report received after it
left, and keeping the email's row of report figures current."""

from odoo import _, api, fields, models

from odoo.addons.pipemail_sync.engine import dsn as pm_dsn
from odoo.addons.pipemail_sync.engine import unsubscribe as pm_unsubscribe

UNDELIVERED = ("failed", "cancelled")
"""Outbox states of an email that did not reach its recipients."""
REPORTED = frozenset(
    {
        "sent_date",
        "rcpt_refused",
        "tracking",
        "lead_id",
        "thread_id",
        "user_id",
        "account_id",
        "email_to",
        "pipemail_action_id",
        "pipemail_group_recipient_id",
        "pipemail_bounce_type",
    }
)
"""The columns the report's figures are read from (``pipemail.email.stat``)."""


class PipemailOutbox(models.Model):
    _inherit = "pipemail.outbox"

    pipemail_action_id = fields.Many2one(
        "ir.actions.server",
        string="Automation Action",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
        copy=False,
    )  # the automation rule that wrote this email (the report's "automation" kind)
    pipemail_group_recipient_id = fields.Many2one(
        "pipemail.group.email.recipient",
        string="Group Email Recipient",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
        copy=False,
    )
    pipemail_bounce_type = fields.Selection(
        [(pm_dsn.HARD, "Hard"), (pm_dsn.SOFT, "Soft")],
        string="Bounce",
        readonly=True,
        copy=False,
        help="A bounce report received for this email after it left: hard (the address "
        "does not work, the email counts as not delivered) or soft (delayed, full "
        "mailbox: it may still arrive).",
    )
    pipemail_bounce_info = fields.Char(string="Bounce Details", readonly=True, copy=False)

    @api.model_create_multi
    def create(self, vals_list):
        outboxes = super().create(vals_list)
        sent = outboxes.filtered("sent_date")
        if sent:
            self.env["pipemail.email.stat"]._pipemail_refresh(sent.ids)
        return outboxes

    def write(self, vals):
        res = super().write(vals)
        if REPORTED & set(vals):
            self.env["pipemail.email.stat"]._pipemail_refresh(self.ids)
        return res

    # ------------------------------------------------------------------ not delivered

    def _pipemail_is_undelivered(self):
        """The one rule for "this email did not reach its recipient": the server refused
        it or it was cancelled before leaving, or a hard bounce came back."""
        self.ensure_one()
        outbox = self.sudo()
        return outbox.state in UNDELIVERED or outbox.pipemail_bounce_type == pm_dsn.HARD

    def _pipemail_mark_undelivered(self, kind, info=False):
        """The one entry point for a bounce report received after the email left
        (:mod:`pipemail.dsn` read it during the sync): the email, its group email
        recipient row, its report figures, and its follow-ups, which stop now when the
        bounce is hard. A soft bounce never replaces a hard one."""
        for outbox in self.sudo():
            if outbox.pipemail_bounce_type != pm_dsn.HARD:
                outbox.write({"pipemail_bounce_type": kind, "pipemail_bounce_info": info})
            row = outbox.pipemail_group_recipient_id
            if row and row.bounce_type != pm_dsn.HARD:
                row.write({"bounce_type": kind, "bounce_info": info})
        undelivered = self.filtered(lambda o: o._pipemail_is_undelivered())
        if undelivered:
            self.env["pipemail.followup"]._pipemail_cancel_for_undelivered(undelivered)

    # ------------------------------------------------------------------ undo / edit

    def _pipemail_take_back(self):
        """Undo send or Edit on a scheduled email: its follow-ups go with it (the
        composer gets their options back, see _pipemail_composer_values)."""
        result = super()._pipemail_take_back()
        pending = (
            self.env["pipemail.followup"]
            .sudo()
            .search([("outbox_id", "in", self.ids), ("state", "=", "pending")])
        )
        pending._pipemail_cancel("user", note=_("The email was taken back."))
        return result

    def _pipemail_composer_values(self):
        values = super()._pipemail_composer_values()
        # the composer's own option (an automation's follow-ups are the rule's)
        followup = (
            self.env["pipemail.followup"]
            .sudo()
            .search(
                [("outbox_id", "in", self.ids), ("step", "=", 1), ("action_id", "=", False)],
                order="id desc",
                limit=1,
            )
        )
        if followup:
            values.update(
                {
                    "followup_template_id": followup.template_id.id,
                    "followup_days": followup.days,
                    "followup_business_days": followup.business_days,
                    "followup_steps": followup.steps_total,
                }
            )
        return values

    # ------------------------------------------------------------------ group email copies

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
