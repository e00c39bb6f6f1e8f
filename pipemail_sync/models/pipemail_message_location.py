from odoo import api, fields, models


class PipemailMessageLocation(models.Model):
    """Where a message sits on the server: (folder, UIDVALIDITY, UID) and its flags.

    A message can sit in several folders (Gmail labels, copies). Write-back addresses a
    location, never a message, and the engine checks the location still holds it.
    """

    _name = "pipemail.message.location"
    _description = "Message Location on the Server"
    _log_access = False

    message_id = fields.Many2one("pipemail.message", required=True, ondelete="cascade", index=True)
    account_id = fields.Many2one(related="message_id.account_id", store=True, index=True)
    folder_id = fields.Many2one("pipemail.folder", required=True, ondelete="cascade")
    uidvalidity = fields.Integer(required=True)
    uid = fields.Integer(required=True)
    flags = fields.Char(help="IMAP flags, space separated.")
    modseq = fields.Char()

    _sql_constraints = [
        (
            "location_uniq",
            "UNIQUE(folder_id, uidvalidity, uid)",
            "One message per server location.",
        ),
    ]

    @api.model_create_multi
    def create(self, vals_list):
        """A sent email whose outcome was unknown (connection lost after the data) is
        settled by its copy showing up on the server: it was sent."""
        locations = super().create(vals_list)
        outboxes = locations.sudo().message_id.pipemail_outbox_id
        outboxes.filtered(lambda o: o.state == "uncertain")._pipemail_done()
        return locations

    @api.model
    def _flags_text(self, flags):
        return " ".join(sorted(flags)) if flags else ""

    def _flag_set(self):
        self.ensure_one()
        return frozenset((self.flags or "").split())
