"""Sending from the CRM through the mailbox's own SMTP, checked at the receiving end.

What arrives at the aiosmtpd sink is read byte for byte (headers, alternatives,
attachments, rewritten links, pixel); the Sent folder is a real Dovecot, and the sync
that reads it back must recognize the sent email instead of storing it twice.
"""

import base64
import logging
import re
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, new_test_user, tagged

from ..models import pipemail_outbox as outbox_module
from .common import TEST_SECRET_KEY, make_mail, set_class_config
from .outbound_common import (
    OAuthServer,
    PipemailOutboundCase,
    SmtpSink,
    html_part,
    parse,
    text_part,
)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@tagged("post_install", "-at_install")
class TestOutboundSend(PipemailOutboundCase):
    # ------------------------------------------------------------------ a new email

    def test_new_email_from_lead_with_template_as_received(self):
        lead = self.env["crm.lead"].create(
            {
                "name": "Forty chairs",
                "type": "opportunity",
                "partner_id": self.customer.id,
                "user_id": self.sender.id,
            }
        )
        template = self.env["mail.template"].create(
            {
                "name": "Offer",
                "model_id": self.env.ref("crm.model_crm_lead").id,
                "subject": "Offer for {{ object.name }}",
                "body_html": "<p>Dear <t t-out='object.partner_id.name'/>,</p>"
                '<p>See <a href="https://shop.example.com/offer?x=1&amp;y=2">the offer</a>, '
                '<a href="mailto:help@ourco.example">mail us</a>, '
                '<a href="tel:+3212345678">call</a> or <a href="#terms">the terms</a>.</p>',
                "attachment_ids": [
                    (
                        0,
                        0,
                        {
                            "name": "Conditions générales.pdf",
                            "raw": b"%PDF-1.4 conditions",
                            "mimetype": "application/pdf",
                        },
                    )
                ],
            }
        )
        composer = Form(self.compose(res_model="crm.lead", res_id=lead.id))
        self.assertEqual(composer.email_to, "Carla Customer <carla@customer.example>")
        self.assertEqual(composer.account_id, self.account)
        self.assertTrue(composer.tracking, "the sender's preference is on by default")
        self.assertIn("ACME Sales", str(composer.body), "the user's signature")
        composer.template_id = template
        self.assertEqual(composer.subject, "Offer for Forty chairs")
        self.assertIn("Dear Carla Customer", str(composer.body))
        self.assertIn("ACME Sales", str(composer.body))
        wizard = composer.save()
        upload = (
            self.env["ir.attachment"]
            .with_user(self.sender)
            .create(
                {
                    "name": "Maße & Preise.xlsx",
                    "raw": b"sheet" * 100,
                    "res_model": "pipemail.compose",
                    "res_id": 0,
                    "mimetype": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                }
            )
        )
        wizard.attachment_ids = [(4, upload.id)]
        action = wizard.action_send()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        outbox = wizard.outbox_id.sudo()
        self.assertEqual(outbox.state, "sent")

        [received] = self.received(1)
        self.assertEqual(received.rcpt_tos, ["carla@customer.example"])
        self.assertEqual(received.mail_from, "sam@ourco.example")
        self.assertEqual(received.auth_user, self.login.name)
        message = parse(received.data)
        self.assertEqual(str(message["From"]), "Sam Sender <sam@ourco.example>")
        self.assertEqual(str(message["To"]), "Carla Customer <carla@customer.example>")
        self.assertEqual(str(message["Subject"]), "Offer for Forty chairs")
        self.assertEqual(message["Message-ID"], outbox.message_id_header)
        self.assertRegex(outbox.message_id_header, r"^<[0-9a-f]{32}@ourco\.example>$")
        self.assertEqual(message.get_content_type(), "multipart/mixed")
        alternative = message.get_payload()[0]
        self.assertEqual(alternative.get_content_type(), "multipart/alternative")
        self.assertEqual(
            [p.get_content_type() for p in alternative.get_payload()], ["text/plain", "text/html"]
        )
        files = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
        self.assertEqual(
            files,
            {
                "Conditions générales.pdf": b"%PDF-1.4 conditions",
                "Maße & Preise.xlsx": b"sheet" * 100,
            },
        )
        self.assertNotIn("générales".encode(), received.data, "non-ASCII names are encoded")

        html = html_part(message)
        self.assertIn('href="mailto:help@ourco.example"', html)
        self.assertIn('href="tel:+3212345678"', html)
        self.assertIn('href="#terms"', html)
        self.assertNotIn("shop.example.com", html, "the http link goes through the redirect")
        tracked = re.findall(r'href="(http://crm\.example\.com/pipemail/t/c/[^"]+)"', html)
        self.assertEqual(len(tracked), 1)
        pixels = re.findall(
            r'<img[^>]+src="(http://crm\.example\.com/pipemail/t/o/[^"]+\.gif)"', html
        )
        self.assertEqual(len(pixels), 1)
        self.assertEqual(outbox.link_ids.mapped("url"), ["https://shop.example.com/offer?x=1&y=2"])
        text = text_part(message)
        self.assertIn("https://shop.example.com/offer?x=1&y=2", text, "plain link in the text")
        self.assertNotIn("/pipemail/t/", text)
        self.assertIn("Sam Sender — ACME Sales", text)

        # in its conversation at once, linked to the lead, without the tracking bits
        sent = outbox.sent_message_id
        self.assertEqual(sent.direction, "out")
        self.assertEqual(sent.message_id_header, outbox.message_id_header.strip("<>"))
        self.assertEqual(sent.thread_id.lead_id, lead)
        self.assertEqual(sent.thread_id.link_mode, "manual")
        self.assertNotIn("/pipemail/t/", sent.body_html)
        self.assertEqual(
            sorted(sent.attachment_ids.mapped("name")),
            ["Conditions générales.pdf", "Maße & Preise.xlsx"],
        )
        self.assertEqual(lead.with_user(self.sender).pipemail_thread_count, 1)

        # the server keeps no copy of what SMTP sent: one APPEND to Sent, located
        self.assertEqual(outbox.sent_copy_state, "done")
        self.assertEqual(self.sent_folder_copies(outbox.message_id_header), 1)
        self.assertEqual(sent.location_ids.folder_id.role, "sent")

        # the next sync sees that copy and stores nothing twice
        self.sync(self.account)
        same = self.env["pipemail.message"].search(
            [
                ("account_id", "=", self.account.id),
                ("message_id_header", "=", sent.message_id_header),
            ]
        )
        self.assertEqual(same, sent)
        self.assertEqual(len(sent.location_ids), 1)

    def test_plain_text_alternative_and_no_tracking(self):
        wizard_model = self.compose()
        outbox, _action = self.send(
            wizard_model,
            email_to="carla@customer.example",
            subject="No tracking",
            body="<p>Visit <a href='https://ourco.example/x'>us</a></p>",
            tracking=False,
        )
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(message.get_content_type(), "multipart/alternative")
        html = html_part(message)
        self.assertIn('href="https://ourco.example/x"', html)
        self.assertNotIn("/pipemail/t/", html)
        self.assertIn("https://ourco.example/x", text_part(message))
        self.assertFalse(outbox.link_ids)

    # ------------------------------------------------------------------ replies

    def test_reply_threading_headers_and_one_conversation(self):
        login = self.login
        self.deliver(
            login,
            make_mail(
                subject="Quote for 40 chairs",
                sender="Bob Buyer <bob@acme.example>",
                to="sam@ourco.example",
                cc="Alice <alice@acme.example>, sam@ourco.example",
                message_id="<q1@acme.example>",
                in_reply_to="<root@acme.example>",
                references="<root@acme.example>",
            ),
        )
        self.sync(self.account)
        thread = self.threads(self.account).filtered(lambda t: t.subject == "Quote for 40 chairs")
        self.assertEqual(len(thread), 1)

        reply_all = Form(self.compose(thread_id=thread.id, mode="reply_all"))
        self.assertEqual(reply_all.email_to, "Bob Buyer <bob@acme.example>")
        self.assertEqual(reply_all.email_cc, "Alice <alice@acme.example>", "never ourselves")
        self.assertEqual(reply_all.subject, "Re: Quote for 40 chairs")
        reply_all.body = "<p>Thanks, here it is.</p>" + str(reply_all.quote_html)
        wizard = reply_all.save()
        wizard.action_send()
        outbox = wizard.outbox_id.sudo()
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(message["In-Reply-To"], "<q1@acme.example>")
        self.assertEqual(message["References"], "<root@acme.example> <q1@acme.example>")
        self.assertEqual(sorted(received.rcpt_tos), ["alice@acme.example", "bob@acme.example"])
        self.assertIn("Bob Buyer", text_part(message), "the quoted email")
        self.assertEqual(outbox.sent_message_id.thread_id, thread)
        self.assertEqual(thread.message_count, 2)

        # the Sent copy and an answer to our reply: still one conversation, no duplicate
        self.deliver(
            login,
            make_mail(
                subject="Re: Quote for 40 chairs",
                sender="Bob Buyer <bob@acme.example>",
                to="sam@ourco.example",
                message_id="<q2@acme.example>",
                in_reply_to=outbox.message_id_header,
                references=f"<root@acme.example> <q1@acme.example> {outbox.message_id_header}",
            ),
        )
        self.sync(self.account)
        thread.invalidate_recordset()
        self.assertEqual(thread.message_count, 3)
        self.assertEqual(
            len(self.threads(self.account).filtered(lambda t: "40 chairs" in (t.subject or ""))), 1
        )

    def test_forward_keeps_files_and_thread(self):
        self.deliver(
            self.login,
            make_mail(
                subject="Signed order",
                message_id="<o1@acme.example>",
                to="sam@ourco.example",
                attachments=[("order.pdf", b"%PDF order", "application/pdf")],
            ),
        )
        self.sync(self.account)
        thread = self.threads(self.account).filtered(lambda t: t.subject == "Signed order")
        forward = Form(self.compose(thread_id=thread.id, mode="forward"))
        self.assertEqual(forward.subject, "Fwd: Signed order")
        self.assertFalse(forward.email_to)
        forward.email_to = "Finance <finance@ourco.example>"
        wizard = forward.save()
        self.assertEqual(wizard.attachment_ids.mapped("name"), ["order.pdf"])
        wizard.action_send()
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(str(message["Subject"]), "Fwd: Signed order")
        self.assertEqual(message["In-Reply-To"], "<o1@acme.example>")
        [attachment] = list(message.iter_attachments())
        self.assertEqual(attachment.get_filename(), "order.pdf")
        self.assertEqual(attachment.get_content(), b"%PDF order")
        self.assertIn("Forwarded message", text_part(message))

    # ------------------------------------------------------------------ Sent reconciliation

    def test_provider_sent_copy_is_recognized(self):
        """Gmail and Microsoft file the sent mail themselves, with other bytes (headers
        added, another key): the sync must attach it to the email we recorded."""
        with patch.object(outbox_module, "PROVIDERS_SAVING_SENT", ("imap",)):
            outbox, _action = self.send(
                self.compose(),
                email_to="carla@customer.example",
                subject="Provider copy",
                body="<p>Hello</p>",
            )
        self.assertEqual(outbox.sent_copy_state, "provider")
        self.assertEqual(self.sent_folder_copies(outbox.message_id_header), 0)
        [received] = self.received(1)
        provider_copy = (
            b"X-Received: by 2002:a05:6000:1:b0:1 with SMTP id x; Mon, 1 Jan 2024\r\n"
            + received.data.replace(b"\r\n\r\n", b"\r\nX-Provider: yes\r\n\r\n", 1)
        )
        self.deliver(self.login, provider_copy, folder="Sent", flags=["\\Seen"])
        sent = outbox.sent_message_id
        old_key = sent.key
        self.sync(self.account)
        same = self.env["pipemail.message"].search(
            [
                ("account_id", "=", self.account.id),
                ("message_id_header", "=", sent.message_id_header),
            ]
        )
        self.assertEqual(same, sent, "one row for the sent email")
        self.assertEqual(sent.location_ids.folder_id.role, "sent")
        self.assertNotEqual(sent.key, old_key, "the server copy's key, for its next sighting")
        self.assertEqual(sent.direction, "out")
        self.sync(self.account)
        self.assertEqual(len(sent.location_ids), 1)

    def test_sent_row_equals_the_synced_copy_field_by_field(self):
        """One write path: the row written when the email leaves and the row the sync
        writes for the same bytes found in Sent (when nothing matched it) are the same
        row, field by field, and so is the conversation they open."""
        compared = [
            "account_id", "key", "message_id_header", "in_reply_to", "references",
            "subject", "email_from", "email_to", "email_cc", "participant_emails",
            "author_partner_id", "partner_ids", "date", "body_html", "body_text",
            "snippet", "text_direction", "is_read", "is_flagged", "direction",
            "is_automated", "parse_error", "size", "has_attachments",
        ]  # fmt: skip
        colleague = self.env["res.partner"].create(
            {"name": "Doe, Bob", "email": "bob@customer.example"}
        )
        attachment = (
            self.env["ir.attachment"]
            .with_user(self.sender)
            .create({"name": "offer.pdf", "raw": b"%PDF offer", "mimetype": "application/pdf"})
        )
        with patch.object(outbox_module, "PROVIDERS_SAVING_SENT", ("imap",)):
            outbox, _action = self.send(
                self.compose(),
                email_to="carla@customer.example",
                email_cc=f'"{colleague.name}" <{colleague.email}>',
                subject="Offer, as promised",
                body="<p>Hello Carla,</p><p>the offer is attached.</p>",
                attachment_ids=[(6, 0, attachment.ids)],
                tracking=False,
            )
        sent = outbox.sent_message_id
        self.assertTrue(sent)
        first = {name: sent[name] for name in compared}
        first_files = [(a.name, a.raw) for a in sent.attachment_ids]
        thread = sent.thread_id
        first_thread = {n: thread[n] for n in ("thread_key", "subject", "visibility")}
        raw = outbox._pipemail_raw()
        # forget the row (as a database restored from before the send would), then let
        # the sync meet the same bytes in Sent
        outbox.write({"sent_message_id": False, "thread_id": False})
        sent.unlink()
        thread.unlink()
        self.deliver(self.login, raw, folder="Sent", flags=["\\Seen"])
        self.sync(self.account)
        [synced] = self.env["pipemail.message"].search(
            [
                ("account_id", "=", self.account.id),
                ("message_id_header", "=", first["message_id_header"]),
            ]
        )
        for name in compared:
            self.assertEqual(synced[name], first[name], name)
        self.assertEqual([(a.name, a.raw) for a in synced.attachment_ids], first_files)
        self.assertEqual(
            {n: synced.thread_id[n] for n in ("thread_key", "subject", "visibility")},
            first_thread,
        )
        self.assertEqual(first["email_cc"], '"Doe, Bob" <bob@customer.example>')

    def test_uncertain_send_settled_by_sent_copy(self):
        with patch.object(outbox_module, "PROVIDERS_SAVING_SENT", ("imap",)):
            outbox, _action = self.send(
                self.compose(), email_to="carla@customer.example", subject="Maybe", body="<p>x</p>"
            )
        outbox.state = "uncertain"
        [received] = self.received(1)
        self.deliver(self.login, received.data, folder="Sent", flags=["\\Seen"])
        self.sync(self.account)
        self.assertEqual(outbox.state, "sent")
        self.assertEqual(len(outbox.sent_message_id.location_ids), 1)

    # ------------------------------------------------------------------ limits and checks

    def test_size_limit_refused_before_sending(self):
        self.env["ir.config_parameter"].sudo().set_param("pipemail.imap_attachment_limit_mb", "1")
        big = (
            self.env["ir.attachment"]
            .with_user(self.sender)
            .create(
                {"name": "big.bin", "raw": b"x" * (900 * 1024), "res_model": "pipemail.compose"}
            )
        )
        wizard = self.compose().create(
            {
                "email_to": "carla@customer.example",
                "subject": "Too big",
                "body": "<p>file</p>",
                "attachment_ids": [(6, 0, big.ids)],
            }
        )
        self.assertTrue(wizard.size_exceeded)
        self.assertIn("of 1 MB", wizard.size_info)
        with self.assertRaisesRegex(UserError, r"1\.\d MB; Your mail server accepts at most 1 MB"):
            wizard.action_send()
        self.assertFalse(self.env["pipemail.outbox"].sudo().search([("subject", "=", "Too big")]))
        self.assertEqual(self.sink.attempts, 0)
        # the providers' own limits
        Outbox = self.env["pipemail.outbox"]
        gmail = self.account.new({"provider": "gmail"})
        outlook = self.account.new({"provider": "microsoft"})
        self.assertEqual(Outbox._pipemail_size_limit(gmail), (25 * 1024 * 1024, "Gmail"))
        self.assertEqual(Outbox._pipemail_size_limit(outlook), (20 * 1024 * 1024, "Outlook"))

    def test_header_injection_refused(self):
        for field, value in (
            ("subject", "Hi\r\nBcc: everyone@evil.example"),
            ("email_to", "carla@customer.example\r\nBcc: x@evil.example"),
        ):
            wizard = self.compose().create(
                {"email_to": "carla@customer.example", "subject": "ok", "body": "<p>x</p>"}
            )
            wizard[field] = value
            with self.assertRaises(UserError):
                wizard.action_send()
        self.assertEqual(self.sink.attempts, 0)

    def test_right_to_left_marked_in_sent_html(self):
        outbox, _action = self.send(
            self.compose(),
            email_to="carla@customer.example",
            subject="سلام",
            body="<p>مرحبا، كيف حالك؟ الطلب جاهز للشحن.</p><p>Order 1234 is ready</p>",
        )
        [received] = self.received(1)
        html = html_part(parse(received.data))
        self.assertRegex(html, r'<html[^>]*dir="rtl"')
        self.assertRegex(html, r'<body[^>]*dir="rtl"')
        self.assertRegex(html, r'<p dir="ltr">Order 1234 is ready</p>')
        self.assertEqual(str(parse(received.data)["Subject"]), "سلام")
        self.assertEqual(outbox.sent_message_id.text_direction, "rtl")
        self.assertIn('dir="rtl"', outbox.sent_message_id.body_html)

    def test_team_mailbox_members_only(self):
        member = new_test_user(
            self.env, "pm_member", groups="sales_team.group_sale_salesman", email="m@ourco.example"
        )
        outsider = new_test_user(
            self.env, "pm_out", groups="sales_team.group_sale_salesman", email="o@ourco.example"
        )
        team = self.env["pipemail.account"].create(
            {
                "name": "Sales team",
                "email": "sales@ourco.example",
                "kind": "team",
                "user_id": self.sender.id,
                "member_ids": [(6, 0, member.ids)],
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "smtp_port": self.sink.port,
                "smtp_security": "none",
            }
        )
        wizard = self.compose(user=member).create({"email_to": "a@b.example"})
        self.assertEqual(wizard.allowed_account_ids, team)
        self.assertEqual(wizard.account_id, team)
        self.assertEqual(
            self.compose().create({}).allowed_account_ids, self.account | team, "owner too"
        )
        with self.assertRaises(UserError):
            self.compose(user=outsider).create({})
        # a mailbox that is not theirs cannot even be put in the composer
        with self.assertRaises(AccessError):
            self.compose(user=member).create(
                {"email_to": "a@b.example", "subject": "s", "account_id": self.account.id}
            )
        wizard = self.compose(user=member).create({"email_to": "a@b.example", "subject": "s"})
        with self.assertRaisesRegex(AccessError, "cannot send from this mailbox"):
            wizard.sudo().write({"account_id": self.account.id})
            wizard.action_send()
        self.assertEqual(self.sink.attempts, 0)

    # ------------------------------------------------------------------ SMTP failures

    def test_4xx_retried_with_backoff_delivered_once(self):
        self.sink.fail_next(451)
        outbox, action = self.send(
            self.compose(), email_to="carla@customer.example", subject="Later", body="<p>x</p>"
        )
        self.assertEqual(outbox.state, "retry")
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("asked to try again later (451", outbox.last_error)
        self.assertIn("Outbox", action["params"]["message"])
        self.assertTrue(outbox.next_attempt > fields.Datetime.now())
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(self.sink.rejections[0].message_id, outbox.message_id_header)
        self.assertFalse(outbox.sent_message_id, "nothing in the thread before it left")

        # not due yet: the cron leaves it alone
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.sink.attempts, 1)
        outbox.next_attempt = fields.Datetime.now() - timedelta(seconds=1)
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(outbox.state, "sent")
        self.assertTrue(outbox.sent_message_id)
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.sink.message_ids(), {outbox.message_id_header: 1})
        self.assertEqual(outbox.attempts, 2)

    def test_4xx_gives_up_after_the_last_try(self):
        self.sink.fail_next(421, n=outbox_module.MAX_ATTEMPTS)
        outbox, _action = self.send(
            self.compose(), email_to="carla@customer.example", subject="Busy", body="<p>x</p>"
        )
        waits = []
        for _i in range(outbox_module.MAX_ATTEMPTS - 1):
            self.assertEqual(outbox.state, "retry")
            waits.append(outbox.next_attempt - fields.Datetime.now())
            outbox.next_attempt = fields.Datetime.now() - timedelta(seconds=1)
            self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(outbox.state, "failed")
        self.assertIn("Gave up after 6 tries", outbox.last_error)
        self.assertEqual(waits, sorted(waits), "growing waits")
        self.assertEqual(self.sink.messages, [])

    def test_5xx_reported_in_plain_words_then_retried_by_hand(self):
        self.sink.fail_next(550)
        outbox, action = self.send(
            self.compose(), email_to="carla@customer.example", subject="Refused", body="<p>x</p>"
        )
        self.assertEqual(outbox.state, "failed")
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("The mail server refused the email (550", outbox.last_error)
        self.assertEqual(outbox.smtp_code, 550)
        outbox.next_attempt = False
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.sink.attempts, 1, "a 5xx is never retried by itself")
        message_id = outbox.message_id_header
        outbox.with_user(self.sender).action_retry()
        self.assertEqual(outbox.state, "sent")
        self.assertEqual(self.sink.message_ids(), {message_id: 1}, "same bytes, same id")

    def test_recipient_refused_4xx_retried_for_that_recipient_only(self):
        self.sink.fail_recipient("dora@customer.example", 451)
        outbox, _action = self.send(
            self.compose(),
            email_to="carla@customer.example, dora@customer.example",
            subject="Two",
            body="<p>x</p>",
        )
        self.assertEqual(outbox.state, "retry")
        self.assertTrue(outbox.sent_message_id, "it left for Carla: in the thread already")
        self.sink.clear_faults()
        outbox.next_attempt = fields.Datetime.now() - timedelta(seconds=1)
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(outbox.state, "sent")
        envelopes = [m.rcpt_tos for m in self.sink.messages]
        self.assertEqual(envelopes, [["carla@customer.example"], ["dora@customer.example"]])
        self.assertEqual(self.sink.message_ids(), {outbox.message_id_header: 2})

    def test_recipient_refused_5xx_reported_others_delivered(self):
        self.sink.fail_recipient("nobody@customer.example", 550)
        outbox, action = self.send(
            self.compose(),
            email_to="carla@customer.example, nobody@customer.example",
            subject="One bad",
            body="<p>x</p>",
        )
        self.assertEqual(outbox.state, "sent")
        self.assertIn(
            "nobody@customer.example: refused by the mail server (550", outbox.rcpt_refused
        )
        self.assertIn("nobody@customer.example", action["params"]["message"])
        self.assertEqual([m.rcpt_tos for m in self.sink.messages], [["carla@customer.example"]])

    def test_never_sent_twice(self):
        wizard = self.compose().create(
            {"email_to": "carla@customer.example", "subject": "Once", "body": "<p>x</p>"}
        )
        wizard.action_send()
        wizard.action_send()  # the same click replayed (request retried after a conflict)
        outbox = wizard.outbox_id.sudo()
        outbox._pipemail_send_one()  # a late worker
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.sink.message_ids(), {outbox.message_id_header: 1})

        # a worker died while sending: the row is not sent again, it becomes uncertain
        stuck, _action = self.send(
            self.compose(), email_to="carla@customer.example", subject="Stuck", body="<p>x</p>"
        )
        stuck.write(
            {
                "state": "sending",
                "sending_since": fields.Datetime.now() - timedelta(hours=1),
            }
        )
        self.sink.clear()
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(stuck.state, "uncertain")
        self.assertIn("may or may not have left", stuck.last_error)
        self.assertEqual(self.sink.attempts, 0)

    def test_bulk_sends_with_injected_faults_deliver_each_once(self):
        """RELIABILITY 21 through the addon: 4xx retried, 5xx reported, no duplicate."""
        self.sink.fail_rate(p4xx=0.1, p5xx=0.05, seed=7)
        outboxes = self.env["pipemail.outbox"]
        for i in range(40):
            outbox, _action = self.send(
                self.compose(),
                email_to=f"r{i}@customer.example",
                subject=f"Bulk {i}",
                body="<p>x</p>",
                tracking=False,
            )
            outboxes |= outbox
        for _round in range(outbox_module.MAX_ATTEMPTS):
            outboxes.filtered(lambda o: o.state == "retry").write(
                {"next_attempt": fields.Datetime.now() - timedelta(seconds=1)}
            )
            self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.sink.duplicates(), {})
        failed = outboxes.filtered(lambda o: o.state == "failed")
        sent = outboxes.filtered(lambda o: o.state == "sent")
        self.assertEqual(len(failed) + len(sent), 40)
        self.assertEqual(
            {m.message_id for m in self.sink.messages}, set(sent.mapped("message_id_header"))
        )
        rejected_5xx = {r.message_id for r in self.sink.rejections if r.code >= 500}
        self.assertEqual(set(failed.mapped("message_id_header")), rejected_5xx)
        self.assertTrue(all("(550" in o.last_error for o in failed))

    def test_raw_kept_for_retry(self):
        self.sink.fail_next(451)
        outbox, _action = self.send(
            self.compose(), email_to="carla@customer.example", subject="Raw", body="<p>x</p>"
        )
        raw = base64.b64decode(outbox.with_context(bin_size=False).raw_mime)
        self.assertIn(outbox.message_id_header.encode(), raw)
        outbox.next_attempt = fields.Datetime.now() - timedelta(seconds=1)
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.received(1)[0].data.rstrip(b"\r\n"), raw.rstrip(b"\r\n"))

    # ------------------------------------------------------------------ send individually

    def individual_send(self, to, lead=None, **vals):
        """Send individually from ``lead`` (a new one by default) to ``to``."""
        lead = lead or self.env["crm.lead"].create(
            {"name": "Forty chairs", "partner_id": self.customer.id, "user_id": self.sender.id}
        )
        wizard = self.compose(res_model="crm.lead", res_id=lead.id).create(
            {
                "individual": True,
                "email_to": to,
                "subject": "Our offer",
                "body": '<p>See <a href="https://shop.example.com/offer">the offer</a>.</p>',
                **vals,
            }
        )
        action = wizard.action_send()
        return wizard, wizard.outbox_ids.sudo(), action, lead

    def test_send_individually_one_copy_per_recipient(self):
        upload = (
            self.env["ir.attachment"]
            .with_user(self.sender)
            .create({"name": "offer.pdf", "raw": b"%PDF offer", "res_model": "pipemail.compose"})
        )
        wizard, outboxes, action, lead = self.individual_send(
            "Carla Customer <carla@customer.example>, dora@customer.example, "
            '"Doe, Eve" <eve@customer.example>',
            attachment_ids=[(6, 0, upload.ids)],
        )
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertIn("3 of 3 separate emails sent", action["params"]["message"])
        self.assertEqual(outboxes.mapped("state"), ["sent"] * 3)
        received = self.received(3)
        self.assertEqual(len(received), 3)
        self.assertEqual(
            [m.rcpt_tos for m in received],
            [["carla@customer.example"], ["dora@customer.example"], ["eve@customer.example"]],
        )
        messages = [parse(m.data) for m in received]
        self.assertEqual(
            [str(m["To"]) for m in messages],
            [
                "Carla Customer <carla@customer.example>",
                "dora@customer.example",
                '"Doe, Eve" <eve@customer.example>',
            ],
        )
        everyone = {"carla@customer.example", "dora@customer.example", "eve@customer.example"}
        for message, envelope in zip(messages, received, strict=True):
            self.assertIsNone(message["Cc"])
            self.assertIsNone(message["Bcc"])
            for other in everyone - set(envelope.rcpt_tos):
                # nobody else's address anywhere in the bytes a recipient gets
                self.assertNotIn(other.encode(), envelope.data)
            files = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
            self.assertEqual(files, {"offer.pdf": b"%PDF offer"})
        self.assertEqual([m["Message-ID"] for m in messages], outboxes.mapped("message_id_header"))
        self.assertEqual(len(set(outboxes.mapped("message_id_header"))), 3)
        self.assertEqual(self.sink.duplicates(), {})

        # each body carries its own tokens, naming its own copy
        Event = self.env["pipemail.tracking.event"]
        for message, outbox in zip(messages, outboxes, strict=True):
            html = html_part(message)
            [pixel] = re.findall(r'src="http://crm\.example\.com/pipemail/t/o/([^"]+)\.gif"', html)
            [click] = re.findall(r'href="http://crm\.example\.com/pipemail/t/c/([^"]+)"', html)
            self.assertEqual(Event._pipemail_verify("open", pixel).message, outbox.id)
            self.assertEqual(Event._pipemail_verify("click", click).message, outbox.id)
            self.assertEqual(outbox.link_ids.mapped("url"), ["https://shop.example.com/offer"])
        tokens = [re.findall(r"/pipemail/t/[oc]/([^\"]+)", html_part(m)) for m in messages]
        self.assertEqual(len({t for pair in tokens for t in pair}), 6, "no token shared")

        # each copy is its own sent email, in its own conversation, linked to the lead
        sent = outboxes.sent_message_id
        self.assertEqual(len(sent), 3)
        self.assertEqual(len(sent.thread_id), 3)
        self.assertEqual(sent.thread_id.lead_id, lead)
        self.assertEqual(sent.mapped("email_to"), outboxes.mapped("email_to"))
        self.assertEqual(lead.with_user(self.sender).pipemail_thread_count, 3)
        self.assertEqual([len(m.attachment_ids) for m in sent], [1, 1, 1])
        self.assertEqual(outboxes.mapped("partner_id"), self.customer, "Carla's copy")

        # each copy APPENDed to Sent once; the sync recognizes all three
        self.assertEqual(outboxes.mapped("sent_copy_state"), ["done"] * 3)
        for outbox in outboxes:
            self.assertEqual(self.sent_folder_copies(outbox.message_id_header), 1)
        self.sync(self.account)
        same = self.env["pipemail.message"].search(
            [
                ("account_id", "=", self.account.id),
                ("message_id_header", "in", sent.mapped("message_id_header")),
            ]
        )
        self.assertEqual(same, sent)
        self.assertEqual([len(m.location_ids) for m in sent], [1, 1, 1])

        # the click replayed sends nothing more
        wizard.action_send()
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(len(self.sink.messages), 3)

    def test_send_individually_4xx_retries_that_copy_only(self):
        self.sink.fail_recipient("dora@customer.example", 451)
        _wizard, outboxes, action, _lead = self.individual_send(
            "carla@customer.example, dora@customer.example, eve@customer.example"
        )
        carla, dora, eve = outboxes
        self.assertEqual((carla.state, dora.state, eve.state), ("sent", "retry", "sent"))
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("2 of 3 separate emails sent", action["params"]["message"])
        self.assertIn(
            "Will be tried again later: dora@customer.example", action["params"]["message"]
        )
        self.assertFalse(dora.sent_message_id, "not in a conversation before it left")
        self.assertEqual(
            [m.rcpt_tos for m in self.sink.messages],
            [["carla@customer.example"], ["eve@customer.example"]],
        )
        self.sink.clear_faults()
        dora.next_attempt = fields.Datetime.now() - timedelta(seconds=1)
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(dora.state, "sent")
        self.assertTrue(dora.sent_message_id)
        self.assertEqual(self.sink.messages[-1].rcpt_tos, ["dora@customer.example"])
        self.assertEqual(
            self.sink.message_ids(), dict.fromkeys(outboxes.mapped("message_id_header"), 1)
        )
        self.assertEqual((carla.attempts, dora.attempts, eve.attempts), (1, 2, 1))

    def test_send_individually_long_list_leaves_through_the_outbox(self):
        """Past the first copies, the rest wait for the outbox cron (triggered at once)
        instead of the web request; each still leaves once."""
        cron = self.env.ref("pipemail_sync.ir_cron_pipemail_outbox")
        triggers = self.env["ir.cron.trigger"].sudo()
        before = triggers.search_count([("cron_id", "=", cron.id)])
        with patch.object(outbox_module, "INLINE_SENDS", 2):
            _wizard, outboxes, action, _lead = self.individual_send(
                "a@customer.example, b@customer.example, c@customer.example, d@customer.example"
            )
        self.assertEqual(outboxes.mapped("state"), ["sent", "sent", "queued", "queued"])
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("2 more are leaving from your Outbox", action["params"]["message"])
        self.assertEqual(triggers.search_count([("cron_id", "=", cron.id)]), before + 1)
        self.assertFalse(outboxes[0].next_attempt, "sent: nothing left to do")
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(outboxes.mapped("state"), ["sent"] * 4)
        self.assertEqual(
            self.sink.message_ids(), dict.fromkeys(outboxes.mapped("message_id_header"), 1)
        )

    def test_send_individually_request_dies_cron_sends_each_once(self):
        """The request stored every copy, then died before sending: the cron leaves the
        copies alone while the request could still be at work, then sends each once."""
        wizard = self.compose().create(
            {
                "individual": True,
                "email_to": "a@customer.example, b@customer.example, c@customer.example",
                "subject": "Interrupted",
                "body": "<p>x</p>",
            }
        )
        outboxes = wizard._pipemail_create_outbox().sudo()
        with patch.object(type(outboxes), "_pipemail_send_one", lambda self: self.state):
            outboxes._pipemail_send_now()
        self.assertEqual(outboxes.mapped("state"), ["queued"] * 3)
        self.assertTrue(all(o.next_attempt > fields.Datetime.now() for o in outboxes))
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(self.sink.attempts, 0, "not while the request may be sending them")
        outboxes.write({"next_attempt": fields.Datetime.now() - timedelta(seconds=1)})
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(outboxes.mapped("state"), ["sent"] * 3)
        wizard.action_send()  # the click replayed
        self.env["pipemail.outbox"]._cron_send_outbox()
        self.assertEqual(
            self.sink.message_ids(), dict.fromkeys(outboxes.mapped("message_id_header"), 1)
        )

    def test_send_individually_refused_with_cc_or_too_many(self):
        lead = self.env["crm.lead"].create({"name": "Refused", "partner_id": self.customer.id})
        with self.assertRaisesRegex(UserError, "move the Cc and Bcc addresses to To"):
            self.individual_send("carla@customer.example", lead=lead, email_cc="x@customer.example")
        self.env["ir.config_parameter"].sudo().set_param("pipemail_campaigns.max_recipients", "3")
        with self.assertRaisesRegex(UserError, "at most 3 people at once"):
            self.individual_send(", ".join(f"r{i}@customer.example" for i in range(4)), lead=lead)
        self.assertFalse(self.env["pipemail.outbox"].sudo().search([("lead_id", "=", lead.id)]))
        self.assertEqual(self.sink.attempts, 0)

    def test_not_individual_is_one_email_to_everyone(self):
        wizard = self.compose().create(
            {
                "email_to": "carla@customer.example, dora@customer.example",
                "email_cc": "eve@customer.example",
                "subject": "Together",
                "body": "<p>x</p>",
            }
        )
        action = wizard.action_send()
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(wizard.outbox_ids, wizard.outbox_id)
        [received] = self.received(1)
        message = parse(received.data)
        self.assertEqual(
            received.rcpt_tos,
            ["carla@customer.example", "dora@customer.example", "eve@customer.example"],
        )
        self.assertEqual(str(message["To"]), "carla@customer.example, dora@customer.example")
        self.assertEqual(str(message["Cc"]), "eve@customer.example")


class SinkHttpCase(HttpCase):
    """HttpCase whose mailboxes send to an aiosmtpd sink (made by ``_make_sink``)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if SmtpSink is None or OAuthServer is None:
            cls.skipTest(cls, "tests/harness not found next to the addon")
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        mail_log = logging.getLogger("mail.log")
        cls.addClassCleanup(mail_log.setLevel, mail_log.level)
        mail_log.setLevel(logging.ERROR)
        cls.sink = cls._make_sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")

    @classmethod
    def _make_sink(cls):
        raise NotImplementedError

    @classmethod
    def _sink_account(cls, user, **vals):
        """A connected mailbox of ``user`` whose outgoing server is the sink."""
        return cls.env["pipemail.account"].create(
            {
                "email": user.email,
                "username": user.email,
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "smtp_port": cls.sink.port,
                "smtp_security": "none",
                "user_id": user.id,
                "state": "connected",
                **vals,
            }
        )


@tagged("post_install", "-at_install")
class TestOutboundXOAuth2(SinkHttpCase):
    """A Google mailbox sends through SMTP with XOAUTH2, refreshing its access token
    from the stored refresh token (HttpCase: the token source reads it through the
    registry's cursor, which only a test-mode registry shares with the test)."""

    @classmethod
    def _make_sink(cls):
        cls.oauth = OAuthServer(client_id="odoo-client", client_secret="odoo-secret")
        cls.addClassCleanup(cls.oauth.stop)
        return SmtpSink(oauth=cls.oauth)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("pipemail.google_client_id", "odoo-client")
        params.set_param("pipemail.google_client_secret", "odoo-secret")
        params.set_param("pipemail.google_token_uri", cls.oauth.token_url)
        params.set_param("pipemail.google_mail_hosts", "127.0.0.1")
        cls.user = new_test_user(
            cls.env,
            "pm_gmail_gina",
            email="gina@gmail.example",
            groups="sales_team.group_sale_salesman",
        )
        cls.account = cls._sink_account(cls.user, name="Gina at Google", provider="gmail")

    def test_send_with_xoauth2_and_token_refresh(self):
        _access, refresh = self.oauth.issue("gina@gmail.example")
        self.account._set_secret("refresh_token", refresh)
        self.env.flush_all()  # the token source reads it with its own cursor
        compose = self.env["pipemail.compose"].with_user(self.user)
        for subject in ("First", "After expiry"):
            wizard = compose.create(
                {"email_to": "carla@customer.example", "subject": subject, "body": "<p>x</p>"}
            )
            wizard.action_send()
            outbox = wizard.outbox_id.sudo()
            self.assertEqual(outbox.state, "sent", outbox.last_error)
            self.assertEqual(outbox.sent_copy_state, "provider", "Gmail files it in Sent itself")
            self.oauth.expire_all()  # the next send must refresh
        received = self.sink.wait_for(2)
        self.assertEqual([m.auth_user for m in received], ["gina@gmail.example"] * 2)
        self.assertEqual(
            [str(parse(m.data)["Subject"]) for m in received], ["First", "After expiry"]
        )
        token_calls = [r for r in self.oauth.requests if r.endpoint == "token"]
        self.assertEqual(len(token_calls), 2, "one refresh per expired token")


@tagged("post_install", "-at_install")
class TestSendIndividuallyTracking(SinkHttpCase):
    """Opens and clicks of an individual send, through the public routes: each copy
    counts its own, and the sender is told who opened."""

    @classmethod
    def _make_sink(cls):
        return SmtpSink(auth=("tina@ourco.example", "tina-password"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("web.base.url", "http://crm.example.com")
        cls.user = new_test_user(
            cls.env,
            "pm_tina",
            name="Tina Tracker",
            email="tina@ourco.example",
            groups="sales_team.group_sale_salesman",
            notification_type="inbox",
        )
        cls.account = cls._sink_account(cls.user, name="Tina", password="tina-password")
        cls.lead = cls.env["crm.lead"].create({"name": "Desks", "user_id": cls.user.id})

    def test_each_copy_counts_its_own_opens_and_clicks(self):
        wizard = (
            self.env["pipemail.compose"]
            .with_user(self.user)
            .with_context(default_res_model="crm.lead", default_res_id=self.lead.id)
            .create(
                {
                    "individual": True,
                    "tracking": True,
                    "email_to": "Ann <ann@customer.example>, Ben <ben@customer.example>, "
                    "cat@customer.example",
                    "subject": "Desks",
                    "body": '<p>Our <a href="https://shop.example.com/desks">desks</a></p>',
                }
            )
        )
        # the server saves what SMTP sent (no Sent-folder APPEND here)
        with patch.object(outbox_module, "PROVIDERS_SAVING_SENT", ("imap",)):
            wizard.action_send()
        outboxes = wizard.outbox_ids.sudo()
        self.assertEqual(outboxes.mapped("state"), ["sent"] * 3)
        # opened an hour later: not an instant (machine) hit
        outboxes.write({"sent_date": fields.Datetime.now() - timedelta(hours=1)})
        bodies = {
            m.rcpt_tos[0]: html_part(parse(m.data)) for m in self.sink.wait_for(3, timeout=10)
        }
        ann, ben, cat = outboxes
        pixel = re.search(
            r'src="http://crm\.example\.com(/pipemail/t/o/[^"]+)"', bodies["ben@customer.example"]
        )
        response = self.url_open(pixel.group(1), headers={"User-Agent": FIREFOX})
        self.assertEqual(response.headers["Content-Type"], "image/gif")
        outboxes.invalidate_recordset()
        self.assertEqual(outboxes.mapped("open_count"), [0, 1, 0])
        self.assertEqual(ben.sent_message_id.pipemail_open_count, 1)
        self.assertEqual(ann.sent_message_id.pipemail_open_count, 0)
        self.assertTrue(ben.first_open_notified)
        self.assertFalse(ann.first_open_notified or cat.first_open_notified)
        # the inbox notice is posted by the first-open cron the hit triggered
        self.env["pipemail.outbox"]._cron_first_open_notices()
        notice = self.env["mail.message"].search(
            [("model", "=", "pipemail.outbox"), ("res_id", "in", outboxes.ids)]
        )
        self.assertEqual(notice.res_id, ben.id, "one notification, on Ben's copy")
        self.assertIn("Ben &lt;ben@customer.example&gt; opened your email", str(notice.body))
        self.assertIn(self.user.partner_id, notice.partner_ids)

        click = re.search(
            r'href="http://crm\.example\.com(/pipemail/t/c/[^"]+)"', bodies["cat@customer.example"]
        )
        response = self.url_open(
            click.group(1), headers={"User-Agent": FIREFOX}, allow_redirects=False
        )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response.headers["Location"], "https://shop.example.com/desks")
        outboxes.invalidate_recordset()
        self.assertEqual(outboxes.mapped("click_count"), [0, 0, 1])
        self.assertEqual(outboxes.mapped("open_count"), [0, 1, 0])
