"""A group email: one text, one copy per recipient, each sent alone from the user's
mailbox through the outbox (``pipemail.outbox``), paced to the provider's quota.

The record is written by the server only: the wizard (``pipemail.group.email.wizard``)
checks the caller and creates it, the buttons check that the caller wrote it. Users
read their own group emails and nothing else (see security/).

Copies are made when they are due, not all at once: the sending cron takes the next
recipients the mailbox's quota allows, builds each outbox row (its own Message-ID,
tracking tokens and List-Unsubscribe), commits, and lets the outbox send it. Pause
stops taking recipients, Cancel drops those not taken yet; a copy already handed
to the outbox is never withdrawn.
"""

import logging
from datetime import timedelta

from odoo import _, api, fields, models, modules
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from odoo.addons.pipemail_sync.engine import pacing as pm_pacing

_logger = logging.getLogger(__name__)

STATES = [
    ("scheduled", "Scheduled"),
    ("sending", "Sending"),
    ("paused", "Paused"),
    ("done", "Done"),
    ("cancelled", "Cancelled"),
]
BATCH = 100
"""Copies one cron run takes at most (the quota usually allows fewer)."""
PACING_LOCK = 0x706D6763  # "pmgc": the advisory-lock namespace of mailbox pacing


class PipemailGroupEmail(models.Model):
    _name = "pipemail.group.email"
    _inherit = ["pipemail.guarded.mixin"]
    _description = "Group Email"
    _order = "id desc"
    _rec_name = "subject"

    user_id = fields.Many2one(
        "res.users", string="Sent By", required=True, readonly=True, index=True, ondelete="cascade"
    )
    account_id = fields.Many2one(
        "pipemail.account", string="From Mailbox", required=True, readonly=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="account_id.company_id", store=True)
    state = fields.Selection(STATES, required=True, default="scheduled", readonly=True, index=True)
    source_model = fields.Char(string="Sent From", readonly=True)
    template_id = fields.Many2one("mail.template", readonly=True, ondelete="set null")
    subject = fields.Char(readonly=True)
    body_html = fields.Html(string="Text", readonly=True, sanitize=True)
    tracking = fields.Boolean(string="Track Opens and Clicks", readonly=True)
    followup_template_id = fields.Many2one(
        "mail.template",
        string="Follow Up If No Reply",
        readonly=True,
        ondelete="set null",
        help="Sent to each recipient who has not answered their copy in time, as a reply "
        "in that conversation.",
    )
    followup_days = fields.Integer(string="After (days)", readonly=True)
    followup_business_days = fields.Boolean(string="Business Days Only", readonly=True)
    followup_steps = fields.Integer(string="Follow-ups At Most", readonly=True)
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "pipemail_group_email_attachment_rel",
        "group_id",
        "attachment_id",
        string="Attachments",
        readonly=True,
    )
    scheduled_date = fields.Datetime(string="Send At", readonly=True, index=True)
    date_done = fields.Datetime(string="Finished", readonly=True)
    eta = fields.Datetime(
        string="Expected End",
        readonly=True,
        help="When the last copy should leave, given the mailbox's sending quota.",
    )
    recipient_ids = fields.One2many(
        "pipemail.group.email.recipient", "group_id", string="Recipients", readonly=True
    )
    count_total = fields.Integer(string="Total", compute="_compute_counts")
    count_excluded = fields.Integer(string="Excluded", compute="_compute_counts")
    count_waiting = fields.Integer(string="Waiting", compute="_compute_counts")
    count_queued = fields.Integer(string="Queued", compute="_compute_counts")
    count_sent = fields.Integer(string="Sent", compute="_compute_counts")
    count_failed = fields.Integer(string="Failed", compute="_compute_counts")
    count_bounced = fields.Integer(string="Bounced", compute="_compute_counts")
    count_opened = fields.Integer(string="Opened", compute="_compute_counts")
    count_clicked = fields.Integer(string="Clicked", compute="_compute_counts")
    count_replied = fields.Integer(string="Replied", compute="_compute_counts")
    count_cancelled = fields.Integer(string="Cancelled", compute="_compute_counts")
    progress = fields.Float(compute="_compute_counts", help="Copies sent, in percent.")

    @api.depends(
        "recipient_ids.cancelled", "recipient_ids.outbox_id.state", "recipient_ids.bounce_type"
    )
    def _compute_counts(self):
        for group in self:
            rows = group.recipient_ids.sudo()
            counts = dict.fromkeys(
                (
                    "excluded",
                    "waiting",
                    "queued",
                    "sent",
                    "failed",
                    "bounced",
                    "cancelled",
                ),
                0,
            )
            for row in rows:
                counts[row.status if row.status in counts else "queued"] += 1
            group.count_total = len(rows)
            group.count_excluded = counts["excluded"]
            group.count_waiting = counts["waiting"]
            group.count_queued = counts["queued"]
            group.count_sent = counts["sent"] + counts["bounced"]
            group.count_failed = counts["failed"]
            group.count_bounced = counts["bounced"]
            group.count_cancelled = counts["cancelled"]
            group.count_opened = len(rows.filtered("opened"))
            group.count_clicked = len(rows.filtered("clicked"))
            group.count_replied = len(rows.filtered("replied"))
            included = len(rows) - counts["excluded"] - counts["cancelled"]
            group.progress = 100.0 * group.count_sent / included if included else 0.0

    # ------------------------------------------------------------------ every path
    # users set nothing by hand (pipemail.guarded.mixin): the wizard creates, the
    # buttons below change, both after checking the caller

    def _pipemail_hidden_name(self):
        return _("Group email")

    def _check_is_sender(self):
        self.check_access("read")
        if any(group.user_id.id != self.env.uid for group in self.sudo()):
            raise AccessError(_("You can only act on group emails you sent."))

    # ------------------------------------------------------------------ buttons

    def action_pause(self):
        self._check_is_sender()
        groups = self.sudo()
        if any(g.state not in ("scheduled", "sending") for g in groups):
            raise UserError(_("Only a group email that is scheduled or sending can be paused."))
        groups.write({"state": "paused"})
        return True

    def action_resume(self):
        self._check_is_sender()
        groups = self.sudo()
        if any(g.state != "paused" for g in groups):
            raise UserError(_("Only a paused group email can be resumed."))
        groups.write({"state": "sending"})
        groups._pipemail_update_eta()
        self._pipemail_trigger()
        return True

    def action_cancel(self):
        """Recipients not taken yet are dropped; copies in the outbox that no server
        saw yet are cancelled there too; a copy handed to SMTP is never withdrawn."""
        self._check_is_sender()
        groups = self.sudo()
        if any(g.state in ("done", "cancelled") for g in groups):
            raise UserError(_("This group email is finished already."))
        rows = groups.recipient_ids
        rows.filtered(lambda r: not r.excluded and not r.outbox_id).write({"cancelled": True})
        rows.outbox_id.filtered(lambda o: o.state == "queued").write(
            {"state": "cancelled", "next_attempt": False}
        )
        groups.write({"state": "cancelled", "date_done": fields.Datetime.now()})
        return True

    # ------------------------------------------------------------------ sending

    @api.model
    def _pipemail_trigger(self, at=None):
        cron = self.env.ref("pipemail_campaigns.ir_cron_pipemail_group_email", False)
        if cron:
            cron.sudo()._trigger(at)

    @api.model
    def _pipemail_commit(self):
        """Commit unless running tests (Odoo forbids commits inside a test)."""
        if not modules.module.current_test:
            self.env.cr.commit()

    def _pipemail_waiting(self):
        self.ensure_one()
        return self.recipient_ids.filtered(
            lambda r: not r.excluded and not r.cancelled and not r.outbox_id
        )

    def _pipemail_update_eta(self):
        now = fields.Datetime.now()
        for group in self.sudo():
            account = group.account_id
            start = max(now, group.scheduled_date or now)
            group.eta = pm_pacing.eta(
                start,
                account._pipemail_send_history(start),
                account._pipemail_quota(),
                len(group._pipemail_waiting()),
                account.pipemail_blocked_until or None,
            )

    @api.model
    def _cron_send_group_emails(self):
        """Take the copies each mailbox's quota allows now, one mailbox at a time."""
        now = fields.Datetime.now()
        due = self.sudo().search(
            [("state", "in", ("scheduled", "sending")), ("scheduled_date", "<=", now)],
            order="scheduled_date, id",
        )
        for group in due:
            if group.state == "scheduled":
                group.state = "sending"
                self._pipemail_commit()
            group._pipemail_send_batch()

    def _pipemail_send_batch(self):
        """Copies of this group email, as many as the mailbox's quota allows now."""
        self.ensure_one()
        group = self.sudo()
        account = group.account_id
        waiting = group._pipemail_waiting()
        if not waiting:
            group._pipemail_finish_if_done()
            return 0
        now = fields.Datetime.now()
        # one decision per mailbox at a time, across every worker and cron: the lock
        # is held until the grant below is committed
        self.env.cr.execute(SQL("SELECT pg_advisory_xact_lock(%s, %s)", PACING_LOCK, account.id))
        quota = account._pipemail_quota()
        history = account._pipemail_send_history(now)
        blocked = account.pipemail_blocked_until
        if blocked and blocked > now:
            allowed = 0
        else:
            allowed = pm_pacing.plan(now, history, quota, min(len(waiting), BATCH), timedelta(0))
        granted = waiting[:allowed]
        granted.write({"slot_date": now})
        # the grant is durable before the lock goes: every other worker counts it
        self._pipemail_commit()
        sent = 0
        for recipient in granted:
            group.invalidate_recordset(["state"])
            if group.state != "sending":
                break
            outbox = recipient._pipemail_make_copies(now)
            # the copy exists, with its Message-ID, before any server sees it: a worker
            # killed from here on leaves it to the outbox cron, sent once
            self._pipemail_commit()
            if not outbox:
                continue
            state = outbox._pipemail_send_one()
            if state == "retry" and pm_pacing.is_rate_limited(
                outbox.smtp_code or 0, outbox.last_error or ""
            ):
                # the copy waits in the outbox (retried later, never dropped); the
                # mailbox slows down for every copy still to come
                account._pipemail_rate_limited()
                self._pipemail_commit()
                break
            if state == "sent":
                sent += 1
                if account.pipemail_rate_strikes:
                    account.pipemail_rate_strikes = 0
        self._pipemail_commit()
        if group._pipemail_waiting():
            later = pm_pacing.next_slot(
                fields.Datetime.now(),
                account._pipemail_send_history(fields.Datetime.now()),
                quota,
                1,
                account.pipemail_blocked_until or None,
            )
            group._pipemail_trigger(later)
        else:
            group._pipemail_finish_if_done()
        return sent

    def _pipemail_finish_if_done(self):
        for group in self.sudo():
            if group.state == "sending" and not group._pipemail_waiting():
                group.write({"state": "done", "date_done": fields.Datetime.now()})
