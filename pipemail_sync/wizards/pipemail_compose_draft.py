"""The composer's drafts: saved as the person types (the browser asks, debounced),
reopened from Drafts or from the conversation, deleted on Send or Discard."""

from odoo import Command, _, api, fields, models

from ..models.pipemail_draft import DRAFT_FIELDS, field_values


class PipemailCompose(models.TransientModel):
    _inherit = "pipemail.compose"

    draft_id = fields.Many2one("pipemail.draft", string="Draft", readonly=True)

    @api.model
    def _pipemail_draft_fields(self):
        """The composer's fields a draft keeps under the same name, besides its files;
        addons that add options to the composer (follow-ups in pipemail_campaigns)
        extend it, with the same fields on ``pipemail.draft``."""
        return DRAFT_FIELDS

    def _pipemail_form_action(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Write an Email"),
            "res_model": "pipemail.compose",
            "res_id": self.id,
            "view_mode": "form",
            "views": [[self.env.ref("pipemail_sync.pipemail_compose_view_form").id, "form"]],
            "target": "new",
        }

    def action_save_draft(self):
        """Keep what the composer holds as the caller's draft. Everything it points
        at is checked as the caller first, as for Send."""
        self.ensure_one()
        self.check_access("write")
        self._pipemail_check_refs()
        if self.outbox_ids or self.outbox_id:
            return False  # sent: nothing left to keep
        self.attachment_ids.check_access("read")
        self.template_id.check_access("read")
        values = field_values(self, self._pipemail_draft_fields())
        values["attachment_ids"] = [Command.set(self.attachment_ids.ids)]
        draft = self.env["pipemail.draft"]._pipemail_save_from(self, values)
        return {"draft_id": draft.id, "saved": fields.Datetime.to_string(draft.write_date)}

    def action_discard_draft(self):
        return self.env["pipemail.draft"]._pipemail_discard_from(self)

    def _pipemail_create_outbox(self):
        outboxes = super()._pipemail_create_outbox()
        # the draft became these emails (its files moved to them)
        self.draft_id.sudo()._pipemail_delete()
        return outboxes
