from odoo import api, models


class PipemailTrackingEvent(models.Model):
    """A hit may be the email's first human open or click: its report figures follow
    (one primary-key upsert, in the hit's own transaction)."""

    _inherit = "pipemail.tracking.event"

    @api.model_create_multi
    def create(self, vals_list):
        # the public routes insert in SQL (_pipemail_record); imports and tests create
        events = super().create(vals_list)
        self.env["pipemail.email.stat"]._pipemail_refresh(events.outbox_id.ids)
        return events

    def _pipemail_record(self, outbox_id, kind, **kwargs):
        res = super()._pipemail_record(outbox_id, kind, **kwargs)
        self.env["pipemail.email.stat"]._pipemail_refresh([outbox_id])
        return res
