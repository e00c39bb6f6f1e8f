from odoo import _, api, fields, models
from odoo.exceptions import UserError

from odoo.addons.pipemail_sync.engine import html as pm_html

from pipemail import ai

from ..draft_html import join_body, paragraphs_html, split_body

REPLY_TEXT_KEY = "pipemail_ai_reply_text"
"""Context key: a suggested reply the composer starts with (above signature and quote)."""
TEXT_ACTIONS = ("improve", "shorten", "tone", "translate")


class PipemailCompose(models.TransientModel):
    _inherit = "pipemail.compose"

    pipemail_ai_compose_enabled = fields.Boolean(compute="_compute_pipemail_ai_compose_enabled")

    # not a real dependency: the form's first onchange recomputes only what depends on a
    # field with a default (see pipemail_sync's _compute_allowed_account_ids)
    @api.depends("account_id")
    @api.depends_context("uid", "allowed_company_ids")
    def _compute_pipemail_ai_compose_enabled(self):
        enabled = self.env["pipemail.ai.service"]._pipemail_enabled("compose")
        for wizard in self:
            wizard.pipemail_ai_compose_enabled = enabled

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        text = self.env.context.get(REPLY_TEXT_KEY)
        if isinstance(text, str) and text.strip() and values.get("body"):
            _text, rest = split_body(values["body"])
            paragraphs = ai.paragraphs(text.strip())
            values["body"] = join_body(paragraphs_html(paragraphs), rest)
        return values

    @api.model
    def pipemail_ai_compose(
        self,
        action,
        body="",
        thread_id=False,
        instruction="",
        tone=False,
        language="",
        run_token=None,
    ):
        """An AI draft for the composer: the new body (text replaced, signature and quote
        kept) and which model wrote it. Nothing is saved or sent: the person edits the
        text, may undo, and presses Send."""
        Service = self.env["pipemail.ai.service"]
        Service._pipemail_check_enabled("compose")
        if action not in ai.COMPOSE_ACTIONS:
            raise UserError(_("Unknown AI action."))
        text_html, rest = split_body(body)
        text = pm_html.html_to_text(text_html).strip()
        thread_messages = []
        if thread_id:
            thread = self.env["pipemail.thread"].browse(int(thread_id))
            thread_messages = Service._pipemail_thread_input(thread)
        if action == "reply" and not thread_messages:
            raise UserError(_("Draft reply works on a conversation: open it from a reply."))
        if action == "write" and not (instruction or "").strip():
            raise UserError(_("Say what the email should say, then press Draft."))
        if action in TEXT_ACTIONS and not text:
            raise UserError(_("Write some text first: this AI action reworks your draft."))
        if action == "tone" and tone not in ai.TONES:
            raise UserError(_("Choose a tone: formal, friendly or direct."))
        if action == "translate" and not (language or "").strip():
            raise UserError(_("Choose the language to translate into."))
        request = ai.ComposeRequest(
            action=action,
            instruction=(instruction or "").strip()[:2000],
            text=text if action in TEXT_ACTIONS else "",
            thread=thread_messages,
            tone=tone or None,
            language=(language or "").strip()[:60],
            sender_name=self.env.user.name or "",
        )
        result = Service._pipemail_run(
            "compose",
            lambda endpoint, should_cancel: ai.compose(
                request, endpoint, should_cancel=should_cancel
            ),
            run_token=run_token,
        )
        return {
            "body": join_body(paragraphs_html(result.paragraphs), rest),
            "model": result.model,
            "direction": result.direction,
        }
