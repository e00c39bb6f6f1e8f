"""The composer's "Follow up if no reply" option: one follow-up per outgoing row (one,
or one per recipient when sent individually).

A draft keeps the options (``pipemail.draft`` has the same fields); they are checked
as the user each time they cross: when the draft is saved, when it is reopened (the
world may have changed since) and on Send."""

from odoo import _, api, models
from odoo.exceptions import UserError

from ..models.pipemail_followup import check_options, option_fields

FOLLOWUP_FIELDS = frozenset(
    {
        "followup_template_id",
        "followup_days",
        "followup_business_days",
        "followup_steps",
    }
)


class PipemailCompose(models.TransientModel):
    _inherit = "pipemail.compose"

    (
        followup_template_id,
        followup_days,
        followup_business_days,
        followup_steps,
    ) = option_fields("Follow Up If No Reply", "[('model', '=', render_model)]")

    @api.model
    def _pipemail_user_fields(self):
        return super()._pipemail_user_fields() | FOLLOWUP_FIELDS

    @api.model
    def _pipemail_draft_fields(self):
        return super()._pipemail_draft_fields() + tuple(sorted(FOLLOWUP_FIELDS))

    def _pipemail_check_followup(self):
        """The options as Send takes them: a template the user can read, for the record
        the email is written from, sensible numbers."""
        for wizard in self:
            template = wizard.followup_template_id
            if not template:
                continue
            if not wizard.render_res_id:
                raise UserError(_("The follow-up template is for another kind of record."))
            check_options(
                self.env,
                template,
                wizard.render_model,
                wizard.followup_days,
                wizard.followup_steps,
            )

    def _pipemail_check(self):
        res = super()._pipemail_check()
        self._pipemail_check_followup()
        return res

    def action_save_draft(self):
        result = super().action_save_draft()
        if result:
            # a draft keeps only options Send would take (raising undoes the save)
            self._pipemail_check_followup()
        return result

    def _pipemail_create_outbox(self):
        outboxes = super()._pipemail_create_outbox()
        if self.followup_template_id:
            Followup = self.env["pipemail.followup"]
            for outbox in outboxes:
                # checked above as the user; the follow-up rows are the server's
                Followup._pipemail_schedule(
                    outbox,
                    self.followup_template_id,
                    self.followup_days,
                    self.followup_business_days,
                    self.followup_steps,
                )
        return outboxes
