from odoo import fields, models


class PipemailThreadRef(models.Model):
    """Every Message-ID a conversation has seen, its own and the ones it references.

    This is the "container" table of JWZ threading kept in SQL: a reply that arrives
    before its parent, or a parent that arrives after its replies, finds the
    conversation through any id they share, with one indexed lookup per message.
    """

    _name = "pipemail.thread.ref"
    _description = "Conversation Message-ID"
    _log_access = False

    thread_id = fields.Many2one("pipemail.thread", required=True, ondelete="cascade", index=True)
    account_id = fields.Many2one("pipemail.account", required=True, ondelete="cascade")
    name = fields.Char(string="Message-ID", required=True)

    _sql_constraints = [
        ("ref_uniq", "UNIQUE(account_id, name)", "A Message-ID belongs to one conversation."),
    ]

    def init(self):
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_thread_ref_account_name_idx"
            " ON pipemail_thread_ref (account_id, name)"
        )
