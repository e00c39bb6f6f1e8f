import json

from psycopg2 import errors

from odoo import api, fields, models
from odoo.tools import mute_logger


class PipemailAiCache(models.Model):
    """A helper's last result for a conversation, reused until a new message arrives.

    Summaries are kept per conversation: whoever may read a conversation's content reads
    all of its messages, so one summary fits every such reader (the reader is checked
    each time the cache is read). Suggested replies are written as someone, so they are
    kept per conversation and user. Server code writes it; nobody else even reads it.
    """

    _name = "pipemail.ai.cache"
    _description = "Email AI Result Cache"

    thread_id = fields.Many2one("pipemail.thread", required=True, ondelete="cascade", index=True)
    helper = fields.Selection(
        [("summary", "Thread Summary"), ("replies", "Suggested Replies")], required=True
    )
    user_id = fields.Many2one("res.users", ondelete="cascade", help="Suggested replies only.")
    company_id = fields.Many2one(related="thread_id.company_id", store=True)
    model_name = fields.Char(string="AI Model")
    payload = fields.Text(help="The result as JSON: plain text, shown escaped.")
    message_count = fields.Integer(help="Messages of the conversation when it was computed.")
    last_message_id = fields.Integer(help="Newest message when it was computed.")

    _sql_constraints = [
        (
            "thread_helper_user_uniq",
            "UNIQUE NULLS NOT DISTINCT (thread_id, helper, user_id)",
            "One cached result per conversation, helper and user.",
        ),
    ]

    @api.model
    def _pipemail_get(self, thread, helper, user=None):
        return self.sudo().search(
            [
                ("thread_id", "=", thread.id),
                ("helper", "=", helper),
                ("user_id", "=", user.id if user else False),
            ],
            limit=1,
        )

    @api.model
    def _pipemail_put(self, thread, helper, payload, model_name, marker, user=None):
        """Store a result and return it as the client reads it.

        Two people may ask for the same conversation at once; the model is called
        outside any transaction, so both write here at the end. The second write would
        be a serialization error, and Odoo retries such a request from the start, which
        would ask the model again: so the loser keeps the winner's row and returns its
        own result uncached.
        """
        self.env.flush_all()  # the audit row first, outside the savepoint
        try:
            # a flushing savepoint: its rollback also clears the ORM cache
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                cache = self._pipemail_store(thread, helper, payload, model_name, marker, user)
        except (errors.SerializationFailure, errors.UniqueViolation, errors.LockNotAvailable):
            return dict(payload, model=model_name, stale=False)
        return cache._pipemail_read(marker)

    @api.model
    def _pipemail_store(self, thread, helper, payload, model_name, marker, user):
        vals = {
            "payload": json.dumps(payload),
            "model_name": model_name,
            "message_count": marker[0],
            "last_message_id": marker[1],
        }
        cache = self._pipemail_get(thread, helper, user)
        if cache:
            cache.write(vals)
        else:
            cache = self.sudo().create(
                dict(vals, thread_id=thread.id, helper=helper, user_id=user.id if user else False)
            )
        return cache

    def _pipemail_read(self, marker):
        """The cached result for the client, with whether it is out of date."""
        self.ensure_one()
        data = json.loads(self.payload or "{}")
        data["model"] = self.model_name
        data["stale"] = (self.message_count, self.last_message_id) != tuple(marker)
        return data
