"""Follow up if no reply: "if nobody answers this email in N days, send template T as a
reply in the same conversation", for up to N steps.

A follow-up row is server machinery: users read their own (a global rule, like the
outbox) and cancel them through a checked button; the server creates, sends and
cancels them.

When a follow-up is due, the cron takes its row lock (``FOR UPDATE SKIP LOCKED``: two
workers running at the same moment never take the same row) and, in that same
transaction, checks every reason not to send, then queues the reply in the outbox.

The rule for a reply arriving during the send window: **a reply counts if the sync has
stored it before the due follow-up is checked under its row lock**. A reply stored
after that check does not stop the follow-up, which was queued in the outbox in the
same transaction as the check (and it cancels the next step, if any). The reply's
Date header plays no part: only what the sync had stored when the decision was taken.
"""

import logging
from datetime import timedelta

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from odoo.addons.pipemail_sync.engine import mark_fragment, parse_addresses
from odoo.addons.pipemail_sync.engine import outbound as pm_outbound

from pipemail import errors as pm_errors

_logger = logging.getLogger(__name__)

STATES = [("pending", "Waiting for a Reply"), ("sent", "Sent"), ("cancelled", "Cancelled")]
REASONS = [
    ("replied", "A reply arrived"),
    ("unsubscribed", "Recipient unsubscribed"),
    ("bounced", "Original email not delivered"),
    ("closed", "Deal won, lost or archived"),
    ("user", "Cancelled by the user"),
    ("error", "Could not be written"),
]
NOT_YET_SENT = ("queued", "sending", "retry", "uncertain")
CLOCK_SKEW = timedelta(minutes=10)
"""A reply whose Date is a little before the original's send time (the sender's clock)
still counts."""


def default_days(model):
    """The "Follow up after (days)" setting, the default of every follow-up delay."""
    param = model.env["ir.config_parameter"].sudo().get_param("pipemail_campaigns.followup_days")
    try:
        return max(1, int(param or 3))
    except ValueError:
        return 3


MAX_STEPS = 10
"""Follow-ups of follow-ups, at most."""


def option_fields(template_label, template_domain):
    """The four fields of a "follow up if no reply" option (template, delay, business
    days, steps), declared once for each place that offers it: the composer, the group
    email and the "Send Email from Mailbox" server action."""
    return (
        fields.Many2one(
            "mail.template",
            string=template_label,
            domain=template_domain,
            ondelete="set null",
            help="Sent as a reply in the same conversation when nobody answered in time.",
        ),
        fields.Integer(string="Follow Up After (days)", default=default_days),
        fields.Boolean(string="Business Days Only"),
        fields.Integer(
            string="Follow-ups At Most",
            default=1,
            help="A follow-up with no reply is followed up again, up to this many times.",
        ),
    )


def check_options(env, template, model, days, steps):
    """The "Follow up if no reply" options a user chose (composer, group email): a
    template they can read, for the records the email is written about, a delay of a
    day or more, one to MAX_STEPS steps."""
    template.check_access("read")
    if template.model != model:
        raise UserError(env._("The follow-up template is for another kind of record."))
    if days < 1 or not 1 <= steps <= MAX_STEPS:
        raise UserError(
            env._(
                "Follow up after at least one day, and at most %(steps)s times in a row.",
                steps=MAX_STEPS,
            )
        )


def add_business_days(start, days):
    """``start`` moved ``days`` days ahead, Saturdays and Sundays not counted."""
    current = start
    left = days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


class PipemailFollowup(models.Model):
    _name = "pipemail.followup"
    _description = "Follow-up If No Reply"
    _order = "due_date, id"
    _rec_name = "subject"

    user_id = fields.Many2one(
        "res.users", string="Written By", required=True, readonly=True, index=True
    )
    company_id = fields.Many2one(related="outbox_id.company_id", store=True)
    outbox_id = fields.Many2one(
        "pipemail.outbox",
        string="Follows Up On",
        required=True,
        readonly=True,
        index=True,
        ondelete="cascade",
        help="The email that must get a reply: the original, or the previous follow-up.",
    )
    origin_outbox_id = fields.Many2one(
        "pipemail.outbox", string="First Email", readonly=True, index=True, ondelete="cascade"
    )
    subject = fields.Char(related="outbox_id.subject")
    email_to = fields.Char(related="outbox_id.email_to", string="To")
    lead_id = fields.Many2one(related="outbox_id.lead_id", store=True)
    partner_id = fields.Many2one(related="outbox_id.partner_id", store=True)
    template_id = fields.Many2one("mail.template", string="Template", readonly=True)
    action_id = fields.Many2one("ir.actions.server", string="Automation Action", readonly=True)
    days = fields.Integer(readonly=True)
    business_days = fields.Boolean(readonly=True)
    step = fields.Integer(readonly=True, default=1)
    steps_total = fields.Integer(string="Steps", readonly=True, default=1)
    due_date = fields.Datetime(string="Due", readonly=True, index=True)
    state = fields.Selection(STATES, required=True, default="pending", readonly=True, index=True)
    cancel_reason = fields.Selection(REASONS, readonly=True)
    note = fields.Char(readonly=True)
    sent_outbox_id = fields.Many2one(
        "pipemail.outbox", string="Follow-up Sent", readonly=True, ondelete="set null"
    )

    def init(self):
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_followup_due_idx"
            " ON pipemail_followup (due_date) WHERE state = 'pending'"
        )

    # ------------------------------------------------------------------ create

    @api.model
    def _pipemail_due(self, start, days, business_days):
        start = start or fields.Datetime.now()
        if business_days:
            return add_business_days(start, days)
        return start + timedelta(days=days)

    @api.model
    def _pipemail_schedule(self, outbox, template, days, business_days=False, steps=1, **extra):
        """A pending follow-up of ``outbox`` (server code: the caller has checked who asks)."""
        if not template or days < 1 or not 1 <= steps <= MAX_STEPS:
            raise UserError(
                _(
                    "A follow-up needs a template, a delay of at least one day, and at most "
                    "%(steps)s follow-ups in a row.",
                    steps=MAX_STEPS,
                )
            )
        if template.model not in ("crm.lead", "project.project", "res.partner"):
            raise UserError(_("The follow-up template must be for leads, projects or contacts."))
        start = outbox.sent_date or outbox.create_date or fields.Datetime.now()
        return self.sudo().create(
            {
                "user_id": outbox.user_id.id,
                "outbox_id": outbox.id,
                "origin_outbox_id": (extra.get("origin") or outbox).id,
                "template_id": template.id,
                "action_id": extra.get("action_id") or False,
                "days": days,
                "business_days": business_days,
                "step": extra.get("step", 1),
                "steps_total": steps,
                "due_date": self._pipemail_due(start, days, business_days),
            }
        )

    def write(self, vals):
        res = super().write(vals)
        if "sent_outbox_id" in vals:
            # the email a follow-up sent counts as a "follow-up" in the report
            self.env["pipemail.email.stat"]._pipemail_refresh(self.sudo().sent_outbox_id.ids)
        return res

    # ------------------------------------------------------------------ buttons

    def action_cancel(self):
        """The author cancels their own pending follow-ups."""
        self.check_access("read")
        if any(f.user_id.id != self.env.uid for f in self.sudo()):
            raise AccessError(_("You can only cancel your own follow-ups."))
        self._pipemail_cancel("user")
        return True

    def _pipemail_cancel(self, reason, note=False):
        pending = self.sudo().filtered(lambda f: f.state == "pending")
        pending.write({"state": "cancelled", "cancel_reason": reason, "note": note})
        return pending

    # ------------------------------------------------------------------ reasons not to send

    def _pipemail_chain(self):
        """The outgoing emails of this chain: the first one and the follow-ups sent."""
        self.ensure_one()
        origin = self.origin_outbox_id or self.outbox_id
        sent = self.search([("origin_outbox_id", "=", origin.id), ("sent_outbox_id", "!=", False)])
        return (origin | self.outbox_id | sent.sent_outbox_id).sudo()

    def _pipemail_replied(self):
        """An incoming email in the conversation, in any synced mailbox: the owner's, a
        team mailbox, or a colleague's who was in Cc. Found by the Message-IDs the reply
        names (filed per mailbox in pipemail.thread.ref by the sync), and in the
        original's own conversation."""
        self.ensure_one()
        chain = self._pipemail_chain()
        message_ids = [m for m in chain.mapped("message_id_header") if m]
        names = list({m.strip("<>") for m in message_ids} | set(message_ids))
        refs = self.env["pipemail.thread.ref"].sudo().search([("name", "in", names)])
        threads = refs.thread_id | chain.thread_id
        if not threads:
            return False
        sent_dates = [d for d in chain.mapped("sent_date") if d]
        domain = [("thread_id", "in", threads.ids), ("direction", "=", "in")]
        if sent_dates:
            domain.append(("date", ">=", min(sent_dates) - CLOCK_SKEW))
        own = {(a.email or "").lower() for a in chain.account_id}
        messages = self.env["pipemail.message"].sudo().search(domain)
        return bool(
            messages.filtered(
                lambda m: (
                    not any(
                        a.email.lower() in own
                        for a in parse_addresses(self.env, m.email_from, False)
                    )
                )
            )
        )

    def _pipemail_unsubscribed(self):
        self.ensure_one()
        to = parse_addresses(self.env, self.outbox_id.email_to, False)
        emails = [a.email.lower() for a in to]
        if not emails:
            return False
        # one recipient who unsubscribed is enough: the follow-up would reach them too
        return bool(self.env["mail.blacklist"].sudo().search_count([("email", "in", emails)]))

    def _pipemail_undelivered(self):
        """The followed email did not reach its recipient: the outbox's one rule
        (refused, cancelled, or a hard bounce report received since)."""
        self.ensure_one()
        return self.outbox_id._pipemail_is_undelivered()

    @api.model
    def _pipemail_cancel_for_undelivered(self, outboxes):
        """Pending follow-ups of these emails, and of chains they started, stop now
        (called by ``pipemail.outbox._pipemail_mark_undelivered``, the bounce entry
        point; the cron's check of :meth:`_pipemail_undelivered` is the same rule)."""
        pending = self.sudo().search(
            [
                ("state", "=", "pending"),
                "|",
                ("outbox_id", "in", outboxes.ids),
                ("origin_outbox_id", "in", outboxes.ids),
            ]
        )
        return pending._pipemail_cancel("bounced")

    def _pipemail_closed(self):
        lead = self.outbox_id.sudo().lead_id.with_context(active_test=False)
        if not lead:
            return False
        return not lead.active or lead.stage_id.is_won or lead.probability >= 100

    def _pipemail_stop_reason(self):
        if self._pipemail_replied():
            return "replied"
        if self._pipemail_undelivered():
            return "bounced"
        if self._pipemail_unsubscribed():
            return "unsubscribed"
        if self._pipemail_closed():
            return "closed"
        return False

    # ------------------------------------------------------------------ the cron

    @api.model
    def _cron_send_followups(self, limit=100):
        """Due follow-ups, each decided and queued under its row lock (see the module
        docstring for the rule on replies arriving meanwhile)."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT id FROM pipemail_followup WHERE state = 'pending' AND due_date <= %s"
                " ORDER BY due_date, id LIMIT %s FOR UPDATE SKIP LOCKED",
                fields.Datetime.now(),
                limit,
            )
        )
        due = self.sudo().browse([row[0] for row in self.env.cr.fetchall()])
        queued = self.env["pipemail.outbox"]
        for followup in due:
            queued |= followup._pipemail_process()
        if queued:
            cron = self.env.ref("pipemail_sync.ir_cron_pipemail_outbox", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()
        return due

    def _pipemail_process(self):
        self.ensure_one()
        Outbox = self.env["pipemail.outbox"]
        if self.state != "pending":
            return Outbox
        if self.outbox_id.sudo().state in NOT_YET_SENT:
            return Outbox  # the original has not left yet: decided once it has
        # "N days without a reply" counts from when the followed email left, which can
        # be later than when it was queued (retries, pacing)
        due = self._pipemail_due(self.outbox_id.sudo().sent_date, self.days, self.business_days)
        if due > fields.Datetime.now():
            self.write({"due_date": due})
            return Outbox
        reason = self._pipemail_stop_reason()
        if reason:
            self._pipemail_cancel(reason)
            return Outbox
        try:
            with self.env.cr.savepoint():
                outbox = self._pipemail_write_reply()
        except (UserError, AccessError) as exc:
            self._pipemail_cancel("error", str(exc.args[0] if exc.args else exc)[:250])
            _logger.info("Follow-up %s not written: %s", self.id, exc)
            return Outbox
        self.write({"state": "sent", "sent_outbox_id": outbox.id})
        if self.step < self.steps_total:
            self._pipemail_schedule(
                outbox,
                self.template_id,
                self.days,
                self.business_days,
                self.steps_total,
                origin=self.origin_outbox_id or self.outbox_id,
                action_id=self.action_id.id,
                step=self.step + 1,
            )
        return outbox

    def _pipemail_render_record(self):
        original = self.outbox_id.sudo()
        model = self.template_id.model
        record = {
            "crm.lead": original.lead_id,
            "project.project": original.project_id,
            "res.partner": original.partner_id,
        }.get(model)
        if not record:
            raise UserError(_("The email is not linked to a record the template is for."))
        return record

    def _pipemail_write_reply(self):
        """The template as a reply to the followed email: same conversation,
        In-Reply-To/References, "Re:" subject; rendered as its author."""
        original = self.outbox_id.sudo()
        author = original.user_id
        record = self._pipemail_render_record().with_user(author)
        record.check_access("read")
        rendered = self.env["ir.actions.server"]._pipemail_render(
            self.template_id.with_user(author).with_context(lang=author.lang), record.id
        )
        parent = original.sent_message_id
        try:
            in_reply_to, references = pm_outbound.reply_headers(
                original.message_id_header,
                (original.references or "").split(),
                original.in_reply_to or "",
            )
        except pm_errors.PipemailError as exc:
            raise UserError(str(exc))
        body, direction = mark_fragment(rendered["body"] or str(Markup("<p></p>")))
        outbox = (
            self.env["pipemail.outbox"]
            .sudo()
            .with_context(mail_create_nolog=True, mail_create_nosubscribe=True)
            .create(
                {
                    "account_id": original.account_id.id,
                    "user_id": author.id,
                    "mode": "reply",
                    "thread_id": original.thread_id.id or False,
                    "parent_message_id": parent.id or False,
                    "lead_id": original.lead_id.id or False,
                    "project_id": original.project_id.id or False,
                    "partner_id": original.partner_id.id or False,
                    "email_to": original.email_to,
                    "email_cc": original.email_cc or False,
                    "subject": pm_outbound.reply_subject(original.subject or ""),
                    "body_html": body,
                    "text_direction": direction,
                    "tracking": original.tracking,
                    "in_reply_to": in_reply_to or False,
                    "references": " ".join(references) or False,
                    "pipemail_action_id": self.action_id.id or False,
                }
            )
        )
        outbox._pipemail_prepare()
        return outbox
