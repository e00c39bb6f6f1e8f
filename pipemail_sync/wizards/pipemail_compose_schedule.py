"""The composer's Send (with its Undo grace period) and Send Later buttons.

Both build and store the outbox rows exactly as an immediate send does
(:meth:`pipemail.compose._pipemail_create_outbox`); they only hold them back:
until the grace period ends (the browser then asks for them to be sent, the outbox
cron sends them otherwise), or until the time the user picked.
"""

from datetime import timedelta

from odoo import _, fields, models
from odoo.exceptions import UserError
from odoo.tools import clean_context

from ..notifications import notification


class PipemailCompose(models.TransientModel):
    _inherit = "pipemail.compose"

    scheduled_at = fields.Datetime(
        string="Send At",
        help="Leave empty to send now. The email waits in Inbox > Scheduled until this time "
        "(your time zone), and can be changed or cancelled until then.",
    )

    def _pipemail_replayed(self):
        """The rows a previous click created (a request retried after a conflict)."""
        return self.outbox_ids or self.outbox_id

    def action_send_undoable(self):
        """Send, with the grace period of the Undo send setting (none: at once)."""
        self.ensure_one()
        wizard = self.with_context(clean_context(self.env.context))
        if wizard.scheduled_at:
            return wizard.action_send_later()
        Outbox = self.env["pipemail.outbox"]
        seconds = Outbox._pipemail_undo_seconds()
        if not seconds or wizard._pipemail_replayed():
            return wizard.action_send()
        outboxes = wizard._pipemail_create_outbox()
        until = fields.Datetime.now() + timedelta(seconds=seconds)
        outboxes._pipemail_hold(until)
        return {
            "type": "ir.actions.client",
            "tag": "pipemail_undo_send",
            "params": {
                "outbox_ids": outboxes.ids,
                "seconds": seconds,
                "title": _("Sending…"),
                "message": _("Your email leaves in %(seconds)s seconds.", seconds=seconds),
                "undo": _("Undo"),
            },
        }

    def action_send_later(self):
        """Keep the email in Scheduled until the time picked in the composer."""
        self.ensure_one()
        wizard = self.with_context(clean_context(self.env.context))
        done = wizard._pipemail_replayed()
        if not done:
            if not wizard.scheduled_at:
                raise UserError(_("Pick the date and time to send this email at."))
            if wizard.scheduled_at <= fields.Datetime.now():
                raise UserError(
                    _("The time to send at has passed: pick a later one, or clear it to send now.")
                )
            done = wizard._pipemail_create_outbox()
            done._pipemail_hold(wizard.scheduled_at, scheduled=True)
        return self._pipemail_scheduled_action(done)

    def _pipemail_scheduled_action(self, outboxes):
        return notification(
            _("Email scheduled"),
            outboxes._pipemail_scheduled_text(),
            "success",
            close=True,
        )
