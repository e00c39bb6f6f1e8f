"""The composer in a browser (Odoo tours): undo send, send later, a draft reopened
in a new session. What reached the aiosmtpd sink is checked after each tour."""

from datetime import datetime

from odoo.tests import new_test_user, tagged

from .outbound_common import SmtpSink
from .test_outbound_send import SinkHttpCase


@tagged("post_install", "-at_install")
class TestComposeTours(SinkHttpCase):
    @classmethod
    def _make_sink(cls):
        return SmtpSink(auth=("tara@ourco.example", "tara-password"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = new_test_user(
            cls.env,
            "pm_tara",
            name="Tara Tour",
            email="tara@ourco.example",
            groups="sales_team.group_sale_salesman",
            tz="UTC",
        )
        cls.account = cls._sink_account(cls.user, name="Tara", password="tara-password")
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.undo_send_seconds", "10")

    def test_undo_then_send_later(self):
        self.start_tour("/odoo/sales-inbox", "pipemail_undo_send_tour", login="pm_tara")
        outboxes = self.env["pipemail.outbox"].search([("user_id", "=", self.user.id)])
        self.assertEqual(outboxes.mapped("state"), ["queued", "cancelled"])
        self.assertEqual(outboxes[0].scheduled_at, datetime(2099, 12, 24, 9, 30))
        self.assertEqual(outboxes.mapped("subject"), ["Tour undo"] * 2)
        self.assertEqual(self.sink.attempts, 0, "undone, then scheduled: nothing sent yet")

    def test_draft_reopened_in_another_session(self):
        self.start_tour("/odoo/sales-inbox", "pipemail_draft_write_tour", login="pm_tara")
        draft = self.env["pipemail.draft"].search([("user_id", "=", self.user.id)])
        self.assertEqual((draft.subject, draft.email_to), ("Tour draft", "dora@customer.example"))
        self.start_tour("/odoo/sales-drafts", "pipemail_draft_reopen_tour", login="pm_tara")
        self.assertFalse(draft.exists(), "discarded from the reopened composer")
        self.assertEqual(self.sink.attempts, 0)
