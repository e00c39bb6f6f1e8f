"""Undo send and Send later, checked at the aiosmtpd sink: nothing arrives before its
time, an email taken back never arrives, a due one arrives once."""

from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .outbound_common import PipemailOutboundCase, parse


@tagged("post_install", "-at_install")
class TestOutboundSchedule(PipemailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.colleague = new_test_user(
            cls.env,
            "pm_sched_colleague",
            groups="sales_team.group_sale_salesman_all_leads",
            email="colleague@ourco.example",
        )
        cls.Outbox = cls.env["pipemail.outbox"]

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("pipemail.undo_send_seconds", "10")

    def write_email(self, **vals):
        upload = (
            self.env["ir.attachment"]
            .with_user(self.sender)
            .create({"name": "quote.pdf", "raw": b"%PDF quote", "res_model": "pipemail.compose"})
        )
        values = {
            "email_to": "Carla Customer <carla@customer.example>",
            "email_cc": "boss@customer.example",
            "subject": "Your quote",
            "body": "<p>Here is the quote.</p>",
            "tracking": False,
            "attachment_ids": [(6, 0, upload.ids)],
        }
        values.update(vals)
        return self.compose().create(values)

    def run_cron(self):
        self.Outbox._cron_send_outbox()

    def rewind(self, outboxes, field):
        """Time passes: the hold ends one second ago."""
        past = fields.Datetime.now() - timedelta(seconds=1)
        outboxes.sudo().write({field: past, "next_attempt": past})

    # ------------------------------------------------------------------ undo send

    def test_undo_within_grace_nothing_sent_composer_back(self):
        wizard = self.write_email()
        cron = self.env.ref("pipemail_sync.ir_cron_pipemail_outbox")
        triggers = self.env["ir.cron.trigger"].sudo()
        before = triggers.search_count([("cron_id", "=", cron.id)])
        action = wizard.action_send_undoable()
        outbox = wizard.outbox_id.sudo()
        self.assertEqual(action["tag"], "pipemail_undo_send")
        self.assertEqual(action["params"]["outbox_ids"], outbox.ids)
        self.assertEqual(action["params"]["seconds"], 10)
        self.assertEqual(outbox.state, "queued")
        self.assertGreater(outbox.undo_until, fields.Datetime.now() + timedelta(seconds=8))
        self.assertEqual(triggers.search_count([("cron_id", "=", cron.id)]), before + 1)
        # the cron and the browser's early call both leave it alone during the grace
        self.run_cron()
        self.assertFalse(outbox.with_user(self.sender).action_send_held())
        self.assertEqual(self.sink.attempts, 0)

        reopen = outbox.with_user(self.sender).action_undo_send()
        self.assertEqual(outbox.state, "cancelled")
        self.assertEqual((reopen["res_model"], reopen["target"]), ("pipemail.compose", "new"))
        again = self.env["pipemail.compose"].with_user(self.sender).browse(reopen["res_id"])
        self.assertEqual(again.email_to, "Carla Customer <carla@customer.example>")
        self.assertEqual(again.email_cc, "boss@customer.example")
        self.assertEqual(again.subject, "Your quote")
        self.assertIn("Here is the quote.", str(again.body))
        self.assertEqual(again.account_id, self.account)
        self.assertFalse(again.tracking)
        self.assertEqual(again.attachment_ids.mapped("name"), ["quote.pdf"])
        self.assertEqual(again.attachment_ids.raw, b"%PDF quote")
        self.assertEqual(again.draft_id.sudo().subject, "Your quote", "kept as a draft at once")

        # the grace period ends: the cancelled email stays cancelled
        self.rewind(outbox, "undo_until")
        self.run_cron()
        self.assertEqual(outbox.state, "cancelled")
        self.assertEqual(self.sink.attempts, 0)
        with self.assertRaisesRegex(UserError, "Too late"):
            outbox.with_user(self.sender).action_undo_send()

        # sent from the reopened composer, it arrives once, with its file
        again.env["ir.config_parameter"].sudo().set_param("pipemail.undo_send_seconds", "0")
        again.action_send_undoable()
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(str(message["Subject"]), "Your quote")
        [attachment] = list(message.iter_attachments())
        self.assertEqual(attachment.get_content(), b"%PDF quote")

    def test_grace_over_sent_once_by_browser_or_cron(self):
        wizard = self.write_email()
        wizard.action_send_undoable()
        outbox = wizard.outbox_id.sudo()
        self.rewind(outbox, "undo_until")
        action = outbox.with_user(self.sender).action_send_held()
        self.assertEqual(outbox.state, "sent")
        self.assertEqual(action["params"]["type"], "success")
        # the cron's round after it, a second browser call, the click replayed: no repeat
        self.run_cron()
        self.assertFalse(outbox.with_user(self.sender).action_send_held())
        wizard.action_send_undoable()
        self.assertEqual(self.sink.message_ids(), {outbox.message_id_header: 1})
        with self.assertRaisesRegex(UserError, "Too late"):
            outbox.with_user(self.sender).action_undo_send()

        # the browser gone: the cron sends the next one once the grace is over
        second = self.write_email(subject="Second")
        second.action_send_undoable()
        self.run_cron()
        self.assertEqual(second.outbox_id.state, "queued")
        self.rewind(second.outbox_id, "undo_until")
        self.run_cron()
        self.run_cron()
        self.assertEqual(second.outbox_id.state, "sent")
        self.assertEqual(self.sink.message_ids()[second.outbox_id.message_id_header], 1)

    def test_undo_setting_zero_sends_at_once(self):
        self.env["ir.config_parameter"].sudo().set_param("pipemail.undo_send_seconds", "0")
        wizard = self.write_email()
        action = wizard.action_send_undoable()
        self.assertEqual(action["tag"], "display_notification")
        self.assertEqual(wizard.outbox_id.state, "sent")
        self.received(1)

    def test_undo_individual_send_brings_back_every_address(self):
        wizard = self.write_email(
            email_to="a@customer.example, b@customer.example", email_cc=False, individual=True
        )
        action = wizard.action_send_undoable()
        outboxes = wizard.outbox_ids.sudo()
        self.assertEqual(len(outboxes), 2)
        self.assertEqual(action["params"]["outbox_ids"], outboxes.ids)
        reopen = outboxes.with_user(self.sender).action_undo_send()
        again = self.env["pipemail.compose"].browse(reopen["res_id"])
        self.assertTrue(again.individual)
        self.assertEqual(
            sorted(again.email_to.split(", ")), ["a@customer.example", "b@customer.example"]
        )
        self.assertEqual(outboxes.mapped("state"), ["cancelled"] * 2)
        self.rewind(outboxes, "undo_until")
        self.run_cron()
        self.assertEqual(self.sink.attempts, 0)

    # ------------------------------------------------------------------ send later

    def test_send_later_fires_once_when_due(self):
        wizard = self.write_email()
        wizard.scheduled_at = fields.Datetime.now() - timedelta(minutes=1)
        with self.assertRaisesRegex(UserError, "has passed"):
            wizard.action_send_later()
        self.assertFalse(wizard.outbox_id)
        when = fields.Datetime.now() + timedelta(hours=2)
        wizard.scheduled_at = when
        action = wizard.with_context(tz="Europe/Brussels").action_send_undoable()
        outbox = wizard.outbox_id.sudo()
        self.assertEqual(action["params"]["title"], "Email scheduled")
        self.assertIn("Europe/Brussels", action["params"]["message"])
        self.assertEqual((outbox.state, outbox.scheduled_at), ("queued", when))
        self.assertFalse(outbox.undo_until)
        scheduled = (
            self.env["pipemail.outbox"]
            .with_user(self.sender)
            .search([("state", "=", "queued"), ("scheduled_at", "!=", False)])
        )
        self.assertEqual(scheduled, outbox)
        self.run_cron()
        self.assertEqual(self.sink.attempts, 0, "not before its time")
        with self.assertRaisesRegex(UserError, "just sent"):
            outbox.with_user(self.sender).action_undo_send()
        self.assertFalse(outbox.with_user(self.sender).action_send_held())
        self.rewind(outbox, "scheduled_at")
        self.run_cron()
        self.run_cron()
        self.assertEqual(outbox.state, "sent")
        self.assertEqual(self.sink.message_ids(), {outbox.message_id_header: 1})

    def test_scheduled_email_edited_or_cancelled(self):
        wizard = self.write_email(scheduled_at=fields.Datetime.now() + timedelta(days=1))
        wizard.action_send_later()
        outbox = wizard.outbox_id.sudo()
        reopen = outbox.with_user(self.sender).action_edit_scheduled()
        self.assertEqual(outbox.state, "cancelled")
        again = self.env["pipemail.compose"].with_user(self.sender).browse(reopen["res_id"])
        self.assertEqual(again.scheduled_at, outbox.scheduled_at)
        self.assertEqual(again.attachment_ids.mapped("name"), ["quote.pdf"])
        again.write({"subject": "Your quote, corrected"})
        again.action_send_later()
        edited = again.outbox_id.sudo()
        self.assertEqual(edited.subject, "Your quote, corrected")
        edited.with_user(self.sender).action_cancel()
        self.rewind(outbox | edited, "scheduled_at")
        self.run_cron()
        self.assertEqual((outbox | edited).mapped("state"), ["cancelled"] * 2)
        self.assertEqual(self.sink.attempts, 0)

    # ------------------------------------------------------------------ who may

    def test_other_users_cannot_touch_held_emails(self):
        wizard = self.write_email()
        wizard.action_send_undoable()
        held = wizard.outbox_id
        later = self.write_email(scheduled_at=fields.Datetime.now() + timedelta(days=1))
        later.action_send_later()
        scheduled = later.outbox_id
        portal = new_test_user(self.env, "pm_sched_portal", groups="base.group_portal")
        for user in (self.colleague, portal):
            for outbox, method in (
                (held, "action_undo_send"),
                (held, "action_send_held"),
                (scheduled, "action_edit_scheduled"),
                (scheduled, "action_cancel"),
            ):
                with self.subTest(user=user.login, method=method), self.assertRaises(AccessError):
                    getattr(outbox.with_user(user), method)()
            with self.assertRaises(AccessError):
                self.env["pipemail.outbox"].with_user(user).browse(scheduled.id).read(
                    ["subject", "scheduled_at"]
                )
        # nobody writes the hold by hand, the author neither
        with self.assertRaises(AccessError):
            held.with_user(self.sender).write({"undo_until": fields.Datetime.now()})
        self.assertEqual(held.sudo().state, "queued")
        self.assertEqual(scheduled.sudo().state, "queued")
        self.assertEqual(self.sink.attempts, 0)
