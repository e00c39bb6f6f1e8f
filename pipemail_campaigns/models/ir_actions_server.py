"""The server action "Send Email from Mailbox": what an automation rule (base_automation:
on creation, stage change, date field, field value) does to send a mail.template from a
salesperson's own mailbox, through the pipemail outbox.

Nothing of the trigger machinery is here: base_automation decides when, this decides
who sends, from which mailbox, to whom, and queues one outbox row per record. The
outbox cron sends it (retries, no duplicates, Sent-folder copy) and files it in the
record's conversations like any email written in the composer.

Access: base_automation runs actions as superuser. The email is rendered and addressed
as the record's owner (its salesperson / project manager / contact's salesperson), who
must be able to read the record; otherwise nothing is sent and the rule's log says why.
"""

import logging

from odoo import Command, _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import html_sanitize

from odoo.addons.pipemail_sync.engine import (
    join_addresses,
    mark_fragment,
    parse_addresses,
)

from .pipemail_followup import MAX_STEPS, option_fields

_logger = logging.getLogger(__name__)

STATE = "pipemail_send"
RECORD_MODELS = ("crm.lead", "project.project", "res.partner")
OWNER_FIELD = {"crm.lead": "user_id", "project.project": "user_id", "res.partner": "user_id"}


class IrActionsServer(models.Model):
    _inherit = "ir.actions.server"

    state = fields.Selection(
        selection_add=[(STATE, "Send Email from Mailbox")],
        ondelete={STATE: "cascade"},
    )
    pipemail_template_id = fields.Many2one(
        "mail.template",
        string="Mailbox Email Template",
        domain="[('model_id', '=', model_id)]",
        ondelete="restrict",
    )
    pipemail_sender = fields.Selection(
        [("owner", "Owner's Mailbox"), ("team", "Team Mailbox")],
        string="Send From",
        default="owner",
        help="Owner's Mailbox: the record's salesperson (or project manager) sends from "
        "their own connected mailbox. Team Mailbox: the team mailbox below sends.",
    )
    pipemail_account_id = fields.Many2one(
        "pipemail.account",
        string="Team Mailbox",
        domain="[('kind', '=', 'team')]",
        ondelete="set null",
    )
    pipemail_fallback_account_id = fields.Many2one(
        "pipemail.account",
        string="Fallback Mailbox",
        ondelete="set null",
        help="Used when the owner has no connected mailbox (or the record has no owner).",
    )
    pipemail_tracking = fields.Boolean(string="Track Opens and Clicks", default=True)
    (
        pipemail_followup_template_id,
        pipemail_followup_days,
        pipemail_followup_business_days,
        pipemail_followup_steps,
    ) = option_fields("Follow Up If No Reply With", "[('model_id', '=', model_id)]")

    @api.depends("state")
    def _compute_available_model_ids(self):
        ours = self.filtered(lambda action: action.state == STATE)
        if ours:
            models_ = self.env["ir.model"].search([("model", "in", RECORD_MODELS)])
            for action in ours:
                action.available_model_ids = models_ & action.available_model_ids or models_
        return super(IrActionsServer, self - ours)._compute_available_model_ids()

    @api.depends("pipemail_template_id")
    def _compute_name(self):
        res = super()._compute_name()
        for action in self.filtered(lambda a: a.base_automation_id and a.state == STATE):
            action.name = _(
                "Send from mailbox: %(template)s", template=action.pipemail_template_id.name or ""
            )
        return res

    @api.constrains("state", "model_id", "pipemail_template_id", "pipemail_sender")
    def _check_pipemail_send(self):
        for action in self.filtered(lambda a: a.state == STATE):
            if action.model_id.model not in RECORD_MODELS:
                raise UserError(
                    _(
                        "Send Email from Mailbox works on leads and opportunities, projects, "
                        "contacts and companies."
                    )
                )
            template = action.pipemail_template_id
            if template and template.model_id != action.model_id:
                raise UserError(
                    _(
                        "The email template of %(action)s is for another kind of record.",
                        action=action.name,
                    )
                )
            if action.pipemail_sender == "team" and action.pipemail_account_id.kind != "team":
                raise UserError(_("Choose the team mailbox to send from."))

    # ------------------------------------------------------------------ run

    def _run_action_pipemail_send(self, eval_context=None):
        """One record (base_automation passes one active_id at a time)."""
        record = self.env[self.model_id.model].browse(self.env.context.get("active_id"))
        record = record.exists()
        if record:
            self._pipemail_send_for(record)
        return False

    def _pipemail_log(self, record, message, level="WARNING"):
        """A plain line in the rule's log (Settings > Technical > Logging, or the rule's
        log button), and in the server log."""
        self.ensure_one()
        rule = self.sudo().base_automation_id
        path = f"base_automation({rule.id})" if rule else f"ir.actions.server({self.id})"
        text = _(
            "%(rule)s on %(record)s: %(message)s",
            rule=rule.name or self.name,
            record=record.display_name if record else "-",
            message=message,
        )
        self.env["ir.logging"].sudo().create(
            {
                "name": _("Email Automation"),
                "type": "server",
                "dbname": self.env.cr.dbname,
                "level": level,
                "message": text,
                "path": path,
                "func": record._name if record else "",
                "line": str(record.id) if record else "",
            }
        )
        _logger.info("%s", text)

    def _pipemail_owner(self, record):
        field = OWNER_FIELD.get(record._name)
        owner = record.sudo()[field] if field else self.env["res.users"]
        return owner if owner and owner.active and not owner.share else self.env["res.users"]

    def _pipemail_pick_account(self, owner):
        """``(mailbox, user the email is written by)``, or ``(empty, None)``."""
        Account = self.env["pipemail.account"].sudo()
        usable = [("state", "!=", "disabled"), ("active", "=", True)]
        if self.pipemail_sender == "team" and self.pipemail_account_id:
            team = Account.search([("id", "=", self.pipemail_account_id.id), *usable])
            if team:
                return team, owner or team.user_id
        elif owner:
            mine = Account.search(
                [("user_id", "=", owner.id), ("kind", "=", "personal"), *usable],
                order="id",
                limit=1,
            )
            if mine:
                return mine, owner
        fallback = Account.search([("id", "=", self.pipemail_fallback_account_id.id), *usable])
        if fallback:
            return fallback, owner or fallback.user_id
        return Account, None

    def _pipemail_send_for(self, record):
        """Queue the template's email for ``record``; returns the outbox row or an empty
        recordset (the reason is in the rule's log)."""
        self.ensure_one()
        Outbox = self.env["pipemail.outbox"].sudo()
        template = self.sudo().pipemail_template_id
        if not template:
            self._pipemail_log(record, _("no email template is set: nothing was sent."))
            return Outbox
        owner = self._pipemail_owner(record)
        account, author = self._pipemail_pick_account(owner)
        if not account:
            self._pipemail_log(
                record,
                _(
                    "no mailbox to send from (the owner has no connected mailbox and the "
                    "rule has no fallback mailbox): nothing was sent."
                ),
            )
            return Outbox
        # everything below is done as the author: what they cannot read is not sent
        as_author = record.with_user(author).with_context(lang=author.lang)
        try:
            as_author.check_access("read")
        except AccessError:
            self._pipemail_log(
                record,
                _(
                    "%(user)s cannot read this record, so nothing was sent on their behalf.",
                    user=author.name,
                ),
            )
            return Outbox
        try:
            values = (
                self.env["pipemail.compose"]
                .with_user(author)
                ._pipemail_record_defaults(record._name, record.id)
            )
            rendered = self._pipemail_render(template.with_user(author), record.id)
        except (UserError, AccessError) as exc:
            self._pipemail_log(
                record,
                _(
                    "the template could not be rendered, nothing was sent: %(error)s",
                    error=exc.args[0] if exc.args else exc,
                ),
            )
            return Outbox
        recipients = parse_addresses(self.env, values.get("email_to") or "", strict=False)
        blocked = self._pipemail_blacklisted([a.email for a in recipients])
        kept = [a for a in recipients if a.email.lower() not in blocked]
        if not kept:
            reason = (
                _("the recipient is on the blacklist (unsubscribed): nothing was sent.")
                if recipients
                else _("the record has no email address to write to: nothing was sent.")
            )
            self._pipemail_log(record, reason, level="INFO")
            return Outbox
        body, direction = mark_fragment(rendered["body"])
        vals = {
            "account_id": account.id,
            "user_id": author.id,
            "mode": "new",
            "lead_id": values.get("lead_id") or False,
            "project_id": values.get("project_id") or False,
            "partner_id": values.get("partner_id") or False,
            "email_to": join_addresses(kept),
            "subject": rendered["subject"],
            "body_html": body,
            "text_direction": direction,
            "tracking": self.pipemail_tracking,
            "pipemail_action_id": self.id,
        }
        outbox = Outbox.with_context(mail_create_nolog=True, mail_create_nosubscribe=True).create(
            vals
        )
        if template.attachment_ids:
            # copies: the template keeps its own files
            copies = template.attachment_ids.sudo().copy(
                {"res_model": outbox._name, "res_id": outbox.id}
            )
            outbox.attachment_ids = [Command.set(copies.ids)]
        try:
            outbox._pipemail_prepare()
        except UserError as exc:
            self._pipemail_log(
                record,
                _("the email could not be built, nothing was sent: %(error)s", error=exc.args[0]),
            )
            outbox.unlink()
            return Outbox
        followup_template = self.sudo().pipemail_followup_template_id
        if followup_template:
            self.env["pipemail.followup"]._pipemail_schedule(
                outbox,
                followup_template,
                max(1, self.pipemail_followup_days),
                self.pipemail_followup_business_days,
                min(MAX_STEPS, max(1, self.pipemail_followup_steps)),
                action_id=self.id,
            )
        cron = self.env.ref("pipemail_sync.ir_cron_pipemail_outbox", raise_if_not_found=False)
        if cron:
            # sent by the outbox worker after this transaction commits, never inline:
            # the trigger's own transaction (a user's save) must not be committed halfway
            cron.sudo()._trigger()
        return outbox

    @api.model
    def _pipemail_render(self, template, res_id):
        """Subject and body as the template's reader; UserError with the reason when the
        template does not render (Odoo wraps QWeb / inline_template errors in it)."""
        try:
            subject = template._render_field("subject", [res_id], compute_lang=True)[res_id]
            body = template._render_field(
                "body_html", [res_id], compute_lang=True, options={"post_process": True}
            )[res_id]
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - any render failure is logged on the rule
            raise UserError(str(exc)) from exc
        return {"subject": subject or "", "body": html_sanitize(str(body or ""))}

    @api.model
    def _pipemail_blacklisted(self, emails):
        """Normalised addresses on Odoo's blacklist (unsubscribes write there)."""
        normalized = [e.strip().lower() for e in emails if e]
        if not normalized:
            return set()
        rows = self.env["mail.blacklist"].sudo().search([("email", "in", normalized)])
        return set(rows.mapped("email"))
