"""Group email drafts: the same drafts as the composer's (one model, the writer's
alone by the same global rule), holding what the group email wizard held. Opening
one reopens the wizard as it was left, after checking again, as the writer, every
record, mailbox, template and file it points at."""

import json

from odoo import api, fields, models

from .pipemail_followup import option_fields


def parse_ids(text):
    """The record ids of a stored selection (``[]`` for anything else)."""
    try:
        ids = json.loads(text or "[]")
    except ValueError:
        return []
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):
        return []
    return list(dict.fromkeys(ids))


class PipemailDraft(models.Model):
    _inherit = "pipemail.draft"

    kind = fields.Selection(
        [("single", "Email"), ("group", "Group Email")],
        required=True,
        default="single",
        index=True,
    )
    source_model = fields.Char(string="Selected From")
    source_ids = fields.Text(help="JSON list of the selected record ids.")
    selected_count = fields.Integer(string="Selected", compute="_compute_selected_count")
    lang = fields.Char(string="Language")
    (
        followup_template_id,
        followup_days,
        followup_business_days,
        followup_steps,
    ) = option_fields("Follow Up If No Reply", "[]")
    schedule = fields.Boolean(string="Send Later")

    def _pipemail_copy_wanted(self):
        # a group email is written to many: no copy of it in the writer's Drafts folder
        return super()._pipemail_copy_wanted() and self.kind != "group"

    @api.depends("source_ids")
    def _compute_selected_count(self):
        for draft in self:
            draft.selected_count = len(parse_ids(draft.source_ids))

    def action_open(self):
        self.ensure_one()
        self._check_is_writer()
        if self.kind != "group":
            action = super().action_open()
            # checked again as the writer: the template may have changed since the save
            self.env["pipemail.compose"].browse(action["res_id"])._pipemail_check_followup()
            return action
        return self.env["pipemail.group.email.wizard"]._pipemail_open_draft(self)
