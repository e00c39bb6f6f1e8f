"""The composer's "Follow up if no reply" option: one follow-up per outgoing row (one,
or one per recipient when sent individually)."""

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

    def _pipemail_check(self):
        res = super()._pipemail_check()
        template = self.followup_template_id
        if template:
            if not self.render_res_id:
                raise UserError(_("The follow-up template is for another kind of record."))
            check_options(
                self.env, template, self.render_model, self.followup_days, self.followup_steps
            )
        return res

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
