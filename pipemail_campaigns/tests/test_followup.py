"""Follow up if no reply: sent as a reply in the same conversation when nothing came
back; cancelled by a reply synced into any mailbox, an unsubscribe, an undelivered
original, a won/lost deal, or the user; exactly once under concurrent crons."""

from datetime import timedelta
from pathlib import Path

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from odoo.addons.pipemail_sync.tests.common import make_mail
from odoo.addons.pipemail_sync.tests.outbound_common import html_part, parse

from .automation_common import PipemailAutomationCase

DSN = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "dsn"


@tagged("post_install", "-at_install")
class TestFollowup(PipemailAutomationCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nudge = cls.env["mail.template"].create(
            {
                "name": "Nudge",
                "model_id": cls.lead_model.id,
                "subject": "ignored: a follow-up keeps the thread's subject",
                "body_html": "<p>Any news about <t t-out='object.name'/>?</p>",
            }
        )

    def start(self, steps=1, new_rule=True, **lead_vals):
        """A welcome email with a 3-day follow-up, sent; returns (lead, outbox, followup)."""
        if new_rule:
            self.make_rule(
                "on_create",
                pipemail_followup_template_id=self.nudge.id,
                pipemail_followup_days=3,
                pipemail_followup_steps=steps,
            )
        lead = self.make_lead(**lead_vals)
        [outbox] = self.outboxes(lead)
        self.run_outbox()
        self.assertEqual(outbox.state, "sent", outbox.last_error)
        self.received(1)
        self.sink.clear()
        followup = self.env["pipemail.followup"].sudo().search([("outbox_id", "=", outbox.id)])
        self.assertEqual(len(followup), 1)
        self.assertEqual(followup.state, "pending")
        return lead, outbox, followup

    def due(self, followup):
        """A minute after the followed email's send time plus the delay."""
        return followup.outbox_id.sent_date + timedelta(days=followup.days, minutes=1)

    def cron_at(self, when):
        with freeze_time(when):
            return self.env["pipemail.followup"]._cron_send_followups()

    def reply_into(self, login, account, outbox, **kw):
        raw = make_mail(
            subject="Re: " + outbox.subject,
            sender="Carla Customer <carla@customer.example>",
            to="sam@ourco.example",
            in_reply_to=outbox.message_id_header,
            **kw,
        )
        self.deliver(login, raw)
        self.sync(account)

    def test_sent_as_reply_when_nothing_came_back(self):
        lead, outbox, followup = self.start()
        self.cron_at(outbox.sent_date + timedelta(days=2))
        self.assertEqual(followup.state, "pending", "not due yet")
        self.cron_at(self.due(followup))
        self.assertEqual(followup.state, "sent")
        reply = followup.sent_outbox_id
        self.assertEqual(reply.mode, "reply")
        self.run_outbox()
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(str(message["Subject"]), "Re: Welcome, Carla Customer")
        self.assertEqual(message["In-Reply-To"], outbox.message_id_header)
        self.assertIn(outbox.message_id_header, str(message["References"]))
        self.assertIn("Any news about Forty chairs?", html_part(message))
        self.assertEqual(received.rcpt_tos, ["carla@customer.example"])
        self.assertEqual(reply.thread_id, outbox.thread_id, "the same conversation")
        self.assertEqual(lead.pipemail_thread_ids, outbox.thread_id)
        # a second cron run sends nothing more
        self.cron_at(self.due(followup) + timedelta(days=1))
        self.assertEqual(len(self.outboxes(lead)), 2)

    def test_sequence_of_steps_and_reply_stops_the_next(self):
        _lead, outbox, first = self.start(steps=3)
        self.cron_at(self.due(first))
        self.run_outbox()
        self.received(1)
        second = (
            self.env["pipemail.followup"]
            .sudo()
            .search([("outbox_id", "=", first.sent_outbox_id.id)])
        )
        self.assertEqual((second.step, second.steps_total, second.state), (2, 3, "pending"))
        self.assertEqual(second.origin_outbox_id, outbox)
        # the customer answers the first follow-up: step 2 is cancelled
        self.reply_into(self.login, self.account, first.sent_outbox_id)
        self.cron_at(self.due(second))
        self.assertEqual((second.state, second.cancel_reason), ("cancelled", "replied"))

    def test_reply_in_owner_mailbox_cancels(self):
        _lead, outbox, followup = self.start()
        self.reply_into(self.login, self.account, outbox)
        self.cron_at(self.due(followup))
        self.assertEqual((followup.state, followup.cancel_reason), ("cancelled", "replied"))
        self.assertFalse(followup.sent_outbox_id)

    def test_reply_only_as_cc_to_colleague_cancels(self):
        _lead, outbox, followup = self.start()
        login, sally_box = self.new_mailbox(self.sally)
        raw = make_mail(
            subject="Re: " + outbox.subject,
            sender="Carla Customer <carla@customer.example>",
            to="someone-else@customer.example",
            cc="sally@ourco.example",
            in_reply_to=outbox.message_id_header,
        )
        self.deliver(login, raw)
        self.sync(sally_box)
        self.cron_at(self.due(followup))
        self.assertEqual((followup.state, followup.cancel_reason), ("cancelled", "replied"))

    def test_reply_in_team_mailbox_cancels(self):
        _lead, outbox, followup = self.start()
        login, team = self.new_mailbox(self.env.user, email="sales@ourco.example", kind="team")
        raw = make_mail(
            subject="Re: " + outbox.subject,
            sender="Carla Customer <carla@customer.example>",
            to="sales@ourco.example",
            in_reply_to="<other@x.example>",
            references=f"{outbox.message_id_header} <other@x.example>",
        )
        self.deliver(login, raw)
        self.sync(team)
        self.cron_at(self.due(followup))
        self.assertEqual((followup.state, followup.cancel_reason), ("cancelled", "replied"))

    def test_unsubscribe_bounce_and_won_cancel(self):
        _lead, _outbox, followup = self.start()
        self.env["mail.blacklist"].sudo()._add("carla@customer.example")
        self.cron_at(self.due(followup))
        self.assertEqual(followup.cancel_reason, "unsubscribed")

        self.env["mail.blacklist"].sudo()._remove("carla@customer.example")
        lead2, outbox2, followup2 = self.start(new_rule=False, name="Second")
        outbox2.write({"state": "failed"})  # the server refused it after all
        self.cron_at(self.due(followup2))
        self.assertEqual(followup2.cancel_reason, "bounced")

        lead3, _outbox3, followup3 = self.start(new_rule=False, name="Third")
        lead3.with_user(self.sender).write({"stage_id": self.stage_won.id})
        self.assertEqual((followup3.state, followup3.cancel_reason), ("cancelled", "closed"))
        lead4, _outbox4, followup4 = self.start(new_rule=False, name="Fourth")
        lead4.with_user(self.sender).action_set_lost()
        self.assertEqual(followup4.cancel_reason, "closed")

    def test_bounce_report_synced_cancels_at_once(self):
        """A 1:1 email's bounce report, read by the sync, goes through the one
        "undelivered" entry point: the follow-up stops at once (reason "bounced"), the
        email counts as bounced in the report, and the notice is no reply."""
        lead, outbox, followup = self.start()
        raw = (DSN / "01_postfix_rfc3464_user_unknown.eml").read_bytes()
        raw = raw.replace(b"ghost@clients.example", b"carla@customer.example")
        raw = raw.replace(
            b"<a1b2c3d4e5f60718293a4b5c6d7e8f90@ourco.example>", outbox.message_id_header.encode()
        )
        raw = raw.replace(
            b"Subject: Undelivered",
            b"In-Reply-To: %s\nSubject: Undelivered" % outbox.message_id_header.encode(),
        )
        self.deliver(self.login, raw)
        self.sync(self.account)
        self.env.invalidate_all()
        self.assertEqual((followup.state, followup.cancel_reason), ("cancelled", "bounced"))
        self.assertEqual(outbox.pipemail_bounce_type, "hard")
        self.assertIn("5.1.1", outbox.pipemail_bounce_info)
        [row] = self.env["pipemail.email.report"].search([("outbox_id", "=", outbox.id)])
        self.assertEqual(
            (row.sent, row.delivered, row.bounced, row.replied, row.tracked_delivered),
            (1, 0, 1, 0, 0),
        )
        self.assertEqual(lead.pipemail_thread_ids, outbox.thread_id, "the notice filed apart")
        # the cron's own check is the same rule
        self.assertTrue(followup._pipemail_undelivered())

    def test_cancel_button_and_access(self):
        _lead, _outbox, followup = self.start()
        other = self.make_user("pm_other_team", groups="sales_team.group_sale_salesman_all_leads")
        portal = new_test_user(self.env, "pm_portal", groups="base.group_portal")
        for intruder in (self.sally, other, portal):
            Followup = self.env["pipemail.followup"].with_user(intruder)
            if intruder.share:
                with self.assertRaises(AccessError):
                    Followup.search([])
            else:
                self.assertFalse(Followup.search([]), intruder.login)
            with self.assertRaises(AccessError):
                followup.with_user(intruder).action_cancel()
            with self.assertRaises(AccessError):
                followup.with_user(intruder).read(["subject"])
        mine = followup.with_user(self.sender)
        with self.assertRaises(AccessError):
            mine.write({"due_date": "2030-01-01 00:00:00"})
        with self.assertRaises(AccessError):
            self.env["pipemail.followup"].with_user(self.sender).create(
                {"user_id": self.sender.id, "outbox_id": followup.outbox_id.id}
            )
        self.assertEqual(self.env["pipemail.followup"].with_user(self.sender).search([]), followup)
        mine.action_cancel()
        self.assertEqual((followup.state, followup.cancel_reason), ("cancelled", "user"))
        self.cron_at(self.due(followup))
        self.assertFalse(followup.sent_outbox_id)

    def test_composer_option(self):
        lead = self.make_lead()
        wizard = self.compose(res_model="crm.lead", res_id=lead.id).create(
            {
                "subject": "Quote",
                "followup_template_id": self.nudge.id,
                "followup_days": 2,
                "followup_business_days": True,
            }
        )
        wizard.action_send()
        outbox = wizard.outbox_id.sudo()
        self.assertEqual(outbox.state, "sent", outbox.last_error)
        followup = self.env["pipemail.followup"].with_user(self.sender).search([])
        self.assertEqual(followup.outbox_id, outbox)
        self.assertEqual((followup.days, followup.business_days), (2, True))
        self.assertGreaterEqual(followup.due_date, outbox.create_date + timedelta(days=2))
        # a template of another kind of record is refused, nothing is sent
        partner_template = self.env["mail.template"].create(
            {"name": "P", "model_id": self.env.ref("base.model_res_partner").id}
        )
        wizard = self.compose(res_model="crm.lead", res_id=lead.id).create(
            {"subject": "Again", "followup_template_id": partner_template.id}
        )
        with self.assertRaises(UserError):
            wizard.action_send()
        # over RPC the numbers can be anything: more than MAX_STEPS or no delay is refused
        for values in ({"followup_steps": 11}, {"followup_days": 0}, {"followup_steps": 0}):
            wizard = self.compose(res_model="crm.lead", res_id=lead.id).create(
                {"subject": "Again", "followup_template_id": self.nudge.id, **values}
            )
            with self.assertRaises(UserError, msg=str(values)):
                wizard.action_send()
        self.assertEqual(self.env["pipemail.followup"].with_user(self.sender).search_count([]), 1)
