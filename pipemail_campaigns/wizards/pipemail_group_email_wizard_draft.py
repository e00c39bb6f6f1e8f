"""The group email wizard's draft: saved as the person types (the browser asks,
debounced, as for the composer), listed in Drafts, reopened as left, deleted on Send
or Delete Draft.

Saving checks, as the user, everything the wizard points at, as Send does; reopening
checks it again as the user: what they can no longer read is dropped, and the wizard
says so."""

import json

from odoo import Command, _, api, fields, models
from odoo.exceptions import UserError

from odoo.addons.pipemail_sync.models.pipemail_draft import field_values

from ..models.pipemail_draft import parse_ids
from .pipemail_group_email_wizard import SOURCE_MODELS, USER_FIELDS

GROUP_DRAFT_FIELDS = tuple(
    sorted(USER_FIELDS - {"attachment_ids", "preview_index", "scheduled_date"})
)
"""What the person sets in the wizard that a group draft keeps under the same name,
besides its files and its send date (the wizard's ``scheduled_date``, the draft's
``scheduled_at``); the preview's position is not kept."""


class PipemailGroupEmailWizard(models.TransientModel):
    _inherit = "pipemail.group.email.wizard"

    draft_id = fields.Many2one("pipemail.draft", string="Draft", readonly=True)
    draft_notice = fields.Text(readonly=True)

    def action_save_draft(self):
        """Keep what the wizard holds as the caller's group draft."""
        self.ensure_one()
        self.check_access("write")
        self._pipemail_check_refs()
        self.attachment_ids.check_access("read")
        self.template_id.check_access("read")
        self.followup_template_id.check_access("read")
        values = field_values(self, GROUP_DRAFT_FIELDS)
        values.update(
            kind="group",
            scheduled_at=self.scheduled_date,
            attachment_ids=[Command.set(self.attachment_ids.ids)],
        )
        draft = self.env["pipemail.draft"]._pipemail_save_from(self, values)
        # files uploaded into this wizard (before its first save: with no id) would
        # leave with it or be nobody's: the draft holds them, readable by its writer alone
        self.attachment_ids.sudo().filtered(
            lambda a: a.res_model == self._name and a.res_id in (0, self.id)
        ).write({"res_model": draft._name, "res_id": draft.id})
        return {"draft_id": draft.id, "saved": fields.Datetime.to_string(draft.write_date)}

    def action_discard_draft(self):
        return self.env["pipemail.draft"]._pipemail_discard_from(self)

    def _action_send(self):
        group = super()._action_send()
        # the draft became this group email (its files were copied to it)
        self.draft_id.sudo()._pipemail_delete()
        return group

    @api.model
    def _pipemail_open_draft(self, draft):
        """A new wizard holding ``draft`` (the caller's, checked) as it was left; what
        the caller can no longer read is left out, with a notice."""
        stored = draft.sudo()
        values = field_values(stored, GROUP_DRAFT_FIELDS)
        values["scheduled_date"] = stored.scheduled_at
        values["attachment_ids"] = stored.attachment_ids
        model = values["source_model"]
        if model not in SOURCE_MODELS:
            raise UserError(
                _("Group emails are sent from contacts, leads, opportunities and projects.")
            )
        notes = []
        ids = parse_ids(values["source_ids"])
        records = self.env[model].browse(ids).exists()
        kept = records._filtered_access("read")
        kept_ids = [i for i in ids if i in set(kept.ids)]  # in the order selected
        if not kept_ids:
            raise UserError(
                _(
                    "None of the records this group draft was written to exist or are "
                    "yours to see any more."
                )
            )
        if len(kept_ids) < len(ids):
            notes.append(
                _(
                    "%(count)s of the records selected for this draft no longer exist or "
                    "are not yours to see: they were left out.",
                    count=len(ids) - len(kept_ids),
                )
            )
        values["source_ids"] = json.dumps(kept_ids)
        allowed = self._pipemail_allowed_accounts()
        if values["account_id"] and values["account_id"] not in allowed.ids:
            values.pop("account_id")  # the wizard picks the user's own
            notes.append(_("You can no longer send from this draft's mailbox: choose another."))
        for name, label in (
            ("template_id", _("template")),
            ("followup_template_id", _("follow-up template")),
        ):
            template = self.env["mail.template"].browse(values[name]).exists()
            if values[name] and not template.has_access("read"):
                values[name] = False
                notes.append(_("The draft's %(what)s is no longer yours to use.", what=label))
        files = values.pop("attachment_ids").with_env(self.env).exists()
        readable = files._filtered_access("read")
        if readable != files:
            notes.append(_("Some files of this draft are no longer yours to see: left out."))
        values["attachment_ids"] = [Command.set(readable.ids)]
        for name in ("scheduled_date", "lang"):
            if not values[name]:
                values.pop(name)  # the wizard's default
        wizard = self.with_context(
            active_model=model, active_ids=kept_ids, active_id=kept_ids[0]
        ).create(values)
        wizard.sudo().write({"draft_id": draft.id, "draft_notice": "\n".join(notes) or False})
        return wizard._pipemail_reopen()
