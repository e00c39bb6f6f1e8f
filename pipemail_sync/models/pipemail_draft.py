"""Drafts: what a composer held when the person stopped typing, kept until it is
sent or discarded, and reopened exactly as left from any browser.

A draft is its writer's alone (a global record rule: no group widens it). Users only
read their drafts; the composer writes them (``pipemail.compose.action_save_draft``)
after checking, as the user, everything the draft points at, and the buttons here
check the writer before acting with a narrow ``sudo()``.
"""

from odoo import Command, _, api, fields, models
from odoo.exceptions import AccessError

from .. import access
from .pipemail_outbox import MODES

DRAFT_FIELDS = (
    "mode",
    "thread_id",
    "parent_message_id",
    "res_model",
    "res_id",
    "lead_id",
    "project_id",
    "partner_id",
    "account_id",
    "email_to",
    "email_cc",
    "email_bcc",
    "individual",
    "subject",
    "body",
    "quote_html",
    "template_id",
    "tracking",
    "scheduled_at",
)
"""The composer's fields a draft keeps, besides its files: with them, everything the
person writing sets in the composer (its ``USER_FIELDS``). Addons extend the list
through ``pipemail.compose._pipemail_draft_fields``."""


def field_values(record, names):
    """``{name: value}`` of ``record``'s fields ``names`` as ``create`` takes them."""
    values = {}
    for name in names:
        value = record[name]
        values[name] = value.id or False if isinstance(value, models.BaseModel) else value
    return values


class PipemailDraft(models.Model):
    _name = "pipemail.draft"
    _description = "Email Draft"
    _order = "write_date desc, id desc"
    _rec_name = "subject"

    user_id = fields.Many2one(
        "res.users", string="Written By", required=True, index=True, ondelete="cascade"
    )
    mode = fields.Selection(MODES, required=True, default="new")
    thread_id = fields.Many2one(
        "pipemail.thread", string="Conversation", ondelete="cascade", index="btree_not_null"
    )
    parent_message_id = fields.Many2one(
        "pipemail.message", string="Replying To", ondelete="set null"
    )
    res_model = fields.Char(string="Written From")
    res_id = fields.Integer()
    lead_id = fields.Many2one("crm.lead", ondelete="set null")
    project_id = fields.Many2one("project.project", ondelete="set null")
    partner_id = fields.Many2one("res.partner", string="Contact", ondelete="set null")
    account_id = fields.Many2one("pipemail.account", string="From", ondelete="cascade")
    email_to = fields.Char(string="To")
    email_cc = fields.Char(string="Cc")
    email_bcc = fields.Char(string="Bcc")
    individual = fields.Boolean(string="Send Individually")
    subject = fields.Char()
    body = fields.Html(sanitize=True, sanitize_style=True, sanitize_overridable=False)
    quote_html = fields.Html(sanitize=True, sanitize_style=True)
    template_id = fields.Many2one("mail.template", string="Template", ondelete="set null")
    tracking = fields.Boolean(string="Track Opens and Clicks")
    scheduled_at = fields.Datetime(string="Send At")
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "pipemail_draft_attachment_rel",
        "draft_id",
        "attachment_id",
        string="Attachments",
    )

    @api.depends("subject")
    @api.depends_context("uid")
    def _compute_display_name(self):
        res = super()._compute_display_name()
        for draft in self:
            draft.display_name = draft.subject or _("(no subject)")
        access.hide_unreadable_names(self, _("Draft"))
        return res

    def _check_is_writer(self):
        self.check_access("read")
        if any(draft.user_id.id != self.env.uid for draft in self.sudo()):
            raise AccessError(_("You can only open or discard your own drafts."))

    def _pipemail_composer_values(self):
        self.ensure_one()
        draft = self.sudo()
        values = field_values(draft, self.env["pipemail.compose"]._pipemail_draft_fields())
        values["attachment_ids"] = [Command.set(draft.attachment_ids.ids)]
        return values

    def action_open(self):
        """The draft in a composer, as it was left; the composer keeps saving into it."""
        self.ensure_one()
        self._check_is_writer()
        composer = self.env["pipemail.compose"].create(self._pipemail_composer_values())
        composer.sudo().draft_id = self.id
        return composer._pipemail_form_action()

    def action_discard(self):
        self._check_is_writer()
        self.sudo()._pipemail_delete()
        return True

    @api.model
    def _pipemail_save_from(self, wizard, values):
        """Keep ``values`` (checked as the caller) as ``wizard``'s draft, the caller's:
        created on the first save, then saved over."""
        draft = wizard.draft_id.sudo()
        if draft:
            draft.write(values)
        else:
            draft = self.sudo().create(dict(values, user_id=self.env.uid))
            wizard.sudo().draft_id = draft.id
        return draft

    @api.model
    def _pipemail_discard_from(self, wizard):
        """Delete Draft in a composer: the draft and its files go, the dialog closes."""
        wizard.ensure_one()
        wizard.check_access("write")
        draft = wizard.draft_id
        # the files leave with the draft: this composer is closing
        wizard.sudo().write({"draft_id": False, "attachment_ids": [Command.clear()]})
        draft.with_env(wizard.env).action_discard()
        return {"type": "ir.actions.act_window_close"}

    def _pipemail_delete(self):
        """Drop drafts and the files uploaded into them that nothing else holds."""
        files = self.attachment_ids.filtered(
            lambda a: a.res_model == "pipemail.compose" and not a.res_id
        )
        self.unlink()
        held = self.env["pipemail.compose"].sudo().search([("attachment_ids", "in", files.ids)])
        (files - held.attachment_ids).unlink()
