"""The AI helpers in Odoo, as the users who call them, against a scripted model server.

The scripted OpenAI-compatible server (``tests/harness/scripted_llm.py``) runs in this
process on loopback and records every request body, so the safety tests assert on what
actually left Odoo, not on what a mock returned. No llama.cpp here: the real model is
the engine suite's (tests/test_ai_local.py).
"""

import json
import logging
from unittest.mock import patch

from markupsafe import Markup

from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import config

from odoo.addons.pipemail_sync.tests.common import TEST_SECRET_KEY, set_class_config
from odoo.addons.pipemail_sync.tests.visibility_common import FULL, PipemailWorldMixin

try:
    from tests.harness.scripted_llm import ScriptedLLM, answer, error
except ImportError:  # pragma: no cover - only without the repository next to the addon
    ScriptedLLM = None

KEY = "sk-test-CANARYAIKEY-0123456789"
HELPER_CALLS = ("summary", "replies", "compose")


@tagged("post_install", "-at_install")
class TestAiHelpers(PipemailWorldMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if ScriptedLLM is None:
            cls.skipTest(cls, "tests/harness not importable")
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls.llm = ScriptedLLM()
        cls.addClassCleanup(cls.llm.stop)
        cls._pipemail_world()
        (cls.company | cls.company2).write({"pipemail_ai_enabled": True})
        params = cls.env["ir.config_parameter"]
        params.set_param("pipemail_ai.base_url", cls.llm.base_url)
        params.set_param("pipemail_ai.model", cls.llm.model)
        params.set_param("pipemail_ai.daily_cap", 0)
        settings = cls.env["res.config.settings"].create({"pipemail_ai_api_key": KEY})
        settings.execute()
        # a second, newer message on the owner's shared conversation
        cls.thread = cls.threads["p_shared"]
        cls.reply = cls._add_message(cls.thread, "Can you send the quote by Friday? SECONDMSG")
        cls.admin = new_test_user(
            cls.env, "pm_ai_admin", groups="base.group_system,sales_team.group_sale_manager"
        )

    @classmethod
    def _add_message(cls, thread, body, direction="in", n=None):
        n = n or len(thread.message_ids) + 1
        return cls.env["pipemail.message"].create(
            {
                "thread_id": thread.id,
                "account_id": thread.account_id.id,
                "key": f"{thread.thread_key}-{n}",
                "subject": "Re: quote",
                "email_from": "Carla <carla@customer.example>",
                "email_to": thread.account_id.email,
                "date": f"2024-05-02 10:{n % 60:02d}:00",
                "body_text": body,
                "body_html": Markup("<p>%s</p>") % body,
                "direction": direction,
                "is_read": True,
            }
        )

    def setUp(self):
        super().setUp()
        self.llm.reset()

    def bodies(self):
        return [r.body.decode() for r in self.llm.chat_requests]

    def call(self, user, helper, thread, **kw):
        thread = thread.with_user(user)
        if helper == "summary":
            return thread.action_pipemail_ai_summarize(**kw)
        if helper == "replies":
            return thread.action_pipemail_ai_suggest(**kw)
        return (
            self.env["pipemail.compose"]
            .with_user(user)
            .pipemail_ai_compose("reply", body="<p><br></p>", thread_id=thread.id, **kw)
        )

    # ------------------------------------------------------------------ summary

    def test_summary_cites_messages_cached_until_a_new_message(self):
        first = self.messages["p_shared"]
        self.llm.script(
            answer(
                {
                    "points": [
                        {"kind": "request", "text": "Carla wants a quote.", "messages": ["M1"]},
                        {"kind": "next_step", "text": "Send it by Friday.", "messages": ["M2"]},
                    ]
                }
            )
        )
        result = self.call(self.owner, "summary", self.thread)
        cited = [p["message_ids"] for p in result["points"]]
        self.assertEqual(cited, [[first.id], [self.reply.id]])
        self.assertEqual(result["model"], "scripted-model")
        self.assertFalse(result["stale"])
        self.assertEqual(len(self.llm.chat_requests), 1)
        # the key went to the endpoint, encrypted at rest, and the body carried the email
        request = self.llm.chat_requests[0]
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.assertEqual(headers.get("authorization"), f"Bearer {KEY}")
        self.assertIn("SECONDMSG", self.bodies()[0])
        # a colleague who may read the conversation gets the cached summary: no new request
        again = self.call(self.outsider, "summary", self.thread)
        self.assertEqual(again["points"], result["points"])
        self.assertEqual(len(self.llm.chat_requests), 1)
        state = self.thread.with_user(self.outsider).pipemail_ai_state()
        self.assertEqual(state["summary"]["result"]["points"], result["points"])
        self.assertFalse(state["replies"], "suggested replies are for the mailbox's holders")
        # a new message: out of date, and the next Summarize asks the model again
        self._add_message(self.thread, "One more thing.", n=9)
        state = self.thread.with_user(self.owner).pipemail_ai_state()
        self.assertTrue(state["summary"]["result"]["stale"])
        self.call(self.owner, "summary", self.thread)
        self.assertEqual(len(self.llm.chat_requests), 2)
        usage = self.env["pipemail.ai.usage"].search([("user_id", "=", self.owner.id)])
        self.assertEqual(usage.mapped("state"), ["done", "done"])
        self.assertTrue(all(u.tokens_in > 0 and u.tokens_out > 0 for u in usage))
        self.assertEqual(set(usage.mapped("model_name")), {"scripted-model"})

    def test_long_thread_is_cut_and_says_so(self):
        thread = self.threads["t_shared"]
        for n in range(2, 41):
            self._add_message(thread, f"Message {n}. " + "Details about the order. " * 30, n=n)
        self.env["ir.config_parameter"].set_param("pipemail_ai.context_tokens", 2048)
        result = self.call(self.owner, "summary", thread)
        self.assertIn("left out", result["notice"])
        self.assertGreater(result["omitted"], 10)
        body = self.bodies()[0]
        self.assertIn("CANARYT_SHAREDBODY", body, "the first message is kept")
        self.assertIn("Message 40.", body, "the newest message is kept")
        self.assertNotIn("Message 3.", body)

    # ------------------------------------------------------------------ enablement

    def _composer_shows_ai(self, user):
        """What the composer form gets when it opens (the first onchange of a new record)."""
        spec = {"account_id": {}, "body": {}, "pipemail_ai_compose_enabled": {}}
        Compose = self.env["pipemail.compose"].with_user(user)
        return Compose.onchange({}, [], spec)["value"]["pipemail_ai_compose_enabled"]

    def test_helper_off_or_company_off_refuses_and_shows_nothing(self):
        self.assertTrue(self._composer_shows_ai(self.owner))
        self.owner.pipemail_ai_summary = False
        state = self.thread.with_user(self.owner).pipemail_ai_state()
        self.assertFalse(state["summary"])
        self.assertTrue(state["replies"])
        with self.assertRaisesRegex(AccessError, "off in your preferences"):
            self.call(self.owner, "summary", self.thread)
        self.owner.pipemail_ai_summary = True
        self.company.pipemail_ai_enabled = False
        self.assertEqual(
            self.thread.with_user(self.owner).pipemail_ai_state(),
            {"summary": False, "replies": False},
        )
        for helper in HELPER_CALLS:
            with self.assertRaisesRegex(AccessError, "off for your company"):
                self.call(self.owner, helper, self.thread)
        self.assertFalse(self._composer_shows_ai(self.owner))
        self.assertEqual(self.llm.chat_requests, [])
        # a user may switch their own helpers, never the company's switch
        self.owner.with_user(self.owner).write({"pipemail_ai_compose": False})
        with self.assertRaises(AccessError):
            self.company.with_user(self.owner).write({"pipemail_ai_enabled": True})

    # ------------------------------------------------------------------ safety

    def test_only_what_the_user_may_read_reaches_the_model(self):
        """Canaries in another user's Private thread, another team's Team thread, a
        metadata-only thread and another company's mail: every helper, as every other
        user, with those ids over RPC: a refusal each time, no canary in any request."""
        attackers = ("teammate", "outsider", "stranger", "manager", "other_co")
        tried = 0
        for user_key in attackers:
            user = self.users[user_key]
            for name, levels in self.access.items():
                if levels[user_key] == FULL:
                    continue
                for helper in HELPER_CALLS:
                    with self.subTest(user=user_key, thread=name, helper=helper):
                        # AccessError is a UserError: either refusal, in plain words
                        with self.assertRaises(UserError):
                            self.call(user, helper, self.threads[name])
                        tried += 1
        self.assertGreater(tried, 60)
        self.assertEqual(self.llm.chat_requests, [], "nothing may even be asked")
        # positive control: a thread the outsider may read does reach the model whole
        self.call(self.outsider, "summary", self.threads["p_shared"])
        sent = "".join(self.bodies())
        self.assertIn("CANARYP_SHAREDBODY", sent)
        for name in ("p_private", "t_team", "p_meta", "t_private", "c2_shared", "p_unlinked"):
            self.assertNotIn(f"CANARY{name.upper()}", sent)

    def test_cache_and_audit_are_not_user_data(self):
        self.call(self.owner, "summary", self.thread)
        for model in ("pipemail.ai.cache", "pipemail.ai.usage"):
            Model = self.env[model].with_user(self.owner)
            with self.assertRaises(AccessError):
                Model.search_read([], [])
            with self.assertRaises(AccessError):
                Model.create({})
            with self.assertRaises(AccessError):
                self.env[model].search([], limit=1).with_user(self.owner).write({"model_name": "x"})
        # administrators read the audit, which holds counts and names, no content
        usage = self.env["pipemail.ai.usage"].with_user(self.admin).search_read([], [])
        self.assertTrue(usage)
        self.assertNotIn("CANARY", json.dumps(usage, default=str))
        self.assertNotIn("SECONDMSG", json.dumps(usage, default=str))

    def test_cancel_only_own_running_request(self):
        usage = (
            self.env["pipemail.ai.usage"]
            .sudo()
            .create(
                {
                    "company_id": self.company.id,
                    "user_id": self.owner.id,
                    "helper": "summary",
                    "run_token": "tok-1",
                }
            )
        )
        Usage = self.env["pipemail.ai.usage"]
        self.assertFalse(Usage.with_user(self.teammate).action_pipemail_cancel("tok-1"))
        self.assertFalse(usage.cancel_requested)
        self.assertTrue(Usage.with_user(self.owner).action_pipemail_cancel("tok-1"))
        self.assertTrue(usage.cancel_requested)

    def test_nothing_logged_at_info_but_counts(self):
        with self.assertLogs(level=logging.DEBUG) as logs:
            logging.getLogger("odoo.addons.pipemail_ai").info("start")
            self.call(self.owner, "summary", self.thread)
            self.call(self.owner, "replies", self.thread)
        text = "\n".join(logs.output)
        self.assertIn("AI summary", text)
        info = "\n".join(r.getMessage() for r in logs.records if r.levelno >= logging.INFO)
        for secret in (KEY, "CANARYP_SHAREDBODY", "SECONDMSG", "Scripted reply"):
            self.assertNotIn(secret, info)

    # ------------------------------------------------------------------ failures, cap

    def test_failure_is_one_plain_sentence_and_audited(self):
        self.llm.script(error(401, "invalid_api_key", "bad key"))
        # not assertRaises: it rolls back to a savepoint, and the audit row written before
        # the refusal (committed in production) is what this test looks at
        try:
            self.call(self.owner, "summary", self.thread)
        except UserError as exc:
            message = str(exc.args[0])
        else:
            self.fail("no error")
        self.assertNotIn("\n", message)
        self.assertNotIn("Traceback", message)
        self.assertIn("key", message.lower())
        usage = self.env["pipemail.ai.usage"].search([("user_id", "=", self.owner.id)], limit=1)
        self.assertEqual((usage.state, usage.error_code), ("failed", "ai_auth"))
        # nothing cached: the next click tries again
        self.assertFalse(self.env["pipemail.ai.cache"].search([("thread_id", "=", self.thread.id)]))

    def test_daily_cap_is_enforced_by_the_server(self):
        self.env["ir.config_parameter"].set_param("pipemail_ai.daily_cap", 2)
        self.call(self.owner, "summary", self.thread)
        self.call(self.owner, "replies", self.thread)
        with self.assertRaisesRegex(UserError, "limit of 2 AI requests"):
            self.call(self.owner, "summary", self.thread, refresh=True)
        self.assertEqual(len(self.llm.chat_requests), 2)
        # cache hits are free; other users have their own count
        self.call(self.owner, "summary", self.thread)
        self.call(self.teammate, "summary", self.threads["t_team"])

    # ------------------------------------------------------------------ replies, compose

    def test_suggested_reply_opens_the_composer_with_it(self):
        self.llm.script(answer({"replies": ["Yes, Friday works.", "<b>Bold</b> idea", "No."]}))
        result = self.call(self.owner, "replies", self.thread)
        texts = [r["text"] for r in result["replies"]]
        self.assertEqual(len(texts), 3)
        self.assertNotIn("<b>", "".join(texts))
        # cached per user: the second ask is free
        self.call(self.owner, "replies", self.thread)
        self.assertEqual(len(self.llm.chat_requests), 1)
        action = self.reply.with_user(self.owner).action_pipemail_ai_reply(texts[0])
        Compose = self.env["pipemail.compose"].with_user(self.owner).with_context(action["context"])
        wizard = Compose.create({})
        body = str(wizard.body)
        self.assertTrue(body.startswith('<p dir="ltr">Yes, Friday works.</p>'), body)
        self.assertIn("o_pipemail_quote", body)
        self.assertFalse(wizard.outbox_ids, "nothing is sent")

    def test_compose_replaces_only_the_text_escaped_rtl_and_signature_kept(self):
        self.owner.signature = Markup("<p>Owner Signature</p>")
        Compose = self.env["pipemail.compose"].with_user(self.owner)
        wizard = Compose.with_context(
            default_thread_id=self.thread.id, default_mode="reply"
        ).create({})
        before = str(wizard.body).replace("<p><br></p>", "<p>pls confirm the order</p>", 1)
        rest = before.split("pls confirm the order</p>", 1)[1]
        self.llm.script(
            answer({"text": "مرحبا، نؤكد الطلب.\n\n<script>alert(1)</script> Thanks <img src=x>"})
        )
        result = Compose.pipemail_ai_compose(
            "translate", body=before, thread_id=self.thread.id, language="Arabic"
        )
        body = result["body"]
        self.assertTrue(body.startswith('<p dir="rtl">مرحبا'), body)
        self.assertNotIn("<script", body)
        self.assertNotIn("<img", body)
        self.assertTrue(body.endswith(rest), "signature and quote untouched")
        self.assertIn("Owner Signature", body)
        self.assertEqual(result["model"], "scripted-model")
        # the draft sent to the model was the person's text, not the quote
        sent = self.llm.chat_requests[0].json["messages"][-1]["content"]
        self.assertIn("pls confirm the order", sent)
        self.assertNotIn("Owner Signature", sent)
        with self.assertRaisesRegex(UserError, "Write some text first"):
            Compose.pipemail_ai_compose("shorten", body=str(wizard.body))
        with self.assertRaisesRegex(UserError, "Choose a tone"):
            Compose.pipemail_ai_compose("tone", body=before, tone="rude")

    def test_model_wait_ends_before_odoo_kills_the_request(self):
        Service = self.env["pipemail.ai.service"]
        with patch.dict(config.options, {"limit_time_real": 60}):
            endpoint = Service._pipemail_endpoint()
        self.assertLessEqual(endpoint.deadline, 45)
        self.assertLessEqual(endpoint.timeout, endpoint.deadline)
        with patch.dict(config.options, {"limit_time_real": 0}):
            self.assertEqual(Service._pipemail_endpoint().deadline, 180.0)

    # ------------------------------------------------------------------ settings

    def test_settings_test_button(self):
        settings = self.env["res.config.settings"].with_user(self.admin).create({})
        action = settings.action_pipemail_ai_test()
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn("scripted-model", action["params"]["message"])
        down = (
            self.env["res.config.settings"]
            .with_user(self.admin)
            .create({"pipemail_ai_base_url": "http://127.0.0.1:9/v1", "pipemail_ai_model": "m"})
        )
        action = down.action_pipemail_ai_test()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertNotIn("Traceback", action["params"]["message"])
        sales = self.env["res.config.settings"].with_user(self.owner)
        with self.assertRaises(AccessError):
            sales.browse(settings.id).action_pipemail_ai_test()
