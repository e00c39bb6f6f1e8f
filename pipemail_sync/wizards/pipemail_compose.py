"""The composer: a new email, a reply, a reply to all or a forward, from the Sales
Inbox or from a lead, opportunity, project, contact or company.

It only gathers what the person wrote and checks what they can fix before anything
is stored (addresses, size against the provider's limit); the outbox row
(``pipemail.outbox``) builds the bytes, sends them and keeps them when sending fails.

"Send individually" (new emails and forwards) gives each To address its own outbox
row: its own copy addressed to that person alone, its own Message-ID, tracking
tokens, sent message, Sent-folder reconciliation and retries. All rows are built and
stored in one go, before any server sees one of them.
"""

from markupsafe import Markup

from odoo import Command, _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import clean_context, is_html_empty, plaintext2html
from odoo.tools.misc import format_datetime

from pipemail import errors as pm_errors
from pipemail.types import Address

from .. import access
from ..engine import format_address, join_addresses, mark_fragment, parse_addresses
from ..engine import html as pm_html
from ..engine import outbound as pm_outbound
from ..models.pipemail_draft import DRAFT_FIELDS

SOURCE_MODELS = ("crm.lead", "project.project", "res.partner")
INDIVIDUAL_MODES = ("new", "forward")
"""A reply belongs to its conversation's people together; it is never split."""
MAX_INDIVIDUAL_PARAM = "pipemail_campaigns.max_recipients"
"""The "Recipients per group email" setting (Group Email and Automations): the same
kind of send, so the same limit; read as a plain parameter, pipemail_campaigns need
not be installed."""
MAX_INDIVIDUAL_DEFAULT = 100
USER_FIELDS = frozenset(DRAFT_FIELDS) | {"attachment_ids"}
"""What the person writing sets; the outgoing rows it created are the server's."""


class PipemailCompose(models.TransientModel):
    _name = "pipemail.compose"
    _description = "Write an Email"

    mode = fields.Selection(
        [
            ("new", "New Email"),
            ("reply", "Reply"),
            ("reply_all", "Reply All"),
            ("forward", "Forward"),
        ],
        required=True,
        default="new",
    )
    thread_id = fields.Many2one("pipemail.thread", string="Conversation", readonly=True)
    parent_message_id = fields.Many2one("pipemail.message", string="Replying To", readonly=True)
    res_model = fields.Char(string="Written From", readonly=True)
    res_id = fields.Integer(readonly=True)
    lead_id = fields.Many2one("crm.lead", readonly=True)
    project_id = fields.Many2one("project.project", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Contact", readonly=True)
    allowed_account_ids = fields.Many2many(
        "pipemail.account",
        string="Mailboxes You Can Send From",
        compute="_compute_allowed_account_ids",
    )
    account_id = fields.Many2one(
        "pipemail.account",
        string="From",
        required=True,
        domain="[('id', 'in', allowed_account_ids)]",
        help="One of your mailboxes, or a team mailbox you belong to.",
    )
    email_to = fields.Char(string="To", help="Addresses separated by commas.")
    email_cc = fields.Char(string="Cc")
    email_bcc = fields.Char(string="Bcc")
    individual = fields.Boolean(
        string="Send Individually",
        help="Each To address gets its own copy, addressed to them alone (nobody sees the "
        "other recipients), with its own open and click tracking. No Cc or Bcc.",
    )
    individual_info = fields.Char(string="Copies", compute="_compute_individual_info")
    subject = fields.Char()
    body = fields.Html(sanitize=True, sanitize_style=True, sanitize_overridable=False)
    quote_html = fields.Html(
        sanitize=True, sanitize_style=True, help="The quoted email below the reply."
    )
    render_model = fields.Char(compute="_compute_render_record")
    render_res_id = fields.Integer(compute="_compute_render_record")
    template_id = fields.Many2one(
        "mail.template",
        string="Use Template",
        domain="[('model', '=', render_model)]",
    )
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "pipemail_compose_attachment_rel",
        "wizard_id",
        "attachment_id",
        string="Attachments",
    )
    tracking = fields.Boolean(
        string="Track Opens and Clicks",
        default=lambda self: self.env.user.pipemail_tracking_default,
    )
    text_direction = fields.Selection(
        [("ltr", "Left to right"), ("rtl", "Right to left")],
        string="Text Direction",
        compute="_compute_text_direction",
    )
    size_info = fields.Char(string="Size", compute="_compute_size")
    size_exceeded = fields.Boolean(compute="_compute_size")
    outbox_id = fields.Many2one("pipemail.outbox", readonly=True)
    outbox_ids = fields.Many2many(
        "pipemail.outbox",
        "pipemail_compose_outbox_rel",
        "wizard_id",
        "outbox_id",
        string="Outgoing Emails",
        readonly=True,
        help="Every row this composer created: one, or one per recipient when sent individually.",
    )

    # ------------------------------------------------------------------ accounts

    @api.model
    def _pipemail_allowed_accounts(self):
        """Mailboxes the current user may send from: their own, and team mailboxes they
        are a member of. Read as superuser (the account rules are about reading, and a
        sender needs the outgoing server settings), filtered here."""
        uid = self.env.uid
        return (
            self.env["pipemail.account"]
            .sudo()
            .search(
                [
                    ("state", "!=", "disabled"),
                    ("company_id", "in", self.env.companies.ids),
                    "|",
                    ("user_id", "=", uid),
                    "&",
                    ("kind", "=", "team"),
                    ("member_ids", "in", uid),
                ],
                order="kind desc, id",
            )
            .with_env(self.env)
        )

    # not a real dependency: the form's first onchange puts False in cache for every
    # field without a default and recomputes only what depends on a defaulted field
    @api.depends("account_id")
    @api.depends_context("uid", "allowed_company_ids")
    def _compute_allowed_account_ids(self):
        allowed = self._pipemail_allowed_accounts()
        for wizard in self:
            wizard.allowed_account_ids = allowed

    # ------------------------------------------------------------------ every path

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            access.check_values(self, vals, self._pipemail_user_fields())
        wizards = super().create(vals_list)
        # create() leaves every x2many empty in cache, computed ones too
        wizards.invalidate_recordset(["allowed_account_ids"])
        wizards._pipemail_check_refs()
        return wizards

    def write(self, vals):
        access.check_values(self, vals, self._pipemail_user_fields())
        res = super().write(vals)
        self._pipemail_check_refs()
        return res

    @api.model
    def _pipemail_user_fields(self):
        """What the person writing may set; addons that add options to the composer
        (follow-ups in pipemail_campaigns) extend it."""
        return USER_FIELDS

    def _pipemail_check_refs(self):
        """What the composer points at, checked as its user whatever sent the values
        (the form, or a hand-made RPC call): a conversation of their own mailboxes
        whose content they see, an email of that conversation, a mailbox they may send
        from, a record they can read."""
        if self.env.su:
            return
        allowed = self._pipemail_allowed_accounts()
        for wizard in self.sudo():
            thread = wizard.thread_id.with_env(self.env)
            if thread and (
                thread.id not in thread._pipemail_holder_ids(self.env.uid)
                or thread._pipemail_content_hidden()
            ):
                raise AccessError(
                    _("You can reply to and forward conversations of your own mailboxes only.")
                )
            if wizard.parent_message_id and wizard.parent_message_id.thread_id != wizard.thread_id:
                raise AccessError(_("That email is not part of this conversation."))
            if wizard.account_id and wizard.account_id.id not in allowed.ids:
                raise AccessError(_("You cannot send from this mailbox."))
            if wizard.res_model:
                if wizard.res_model not in SOURCE_MODELS:
                    raise UserError(_("Emails are written from leads, projects and contacts."))
                if wizard.res_id:
                    self._pipemail_check_record(wizard.res_model, wizard.res_id)

    def _pipemail_check_record(self, res_model, res_id):
        record = self.env[res_model].browse(res_id)
        if not record.exists() or not record.has_access("read"):
            raise AccessError(_("You cannot write from that record."))

    # ------------------------------------------------------------------ defaults

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        allowed = self._pipemail_allowed_accounts()
        if not allowed:
            raise UserError(
                _(
                    "Connect your mailbox first (Inbox > My Mailboxes): emails leave from "
                    "your own address."
                )
            )
        mode = values.get("mode") or "new"
        thread = self.env["pipemail.thread"].browse(values.get("thread_id") or [])
        account = allowed.filtered(lambda a: a.user_id.id == self.env.uid)[:1] or allowed[:1]
        if thread:
            thread = thread.exists()
            if not thread or not thread.in_my_inbox:
                raise AccessError(
                    _("You can reply to and forward conversations of your own mailboxes only.")
                )
            if thread.account_id in allowed:
                account = thread.account_id
            values.update(self._pipemail_thread_defaults(thread, mode, values, allowed))
        elif values.get("res_model"):
            values.update(self._pipemail_record_defaults(values["res_model"], values.get("res_id")))
        values.setdefault("account_id", account.id)
        values["mode"] = mode
        signature = self._pipemail_signature()
        quote = values.get("quote_html") or ""
        values.setdefault("body", Markup("<p><br></p>") + signature + Markup(quote))
        return values

    def _pipemail_signature(self):
        signature = self.env.user.signature
        if is_html_empty(signature):
            return Markup("")
        return Markup('<p><br></p><div class="o_pipemail_signature">%s</div>') % signature

    def _pipemail_thread_defaults(self, thread, mode, values, allowed):
        parent = self.env["pipemail.message"].browse(values.get("parent_message_id") or [])
        if parent and parent.thread_id != thread:
            raise AccessError(_("That email is not part of this conversation."))
        content_thread = thread._pipemail_content_allowed()
        messages = content_thread.message_ids.filtered(lambda m: not m.removed).sorted(
            lambda m: (m.date or fields.Datetime.now(), m.id)
        )
        parent = parent or messages[-1:]
        vals = {
            "thread_id": thread.id,
            "parent_message_id": parent.id or False,
            "lead_id": thread.lead_id.id or False,
            "project_id": thread.project_id.id or False,
            "subject": thread.subject or parent.subject or "",
        }
        if not parent:
            return vals
        subject = parent.subject or thread.subject or ""
        own = {(a.email or "").strip().lower() for a in allowed | thread.account_id}
        if mode == "forward":
            vals["subject"] = pm_outbound.forward_subject(subject)
            vals["quote_html"] = self._pipemail_forward_quote(parent)
            vals["attachment_ids"] = [(6, 0, self._pipemail_copy_attachments(parent).ids)]
            return vals
        vals["subject"] = pm_outbound.reply_subject(subject)
        vals["quote_html"] = self._pipemail_reply_quote(parent)
        sender = parse_addresses(self.env, parent.email_from, strict=False)
        to_list = parse_addresses(self.env, parent.email_to, strict=False)
        cc_list = parse_addresses(self.env, parent.email_cc, strict=False)
        if parent.direction == "out":
            # replying to our own last email: write to the same people again
            to = [a for a in to_list if a.email.lower() not in own]
        else:
            to = [a for a in sender if a.email.lower() not in own] or sender
        vals["email_to"] = join_addresses(to)
        if mode == "reply_all":
            taken = {a.email.lower() for a in to} | own
            cc = []
            for address in [*to_list, *cc_list]:
                if address.email.lower() not in taken:
                    taken.add(address.email.lower())
                    cc.append(address)
            vals["email_cc"] = join_addresses(cc)
        return vals

    def _pipemail_parent_body(self, parent):
        if parent.body_html and not is_html_empty(parent.body_html):
            return Markup(parent.body_html)
        return Markup(plaintext2html(parent.body_text or ""))

    def _pipemail_when(self, message):
        return format_datetime(self.env, message.date, dt_format="medium") if message.date else ""

    def _pipemail_reply_quote(self, parent):
        header = _(
            "On %(date)s, %(who)s wrote:",
            date=self._pipemail_when(parent),
            who=parent.email_from or _("someone"),
        )
        return Markup(
            '<div class="o_pipemail_quote"><p>%s</p>'
            '<blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">'
            "%s</blockquote></div>"
        ) % (header, self._pipemail_parent_body(parent))

    def _pipemail_forward_quote(self, parent):
        lines = [
            _("---------- Forwarded message ----------"),
            _("From: %(who)s", who=parent.email_from or ""),
            _("Date: %(date)s", date=self._pipemail_when(parent)),
            _("Subject: %(subject)s", subject=parent.subject or ""),
            _("To: %(to)s", to=parent.email_to or ""),
        ]
        if parent.email_cc:
            lines.append(_("Cc: %(cc)s", cc=parent.email_cc))
        header = Markup("<br>").join(lines)
        return Markup('<div class="o_pipemail_quote"><p>%s</p>%s</div>') % (
            header,
            self._pipemail_parent_body(parent),
        )

    def _pipemail_copy_attachments(self, parent):
        """The forwarded email's files, copied onto this composer (not inline images)."""
        attachments = parent.attachment_ids.filtered(lambda a: a.id != parent.raw_attachment_id.id)
        if not attachments:
            return self.env["ir.attachment"]
        attachments.check_access("read")
        return attachments.sudo().copy({"res_model": self._name, "res_id": 0}).with_env(self.env)

    def _pipemail_record_defaults(self, res_model, res_id):
        if res_model not in SOURCE_MODELS:
            raise UserError(_("Emails are written from leads, projects and contacts."))
        record = self.env[res_model].browse(res_id or []).exists()
        if not record:
            return {"res_model": False, "res_id": False}
        record.check_access("read")
        vals = {}
        recipients = []
        if res_model == "crm.lead":
            vals["lead_id"] = record.id
            partner = record.partner_id
            if partner.email:
                recipients = [Address(partner.email_normalized or partner.email, partner.name)]
            elif record.email_from:
                recipients = parse_addresses(self.env, record.email_from, strict=False)
                if recipients and not recipients[0].name:
                    recipients[0] = Address(recipients[0].email, record.contact_name or "")
            vals["partner_id"] = partner.id or False
        elif res_model == "project.project":
            vals["project_id"] = record.id
            partner = record.partner_id
            if partner.email:
                recipients = [Address(partner.email_normalized or partner.email, partner.name)]
            vals["partner_id"] = partner.id or False
        else:
            partner = record
            if not partner.email and partner.is_company:
                partner = partner.child_ids.filtered("email")[:1]
            if partner.email:
                recipients = [Address(partner.email_normalized or partner.email, partner.name)]
            vals["partner_id"] = record.id
        vals["email_to"] = join_addresses(recipients)
        return vals

    # ------------------------------------------------------------------ computes

    @api.depends("res_model", "res_id", "thread_id", "partner_id")
    def _compute_render_record(self):
        for wizard in self:
            if wizard.res_model in SOURCE_MODELS and wizard.res_id:
                wizard.render_model, wizard.render_res_id = wizard.res_model, wizard.res_id
            elif wizard.lead_id:
                wizard.render_model, wizard.render_res_id = "crm.lead", wizard.lead_id.id
            elif wizard.project_id:
                wizard.render_model, wizard.render_res_id = "project.project", wizard.project_id.id
            elif wizard.partner_id:
                wizard.render_model, wizard.render_res_id = "res.partner", wizard.partner_id.id
            else:
                wizard.render_model, wizard.render_res_id = "res.partner", 0

    @api.depends("individual", "email_to")
    def _compute_individual_info(self):
        for wizard in self:
            count = len(parse_addresses(self.env, wizard.email_to, strict=False))
            if not wizard.individual or not count:
                wizard.individual_info = False
            elif count == 1:
                wizard.individual_info = _("One email, to this address alone")
            else:
                wizard.individual_info = _(
                    "%(count)s separate emails, one per To address", count=count
                )

    @api.depends("body")
    def _compute_text_direction(self):
        for wizard in self:
            text = pm_html.html_to_text(str(wizard.body or ""))
            wizard.text_direction = pm_html.text_direction(text) or "ltr"

    def _pipemail_estimate(self):
        return self.env["pipemail.outbox"]._pipemail_estimate_size(self.body, self.attachment_ids)

    @api.depends("attachment_ids", "account_id", "body")
    def _compute_size(self):
        Outbox = self.env["pipemail.outbox"]
        for wizard in self:
            estimate = wizard._pipemail_estimate()
            if not wizard.account_id:
                wizard.size_info, wizard.size_exceeded = False, False
                continue
            limit, provider = Outbox._pipemail_size_limit(wizard.account_id.sudo())
            wizard.size_exceeded = estimate > limit
            # numbers formatted first: an f-string inside _() stops the .pot export
            size = "%.1f" % (estimate / pm_outbound.MB)
            limit_mb = "%g" % (limit / pm_outbound.MB)
            wizard.size_info = _(
                "%(size)s MB of %(limit)s MB (%(provider)s)",
                size=size,
                limit=limit_mb,
                provider=provider,
            )

    # ------------------------------------------------------------------ templates

    @api.onchange("template_id")
    def _onchange_template_id(self):
        template = self.template_id
        if not template:
            return
        if not self.render_res_id or template.model != self.render_model:
            raise UserError(_("This template is for another kind of record."))
        res_id = self.render_res_id
        # the template is rendered as the user, on a record they can read
        self._pipemail_check_record(self.render_model, res_id)
        template.check_access("read")
        subject = template._render_field("subject", [res_id], compute_lang=True)[res_id]
        body = template._render_field(
            "body_html", [res_id], compute_lang=True, options={"post_process": True}
        )[res_id]
        if subject and self.mode == "new":
            self.subject = subject
        self.body = (
            Markup(body or "<p><br></p>")
            + self._pipemail_signature()
            + Markup(self.quote_html or "")
        )
        copies = self.env["ir.attachment"]
        for attachment in template.attachment_ids:
            copies |= attachment.sudo().copy({"res_model": self._name, "res_id": 0})
        if copies:
            self.attachment_ids = [(4, a.id) for a in copies.with_env(self.env)]

    # ------------------------------------------------------------------ send

    def action_send(self):
        self.ensure_one()
        wizard = self.with_context(clean_context(self.env.context))
        done = wizard.outbox_ids or wizard.outbox_id
        if done:
            # the same click replayed (a request retried after a conflict): never twice
            return done._pipemail_result_action()
        outboxes = wizard._pipemail_create_outbox()
        outboxes._pipemail_send_now()
        return outboxes._pipemail_result_action()

    def _pipemail_check(self):
        self._pipemail_check_refs()
        if self.account_id not in self._pipemail_allowed_accounts():
            raise AccessError(_("You cannot send from this mailbox."))
        to = parse_addresses(self.env, self.email_to)
        cc = parse_addresses(self.env, self.email_cc)
        bcc = parse_addresses(self.env, self.email_bcc)
        if not (to or cc or bcc):
            raise UserError(_("Add at least one recipient."))
        if self.individual:
            self._pipemail_check_individual(to, cc, bcc)
        self.attachment_ids.check_access("read")
        # over RPC these can be anything: the new conversation is linked to them
        (self.lead_id | self.thread_id.lead_id).check_access("read")
        (self.project_id | self.thread_id.project_id).check_access("read")
        self.partner_id.check_access("read")
        self.env["pipemail.outbox"]._pipemail_check_size(
            self.account_id, self.body, self.attachment_ids
        )

    @api.model
    def _pipemail_individual_limit(self):
        param = self.env["ir.config_parameter"].sudo().get_param(MAX_INDIVIDUAL_PARAM)
        try:
            limit = int(param or MAX_INDIVIDUAL_DEFAULT)
        except ValueError:
            limit = MAX_INDIVIDUAL_DEFAULT
        return max(1, limit)

    def _pipemail_check_individual(self, to, cc, bcc):
        if self.mode not in INDIVIDUAL_MODES:
            raise UserError(
                _(
                    "A reply goes to the people of its conversation together: Send "
                    "individually is for new emails and forwards."
                )
            )
        if cc or bcc:
            raise UserError(
                _(
                    "Send individually writes to each To address alone, so nobody can be "
                    "copied: move the Cc and Bcc addresses to To, or turn Send individually "
                    "off."
                )
            )
        if not to:
            raise UserError(_("Add at least one To address to send individually."))
        limit = self._pipemail_individual_limit()
        if len(to) > limit:
            raise UserError(
                _(
                    "Send individually writes to at most %(limit)s people at once, and this "
                    "email has %(count)s To addresses. Split the list into smaller emails.",
                    limit=limit,
                    count=len(to),
                )
            )

    def _pipemail_create_outbox(self):
        """The outbox rows, built and stored (each with its Message-ID) before any server
        sees them: one, or one per To address when sent individually. Anything the
        person must fix raises here and nothing is kept."""
        self._pipemail_check()
        vals = self._pipemail_outbox_values()
        if self.individual:
            partner = self.partner_id
            vals_list = [
                dict(
                    vals,
                    email_to=format_address(address.email, address.name),
                    # the contact of a copy is the person it is addressed to
                    partner_id=partner.id
                    if (partner.email_normalized or "") == address.email.lower()
                    else False,
                )
                for address in parse_addresses(self.env, self.email_to)
            ]
        else:
            vals_list = [vals]
        # checked above, as the user: the rows themselves are the server's to write
        outboxes = (
            self.env["pipemail.outbox"]
            .sudo()
            .with_context(mail_create_nolog=True, mail_create_nosubscribe=True)
            .create(vals_list)
            .with_env(self.env)
        )
        self._pipemail_attach(outboxes)
        self.sudo().write({"outbox_id": outboxes[:1].id, "outbox_ids": [Command.set(outboxes.ids)]})
        for outbox in outboxes:
            outbox._pipemail_prepare()
        return outboxes

    def _pipemail_outbox_values(self):
        account = self.account_id
        parent = self.parent_message_id
        thread = (
            self.thread_id if self.thread_id.account_id == account else self.env["pipemail.thread"]
        )
        in_reply_to, references = "", []
        if parent.message_id_header:
            try:
                in_reply_to, references = pm_outbound.reply_headers(
                    parent.message_id_header,
                    (parent.references or "").split(),
                    parent.in_reply_to or "",
                )
            except pm_errors.PipemailError:
                in_reply_to, references = "", []
        body, direction = mark_fragment(str(self.body or ""))
        return {
            "account_id": account.id,
            "user_id": self.env.uid,
            "mode": self.mode,
            "thread_id": thread.id or False,
            "parent_message_id": parent.id or False,
            "lead_id": (self.lead_id or self.thread_id.lead_id).id or False,
            "project_id": (self.project_id or self.thread_id.project_id).id or False,
            "partner_id": self.partner_id.id or False,
            "email_to": self.email_to or False,
            "email_cc": self.email_cc or False,
            "email_bcc": self.email_bcc or False,
            "subject": self.subject or "",
            "body_html": body,
            "text_direction": direction,
            "tracking": self.tracking,
            "in_reply_to": in_reply_to or False,
            "references": " ".join(references) or False,
        }

    def _pipemail_attach(self, outboxes):
        """Files uploaded in this composer move to the first outbox row; any other file
        the user picked (a lead's, a template's) is copied, never taken from its owner.
        Each further copy of an individual send gets copies of the first row's files."""
        first = outboxes[:1]
        attachments = self.attachment_ids.sudo()
        own = attachments.filtered(
            lambda a: (
                a.res_model == self._name
                and a.res_id in (0, self.id)
                and a.create_uid.id == self.env.uid
            )
        )
        own.write({"res_model": first._name, "res_id": first.id})
        copies = (attachments - own).copy({"res_model": first._name, "res_id": first.id})
        files = own | copies
        first.sudo().attachment_ids = [Command.set(files.ids)]
        for outbox in outboxes[1:]:
            mine = files.copy({"res_model": outbox._name, "res_id": outbox.id})
            outbox.sudo().attachment_ids = [Command.set(mine.ids)]
