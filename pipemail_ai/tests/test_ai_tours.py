"""The AI helpers in a browser (Odoo tour), as a salesperson, against the scripted model
server: summary with citations, suggested replies, the composer's AI bar and its Undo.

The scripted server (``tests/harness/scripted_llm.py``) answers the three requests of
the tour in order, so what the browser shows is known; what it received is checked
after the tour."""

from markupsafe import Markup

from odoo.tests import HttpCase, new_test_user, tagged

try:
    from tests.harness.scripted_llm import ScriptedLLM, answer
except ImportError:  # pragma: no cover - only without the repository next to the addon
    ScriptedLLM = None


@tagged("post_install", "-at_install")
class TestAiTours(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if ScriptedLLM is None:
            cls.skipTest(cls, "tests/harness not importable")
        cls.llm = ScriptedLLM()
        cls.addClassCleanup(cls.llm.stop)
        cls.env.company.pipemail_ai_enabled = True
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("pipemail.allow_private_hosts", "1")
        params.set_param("pipemail_ai.base_url", cls.llm.base_url)
        params.set_param("pipemail_ai.model", cls.llm.model)
        params.set_param("pipemail_ai.daily_cap", 0)
        cls.user = new_test_user(
            cls.env,
            "pm_ai_sam",
            name="Sam Sales",
            email="sam@ourco.example",
            groups="sales_team.group_sale_salesman",
            tz="UTC",
        )
        cls.account = cls.env["pipemail.account"].create(
            {
                "name": "Sam",
                "email": "sam@ourco.example",
                "username": "sam@ourco.example",
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "user_id": cls.user.id,
                "state": "connected",
            }
        )
        cls.thread = cls.env["pipemail.thread"].create(
            {
                "account_id": cls.account.id,
                "thread_key": "ai-tour",
                "subject": "Tour quote",
                "snippet": "Can you send the quote by Friday?",
                "last_date": "2024-05-01 11:00:00",
                "participant_emails": "sam@ourco.example,dana@customer.example",
            }
        )
        mails = [
            ("Dana Buyer <dana@customer.example>", "in", "We need 40 licences from June."),
            ("Sam Sales <sam@ourco.example>", "out", "Thanks Dana, I will prepare a quote."),
            ("Carla Customer <carla@customer.example>", "in", "Can you send the quote by Friday?"),
        ]
        cls.messages = cls.env["pipemail.message"]
        for n, (sender, direction, text) in enumerate(mails, start=1):
            cls.messages |= cls.env["pipemail.message"].create(
                {
                    "thread_id": cls.thread.id,
                    "account_id": cls.account.id,
                    "key": f"ai-tour-{n}",
                    "subject": "Tour quote",
                    "email_from": sender,
                    "email_to": "sam@ourco.example",
                    "date": f"2024-05-01 {8 + n:02d}:00:00",
                    "body_text": text,
                    "body_html": Markup("<p>%s</p>") % text,
                    "snippet": text,
                    "direction": direction,
                    "is_read": True,
                }
            )

    def test_summary_replies_and_compose_bar(self):
        self.llm.reset()
        self.llm.script(
            answer(
                {
                    "points": [
                        {"kind": "request", "text": "Dana wants 40 licences.", "messages": ["M1"]},
                        {
                            "kind": "next_step",
                            "text": "Send the quote by Friday.",
                            "messages": ["M3"],
                        },
                    ]
                }
            ),
            answer({"replies": ["Yes, Friday works.", "I will call you today.", "Not yet."]}),
            answer({"text": "Friday is fine."}),
        )
        self.start_tour("/odoo/sales-inbox", "pipemail_ai_tour", login="pm_ai_sam")
        chats = self.llm.chat_requests
        self.assertEqual(len(chats), 3, "summary, replies, shorten: one request each")
        self.assertIn("40 licences", chats[0].body.decode())
        self.assertIn("Yes, Friday works.", chats[2].body.decode(), "shortened the reply text")
        Cache = self.env["pipemail.ai.cache"].sudo()
        self.assertEqual(
            sorted(Cache.search([("thread_id", "=", self.thread.id)]).mapped("helper")),
            ["replies", "summary"],
        )
        self.assertFalse(
            self.env["pipemail.outbox"].search([("user_id", "=", self.user.id)]),
            "nothing is sent without Send",
        )
