"""Send later and undo send: an outgoing email that waits before the outbox cron (or
the browser, at the end of the grace period) hands it to SMTP.

Both are the ordinary ``queued`` row of :mod:`.pipemail_outbox` with its first
``next_attempt`` in the future: the bytes, the Message-ID and the claim that keeps
a row from leaving twice are the same as for any other send. Taking an email back
(Undo, or Edit on a scheduled one) is one UPDATE guarded by the state, so it either
wins against the cron's claim or finds the email already gone, never both.
"""

from odoo import Command, _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL
from odoo.tools.misc import format_datetime

UNDO_PARAM = "pipemail.undo_send_seconds"
UNDO_DEFAULT = 10
UNDO_MAX = 60
"""A longer hold is a scheduled send, not an undo."""
CRON_XMLID = "pipemail_sync.ir_cron_pipemail_outbox"


class PipemailOutbox(models.Model):
    _inherit = "pipemail.outbox"

    scheduled_at = fields.Datetime(
        string="Send At",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Chosen with Send Later: the outbox sends it within a minute of this time.",
    )
    undo_until = fields.Datetime(
        string="Undo Until",
        readonly=True,
        copy=False,
        help="Until then Undo brings the email back into the composer; nothing is sent.",
    )

    @api.model
    def _pipemail_undo_seconds(self):
        param = self.env["ir.config_parameter"].sudo().get_param(UNDO_PARAM)
        try:
            seconds = int(param if param not in (None, False, "") else UNDO_DEFAULT)
        except ValueError:
            seconds = UNDO_DEFAULT
        return min(max(seconds, 0), UNDO_MAX)

    def _pipemail_hold(self, until, scheduled=False):
        """Keep freshly prepared rows queued until ``until``; the cron is woken then."""
        self.sudo().write(
            {
                "next_attempt": until,
                "scheduled_at": until if scheduled else False,
                "undo_until": False if scheduled else until,
            }
        )
        cron = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger(at=until)

    def _pipemail_take_back(self):
        """Cancel emails that are still waiting, all of them or none."""
        self._check_is_author()
        self.env.flush_all()
        # the row locks keep the cron off them (it skips locked rows); a row it claimed
        # meanwhile is no longer queued, or fails this transaction, which is retried
        self.env.cr.execute(
            SQL(
                "SELECT id FROM pipemail_outbox WHERE id IN %s AND state = 'queued'"
                " AND sent_date IS NULL FOR UPDATE",
                tuple(self.ids),
            )
        )
        if {row[0] for row in self.env.cr.fetchall()} != set(self.ids):
            raise UserError(_("Too late: this email has already left the outbox."))
        self.env.cr.execute(
            SQL(
                "UPDATE pipemail_outbox SET state = 'cancelled', next_attempt = NULL"
                " WHERE id IN %s",
                tuple(self.ids),
            )
        )
        self.invalidate_recordset(["state", "next_attempt"])

    def _pipemail_composer_values(self):
        """The composer as it was before Send: one row, or the copies of an
        individual send gathered back into one To line."""
        first = self.sudo()[:1]
        individual = len(self) > 1
        files = first.attachment_ids.copy({"res_model": "pipemail.compose", "res_id": 0})
        return {
            "mode": first.mode,
            "thread_id": first.thread_id.id or False,
            "parent_message_id": first.parent_message_id.id or False,
            "lead_id": first.lead_id.id or False,
            "project_id": first.project_id.id or False,
            "partner_id": first.partner_id.id or False,
            "account_id": first.account_id.id,
            "email_to": ", ".join(self.sudo().mapped("email_to")) if individual else first.email_to,
            "email_cc": first.email_cc or False,
            "email_bcc": first.email_bcc or False,
            "individual": individual,
            "subject": first.subject or "",
            "body": first.body_html,
            "tracking": first.tracking,
            "attachment_ids": [Command.set(files.ids)],
            "scheduled_at": first.scheduled_at or False,
        }

    def _pipemail_reopen(self):
        """Take the emails back and open them in a composer, as the user."""
        self._pipemail_take_back()
        composer = self.env["pipemail.compose"].create(self._pipemail_composer_values())
        # kept as a draft at once: closing the composer loses nothing
        composer.action_save_draft()
        return composer._pipemail_form_action()

    # ------------------------------------------------------------------ buttons

    def action_undo_send(self):
        """Undo, within the grace period: nothing was sent; the composer opens again."""
        self._check_is_author()
        if any(not outbox.undo_until for outbox in self.sudo()):
            raise UserError(_("Only an email that was just sent can be taken back."))
        return self._pipemail_reopen()

    def action_edit_scheduled(self):
        """A scheduled email back in the composer: change it, then send or schedule again."""
        self._check_is_author()
        if any(not outbox.scheduled_at for outbox in self.sudo()):
            raise UserError(_("Only a scheduled email can be edited."))
        return self._pipemail_reopen()

    def action_send_held(self):
        """Called by the browser when the grace period is over: send now rather than
        at the cron's next round. Before the end of the grace period it does nothing."""
        self._check_is_author()
        now = fields.Datetime.now()
        due = self.sudo().filtered(
            lambda o: o.state == "queued" and o.undo_until and o.undo_until <= now
        )
        if not due:
            return False
        due.write({"next_attempt": False})
        due.with_env(self.env)._pipemail_send_now()
        return due._pipemail_result_action()

    def _pipemail_scheduled_text(self):
        first = self.sudo()[:1]
        when = format_datetime(self.env, first.scheduled_at, dt_format="medium")
        tz = self.env.context.get("tz") or self.env.user.tz or "UTC"
        if len(self) > 1:
            return _(
                "%(count)s separate emails will be sent on %(when)s (%(tz)s). Change or cancel "
                "them under Inbox > Scheduled.",
                count=len(self),
                when=when,
                tz=tz,
            )
        return _(
            "It will be sent on %(when)s (%(tz)s). Change or cancel it under Inbox > Scheduled.",
            when=when,
            tz=tz,
        )
