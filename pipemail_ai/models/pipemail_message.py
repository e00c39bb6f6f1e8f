from odoo import models

from .pipemail_compose import REPLY_TEXT_KEY


class PipemailMessage(models.Model):
    _inherit = "pipemail.message"

    def action_pipemail_ai_reply(self, text):
        """The reply composer on this email, starting with a suggested reply (editable)."""
        action = self.action_pipemail_compose("reply")
        if isinstance(text, str) and text.strip():
            action["context"] = dict(action["context"], **{REPLY_TEXT_KEY: text.strip()[:4000]})
        return action
