"""The "Send Email from Mailbox" server action, fired by base_automation's own triggers
(creation, stage change, the time-based cron under frozen time), checked at the SMTP
sink byte for byte and in the lead's conversations."""

from datetime import timedelta

from freezegun import freeze_time

from odoo import Command, fields
from odoo.tests import tagged

from odoo.addons.pipemail_sync.tests.outbound_common import html_part, parse, text_part

from ..models.pipemail_followup import add_business_days
from .automation_common import PipemailAutomationCase


@tagged("post_install", "-at_install")
class TestAutomationSend(PipemailAutomationCase):
    def test_on_create_sends_from_owner_mailbox_into_lead_conversation(self):
        rule, action = self.make_rule("on_create")
        lead = self.make_lead()
        [outbox] = self.outboxes(lead)
        self.assertEqual(outbox.state, "queued", "queued in the trigger's transaction, not sent")
        self.assertEqual(outbox.user_id, self.sender, "written by the lead's salesperson")
        self.assertEqual(outbox.account_id, self.account)
        self.assertEqual(outbox.pipemail_action_id, action)
        self.run_outbox()
        self.assertEqual(outbox.state, "sent", outbox.last_error)
        [received] = self.received(1)
        self.assertEqual(received.mail_from, "sam@ourco.example")
        self.assertEqual(received.rcpt_tos, ["carla@customer.example"])
        message = parse(received.data)
        self.assertEqual(str(message["From"]), "Sam Sender <sam@ourco.example>")
        self.assertEqual(str(message["To"]), "Carla Customer <carla@customer.example>")
        self.assertEqual(str(message["Subject"]), "Welcome, Carla Customer")
        self.assertEqual(message["Message-ID"], outbox.message_id_header)
        html = html_part(message)
        self.assertIn("Hello Carla Customer, about Forty chairs", html)
        self.assertIn("/pipemail/t/", html, "tracking on: pixel and rewritten link")
        self.assertNotIn('href="https://shop.example.com/x"', html)
        self.assertIn("https://shop.example.com/x", text_part(message))
        # stored in the lead's conversations like any sent email
        self.assertEqual(lead.pipemail_thread_ids, outbox.thread_id)
        self.assertEqual(outbox.sent_message_id.thread_id.lead_id, lead)
        # the cron again: never a second copy
        self.run_outbox()
        self.assertEqual(len(self.sink.wait_for(1)), 1)
        self.assertEqual(len(self.outboxes(lead)), 1)
        self.assertFalse(self.rule_log(rule))

    def test_stage_change_without_tracking(self):
        rule, _action = self.make_rule("on_stage_set", pipemail_tracking=False)
        rule.trg_field_ref = self.stage_proposal.id
        lead = self.make_lead()
        self.assertFalse(self.outboxes(lead), "created in another stage: nothing")
        lead.with_user(self.sender).write({"stage_id": self.stage_proposal.id})
        [outbox] = self.outboxes(lead)
        self.run_outbox()
        [received] = self.received(1)
        html = html_part(parse(received.data))
        self.assertNotIn("/pipemail/t/", html, "tracking off: no pixel, links untouched")
        self.assertIn('href="https://shop.example.com/x"', html)
        self.assertFalse(outbox.tracking)

    def test_time_based_before_expected_closing(self):
        rule, _action = self.make_rule(
            "on_time",
            template=None,
        )
        rule.write(
            {
                "trg_date_id": self.env.ref("crm.field_crm_lead__date_deadline").id,
                "trg_date_range": -3,
                "trg_date_range_type": "day",
            }
        )
        with freeze_time("2027-01-02 09:00:00"):
            lead = self.make_lead(date_deadline=fields.Date.to_date("2027-01-10"))
            rule.last_run = fields.Datetime.now()
        Automation = self.env["base.automation"]
        with freeze_time("2027-01-05 09:00:00"):
            Automation._check()
        self.assertFalse(self.outboxes(lead), "five days before: not yet")
        with freeze_time("2027-01-07 09:00:00"):
            Automation._check()
        [outbox] = self.outboxes(lead)
        with freeze_time("2027-01-08 09:00:00"):
            Automation._check()
        self.assertEqual(len(self.outboxes(lead)), 1, "once, not at every cron run")
        self.run_outbox()
        [received] = self.received(1)
        self.assertEqual(str(parse(received.data)["Subject"]), "Welcome, Carla Customer")
        self.assertEqual(outbox.state, "sent")

    def test_blacklisted_recipient_gets_nothing(self):
        rule, _action = self.make_rule("on_create")
        self.env["mail.blacklist"].sudo()._add("Carla@Customer.example")
        lead = self.make_lead()
        self.assertFalse(self.outboxes(lead))
        [line] = self.rule_log(rule)
        self.assertIn("blacklist", line.message)

    def test_no_mailbox_logs_then_fallback_sends(self):
        nomail = self.make_user("pm_nomail", name="No Mailbox")
        rule, action = self.make_rule("on_create")
        lead = self.make_lead(user=nomail)
        self.assertFalse(self.outboxes(lead))
        [line] = self.rule_log(rule)
        self.assertIn("no mailbox to send from", line.message)
        self.assertEqual(line.line, str(lead.id))
        action.pipemail_fallback_account_id = self.account
        lead2 = self.make_lead(user=nomail, name="Second")
        [outbox] = self.outboxes(lead2)
        self.assertEqual(outbox.account_id, self.account)
        self.assertEqual(outbox.user_id, nomail, "still written by the owner")

    def test_team_mailbox(self):
        team = self.env["pipemail.account"].create(
            {
                "name": "Sales team",
                "kind": "team",
                "email": "sales@ourco.example",
                "username": self.login.name,
                "password": self.login.password,
                "imap_host": "127.0.0.1",
                "imap_port": self.dovecot.port,
                "imap_security": "none",
                "smtp_host": "127.0.0.1",
                "smtp_port": self.sink.port,
                "smtp_security": "none",
                "user_id": self.env.user.id,
                "member_ids": [Command.set(self.sender.ids)],
            }
        )
        _rule, _action = self.make_rule(
            "on_create", pipemail_sender="team", pipemail_account_id=team.id
        )
        lead = self.make_lead()
        [outbox] = self.outboxes(lead)
        self.run_outbox()
        [received] = self.received(1)
        self.assertEqual(received.mail_from, "sales@ourco.example")
        self.assertEqual(str(parse(received.data)["From"]), "Sales team <sales@ourco.example>")
        self.assertEqual(outbox.user_id, self.sender)

    def test_template_that_fails_to_render_sends_nothing(self):
        broken = self.template.copy({"subject": "{{ object.no_such_field.name }}"})
        rule, _action = self.make_rule("on_create", template=broken)
        lead = self.make_lead()
        self.assertFalse(self.outboxes(lead))
        [line] = self.rule_log(rule)
        self.assertIn("could not be rendered", line.message)
        self.assertIn("no_such_field", line.message)

    def test_owner_who_cannot_read_the_record_sends_nothing(self):
        # an employee without sales rights set as the salesperson (possible as admin)
        clerk = self.make_user("pm_clerk", groups="base.group_user", name="Clerk")
        rule, _action = self.make_rule("on_create", pipemail_fallback_account_id=self.account.id)
        lead = self.make_lead(user=clerk)
        self.assertFalse(self.outboxes(lead), "never sent as superuser on the owner's behalf")
        [line] = self.rule_log(rule)
        self.assertIn("cannot read this record", line.message)

    def test_business_days_skip_weekends(self):
        friday = fields.Datetime.to_datetime("2027-01-08 10:00:00")
        self.assertEqual(add_business_days(friday, 1), friday + timedelta(days=3))
        self.assertEqual(add_business_days(friday, 3), friday + timedelta(days=5))
        self.assertEqual(add_business_days(friday, 0), friday)
