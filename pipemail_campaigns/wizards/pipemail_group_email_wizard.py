"""Send group email: from a list of contacts, companies, leads/opportunities or
projects (their customers), one text personalised per recipient, each copy sent
alone from the user's mailbox.

Everything here runs as the user who pressed the button: the records are browsed
with their rights (a record they cannot read stops the wizard), the text is rendered
by Odoo's ``mail.render.mixin`` with their rights (the restricted-template rules of
``mail.composer.mixin`` apply), the mailbox is one they may send from. Only then is
the group email stored, with a narrow ``sudo()``: its rows are the server's.
"""

import json

from markupsafe import Markup

from odoo import Command, _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import email_normalize, is_html_empty

from odoo.addons.pipemail_sync import access
from odoo.addons.pipemail_sync.engine import pacing as pm_pacing
from odoo.addons.pipemail_sync.engine import unsubscribe as pm_unsubscribe

from ..models.pipemail_followup import check_options, option_fields

SOURCE_MODELS = ("res.partner", "crm.lead", "project.project")
RENDER_MODEL = {
    "res.partner": "res.partner",
    "crm.lead": "crm.lead",
    # a project's customers are written to as contacts
    "project.project": "res.partner",
}
USER_FIELDS = frozenset(
    {
        "source_model",
        "source_ids",
        "account_id",
        "template_id",
        "subject",
        "body",
        "lang",
        "attachment_ids",
        "tracking",
        "followup_template_id",
        "followup_days",
        "followup_business_days",
        "followup_steps",
        "schedule",
        "scheduled_date",
        "preview_index",
    }
)
LISTED_EXCLUSIONS = 50


class PipemailGroupEmailWizard(models.TransientModel):
    _name = "pipemail.group.email.wizard"
    _inherit = ["mail.composer.mixin"]
    _description = "Send Group Email"

    source_model = fields.Char(readonly=True)
    source_ids = fields.Text(readonly=True, help="JSON list of the selected record ids.")
    selected_count = fields.Integer(string="Selected", compute="_compute_selected_count")
    allowed_account_ids = fields.Many2many(
        "pipemail.account", compute="_compute_allowed_account_ids"
    )
    account_id = fields.Many2one(
        "pipemail.account",
        string="From",
        required=True,
        domain="[('id', 'in', allowed_account_ids)]",
        help="Your mailbox, or a team mailbox you belong to.",
    )
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "pipemail_group_email_wizard_attachment_rel",
        "wizard_id",
        "attachment_id",
        string="Attachments",
    )
    tracking = fields.Boolean(
        string="Track Opens and Clicks",
        default=lambda self: self.env.user.pipemail_tracking_default,
    )
    (
        followup_template_id,
        followup_days,
        followup_business_days,
        followup_steps,
    ) = option_fields("Follow Up If No Reply", "[('model', '=', render_model)]")
    schedule = fields.Boolean(string="Send Later")
    scheduled_date = fields.Datetime(string="Send At")
    check_html = fields.Html(string="Recipients", compute="_compute_check", sanitize=False)
    included_count = fields.Integer(string="Will Receive It", compute="_compute_check")
    excluded_count = fields.Integer(string="Excluded", compute="_compute_check")
    eta_info = fields.Char(string="Expected End", compute="_compute_check")
    preview_index = fields.Integer(default=0)
    preview_to = fields.Char(string="Preview To", compute="_compute_preview")
    preview_subject = fields.Char(compute="_compute_preview")
    preview_body = fields.Html(compute="_compute_preview", sanitize=True, sanitize_style=True)
    preview_position = fields.Char(compute="_compute_preview")

    # ------------------------------------------------------------------ every path

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            access.check_values(self, vals, USER_FIELDS)
        wizards = super().create(vals_list)
        wizards._pipemail_check_refs()
        return wizards

    def write(self, vals):
        access.check_values(self, vals, USER_FIELDS)
        res = super().write(vals)
        self._pipemail_check_refs()
        return res

    def _pipemail_check_refs(self):
        if self.env.su:
            return
        allowed = self._pipemail_allowed_accounts()
        for wizard in self:
            if wizard.account_id and wizard.account_id not in allowed:
                raise AccessError(_("You cannot send from this mailbox."))
            if wizard.source_model not in SOURCE_MODELS:
                raise UserError(
                    _("Group emails are sent from contacts, leads, opportunities and projects.")
                )
            wizard._pipemail_records()
            # a template renders on its own model: with the ids of another it would
            # read records of that model (as superuser for an unchanged template)
            if wizard.template_id and wizard.template_id.sudo().model != wizard.render_model:
                raise UserError(_("This template is for another kind of record."))

    @api.model
    def _pipemail_allowed_accounts(self):
        return self.env["pipemail.compose"]._pipemail_allowed_accounts()

    @api.depends("account_id")
    @api.depends_context("uid", "allowed_company_ids")
    def _compute_allowed_account_ids(self):
        allowed = self._pipemail_allowed_accounts()
        for wizard in self:
            wizard.allowed_account_ids = allowed

    @api.depends("source_model")
    def _compute_render_model(self):
        for wizard in self:
            wizard.render_model = RENDER_MODEL.get(wizard.source_model) or "res.partner"

    @api.depends("source_ids")
    def _compute_selected_count(self):
        for wizard in self:
            wizard.selected_count = len(wizard._pipemail_ids())

    # ------------------------------------------------------------------ defaults

    @api.model
    def _pipemail_limit(self):
        """The composer's "send individually" limit: the same setting, read one way."""
        return self.env["pipemail.compose"]._pipemail_individual_limit()

    @api.model
    def _pipemail_check_limit(self, count):
        limit = self._pipemail_limit()
        if count > limit:
            raise UserError(
                _(
                    "A group email goes to at most %(limit)s recipients, and %(count)s are "
                    "selected. Select fewer records, or ask an administrator to raise "
                    "'Recipients per group email'.",
                    limit=limit,
                    count=count,
                )
            )

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        ctx = self.env.context
        model = values.get("source_model") or ctx.get("active_model")
        ids = ctx.get("active_ids") or []
        if "source_ids" in values:
            ids = json.loads(values["source_ids"] or "[]")
        if model not in SOURCE_MODELS:
            raise UserError(
                _("Group emails are sent from contacts, leads, opportunities and projects.")
            )
        if not ids:
            raise UserError(_("Select the records to write to first."))
        # refused before anything is prepared, with the count
        self._pipemail_check_limit(len(ids))
        allowed = self._pipemail_allowed_accounts()
        if not allowed:
            raise UserError(
                _(
                    "Connect your mailbox first (Inbox > My Mailboxes): group emails leave "
                    "from your own address."
                )
            )
        account = allowed.filtered(lambda a: a.user_id.id == self.env.uid)[:1] or allowed[:1]
        values.update(
            source_model=model,
            source_ids=json.dumps([int(i) for i in ids]),
        )
        values.setdefault("account_id", account.id)
        return values

    # ------------------------------------------------------------------ recipients

    def _pipemail_ids(self):
        try:
            ids = json.loads(self.source_ids or "[]")
        except ValueError:
            ids = []
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise UserError(_("The selection is not a list of records."))
        return list(dict.fromkeys(ids))

    def _pipemail_records(self):
        """The selected records, as the user; one they cannot read stops here."""
        self.ensure_one()
        ids = self._pipemail_ids()
        self._pipemail_check_limit(len(ids))
        records = self.env[self.source_model].browse(ids)
        found = records.exists()
        if len(found) != len(ids) or not found.has_access("read"):
            raise AccessError(
                _(
                    "You can send a group email only to records you may see, and some you "
                    "selected do not exist or are not yours to see."
                )
            )
        return found

    def _pipemail_targets(self):
        """``[dict]``: one per person to write to, in the order of the selection."""
        records = self._pipemail_records()
        targets = []
        for record in records:
            if record._name == "crm.lead":
                partner = record.partner_id
                email = partner.email or record.email_from or ""
                name = partner.name or record.contact_name or record.partner_name or ""
                targets.append(
                    {
                        "res_model": "crm.lead",
                        "res_id": record.id,
                        "partner": partner,
                        "lead": record,
                        "project": False,
                        "email": email,
                        "name": name,
                    }
                )
                continue
            if record._name == "project.project":
                customer = record.partner_id
                people = customer
                if customer.is_company and not customer.email:
                    people = customer.child_ids.filtered(lambda p: p.type == "contact") or customer
                project = record
            else:
                people, project = record, False
                if record.is_company and not record.email:
                    people = record.child_ids.filtered("email")[:1] or record
            for partner in people:
                targets.append(
                    {
                        "res_model": "res.partner",
                        "res_id": partner.id,
                        "partner": partner,
                        "lead": False,
                        "project": project,
                        "email": partner.email or "",
                        "name": partner.name or "",
                    }
                )
            if not people:
                targets.append(
                    {
                        "res_model": "res.partner",
                        "res_id": False,
                        "partner": False,
                        "lead": False,
                        "project": project,
                        "email": "",
                        "name": record.display_name,
                    }
                )
        return targets

    def _pipemail_check_targets(self, targets):
        """Each target gains ``email_normalized`` and ``exclusion`` (False if included)."""
        normalized = [email_normalize(t["email"]) if t["email"] else False for t in targets]
        emails = [e for e in normalized if e]
        blacklisted = set(
            self.env["mail.blacklist"].sudo().search([("email", "in", emails)]).mapped("email")
        )
        Recipient = self.env["pipemail.group.email.recipient"].sudo()
        previous = Recipient.search(
            [
                ("email_normalized", "in", emails),
                "|",
                ("unsubscribed", "=", True),
                ("bounce_type", "=", "hard"),
            ]
        )
        unsubscribed = set(previous.filtered("unsubscribed").mapped("email_normalized"))
        bounced = set(
            previous.filtered(lambda r: r.bounce_type == "hard").mapped("email_normalized")
        )
        seen = set()
        for target, email in zip(targets, normalized, strict=True):
            target["email_normalized"] = email or False
            partner = target["partner"]
            if not target["email"]:
                reason = "no_email"
            elif not email:
                reason = "invalid"
            elif email in seen:
                reason = "duplicate"
            elif email in blacklisted:
                reason = "unsubscribed" if email in unsubscribed else "blacklisted"
            elif email in bounced or (partner and partner.sudo().message_bounce > 0):
                reason = "bounced"
            else:
                reason = False
            target["exclusion"] = reason
            if email:
                seen.add(email)
        return targets

    def _pipemail_checked(self):
        return self._pipemail_check_targets(self._pipemail_targets())

    @api.depends("source_ids", "source_model", "account_id", "schedule", "scheduled_date")
    def _compute_check(self):
        Recipient = self.env["pipemail.group.email.recipient"]
        labels = dict(Recipient._fields["exclusion"]._description_selection(self.env))
        for wizard in self:
            if not wizard.source_model or not wizard.source_ids:
                wizard.check_html, wizard.included_count, wizard.excluded_count = False, 0, 0
                wizard.eta_info = False
                continue
            targets = wizard._pipemail_checked()
            excluded = [t for t in targets if t["exclusion"]]
            wizard.included_count = len(targets) - len(excluded)
            wizard.excluded_count = len(excluded)
            counts = {}
            for target in excluded:
                counts[target["exclusion"]] = counts.get(target["exclusion"], 0) + 1
            html = Markup("<p>%s</p>") % _(
                "%(included)s of %(total)s recipients will receive their own copy.",
                included=wizard.included_count,
                total=len(targets),
            )
            if counts:
                html += Markup("<ul>%s</ul>") % Markup().join(
                    Markup("<li>%s: %s</li>") % (labels[reason], count)
                    for reason, count in counts.items()
                )
                html += Markup("<table class='table table-sm'><tbody>%s</tbody></table>") % (
                    Markup().join(
                        Markup("<tr><td>%s</td><td>%s</td><td>%s</td></tr>")
                        % (t["name"], t["email"] or "", labels[t["exclusion"]])
                        for t in excluded[:LISTED_EXCLUSIONS]
                    )
                )
            wizard.check_html = html
            wizard.eta_info = wizard._pipemail_eta_info(wizard.included_count)

    def _pipemail_eta_info(self, count):
        account = self.account_id.sudo()
        if not account or not count:
            return False
        now = fields.Datetime.now()
        start = self.scheduled_date if self.schedule and self.scheduled_date else now
        start = max(start, now)
        quota = account._pipemail_quota()
        end = pm_pacing.eta(
            start,
            account._pipemail_send_history(start),
            quota,
            count,
            account.pipemail_blocked_until or None,
        )
        when = fields.Datetime.context_timestamp(self, end).strftime("%Y-%m-%d %H:%M")
        if end - start > pm_pacing.MINUTE * 5:
            return _(
                "Your mailbox's quota (%(minute)s a minute, %(day)s a day) spreads these "
                "copies: the last one should leave around %(when)s.",
                minute=quota.per_minute or "-",
                day=quota.per_day or "-",
                when=when,
            )
        return _("The last copy should leave around %(when)s.", when=when)

    # ------------------------------------------------------------------ rendering

    def _pipemail_signature(self):
        signature = self.env.user.signature
        if is_html_empty(signature):
            return Markup("")
        return Markup("<div>%s</div>") % signature

    def _pipemail_render(self, targets):
        """``{res_id: (subject, body)}`` for the targets (one render model), as the user."""
        res_ids = [t["res_id"] for t in targets if t["res_id"]]
        if not res_ids:
            return {}
        subjects = self._render_field("subject", res_ids, compute_lang=True)
        bodies = self._render_field("body", res_ids, compute_lang=True)
        return {
            res_id: (subjects.get(res_id) or "", Markup(bodies.get(res_id) or ""))
            for res_id in res_ids
        }

    @api.depends("preview_index", "source_ids", "subject", "body", "template_id", "account_id")
    def _compute_preview(self):
        for wizard in self:
            wizard.preview_to = wizard.preview_subject = wizard.preview_body = False
            wizard.preview_position = False
            if not wizard.source_ids or not wizard.source_model:
                continue
            included = [t for t in wizard._pipemail_checked() if not t["exclusion"]]
            if not included:
                wizard.preview_position = _("Nobody left to write to.")
                continue
            index = wizard.preview_index % len(included)
            target = included[index]
            try:
                rendered = wizard._pipemail_render([target])
            except UserError as exc:
                wizard.preview_position = exc.args[0]
                continue
            subject, body = rendered.get(target["res_id"], ("", Markup("")))
            wizard.preview_to = f"{target['name']} <{target['email_normalized']}>"
            wizard.preview_subject = subject
            wizard.preview_body = (
                body
                + wizard._pipemail_signature()
                + Markup(
                    pm_unsubscribe.footer_html(
                        "#",
                        _("You received this email from %(name)s.", name=self.env.user.name),
                        _("Unsubscribe"),
                    )
                )
            )
            wizard.preview_position = _(
                "Recipient %(index)s of %(count)s", index=index + 1, count=len(included)
            )

    def action_preview_next(self):
        self.ensure_one()
        self.preview_index += 1
        return self._pipemail_reopen()

    def action_preview_previous(self):
        self.ensure_one()
        self.preview_index -= 1
        return self._pipemail_reopen()

    def _pipemail_reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": _("Send Group Email"),
        }

    # ------------------------------------------------------------------ send

    def action_send(self):
        self.ensure_one()
        group = self._action_send()
        return {
            "type": "ir.actions.act_window",
            "res_model": "pipemail.group.email",
            "res_id": group.id,
            "view_mode": "form",
            "target": "current",
        }

    def _pipemail_check_send(self):
        self._pipemail_check_refs()
        if self.account_id not in self._pipemail_allowed_accounts():
            raise AccessError(_("You cannot send from this mailbox."))
        if not (self.subject or "").strip():
            raise UserError(_("Write a subject first."))
        if is_html_empty(self.body):
            raise UserError(_("Write the text of the email first."))
        if self.schedule and not self.scheduled_date:
            raise UserError(_("Choose when to send, or untick Send Later."))
        if self.followup_template_id:
            check_options(
                self.env,
                self.followup_template_id,
                self.render_model,
                self.followup_days,
                self.followup_steps,
            )
        self.attachment_ids.check_access("read")
        self.env["pipemail.outbox"]._pipemail_check_size(
            self.account_id, self.body, self.attachment_ids
        )

    def _action_send(self):
        self._pipemail_check_send()
        targets = self._pipemail_checked()
        self._pipemail_check_limit(len(targets))
        included = [t for t in targets if not t["exclusion"]]
        if not included:
            raise UserError(_("Nobody is left to write to: every recipient is excluded."))
        # rendered now, as the user, for every recipient: a template error stops here
        rendered = self._pipemail_render(included)
        now = fields.Datetime.now()
        when = self.scheduled_date if self.schedule and self.scheduled_date else now
        group = (
            self.env["pipemail.group.email"]
            .sudo()
            .create(
                {
                    "user_id": self.env.uid,
                    "account_id": self.account_id.id,
                    "source_model": self.source_model,
                    "template_id": self.template_id.id or False,
                    "subject": self.subject,
                    "body_html": self.body,
                    "tracking": self.tracking,
                    "followup_template_id": self.followup_template_id.id or False,
                    "followup_days": self.followup_days,
                    "followup_business_days": self.followup_business_days,
                    "followup_steps": self.followup_steps,
                    "scheduled_date": max(when, now),
                    "state": "scheduled",
                }
            )
        )
        files = self.attachment_ids.sudo()
        if files:
            group.attachment_ids = [
                Command.set(files.copy({"res_model": group._name, "res_id": group.id}).ids)
            ]
        Recipient = self.env["pipemail.group.email.recipient"].sudo()
        rows = Recipient.create(
            [
                {
                    "group_id": group.id,
                    "sequence": index,
                    "name": t["name"],
                    "email": t["email"],
                    "email_normalized": t["email_normalized"],
                    "res_model": t["res_model"],
                    "res_id": t["res_id"] or 0,
                    "partner_id": t["partner"].id if t["partner"] else False,
                    "lead_id": t["lead"].id if t["lead"] else False,
                    "project_id": t["project"].id if t["project"] else False,
                    "excluded": bool(t["exclusion"]),
                    "exclusion": t["exclusion"] or False,
                }
                for index, t in enumerate(targets)
            ]
        )
        signature = self._pipemail_signature()
        for row in rows.filtered(lambda r: not r.excluded):
            subject, body = rendered[row.res_id]
            row.write(
                {
                    "subject": subject,
                    "body_html": body + signature + row._pipemail_footer(),
                }
            )
        group._pipemail_update_eta()
        group._pipemail_trigger(group.scheduled_date if group.scheduled_date > now else None)
        return group
