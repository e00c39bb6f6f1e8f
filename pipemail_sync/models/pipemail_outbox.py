"""Outgoing emails: one row per email written in the CRM, from the click on Send until
the mail server took it, and afterwards as the anchor of its tracking.

A mail must never reach a recipient twice, so the row is a small state machine and
every step that talks to a server is preceded by a durable note of what is about to
happen:

- ``queued``: the bytes are built and stored together with their Message-ID, before
  any server sees them. A retry sends exactly these bytes, so the recipient's mail
  client, the provider and our Sent-folder sync all recognize a repeat.
- ``sending``: claimed by one worker (an UPDATE guarded by the state, committed
  before connecting). A worker that dies here leaves the row in ``sending``; the
  cron turns it into ``uncertain`` after a while instead of sending it again.
- ``sent``: the server accepted it for every recipient it will ever accept.
- ``retry``: the server said "later" (4xx, a connection that dropped before the end
  of the data); tried again with growing waits, only for the recipients still owed.
- ``failed``: the server refused (5xx), or something only a person can fix (password,
  size, address); the error is kept in plain words, and Retry sends the same bytes.
- ``uncertain``: the connection dropped after the whole message was handed over;
  SMTP cannot tell whether it left. Not sent again by itself: the Sent-folder copy,
  when it arrives, settles it; otherwise the user decides.

MIME building, SMTP, tracking instrumentation and IMAP APPEND are the engine's; this
model keeps the records and decides when to call it.
"""

import base64
import json
import logging
from datetime import timedelta

from odoo import _, api, fields, models, modules
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from pipemail import errors as pm_errors
from pipemail.types import Address, Location, RemoteMessage

from .. import access
from ..engine import html as pm_html
from ..engine import mime as pm_mime
from ..engine import outbound as pm_outbound
from ..engine import parse_addresses
from ..engine import send_policy as pm_send_policy
from ..engine import smtp as pm_smtp
from ..engine import tracking as pm_tracking
from ..engine import writeback as pm_writeback
from ..notifications import notification
from ..routes import CLICK_PATH, PIXEL_PATH
from ..store import OdooStore

_logger = logging.getLogger(__name__)

STATES = [
    ("queued", "Queued"),
    ("sending", "Sending"),
    ("retry", "Waiting to Retry"),
    ("sent", "Sent"),
    ("failed", "Not Sent"),
    ("uncertain", "Maybe Sent"),
    ("cancelled", "Cancelled"),
]
MODES = [("new", "New"), ("reply", "Reply"), ("reply_all", "Reply All"), ("forward", "Forward")]
SENT_COPY = [
    ("provider", "Saved by the Provider"),
    ("pending", "To Save"),
    ("done", "Saved"),
    ("failed", "Could Not Save"),
]
BACKOFF = pm_send_policy.BACKOFF
MAX_ATTEMPTS = pm_send_policy.MAX_ATTEMPTS
STALE_SENDING = timedelta(minutes=15)
"""A claim older than this belongs to a worker that died mid-send."""
MAX_COPY_ATTEMPTS = 5
INLINE_SENDS = 10
"""Copies of an individual send sent while the user waits; the rest leave through the
outbox cron (triggered at once), so a long list cannot outlast the web request."""
INLINE_GRACE = timedelta(minutes=5)
"""The cron leaves the copies being sent inline alone this long; after that, a copy the
request never reached (its worker died) is sent by the cron, still once."""
PROVIDERS_SAVING_SENT = ("gmail", "microsoft")
"""Gmail and Microsoft 365 file what their SMTP sends in Sent themselves; an APPEND
would make a second copy."""
PROVIDER_NAMES = {"gmail": "Gmail", "microsoft": "Outlook"}


def sender_address(account, user):
    """The From of an email written by ``user`` in ``account`` (sudo): the writer's name
    on a personal mailbox, the mailbox's on a team one; no name that only repeats the
    address."""
    name = user.name if account.kind == "personal" else account.name
    if (name or "").strip().lower() == (account.email or "").strip().lower():
        name = ""
    return Address(email=(account.email or "").strip(), name=name or "")


def outgoing_attachments(attachments):
    """``ir.attachment`` records (sudo) as the engine's outgoing files."""
    return [
        pm_outbound.OutgoingAttachment(
            name=att.name or "attachment",
            mimetype=att.mimetype or "application/octet-stream",
            content=att.raw or b"",
        )
        for att in attachments
    ]


class PipemailOutbox(models.Model):
    _name = "pipemail.outbox"
    _description = "Outgoing Email"
    _inherit = ["mail.thread"]
    _order = "id desc"
    _rec_name = "subject"

    account_id = fields.Many2one(
        "pipemail.account", string="From Mailbox", required=True, ondelete="cascade", index=True
    )
    user_id = fields.Many2one(
        "res.users",
        string="Written By",
        required=True,
        default=lambda self: self.env.user,
        index=True,
        ondelete="cascade",
    )
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    state = fields.Selection(
        STATES, required=True, default="queued", index=True, copy=False, tracking=True
    )
    mode = fields.Selection(MODES, required=True, default="new")
    thread_id = fields.Many2one("pipemail.thread", string="Conversation", ondelete="set null")
    parent_message_id = fields.Many2one(
        "pipemail.message", string="In Reply To", ondelete="set null"
    )
    sent_message_id = fields.Many2one(
        "pipemail.message", string="Sent Email", ondelete="set null", readonly=True, copy=False
    )
    lead_id = fields.Many2one("crm.lead", string="Lead / Opportunity", ondelete="set null")
    project_id = fields.Many2one("project.project", ondelete="set null")
    partner_id = fields.Many2one("res.partner", string="Contact", ondelete="set null")
    email_from = fields.Char(string="From", readonly=True)
    email_to = fields.Char(string="To")
    email_cc = fields.Char(string="Cc")
    email_bcc = fields.Char(string="Bcc")
    subject = fields.Char()
    body_html = fields.Html(
        string="Body", sanitize=True, sanitize_style=True, sanitize_overridable=False
    )
    text_direction = fields.Selection([("ltr", "Left to right"), ("rtl", "Right to left")])
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "pipemail_outbox_attachment_rel",
        "outbox_id",
        "attachment_id",
        string="Attachments",
    )
    tracking = fields.Boolean(string="Track Opens and Clicks", readonly=True)
    message_id_header = fields.Char(string="Message-ID", readonly=True, index=True, copy=False)
    in_reply_to = fields.Char(string="In-Reply-To Header", readonly=True)
    references = fields.Text(readonly=True)
    raw_mime = fields.Binary(string="Message as Sent", attachment=True, readonly=True, copy=False)
    size = fields.Integer(readonly=True, help="Encoded size in bytes.")
    attempts = fields.Integer(readonly=True, copy=False)
    next_attempt = fields.Datetime(readonly=True, copy=False, index=True)
    sending_since = fields.Datetime(readonly=True, copy=False)
    sent_date = fields.Datetime(readonly=True, copy=False)
    last_error = fields.Text(string="Problem", readonly=True, copy=False)
    error_code = fields.Char(readonly=True, copy=False)
    smtp_code = fields.Integer(string="Server Reply Code", readonly=True, copy=False)
    rcpt_pending = fields.Text(
        readonly=True, copy=False, help="JSON list of recipients still owed."
    )
    rcpt_accepted = fields.Text(readonly=True, copy=False, help="JSON list of recipients done.")
    rcpt_refused = fields.Text(
        string="Refused Recipients", readonly=True, copy=False, help="Plain words, one per line."
    )
    sent_copy_state = fields.Selection(SENT_COPY, string="Sent Folder Copy", readonly=True)
    sent_copy_attempts = fields.Integer(readonly=True, copy=False)
    sent_copy_error = fields.Char(readonly=True, copy=False)

    @api.depends("subject")
    @api.depends_context("uid")
    def _compute_display_name(self):
        res = super()._compute_display_name()
        access.hide_unreadable_names(self, _("Outgoing email"))
        return res

    def _check_is_author(self):
        """Buttons act on the caller's own outgoing emails only (the rows are written
        by the server: users have no write access to them)."""
        self.check_access("read")
        if any(outbox.user_id.id != self.env.uid for outbox in self.sudo()):
            raise AccessError(_("You can only act on emails you wrote."))

    # ------------------------------------------------------------------ helpers

    @api.model
    def _pipemail_commit(self):
        """Commit unless running tests (Odoo forbids commits inside a test)."""
        if not modules.module.current_test:
            self.env.cr.commit()

    @api.model
    def _pipemail_size_limit(self, account):
        """``(limit in bytes, provider name)`` for an account's outgoing mail."""
        if account.provider in PROVIDER_NAMES:
            return pm_outbound.PROVIDER_LIMITS[account.provider], PROVIDER_NAMES[account.provider]
        param = (
            self.env["ir.config_parameter"].sudo().get_param("pipemail.imap_attachment_limit_mb")
        )
        try:
            megabytes = int(param or 25)
        except ValueError:
            megabytes = 25
        return max(1, megabytes) * pm_outbound.MB, _("Your mail server")

    @api.model
    def _pipemail_estimate_size(self, body, attachments):
        """Bytes an email of this HTML body and these files takes once built: the HTML
        and its text version, the files in base64 with their part headers, and headers."""
        files = sum(pm_outbound.base64_size(a.file_size or 0) + 400 for a in attachments.sudo())
        return len(str(body or "").encode()) * 2 + files + 2000

    @api.model
    def _pipemail_check_size(self, account, body, attachments):
        """Refuses, in the provider's words, an email its server would bounce for size."""
        limit, provider = self._pipemail_size_limit(account.sudo())
        try:
            pm_outbound.check_size(self._pipemail_estimate_size(body, attachments), limit, provider)
        except pm_errors.SizeLimitExceeded as exc:
            raise UserError(str(exc)) from None

    def _pipemail_sender(self):
        return sender_address(self.account_id.sudo(), self.user_id)

    def _pipemail_outgoing_attachments(self):
        return outgoing_attachments(self.attachment_ids.sudo())

    def _pipemail_raw(self):
        """The stored bytes, exactly as built (Binary fields hold base64)."""
        self.ensure_one()
        return base64.b64decode(self.sudo().with_context(bin_size=False).raw_mime or b"")

    def _pipemail_untracked_prefixes(self, base):
        """Links tracking leaves alone: our own routes (pipemail_campaigns adds the
        unsubscribe page, which a redirect in front of would only slow down)."""
        return [base + PIXEL_PATH, base + CLICK_PATH]

    def _pipemail_extra_headers(self):
        """Headers added to the built message (pipemail_campaigns: List-Unsubscribe)."""
        return {}

    def _pipemail_recipients(self):
        return (
            parse_addresses(self.env, self.email_to),
            parse_addresses(self.env, self.email_cc),
            parse_addresses(self.env, self.email_bcc),
        )

    # ------------------------------------------------------------------ build

    def _pipemail_prepare(self):
        """Build the message once: Message-ID, tracked HTML, bytes, recipients owed.

        Raises UserError with the engine's plain words for anything a person must
        fix (a line break in the subject, a bad address, too large). Tracking URLs
        name this row, so it exists before the HTML is rewritten.
        """
        self.ensure_one()
        if self.raw_mime:
            return
        account = self.account_id.sudo()
        Event = self.env["pipemail.tracking.event"]
        to, cc, bcc = self._pipemail_recipients()
        html = str(self.body_html or "")
        links = []
        sent_html = html
        if self.tracking:
            base = Event._pipemail_base_url()
            sent_html, links = pm_tracking.instrument_html(
                html,
                pixel_url=Event._pipemail_pixel_url(self.id),
                link_url_for=lambda _url, index: Event._pipemail_click_url(self.id, index),
                tracked_prefixes=self._pipemail_untracked_prefixes(base),
            )
        sender = self._pipemail_sender()
        try:
            message = pm_outbound.OutgoingMessage(
                sender=sender,
                to=to,
                cc=cc,
                bcc=bcc,
                subject=self.subject or "",
                html=sent_html,
                # the text part keeps the plain links, not the tracking redirects
                text=pm_html.html_to_text(html),
                attachments=self._pipemail_outgoing_attachments(),
                in_reply_to=self.in_reply_to or "",
                references=(self.references or "").split(),
                message_id=pm_outbound.make_message_id(sender.domain),
                headers=self._pipemail_extra_headers(),
            )
            raw, message_id = pm_outbound.build_mime(message, domain=sender.domain)
            limit, provider = self._pipemail_size_limit(account)
            pm_outbound.check_size(len(raw), limit, provider)
        except pm_errors.PipemailError as exc:
            raise UserError(str(exc))
        self.env["pipemail.tracking.link"].sudo().create(
            [{"outbox_id": self.id, "link_index": index, "url": url} for index, url in links]
        )
        self.sudo().write(
            {
                "raw_mime": base64.b64encode(raw),
                "size": len(raw),
                "message_id_header": message_id,
                "email_from": str(sender),
                "rcpt_pending": json.dumps(message.recipients),
                "rcpt_accepted": json.dumps([]),
                "state": "queued",
                "next_attempt": False,
                "sent_copy_state": "provider"
                if account.provider in PROVIDERS_SAVING_SENT
                else "pending",
            }
        )

    # ------------------------------------------------------------------ send

    def _pipemail_claim(self):
        """Take this row for one attempt; ``False`` if someone else has it or it is done."""
        self.ensure_one()
        self.flush_recordset()
        self.env.cr.execute(
            SQL(
                "UPDATE pipemail_outbox SET state = 'sending', sending_since = %s,"
                " attempts = COALESCE(attempts, 0) + 1"
                " WHERE id = %s AND state IN ('queued', 'retry') RETURNING id",
                fields.Datetime.now(),
                self.id,
            )
        )
        claimed = bool(self.env.cr.fetchone())
        self.invalidate_recordset(["state", "sending_since", "attempts"])
        return claimed

    def _pipemail_send_now(self):
        """Send rows just written in the composer: the first ones while the user waits,
        the others through the outbox cron, triggered now.

        Every row is stored as ``queued`` before the first one is sent (the first
        claim commits them all), so whatever happens to this request each is sent
        exactly once: the claim in :meth:`_pipemail_send_one` is the guard, and the
        grace time keeps the cron off the rows this request is still working through.
        """
        inline, later = self[:INLINE_SENDS], self[INLINE_SENDS:]
        if len(self) > 1:
            inline.sudo().write({"next_attempt": fields.Datetime.now() + INLINE_GRACE})
        if later:
            cron = self.env.ref("pipemail_sync.ir_cron_pipemail_outbox", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()
        for outbox in inline:
            outbox._pipemail_send_one()

    def _pipemail_send_one(self):
        """One attempt. Returns the new state. Never raises for mail problems."""
        self.ensure_one()
        if not self.raw_mime or not self._pipemail_claim():
            return self.state
        # the claim must be durable before the server sees the message: a crash from
        # here on leaves "sending", which becomes "uncertain", never a second send
        self._pipemail_commit()
        outbox = self.sudo()
        account = outbox.account_id
        try:
            config = account._pipemail_config()
            if config.smtp is None:
                raise pm_errors.ConfigError(
                    _("This mailbox has no outgoing (SMTP) server set up yet.")
                )
            result = pm_smtp.send_with_retry(
                config.smtp,
                config.auth,
                account.email,
                json.loads(outbox.rcpt_pending or "[]"),
                outbox._pipemail_raw(),
                attempts=1,
            )
        except UserError as exc:
            outbox._pipemail_apply_error(pm_errors.ConfigError(exc.args[0]))
        except pm_errors.PipemailError as exc:
            # a refusal, a "later", or something a person has to change first (sign-in,
            # certificate, host refused, size announced by the server): the engine's
            # send policy decides which
            if isinstance(exc, pm_smtp.RecipientsRefused):
                outbox._pipemail_note_refusals(exc.refused)
            outbox._pipemail_apply_error(exc)
        else:
            outbox._pipemail_delivered(result)
        # the outcome is remembered before anything else can fail
        self._pipemail_commit()
        if outbox.sent_message_id and outbox.sent_copy_state == "pending":
            outbox._pipemail_save_sent_copy()
            self._pipemail_commit()
        return outbox.state

    def _pipemail_accepted(self):
        return json.loads(self.rcpt_accepted or "[]")

    def _pipemail_note_refusals(self, refused):
        lines = [line for line in (self.rcpt_refused or "").splitlines() if line]
        for address, refusal in refused.items():
            if refusal.temporary:
                continue
            lines.append(
                _(
                    "%(address)s: refused by the mail server (%(code)s: %(text)s)",
                    address=address,
                    code=refusal.code,
                    text=refusal.message,
                )
            )
        self.rcpt_refused = "\n".join(dict.fromkeys(lines)) or False

    def _pipemail_log_error(self, exc):
        _logger.info(
            "pipemail: outgoing email %s (%s): %s %s",
            self.id,
            getattr(exc, "code", "error"),
            exc,
            getattr(exc, "detail", ""),
        )

    def _pipemail_apply_error(self, exc):
        """Record the outcome of an attempt that raised ``exc`` (engine send policy)."""
        outcome = pm_send_policy.after_error(
            exc,
            attempts=self.attempts,
            pending=json.loads(self.rcpt_pending or "[]"),
            delivered_before=bool(self._pipemail_accepted()),
        )
        self._pipemail_apply_outcome(outcome, exc)

    def _pipemail_apply_outcome(self, outcome, exc):
        """Write what :mod:`pipemail.send_policy` decided; ``exc`` says why in words."""
        if outcome.state == "sent" and not outcome.partial:
            self._pipemail_done()
            return
        self._pipemail_log_error(exc)
        vals = {
            "last_error": str(exc),
            "error_code": getattr(exc, "code", "error"),
            "smtp_code": getattr(exc, "smtp_code", 0) or 0,
            "sending_since": False,
        }
        if outcome.state == "retry":
            vals.update(
                state="retry",
                rcpt_pending=json.dumps(list(outcome.pending)),
                next_attempt=fields.Datetime.now() + outcome.wait,
            )
            self.write(vals)
            return
        if outcome.gave_up:
            vals["last_error"] = "{} {}".format(
                _("Gave up after %(count)s tries.", count=self.attempts), exc
            )
            vals["rcpt_pending"] = json.dumps(list(outcome.pending))
        vals.update(state="failed", next_attempt=False)
        if outcome.partial:
            # some recipients have it: the email exists, only those owed are missing
            vals["state"] = "sent"
            vals["rcpt_refused"] = "\n".join(
                filter(
                    None, [self.rcpt_refused, _("Not delivered: %(why)s", why=vals["last_error"])]
                )
            )
        self.write(vals)

    def _pipemail_delivered(self, result):
        accepted = list(dict.fromkeys([*self._pipemail_accepted(), *result.accepted]))
        self._pipemail_note_refusals(result.refused)
        pending = [a for a, r in result.refused.items() if r.temporary]
        vals = {
            "rcpt_accepted": json.dumps(accepted),
            "rcpt_pending": json.dumps(pending),
            "sending_since": False,
            "last_error": False,
            "error_code": False,
            "smtp_code": result.code or 0,
        }
        if not self.sent_date:
            vals["sent_date"] = fields.Datetime.now()
        self.write(vals)
        if not self.sent_message_id:
            self._pipemail_create_sent_message()
        outcome = pm_send_policy.after_result(
            result, attempts=self.attempts, delivered_before=bool(accepted)
        )
        if outcome.state == "uncertain":
            self.write(
                {
                    "state": "uncertain",
                    "last_error": _(
                        "The connection to the mail server dropped right after the email was "
                        "handed over, so it may or may not have left. It will not be sent "
                        "again by itself: when its copy shows up in your Sent folder it is "
                        "marked sent; otherwise you can send it again."
                    ),
                }
            )
        else:
            owed = ", ".join(outcome.pending)
            self._pipemail_apply_outcome(
                outcome,
                pm_errors.SendFailed(
                    _("Some recipients will be tried again later: %(who)s", who=owed),
                    temporary=True,
                ),
            )

    def _pipemail_done(self):
        self.write({"state": "sent", "next_attempt": False, "sending_since": False})

    # ------------------------------------------------------------------ the sent email

    def _pipemail_create_sent_message(self):
        """The email as sent, in its conversation at once, written by the store the way
        the sync writes its Sent copy (:meth:`OdooStore.write_sent`).

        Its Message-ID is filed under the conversation, so replies join it by their
        headers, and the Sent-folder copy is matched to it (see
        ``pipemail.message._pipemail_match_sent``) instead of becoming a second row.
        """
        self.ensure_one()
        outbox = self.sudo()
        raw = outbox._pipemail_raw()
        parsed = pm_mime.parse_message(raw)
        remote = RemoteMessage(
            key=pm_mime.message_key(parsed),
            location=Location(folder="", uidvalidity=0, uid=0),
            flags=frozenset({"\\Seen"}),
            parsed=parsed,
            size=len(raw),
        )
        new_thread = not outbox.thread_id
        message = OdooStore(self.env, outbox.account_id).write_sent(
            remote,
            outbox.thread_id,
            # the bytes carry the tracking pixel and redirects; the CRM shows the email
            # as written
            body_html=outbox.body_html if outbox.tracking else None,
            extra={"pipemail_outbox_id": outbox.id},
        )
        thread = message.thread_id
        outbox.write({"thread_id": thread.id, "sent_message_id": message.id})
        if new_thread and thread.message_count == 1:
            outbox._pipemail_link_new_thread(thread)
        return message

    def _pipemail_link_new_thread(self, thread):
        """A new conversation written from a record belongs to that record."""
        if self.lead_id:
            thread._action_link(
                self.lead_id, mode="manual", reason=_("Written from this lead or opportunity")
            )
        elif self.project_id:
            thread._action_link(
                self.project_id, mode="manual", reason=_("Written from this project")
            )
        else:
            thread._autolink()

    def _pipemail_save_sent_copy(self):
        """APPEND the sent bytes to Sent, for servers that do not keep what SMTP sent."""
        self.ensure_one()
        outbox = self.sudo()
        account = outbox.account_id
        folder = account.folder_ids.filtered(lambda f: f.role == "sent")[:1]
        try:
            location = pm_writeback.append_sent(
                account._pipemail_config(), outbox._pipemail_raw(), folder.name or None
            )
        except (pm_errors.PipemailError, UserError) as exc:
            attempts = outbox.sent_copy_attempts + 1
            _logger.info("pipemail: saving sent copy of %s failed: %s", outbox.id, exc)
            outbox.write(
                {
                    "sent_copy_attempts": attempts,
                    "sent_copy_state": "failed" if attempts >= MAX_COPY_ATTEMPTS else "pending",
                    "sent_copy_error": str(exc.args[0] if isinstance(exc, UserError) else exc)[
                        :250
                    ],
                }
            )
            return False
        if location is not None and outbox.sent_message_id:
            Folder = self.env["pipemail.folder"].sudo()
            record = Folder.search(
                [("account_id", "=", account.id), ("name", "=", location.folder)], limit=1
            ) or Folder.create(
                {"account_id": account.id, "name": location.folder, "role": "sent", "sync": True}
            )
            Location = self.env["pipemail.message.location"].sudo()
            if not Location.search_count(
                [
                    ("folder_id", "=", record.id),
                    ("uidvalidity", "=", location.uidvalidity),
                    ("uid", "=", location.uid),
                ]
            ):
                Location.create(
                    {
                        "message_id": outbox.sent_message_id.id,
                        "folder_id": record.id,
                        "uidvalidity": location.uidvalidity,
                        "uid": location.uid,
                        "flags": "\\Seen",
                    }
                )
        outbox.write({"sent_copy_state": "done", "sent_copy_error": False})
        return True

    # ------------------------------------------------------------------ buttons

    def action_retry(self):
        """Send a failed email again now: the same bytes, the same Message-ID."""
        self.ensure_one()
        self._check_is_author()
        return self._action_retry()

    def _action_retry(self):
        outbox = self.sudo()
        if outbox.state not in ("failed", "retry"):
            raise UserError(_("Only an email that was not sent can be retried."))
        if not json.loads(outbox.rcpt_pending or "[]"):
            to, cc, bcc = outbox._pipemail_recipients()
            done = set(outbox._pipemail_accepted())
            owed = [a.email for a in [*to, *cc, *bcc] if a.email not in done]
            outbox.rcpt_pending = json.dumps(list(dict.fromkeys(owed)))
        outbox.write({"state": "queued", "next_attempt": False})
        outbox._pipemail_send_one()
        return outbox._pipemail_result_action()

    def action_send_anyway(self):
        """An uncertain email, sent again on the user's word (it may arrive twice)."""
        self.ensure_one()
        self._check_is_author()
        outbox = self.sudo()
        if outbox.state != "uncertain":
            raise UserError(_("Only an email that may not have been sent can be sent again."))
        outbox.write({"state": "queued", "next_attempt": False})
        outbox._pipemail_send_one()
        return outbox._pipemail_result_action()

    def action_mark_sent(self):
        self.ensure_one()
        self._check_is_author()
        if self.state != "uncertain":
            raise UserError(_("Only an email that may not have been sent can be marked as sent."))
        self.sudo()._pipemail_done()
        return True

    def action_cancel(self):
        self._check_is_author()
        for outbox in self.sudo():
            if outbox.state not in ("queued", "retry", "failed"):
                raise UserError(_("An email that was sent or is being sent cannot be cancelled."))
        self.sudo().write({"state": "cancelled", "next_attempt": False})
        return True

    def action_open_thread(self):
        self.ensure_one()
        self.check_access("read")
        if not self.thread_id:
            raise UserError(_("This email is not in a conversation yet."))
        return {
            "type": "ir.actions.act_window",
            "res_model": "pipemail.thread",
            "res_id": self.thread_id.id,
            "view_mode": "form",
            "target": "current",
        }

    def _pipemail_result_action(self):
        """What the user sees after Send: a notification, then the composer closes."""
        if len(self) > 1:
            return self._pipemail_batch_result_action()
        self.ensure_one()
        outbox = self.sudo()
        if outbox.state == "sent":
            title, kind = _("Email sent"), "success"
            message = outbox.rcpt_refused or _("Sent from %(box)s.", box=outbox.email_from)
        elif outbox.state == "retry":
            title, kind = _("Not sent yet"), "warning"
            message = _(
                "%(error)s It is kept in your Outbox and will be tried again at %(when)s (UTC).",
                error=outbox.last_error or "",
                when=fields.Datetime.to_string(outbox.next_attempt),
            )
        elif outbox.state == "uncertain":
            title, kind = _("Maybe not sent"), "warning"
            message = outbox.last_error
        else:
            title, kind = _("Not sent"), "danger"
            message = _(
                "%(error)s It is kept in your Outbox: fix the problem and press Retry.",
                error=outbox.last_error or "",
            )
        return notification(title, message, kind, close=True)

    def _pipemail_batch_result_action(self):
        """The notification after an individual send: how many copies left, and who
        is still owed one (and why), in plain words."""
        outboxes = self.sudo()
        by_state = {
            state: outboxes.filtered(lambda o, s=state: o.state == s) for state, _l in STATES
        }
        sent = by_state["sent"]
        parts = [
            _(
                "%(sent)s of %(total)s separate emails sent from %(box)s.",
                sent=len(sent),
                total=len(outboxes),
                box=outboxes[:1].email_from or "",
            )
        ]
        parts += [line for line in sent.mapped("rcpt_refused") if line]
        queued = by_state["queued"] | by_state["sending"]
        if queued:
            parts.append(
                _(
                    "%(count)s more are leaving from your Outbox in the background.",
                    count=len(queued),
                )
            )
        for state, words in (
            ("retry", _("Will be tried again later")),
            ("uncertain", _("Maybe not sent")),
            ("failed", _("Not sent")),
        ):
            for outbox in by_state[state]:
                parts.append(
                    _(
                        "%(what)s: %(who)s (%(error)s)",
                        what=words,
                        who=outbox.email_to or "",
                        error=outbox.last_error or "",
                    )
                )
        if len(sent) == len(outboxes):
            title, kind = _("Emails sent"), "success"
        elif not sent and not queued and not by_state["retry"]:
            title, kind = _("Not sent"), "danger"
        else:
            title, kind = _("Not all sent yet"), "warning"
        if kind != "success":
            parts.append(_("Every email not sent is kept in your Outbox."))
        return notification(title, " ".join(parts), kind, close=True)

    # ------------------------------------------------------------------ cron

    @api.model
    def _cron_send_outbox(self, limit=50):
        """Retry what is due, settle stale claims, save pending Sent copies."""
        now = fields.Datetime.now()
        self.env.flush_all()  # the SELECT below reads the table directly
        stale = self.sudo().search(
            [("state", "=", "sending"), ("sending_since", "<", now - STALE_SENDING)]
        )
        for outbox in stale:
            outbox.write(
                {
                    "state": "uncertain",
                    "last_error": _(
                        "Sending was interrupted (the server running it stopped), so the email "
                        "may or may not have left. It is not sent again by itself."
                    ),
                    "sending_since": False,
                }
            )
        self._pipemail_commit()
        self.env.cr.execute(
            SQL(
                "SELECT id FROM pipemail_outbox WHERE state IN ('queued', 'retry')"
                " AND (next_attempt IS NULL OR next_attempt <= %s)"
                " ORDER BY next_attempt NULLS FIRST, id LIMIT %s FOR UPDATE SKIP LOCKED",
                now,
                limit,
            )
        )
        due = self.sudo().browse([row[0] for row in self.env.cr.fetchall()])
        for outbox in due:
            outbox._pipemail_send_one()
        copies = self.sudo().search(
            [("sent_copy_state", "=", "pending"), ("sent_message_id", "!=", False)], limit=limit
        )
        for outbox in copies:
            outbox._pipemail_save_sent_copy()
            self._pipemail_commit()
        return due
