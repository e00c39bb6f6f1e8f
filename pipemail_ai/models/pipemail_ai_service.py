"""Where every AI request goes through: who may ask, what goes in, and no lock held.

The order is the point:

1. check the company switch, the user's preference and the daily cap (RPC callers
   reach these methods with whatever ids they like);
2. read the conversation AS THE USER (``pipemail.thread._pipemail_content_allowed``
   then ordinary searches and reads, never ``sudo()``), into the engine's plain
   dataclasses: only what this user may read can reach a prompt;
3. write the audit row and COMMIT: the request's transaction ends there, so while the
   model writes (seconds to minutes) this worker holds no transaction, no row lock,
   no snapshot; the cursor starts a new transaction at its next query. The only
   thing a slow model holds is this one worker;
4. call the engine; a cancel hook polls the audit row on a separate, short cursor;
5. write the result (cache, audit) in that new transaction.

Tests cannot commit (Odoo forbids it), so step 3 is skipped under test; the tests
assert what the model server received instead.
"""

import dataclasses
import logging
import time
from datetime import datetime

from odoo import _, api, models, modules
from odoo.exceptions import AccessError, UserError
from odoo.tools import config

from pipemail import ai
from pipemail import errors as pm_errors

_logger = logging.getLogger(__name__)

PREFS = {
    "summary": "pipemail_ai_summary",
    "replies": "pipemail_ai_suggest",
    "compose": "pipemail_ai_compose",
}
CONTEXT_PARAM = "pipemail_ai.context_tokens"
"""The model's context window in tokens (threads are cut to fit it); empty: 8192."""
DEADLINE_MARGIN = 15
"""Seconds left between the engine's deadline and Odoo's limit_time_real."""
MAX_THREAD_MESSAGES = 200
"""Newest messages read from a conversation at most (the budget cuts further)."""


class PipemailAiService(models.AbstractModel):
    _name = "pipemail.ai.service"
    _description = "Email AI requests"

    # ------------------------------------------------------------------ who may ask

    @api.model
    def _pipemail_enabled(self, helper):
        user = self.env.user
        if user.share or not self.env.company.pipemail_ai_enabled:
            return False
        return bool(user[PREFS[helper]])

    @api.model
    def _pipemail_check_enabled(self, helper):
        if not self.env.company.pipemail_ai_enabled:
            raise AccessError(
                _("Email AI is off for your company: an administrator can turn it on in Settings.")
            )
        if self.env.user.share or not self.env.user[PREFS[helper]]:
            raise AccessError(
                _("This AI helper is off in your preferences: turn it on there to use it.")
            )

    # ------------------------------------------------------------------ what goes in

    @api.model
    def _pipemail_readable_thread(self, thread):
        """``thread`` if the user may read its content; AccessError in plain words otherwise,
        whatever id was sent."""
        if self.env.su:
            raise AccessError(_("AI helpers read conversations as the person asking."))
        thread = thread.with_env(self.env).exists()
        if len(thread) != 1 or not thread._pipemail_content_allowed():
            raise AccessError(
                _("You cannot use AI on this conversation: you may not read its messages.")
            )
        return thread

    @api.model
    def _pipemail_thread_input(self, thread):
        """The conversation's messages as this user may read them, oldest first.

        Read with the user's rights (searches and reads through the visibility rules),
        never ``sudo()``: this is what goes into a prompt.
        """
        thread = self._pipemail_readable_thread(thread)
        records = self.env["pipemail.message"].search(
            [("thread_id", "=", thread.id), ("removed", "=", False)],
            order="date desc, id desc",
            limit=MAX_THREAD_MESSAGES,
        )
        rows = records.read(["email_from", "email_to", "email_cc", "date", "subject", "body_text"])
        rows.sort(key=lambda r: (r["date"] or datetime.min, r["id"]))
        return [
            ai.ThreadMessage(
                id=str(row["id"]),
                sender=row["email_from"] or "",
                body=row["body_text"] or "",
                date=row["date"] or None,
                recipients=[x for x in (row["email_to"], row["email_cc"]) if x],
                subject=row["subject"] or "",
            )
            for row in rows
        ]

    @api.model
    def _pipemail_marker(self, thread):
        """(message count, newest message id) of a conversation: a new message changes it.
        Counts only, no content (the caller checked the access)."""
        [(count, newest)] = (
            self.env["pipemail.message"]
            .sudo()
            ._read_group(
                [("thread_id", "=", thread.id), ("removed", "=", False)],
                aggregates=["__count", "id:max"],
            )
        )
        return count, newest or 0

    # ------------------------------------------------------------------ the endpoint

    @api.model
    def _pipemail_endpoint(self, base_url=None, model=None, api_key=None):
        params = self.env["ir.config_parameter"].sudo()
        if base_url is None:
            base_url = params.get_param("pipemail_ai.base_url") or ""
        if model is None:
            model = params.get_param("pipemail_ai.model") or ""
        if api_key is None:
            api_key = self.env["res.config.settings"].sudo()._pipemail_ai_api_key() or ""
        try:
            context = int(params.get_param(CONTEXT_PARAM) or 0)
        except ValueError:
            context = 0
        endpoint = ai.Endpoint(
            base_url=base_url or "",
            model=model or "",
            api_key=api_key,
            context_tokens=max(context, 1024) if context else ai.DEFAULT_CONTEXT,
        )
        # Odoo kills (threaded server: restarts) a request past limit_time_real: the
        # engine must give up first, with its plain-words timeout, and leave time to
        # write the audit row
        limit = int(config.get("limit_time_real") or 0)
        if 0 < limit < endpoint.deadline + DEADLINE_MARGIN:
            deadline = max(limit - DEADLINE_MARGIN, 5.0)
            endpoint = dataclasses.replace(
                endpoint, deadline=deadline, timeout=min(endpoint.timeout, deadline)
            )
        return endpoint

    # ------------------------------------------------------------------ the call

    def _pipemail_release(self):
        """End the transaction before waiting for the model (see the module docstring)."""
        if not modules.module.current_test:
            # only reads and the audit row so far: commit them and hold nothing
            self.env.cr.commit()

    @api.model
    def _pipemail_cancel_hook(self, usage):
        registry = self.env.registry
        usage_id = usage.id

        def should_cancel():
            # a short cursor of its own: the request's cursor is idle, outside any transaction
            with registry.cursor() as cr:
                cr.execute(
                    "SELECT cancel_requested FROM pipemail_ai_usage WHERE id = %s", [usage_id]
                )
                row = cr.fetchone()
            return bool(row and row[0])

        return should_cancel

    @api.model
    def _pipemail_run(self, helper, call, run_token=None):
        """Call ``call(endpoint, should_cancel)`` with the audit, the cap and no lock held.

        Engine errors come back as one plain sentence (UserError), never a traceback.
        """
        Usage = self.env["pipemail.ai.usage"]
        if helper != "probe":
            Usage._pipemail_check_cap()
        endpoint = self._pipemail_endpoint()
        usage = Usage.sudo().create(
            {
                "company_id": self.env.company.id,
                "user_id": self.env.uid,
                "helper": helper,
                "model_name": endpoint.model or (ai.DEFAULT_MODEL if not endpoint.base_url else ""),
                "run_token": run_token if isinstance(run_token, str) else False,
            }
        )
        self._pipemail_release()
        started = time.monotonic()
        try:
            result = call(endpoint, self._pipemail_cancel_hook(usage))
        except pm_errors.AIError as exc:
            state = "cancelled" if isinstance(exc, pm_errors.AICancelled) else "failed"
            usage.write(
                {"state": state, "error_code": exc.code, "latency": time.monotonic() - started}
            )
            self._pipemail_release()
            _logger.info("AI %s failed for uid %s: %s", helper, self.env.uid, exc.code)
            if state == "cancelled":
                raise UserError(_("Cancelled: nothing was changed.")) from None
            raise UserError(str(exc)) from None
        except pm_errors.PipemailError as exc:
            usage.write({"state": "failed", "error_code": "config"})
            self._pipemail_release()
            raise UserError(str(exc)) from None
        stats = getattr(result, "stats", None)
        usage.write(
            {
                "state": "done",
                "model_name": stats.model if stats else usage.model_name,
                "tokens_in": stats.tokens_in if stats else 0,
                "tokens_out": stats.tokens_out if stats else 0,
                "latency": stats.latency_s if stats else time.monotonic() - started,
            }
        )
        return result
