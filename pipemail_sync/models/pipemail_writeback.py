from odoo import api, fields, models

WRITE_OPS = [
    ("seen", "Mark Read"),
    ("unseen", "Mark Unread"),
    ("flag", "Flag"),
    ("unflag", "Unflag"),
    ("archive", "Archive"),
    ("delete", "Delete"),
    ("move", "Move"),
]
OPPOSITE = {"seen": "unseen", "unseen": "seen", "flag": "unflag", "unflag": "flag"}


class PipemailWriteback(models.Model):
    """A change made in the CRM waiting to be written to the mail server.

    Rows are addressed by (folder, UIDVALIDITY, UID) plus the message key: the engine
    refuses to touch a UID that no longer holds that message (state ``stale``), so a
    retry or a late row can never hit another email.
    """

    _name = "pipemail.writeback"
    _description = "Pending Change for the Mail Server"
    _order = "id"

    message_id = fields.Many2one("pipemail.message", ondelete="cascade", index=True)
    account_id = fields.Many2one("pipemail.account", required=True, ondelete="cascade", index=True)
    op = fields.Selection(WRITE_OPS, required=True)
    folder_id = fields.Many2one("pipemail.folder", required=True, ondelete="cascade")
    uidvalidity = fields.Integer(required=True)
    uid = fields.Integer(required=True)
    expect_key = fields.Char()
    target_folder = fields.Char()
    state = fields.Selection(
        [("pending", "Pending"), ("done", "Done"), ("stale", "Stale"), ("failed", "Failed")],
        required=True,
        default="pending",
        index=True,
    )
    error = fields.Char()
    attempts = fields.Integer()
    done_date = fields.Datetime()

    @api.model
    def _supersede(self, vals_list):
        """A newer read/unread for the same location replaces a pending opposite one,
        so clicking read, unread, read sends one command, not three."""
        for vals in vals_list:
            opposite = OPPOSITE.get(vals["op"])
            if not opposite:
                continue
            self.search(
                [
                    ("state", "=", "pending"),
                    ("folder_id", "=", vals["folder_id"]),
                    ("uidvalidity", "=", vals["uidvalidity"]),
                    ("uid", "=", vals["uid"]),
                    ("op", "in", (vals["op"], opposite)),
                ]
            ).write({"state": "stale", "error": "superseded by a newer change"})

    @api.model
    def _trigger_processing(self):
        """Ask the sync cron to run soon: it pushes pending changes before fetching."""
        cron = self.env.ref("pipemail_sync.ir_cron_pipemail_sync", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger()

    @api.autovacuum
    def _gc_done(self):
        limit = fields.Datetime.subtract(fields.Datetime.now(), days=30)
        self.sudo().search(
            [("state", "in", ("done", "stale")), ("write_date", "<", limit)]
        ).unlink()
