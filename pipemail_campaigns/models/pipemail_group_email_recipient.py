"""One recipient of a group email: who, why excluded if so, the text rendered for
them (as the sender, when the sender pressed Send), and their copy in the outbox."""

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from odoo.addons.pipemail_sync.engine import format_address
from odoo.addons.pipemail_sync.engine import unsubscribe as pm_unsubscribe

EXCLUSIONS = [
    ("no_email", "No email address"),
    ("invalid", "Invalid address"),
    ("duplicate", "Duplicate"),
    ("blacklisted", "In the blacklist"),
    ("unsubscribed", "Unsubscribed"),
    ("bounced", "Bounced before"),
]
STATUSES = [
    ("excluded", "Excluded"),
    ("waiting", "Waiting"),
    ("cancelled", "Cancelled"),
    ("queued", "Queued"),
    ("sent", "Sent"),
    ("failed", "Failed"),
    ("bounced", "Bounced"),
]
OUTBOX_STATUS = {
    "queued": "queued",
    "sending": "queued",
    "retry": "queued",
    "uncertain": "queued",
    "sent": "sent",
    "failed": "failed",
    "cancelled": "cancelled",
}


class PipemailGroupEmailRecipient(models.Model):
    _name = "pipemail.group.email.recipient"
    _inherit = ["pipemail.guarded.mixin"]
    _description = "Group Email Recipient"
    _order = "group_id, sequence, id"
    _rec_name = "email"

    group_id = fields.Many2one(
        "pipemail.group.email", required=True, readonly=True, index=True, ondelete="cascade"
    )
    sequence = fields.Integer(readonly=True)
    name = fields.Char(readonly=True)
    email = fields.Char(readonly=True, help="The address as found on the record.")
    email_normalized = fields.Char(readonly=True, index=True)
    res_model = fields.Char(string="Rendered On", readonly=True)
    res_id = fields.Integer(readonly=True)
    partner_id = fields.Many2one("res.partner", string="Contact", readonly=True)
    lead_id = fields.Many2one("crm.lead", string="Lead / Opportunity", readonly=True)
    project_id = fields.Many2one("project.project", readonly=True)
    excluded = fields.Boolean(readonly=True)
    exclusion = fields.Selection(EXCLUSIONS, string="Why Excluded", readonly=True)
    cancelled = fields.Boolean(readonly=True)
    subject = fields.Char(readonly=True)
    body_html = fields.Html(string="Text", readonly=True, sanitize=True, sanitize_style=True)
    outbox_id = fields.Many2one("pipemail.outbox", string="Copy", readonly=True, index=True)
    slot_date = fields.Datetime(
        string="Taken At", readonly=True, index=True, help="When the quota let this copy go."
    )
    status = fields.Selection(STATUSES, compute="_compute_status")
    opened = fields.Boolean(compute="_compute_status")
    clicked = fields.Boolean(compute="_compute_status")
    replied = fields.Boolean(compute="_compute_status")
    bounce_type = fields.Selection([("hard", "Hard"), ("soft", "Soft")], readonly=True)
    bounce_info = fields.Char(readonly=True)
    unsubscribed = fields.Boolean(readonly=True)
    problem = fields.Char(readonly=True, help="Why no copy could be built for this recipient.")

    def _pipemail_hidden_name(self):
        return _("Recipient")

    @api.depends("excluded", "cancelled", "bounce_type", "outbox_id.state")
    def _compute_status(self):
        outboxes = self.sudo().outbox_id
        stats = outboxes._pipemail_tracking_stats()
        replied = set()
        if outboxes:
            rows = (
                self.env["pipemail.message"]
                .sudo()
                ._read_group(
                    [("thread_id", "in", outboxes.thread_id.ids), ("direction", "=", "in")],
                    ["thread_id"],
                )
            )
            replied = {thread.id for (thread,) in rows}
        for row in self:
            outbox = row.sudo().outbox_id
            if row.excluded:
                status = "excluded"
            elif row.bounce_type:
                status = "bounced"
            elif outbox:
                status = OUTBOX_STATUS.get(outbox.state, "queued")
            else:
                status = "cancelled" if row.cancelled else "waiting"
            row.status = status
            stat = stats.get(outbox.id, {})
            row.opened = bool(stat.get("opens"))
            row.clicked = bool(stat.get("clicks"))
            row.replied = bool(outbox.thread_id) and outbox.thread_id.id in replied

    # ------------------------------------------------------------------ unsubscribe

    @api.model
    def _pipemail_unsubscribe(self, token, apply):
        """The address the signed ``token`` names, or ``None`` for any miss.

        With ``apply`` the address goes to Odoo's blacklist (mass mailing and every
        later group email respect it); an address already there stays as it is.
        """
        Event = self.env["pipemail.tracking.event"]
        recipient_id = pm_unsubscribe.recipient_from_token(Event._pipemail_secret(), token)
        if not recipient_id:
            return None
        row = self.sudo().browse(recipient_id).exists()
        if not row or not row.email_normalized:
            return None
        if apply:
            if not row.unsubscribed:
                row.unsubscribed = True
            Blacklist = self.env["mail.blacklist"].sudo()
            if not Blacklist.search_count([("email", "=", row.email_normalized)]):
                Blacklist._add(
                    row.email_normalized,
                    message=_(
                        "Unsubscribed from the group email “%(subject)s”.",
                        subject=row.group_id.subject or "",
                    ),
                )
        return row.email_normalized

    # ------------------------------------------------------------------ copies

    def _pipemail_unsubscribe_url(self):
        self.ensure_one()
        Event = self.env["pipemail.tracking.event"]
        token = pm_unsubscribe.recipient_token(Event._pipemail_secret(), self.id)
        return pm_unsubscribe.unsubscribe_url(Event._pipemail_base_url(), token)

    def _pipemail_footer(self):
        return Markup(
            pm_unsubscribe.footer_html(
                self._pipemail_unsubscribe_url(),
                _("You received this email from %(name)s.", name=self.group_id.user_id.name),
                _("Unsubscribe"),
            )
        )

    def _pipemail_make_copies(self, now):
        """One outbox row per recipient, built (bytes, Message-ID, tracking, headers)
        and linked to its recipient row, in the caller's transaction."""
        Outbox = self.env["pipemail.outbox"].sudo()
        outboxes = Outbox.browse()
        for row in self.sudo():
            group = row.group_id
            outbox = Outbox.with_context(
                mail_create_nolog=True, mail_create_nosubscribe=True
            ).create(
                {
                    "account_id": group.account_id.id,
                    "user_id": group.user_id.id,
                    "mode": "new",
                    "lead_id": row.lead_id.id or False,
                    "project_id": row.project_id.id or False,
                    "partner_id": row.partner_id.id or False,
                    "email_to": format_address(row.email_normalized, row.name),
                    "subject": row.subject or "",
                    "body_html": row.body_html,
                    "tracking": group.tracking,
                    "pipemail_group_recipient_id": row.id,
                }
            )
            files = group.attachment_ids
            if files:
                outbox.attachment_ids = [
                    (6, 0, files.copy({"res_model": outbox._name, "res_id": outbox.id}).ids)
                ]
            try:
                with self.env.cr.savepoint():
                    outbox._pipemail_prepare()
            except UserError as exc:
                # something only a person can fix (a header the engine refuses):
                # this copy is not sent, the others go on
                outbox.write({"state": "cancelled", "last_error": exc.args[0]})
                row.write({"cancelled": True, "problem": exc.args[0], "outbox_id": outbox.id})
                continue
            row.write({"outbox_id": outbox.id, "slot_date": row.slot_date or now})
            if group.followup_template_id:
                # checked as the sender in the wizard; the follow-up rows are the server's
                self.env["pipemail.followup"]._pipemail_schedule(
                    outbox,
                    group.followup_template_id,
                    group.followup_days,
                    group.followup_business_days,
                    group.followup_steps,
                )
            outboxes |= outbox
        return outboxes
