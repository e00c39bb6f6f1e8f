from odoo import api, models

from pipemail import ai


class PipemailThread(models.Model):
    _inherit = "pipemail.thread"

    # ------------------------------------------------------------------ what the reader shows

    def pipemail_ai_state(self):
        """What the conversation reader shows: which helpers are on, cached results.

        Nothing at all (no button) for a helper that is off, or for a conversation whose
        content the caller may not read.
        """
        self.ensure_one()
        Service = self.env["pipemail.ai.service"]
        state = {"summary": False, "replies": False}
        thread = self.exists()._pipemail_content_allowed()
        if not thread:
            return state
        marker = Service._pipemail_marker(thread)
        Cache = self.env["pipemail.ai.cache"]
        if Service._pipemail_enabled("summary"):
            cache = Cache._pipemail_get(thread, "summary")
            state["summary"] = {"result": cache._pipemail_read(marker) if cache else False}
        if Service._pipemail_enabled("replies") and thread.id in thread._pipemail_holder_ids(
            self.env.uid
        ):
            cache = Cache._pipemail_get(thread, "replies", self.env.user)
            state["replies"] = {"result": cache._pipemail_read(marker) if cache else False}
        return state

    # ------------------------------------------------------------------ helpers (RPC)

    def action_pipemail_ai_summarize(self, refresh=False, run_token=None):
        """The conversation's summary: the cached one while no message arrived, else a new one."""
        self.ensure_one()
        Service = self.env["pipemail.ai.service"]
        Service._pipemail_check_enabled("summary")
        thread = Service._pipemail_readable_thread(self)
        marker = Service._pipemail_marker(thread)
        Cache = self.env["pipemail.ai.cache"]
        cache = Cache._pipemail_get(thread, "summary")
        if cache and not refresh:
            cached = cache._pipemail_read(marker)
            if not cached["stale"]:
                return cached
        messages = Service._pipemail_thread_input(thread)
        # the summary is read in the reader's language; replies keep the conversation's
        lang = self.env["res.lang"]._lang_get(self.env.user.lang or "")
        language = lang.name if lang else ""
        result = Service._pipemail_run(
            "summary",
            lambda endpoint, should_cancel: ai.summarize_thread(
                messages, endpoint, language=language, should_cancel=should_cancel
            ),
            run_token=run_token,
        )
        payload = {
            "points": [
                {
                    "kind": point.kind,
                    "text": point.text,
                    "message_ids": [int(i) for i in point.message_ids],
                    "direction": point.direction,
                }
                for point in result.points
            ],
            "notice": result.notice,
            "omitted": result.omitted,
        }
        return Cache._pipemail_put(thread, "summary", payload, result.model, marker)

    def action_pipemail_ai_suggest(self, refresh=False, run_token=None):
        """Three short replies to the newest message (holders of the conversation only)."""
        self.ensure_one()
        Service = self.env["pipemail.ai.service"]
        Service._pipemail_check_enabled("replies")
        thread = Service._pipemail_readable_thread(self)
        if thread.id not in thread._pipemail_holder_ids(self.env.uid):
            raise self._pipemail_ai_not_holder()
        marker = Service._pipemail_marker(thread)
        Cache = self.env["pipemail.ai.cache"]
        user = self.env.user
        cache = Cache._pipemail_get(thread, "replies", user)
        if cache and not refresh:
            cached = cache._pipemail_read(marker)
            if not cached["stale"]:
                return cached
        messages = Service._pipemail_thread_input(thread)
        sender = user.name or ""
        result = Service._pipemail_run(
            "replies",
            lambda endpoint, should_cancel: ai.suggest_replies(
                messages,
                endpoint,
                sender_name=sender,
                should_cancel=should_cancel,
            ),
            run_token=run_token,
        )
        payload = {
            "replies": [
                {"text": reply.text, "direction": reply.direction} for reply in result.replies
            ]
        }
        return Cache._pipemail_put(thread, "replies", payload, result.model, marker, user=user)

    @api.model
    def _pipemail_ai_not_holder(self):
        from odoo.exceptions import AccessError

        return AccessError(
            self.env._("Suggested replies are for conversations of your own mailboxes.")
        )
