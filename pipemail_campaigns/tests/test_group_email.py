"""Group email end to end: the wizard as the salesperson, the copies at the aiosmtpd
sink read byte for byte, the worker killed mid-send, a rate-limit answer mid-list.

One class, one Dovecot and one sink (they cost seconds to start); 106 contacts made
once in setUpClass and shared by every test.
"""

import json
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.pipemail_sync.engine import unsubscribe as pm_unsubscribe
from odoo.addons.pipemail_sync.models.pipemail_outbox import PipemailOutbox
from odoo.addons.pipemail_sync.tests.common import make_mail
from odoo.addons.pipemail_sync.tests.outbound_common import (
    PipemailOutboundCase,
    html_part,
    parse,
    text_part,
)

COPIES = 100
DSN = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "dsn"


@tagged("post_install", "-at_install")
class TestGroupEmail(PipemailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("pipemail_campaigns.max_recipients", 110)
        # the sink is no provider: let a whole list go in one cron run
        params.set_param("pipemail_campaigns.imap_per_minute", 1000)
        params.set_param("pipemail_campaigns.imap_per_day", 10000)
        Partner = cls.env["res.partner"]
        cls.people = Partner.create(
            [
                {"name": f"Person {i:03d}", "email": f"person{i:03d}@clients.example"}
                for i in range(COPIES)
            ]
        )
        cls.nobody = Partner.create({"name": "No Address"})
        cls.invalid = Partner.create({"name": "Broken", "email": "not-an-address"})
        cls.twin = Partner.create({"name": "Twin", "email": "PERSON000@clients.example"})
        cls.blocked = Partner.create({"name": "Blocked", "email": "blocked@clients.example"})
        cls.env["mail.blacklist"].sudo()._add("blocked@clients.example")
        cls.bouncer = Partner.create(
            {"name": "Bouncer", "email": "bouncer@clients.example", "message_bounce": 2}
        )
        cls.excluded = cls.nobody | cls.invalid | cls.twin | cls.blocked | cls.bouncer
        cls.everyone = cls.people | cls.excluded

    def wizard(self, partners=None, user=None, **vals):
        partners = self.everyone if partners is None else partners
        Wizard = (
            self.env["pipemail.group.email.wizard"]
            .with_user(user or self.sender)
            .with_context(active_model="res.partner", active_ids=partners.ids)
        )
        vals.setdefault("subject", "News for {{ object.name }}")
        vals.setdefault("body", "<p>Dear <t t-out='object.name'/>, our spring offer is out.</p>")
        return Wizard.create(vals)

    def run_crons(self):
        self.env["pipemail.group.email"]._cron_send_group_emails()
        self.env["pipemail.outbox"]._cron_send_outbox()

    # ------------------------------------------------------------------ before sending

    def test_cap_refused_before_anything_is_queued(self):
        self.env["ir.config_parameter"].sudo().set_param("pipemail_campaigns.max_recipients", 5)
        groups_before = self.env["pipemail.group.email"].sudo().search_count([])
        with self.assertRaisesRegex(UserError, r"at most 5 recipients, and 6 are selected"):
            self.wizard(self.people[:6])
        self.assertEqual(self.env["pipemail.group.email"].sudo().search_count([]), groups_before)
        self.assertEqual(self.wizard(self.people[:5]).selected_count, 5)

    def test_check_and_preview(self):
        wizard = self.wizard()
        self.assertEqual(wizard.included_count, COPIES)
        self.assertEqual(wizard.excluded_count, 5)
        check = str(wizard.check_html)
        for label in ("No email address: 1", "Invalid address: 1", "Duplicate: 1"):
            self.assertIn(label, check)
        self.assertIn("In the blacklist: 1", check)
        self.assertIn("Bounced before: 1", check)
        self.assertIn("The last copy should leave around", wizard.eta_info)
        self.assertEqual(wizard.preview_to, "Person 000 <person000@clients.example>")
        self.assertEqual(wizard.preview_subject, "News for Person 000")
        self.assertIn("Dear Person 000,", str(wizard.preview_body))
        self.assertIn("ACME Sales", str(wizard.preview_body), "the signature")
        self.assertIn("Unsubscribe", str(wizard.preview_body))
        wizard.action_preview_next()
        self.assertEqual(wizard.preview_subject, "News for Person 001")
        wizard.action_preview_previous()
        wizard.action_preview_previous()
        self.assertEqual(wizard.preview_subject, f"News for Person {COPIES - 1:03d}")
        self.assertEqual(wizard.preview_position, f"Recipient {COPIES} of {COPIES}")

    def test_template_of_the_lead_model(self):
        lead = self.env["crm.lead"].create(
            {
                "name": "Forty chairs",
                "type": "opportunity",
                "partner_id": self.people[0].id,
                "user_id": self.sender.id,
            }
        )
        template = self.env["mail.template"].create(
            {
                "name": "Deal news",
                "model_id": self.env.ref("crm.model_crm_lead").id,
                "subject": "About {{ object.name }}",
                "body_html": "<p>Hello <t t-out='object.partner_id.name'/>, "
                "<t t-out='object.user_id.name'/> here.</p>",
            }
        )
        wizard = (
            self.env["pipemail.group.email.wizard"]
            .with_user(self.sender)
            .with_context(active_model="crm.lead", active_ids=lead.ids)
            .create({"template_id": template.id})
        )
        self.assertEqual(wizard.preview_subject, "About Forty chairs")
        self.assertIn("Hello Person 000, Sam Sender here.", str(wizard.preview_body))
        wizard.action_send()
        self.run_crons()
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(message["Subject"], "About Forty chairs")
        outbox = (
            self.env["pipemail.outbox"]
            .sudo()
            .search([("message_id_header", "=", message["Message-ID"])])
        )
        self.assertEqual(outbox.lead_id, lead)
        self.assertIn(lead, outbox.thread_id.lead_id, "the conversation is the lead's")

    # ------------------------------------------------------------------ the copies

    def test_hundred_copies_at_the_sink(self):
        wizard = self.wizard(tracking=True)
        action = wizard.action_send()
        group = self.env["pipemail.group.email"].with_user(self.sender).browse(action["res_id"])
        self.assertEqual(group.state, "scheduled")
        self.run_crons()
        received = self.received(COPIES)
        self.assertEqual(len(received), COPIES)
        excluded = {p.email.lower() for p in self.excluded if p.email} - {
            "person000@clients.example"
        }
        message_ids = set()
        for item in received:
            self.assertEqual(len(item.rcpt_tos), 1, "one envelope recipient per copy")
            [rcpt] = item.rcpt_tos
            self.assertNotIn(rcpt.lower(), excluded)
            message = parse(item.data)
            self.assertEqual(len(message.get_all("To")), 1)
            self.assertEqual(len(message["To"].addresses), 1)
            self.assertEqual(message["To"].addresses[0].addr_spec, rcpt)
            self.assertIsNone(message["Cc"])
            message_ids.add(message["Message-ID"])
            name = message["To"].addresses[0].display_name
            self.assertEqual(message["Subject"], f"News for {name}")
            self.assertIn(f"Dear {name},", text_part(message))
            [url] = pm_unsubscribe.parse_list_unsubscribe(message["List-Unsubscribe"])
            self.assertTrue(url.startswith("http://crm.example.com/pipemail/unsubscribe/"))
            self.assertEqual(message["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
            self.assertIn(f'href="{url}"', html_part(message), "the footer link")
            self.assertIn("/pipemail/t/o/", html_part(message), "tracked")
        self.assertEqual(len(message_ids), COPIES, "each copy has its own Message-ID")
        self.assertFalse(self.sink.duplicates())
        self.assertEqual(group.state, "done")
        self.assertEqual(
            (group.count_total, group.count_excluded, group.count_sent, group.count_waiting),
            (COPIES + 5, 5, COPIES, 0),
        )
        self.assertEqual(group.progress, 100.0)
        copy = group.recipient_ids.filtered(lambda r: r.partner_id == self.people[7]).outbox_id
        self.assertTrue(copy.sent_message_id, "stored in the recipient's conversation")
        self.assertIn(self.people[7], copy.thread_id.partner_ids)

    def test_worker_killed_mid_send_then_restarted(self):
        self.wizard(self.people).action_send()
        real_claim = PipemailOutbox._pipemail_claim
        calls = []

        def dying_claim(outbox):
            calls.append(outbox.id)
            if len(calls) == 31:
                raise KeyboardInterrupt("worker killed")
            return real_claim(outbox)

        # not assertRaises: Odoo's rolls the savepoint back, as if nothing had been
        # committed; a real worker commits each copy before sending it
        killed = False
        with patch.object(PipemailOutbox, "_pipemail_claim", dying_claim):
            try:
                self.env["pipemail.group.email"]._cron_send_group_emails()
            except KeyboardInterrupt:
                killed = True
        self.assertTrue(killed)
        self.assertEqual(len(self.sink.messages), 30)
        self.run_crons()  # the restarted worker
        received = self.received(COPIES)
        self.assertEqual(len(received), COPIES, "0 missing")
        self.assertFalse(self.sink.duplicates(), "0 duplicates")
        self.assertEqual(len({tuple(m.rcpt_tos) for m in received}), COPIES)

    def test_rate_limit_on_copy_30_delays_never_drops(self):
        group_action = self.wizard(self.people).action_send()
        group = self.env["pipemail.group.email"].sudo().browse(group_action["res_id"])
        real_send = PipemailOutbox._pipemail_send_one
        calls = []

        def send_one(outbox):
            calls.append(outbox.id)
            if len(calls) == 30:
                self.sink.reply_text[421] = "4.7.0 Try again later, closing connection."
                self.sink.fail_next(421, stage="mail")
            return real_send(outbox)

        with patch.object(PipemailOutbox, "_pipemail_send_one", send_one):
            self.env["pipemail.group.email"]._cron_send_group_emails()
        self.assertEqual(len(self.sink.messages), 29)
        thirtieth = self.env["pipemail.outbox"].browse(calls[29]).sudo()
        self.assertEqual(thirtieth.state, "retry")
        self.assertTrue(self.account.pipemail_blocked_until, "the mailbox slows down")
        self.assertEqual(group.count_waiting, COPIES - 30, "the rest wait for the quota")
        self.env["pipemail.group.email"]._cron_send_group_emails()
        self.assertEqual(len(self.sink.messages), 29, "nothing leaves while slowed down")
        with freeze_time(fields.Datetime.now() + timedelta(minutes=10)):
            self.run_crons()
        received = self.received(COPIES)
        self.assertEqual(len(received), COPIES)
        self.assertFalse(self.sink.duplicates())
        self.assertEqual(thirtieth.state, "sent")
        group.invalidate_recordset()
        self.assertEqual(group.count_sent, COPIES)

    def test_pause_resume_cancel(self):
        action = self.wizard(self.people[:10]).action_send()
        group = self.env["pipemail.group.email"].with_user(self.sender).browse(action["res_id"])
        group.action_pause()
        self.run_crons()
        self.assertFalse(self.sink.messages, "a paused group email sends nothing")
        group.action_resume()
        self.env["ir.config_parameter"].sudo().set_param("pipemail_campaigns.imap_per_minute", 4)
        self.run_crons()
        self.assertEqual(len(self.received(4)), 4, "paced: four a minute")
        self.assertEqual(group.count_waiting, 6)
        group.action_cancel()
        group.invalidate_recordset()
        self.assertEqual(group.state, "cancelled")
        self.assertEqual((group.count_cancelled, group.count_sent), (6, 4))
        with freeze_time(fields.Datetime.now() + timedelta(minutes=5)):
            self.run_crons()
        self.assertEqual(len(self.sink.messages), 4, "cancelled copies never leave")
        self.assertIn(
            "spreads these copies",
            self.wizard(self.people)._pipemail_eta_info(COPIES),
            "the ETA says the quota stretches the list",
        )

    def test_scheduled_sends_at_its_time(self):
        later = fields.Datetime.now() + timedelta(hours=2)
        action = self.wizard(self.people[:3], schedule=True, scheduled_date=later).action_send()
        group = self.env["pipemail.group.email"].sudo().browse(action["res_id"])
        self.run_crons()
        self.assertFalse(self.sink.messages)
        with freeze_time(later + timedelta(minutes=1)):
            self.run_crons()
        self.assertEqual(len(self.received(3)), 3)
        self.assertEqual(group.state, "done")
        self.assertEqual(
            json.loads(group.recipient_ids[0].outbox_id.rcpt_accepted or "[]"),
            ["person000@clients.example"],
        )

    # ------------------------------------------------------------------ after sending

    def test_followup_option_checked(self):
        """The follow-up template must be for the records written to, the delay a day
        or more; nothing is queued otherwise."""
        lead_template = self.env["mail.template"].create(
            {"name": "Lead nudge", "model_id": self.env["ir.model"]._get_id("crm.lead")}
        )
        before = self.env["pipemail.group.email"].sudo().search_count([])
        with self.assertRaisesRegex(UserError, "another kind of record"):
            self.wizard(self.people[:2], followup_template_id=lead_template.id).action_send()
        partner_template = self.env["mail.template"].create(
            {"name": "Nudge", "model_id": self.env["ir.model"]._get_id("res.partner")}
        )
        with self.assertRaisesRegex(UserError, "at least one day"):
            self.wizard(
                self.people[:2], followup_template_id=partner_template.id, followup_days=0
            ).action_send()
        self.assertEqual(self.env["pipemail.group.email"].sudo().search_count([]), before)

    def test_bounce_and_reply_found_by_the_sync(self):
        """With "follow up if no reply" on: a bounce report stops its copy's follow-up at
        once, a reply stops the other's when it is due; the report follows both."""
        nudge = self.env["mail.template"].create(
            {
                "name": "Nudge",
                "model_id": self.env["ir.model"]._get_id("res.partner"),
                "body_html": "<p>Any news, <t t-out='object.name'/>?</p>",
            }
        )
        wizard = self.wizard(self.people[:2], followup_template_id=nudge.id, followup_days=3)
        action = wizard.action_send()
        group = self.env["pipemail.group.email"].sudo().browse(action["res_id"])
        self.run_crons()
        bounced_row, replied_row = group.recipient_ids
        bounced, replied = bounced_row.outbox_id, replied_row.outbox_id
        Followup = self.env["pipemail.followup"].sudo()
        followups = Followup.search([("outbox_id", "in", (bounced | replied).ids)])
        self.assertEqual(
            sorted((f.outbox_id.id, f.state, f.days) for f in followups),
            [(bounced.id, "pending", 3), (replied.id, "pending", 3)],
            "one follow-up per copy",
        )
        # a Postfix bounce of the first copy, as it lands in the sender's INBOX
        raw = (DSN / "01_postfix_rfc3464_user_unknown.eml").read_bytes()
        raw = raw.replace(b"ghost@clients.example", b"person000@clients.example")
        raw = raw.replace(
            b"<a1b2c3d4e5f60718293a4b5c6d7e8f90@ourco.example>",
            bounced.message_id_header.encode(),
        )
        raw = raw.replace(
            b"Subject: Undelivered",
            b"In-Reply-To: %s\nSubject: Undelivered" % (bounced.message_id_header.encode()),
        )
        self.deliver(self.login, raw)
        self.deliver(
            self.login,
            make_mail(
                subject="Re: News for Person 001",
                sender="Person 001 <person001@clients.example>",
                to="sam@ourco.example",
                in_reply_to=replied.message_id_header,
            ),
        )
        self.sync(self.account)
        self.env.invalidate_all()
        self.assertEqual((bounced_row.status, bounced_row.bounce_type), ("bounced", "hard"))
        self.assertIn("5.1.1", bounced_row.bounce_info)
        self.assertTrue(replied_row.replied)
        self.assertEqual((group.count_bounced, group.count_replied), (1, 1))
        # the report's rows followed the sync (bounce and reply), kind "group"
        report = self.env["pipemail.email.report"].search([("group_email_id", "=", group.id)])
        self.assertEqual(
            sorted(
                [(r.outbox_id, r.kind, r.bounced, r.delivered, r.replied) for r in report],
                key=lambda row: row[0].id,
            ),
            [(bounced, "group", 1, 0, 0), (replied, "group", 0, 1, 1)],
        )
        by_copy = {f.outbox_id: f for f in followups}
        self.assertEqual(
            (by_copy[bounced].state, by_copy[bounced].cancel_reason), ("cancelled", "bounced")
        )
        self.assertEqual(by_copy[replied].state, "pending", "decided when due")
        with freeze_time(replied.sent_date + timedelta(days=3, minutes=1)):
            Followup._cron_send_followups()
        self.assertEqual(
            (by_copy[replied].state, by_copy[replied].cancel_reason), ("cancelled", "replied")
        )
        notice = (
            self.env["pipemail.message"]
            .sudo()
            .search([("account_id", "=", self.account.id), ("subject", "like", "Undelivered Mail")])
        )
        self.assertEqual(len(notice), 1, "the bounce is stored")
        self.assertNotEqual(
            notice.thread_id, bounced.thread_id, "not in the customer's conversation"
        )
        again = self.wizard(self.people[:2])
        self.assertEqual(again.excluded_count, 1)
        self.assertIn("Bounced before: 1", str(again.check_html))
