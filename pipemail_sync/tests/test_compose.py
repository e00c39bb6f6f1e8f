"""The composer's defaults and checks, without any server: who it writes to from each
kind of record, which mailboxes it offers, signature, templates, tracking preference,
replies and forwards, right-to-left, sizes, and what it refuses. The last class opens
it in headless Chromium from a conversation full of XSS vectors."""

import json

from markupsafe import Markup

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, TransactionCase, new_test_user, tagged

from ..engine import format_address, mark_fragment, parse_addresses

MARK = "window.top.__pmx=1"


class ComposeWorld:
    @classmethod
    def _world(cls):
        env = cls.env
        company = env.company
        common = {"company_id": company.id, "company_ids": [Command.set(company.ids)]}
        cls.owner = new_test_user(
            env,
            "pm_writer",
            name="Wendy Writer",
            email="wendy@ourco.example",
            groups="sales_team.group_sale_salesman_all_leads",
            signature="<p>Wendy — <b>ACME</b></p>",
            **common,
        )
        cls.teammate = new_test_user(
            env,
            "pm_mate",
            email="mate@ourco.example",
            groups="sales_team.group_sale_salesman_all_leads",
            **common,
        )
        cls.nobox = new_test_user(
            env, "pm_nobox", groups="sales_team.group_sale_salesman", **common
        )
        Account = env["pipemail.account"].with_context(tracking_disable=True)
        cls.personal = Account.create(
            {
                "name": "Wendy",
                "email": "wendy@ourco.example",
                "imap_host": "imap.ourco.example",
                "smtp_host": "smtp.ourco.example",
                "user_id": cls.owner.id,
            }
        )
        cls.team = Account.create(
            {
                "name": "Sales team",
                "email": "sales@ourco.example",
                "kind": "team",
                "user_id": cls.teammate.id,
                "member_ids": [Command.set((cls.owner | cls.teammate).ids)],
                "imap_host": "imap.ourco.example",
                "smtp_host": "smtp.ourco.example",
            }
        )
        cls.mates_box = Account.create(
            {
                "name": "Mate",
                "email": "mate@ourco.example",
                "imap_host": "imap.ourco.example",
                "smtp_host": "smtp.ourco.example",
                "user_id": cls.teammate.id,
            }
        )
        Partner = env["res.partner"]
        cls.acme = Partner.create({"name": "ACME Corp", "is_company": True})
        cls.bob = Partner.create(
            {"name": "Doe, Bob", "email": "bob@acme.example", "parent_id": cls.acme.id}
        )
        cls.lead = env["crm.lead"].create(
            {"name": "Chairs", "partner_id": cls.bob.id, "user_id": cls.owner.id}
        )
        cls.thread = env["pipemail.thread"].create(
            {
                "account_id": cls.personal.id,
                "thread_key": "compose-1",
                "subject": "Quote",
                "lead_id": cls.lead.id,
                "visibility": "shared",
                "participant_emails": "bob@acme.example,wendy@ourco.example",
            }
        )
        cls.incoming = env["pipemail.message"].create(
            {
                "thread_id": cls.thread.id,
                "account_id": cls.personal.id,
                "key": "compose-in-1",
                "message_id_header": "in1@acme.example",
                "references": "root@acme.example",
                "subject": "Quote",
                "email_from": "Bob Doe <bob@acme.example>",
                "email_to": "Wendy <wendy@ourco.example>, Alice <alice@acme.example>",
                "email_cc": '"Carol, Finance" <carol@acme.example>, sales@ourco.example',
                "date": "2024-05-02 10:00:00",
                "body_html": "<p>Please send the quote.</p>",
                "direction": "in",
                "has_attachments": True,
            }
        )
        cls.file = env["ir.attachment"].create(
            {
                "name": "specs.pdf",
                "raw": b"%PDF specs",
                "res_model": "pipemail.message",
                "res_id": cls.incoming.id,
            }
        )


@tagged("post_install", "-at_install")
class TestCompose(ComposeWorld, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls._world()

    def composer(self, user=None, **defaults):
        ctx = {f"default_{k}": v for k, v in defaults.items()}
        return Form(self.env["pipemail.compose"].with_user(user or self.owner).with_context(**ctx))

    # ------------------------------------------------------------------ recipients

    def test_from_lead_contact_project(self):
        form = self.composer(res_model="crm.lead", res_id=self.lead.id)
        self.assertEqual(form.email_to, '"Doe, Bob" <bob@acme.example>')
        self.assertEqual(form.lead_id, self.lead)
        self.assertEqual(form.render_model, "crm.lead")

        lead = self.env["crm.lead"].create(
            {"name": "Web form", "email_from": "Dan <dan@web.example>", "contact_name": "Dan"}
        )
        self.assertEqual(
            self.composer(res_model="crm.lead", res_id=lead.id).email_to, "Dan <dan@web.example>"
        )
        # a company without an address writes to its contact
        self.assertEqual(
            self.composer(res_model="res.partner", res_id=self.acme.id).email_to,
            '"Doe, Bob" <bob@acme.example>',
        )
        project = self.env["project.project"].create({"name": "Fit-out", "partner_id": self.bob.id})
        form = self.composer(res_model="project.project", res_id=project.id)
        self.assertEqual(form.email_to, '"Doe, Bob" <bob@acme.example>')
        self.assertEqual(form.project_id, project)
        with self.assertRaises(UserError):
            self.composer(res_model="res.users", res_id=self.owner.id)

    def test_addresses_parsed_and_refused(self):
        env = self.env
        parsed = parse_addresses(env, '"Doe, Bob" <bob@ACME.example>; carol@acme.example, ')
        self.assertEqual(
            [(a.name, a.email) for a in parsed],
            [("Doe, Bob", "bob@acme.example"), ("", "carol@acme.example")],
        )
        for bad in ("not an address", "bob@acme.example\r\nBcc: x@evil.example", "a@b\x00.c"):
            with self.assertRaises(UserError):
                parse_addresses(env, bad)
        self.assertEqual(
            parse_addresses(env, "junk, x@y.example", strict=False)[0].email, "x@y.example"
        )
        self.assertEqual(
            format_address("x@y.example", 'Eve "E" <x>'), '"Eve \\"E\\" <x>" <x@y.example>'
        )

    # ------------------------------------------------------------------ mailboxes

    def test_mailboxes_offered(self):
        form = self.composer()
        self.assertEqual(form.account_id, self.personal, "one's own mailbox first")
        self.assertEqual(set(form.allowed_account_ids.ids), {self.personal.id, self.team.id})
        mate = self.composer(user=self.teammate)
        self.assertEqual(set(mate.allowed_account_ids.ids), {self.team.id, self.mates_box.id})
        with self.assertRaisesRegex(UserError, "Connect your mailbox first"):
            self.composer(user=self.nobox)
        wizard = self.composer().save()
        # someone else's mailbox is refused when it is put in the composer (RPC too)...
        with self.assertRaisesRegex(AccessError, "cannot"):
            wizard.write({"account_id": self.mates_box.id, "email_to": "bob@acme.example"})
        # ...and again when sending, whatever put it there
        wizard.sudo().write({"account_id": self.mates_box.id, "email_to": "bob@acme.example"})
        with self.assertRaisesRegex(AccessError, "cannot send from this mailbox"):
            wizard._pipemail_check()

    # ------------------------------------------------------------------ body

    def test_signature_and_tracking_preference(self):
        form = self.composer()
        self.assertIn("Wendy — <b>ACME</b>", str(form.body))
        self.assertTrue(form.tracking)
        self.owner.with_user(self.owner).write({"pipemail_tracking_default": False})
        self.assertFalse(self.composer().tracking)
        self.assertFalse(
            self.owner.with_user(self.owner).read(["pipemail_tracking_default"])[0][
                "pipemail_tracking_default"
            ]
        )

    def test_template_rendered_for_the_record(self):
        template = self.env["mail.template"].create(
            {
                "name": "Hello contact",
                "model_id": self.env.ref("base.model_res_partner").id,
                "subject": "Hello {{ object.name }}",
                "body_html": "<p>Dear <t t-out='object.name'/>, <t t-out='object.email'/></p>",
            }
        )
        form = self.composer(res_model="res.partner", res_id=self.bob.id)
        form.template_id = template
        self.assertEqual(form.subject, "Hello Doe, Bob")
        self.assertIn("Dear Doe, Bob, bob@acme.example", str(form.body))
        self.assertIn("Wendy — <b>ACME</b>", str(form.body), "signature kept under it")
        lead_template = template.copy({"model_id": self.env.ref("crm.model_crm_lead").id})
        with self.assertRaises(UserError):
            form.template_id = lead_template

    def test_right_to_left_detection(self):
        form = self.composer()
        form.body = "<p>שלום, ההצעה מצורפת.</p>"
        self.assertEqual(form.text_direction, "rtl")
        form.body = "<p>سلام، پیشنهاد پیوست است.</p><p>OK</p>"
        self.assertEqual(form.text_direction, "rtl", "Persian")
        form.body = "<p>یہ پیشکش ہے۔</p>"
        self.assertEqual(form.text_direction, "rtl", "Urdu")
        form.body = "<p>Thanks for the offer, see below.</p><p>شكرا</p>"
        self.assertEqual(form.text_direction, "ltr", "mixed, mostly English")
        html, direction = mark_fragment("<p>مرحبا بكم في عرضنا الجديد</p><p>Order 12</p>")
        self.assertEqual(direction, "rtl")
        self.assertEqual(
            html, '<div dir="rtl"><p>مرحبا بكم في عرضنا الجديد</p><p dir="ltr">Order 12</p></div>'
        )
        self.assertEqual(mark_fragment("<p>Hello</p>"), ("<p>Hello</p>", "ltr"))

    def test_size_shown_against_the_limit(self):
        wizard = self.composer().save()
        self.assertRegex(wizard.size_info, r"^0\.0 MB of 25 MB \(Your mail server\)$")
        self.env["ir.config_parameter"].sudo().set_param("pipemail.imap_attachment_limit_mb", "2")
        big = (
            self.env["ir.attachment"]
            .with_user(self.owner)
            .create(
                {
                    "name": "big.bin",
                    "raw": b"x" * (2 * 1024 * 1024),
                    "res_model": "pipemail.compose",
                }
            )
        )
        wizard.attachment_ids = [Command.link(big.id)]
        self.assertTrue(wizard.size_exceeded)
        wizard.email_to = "bob@acme.example"
        with self.assertRaisesRegex(UserError, r"accepts at most 2 MB"):
            wizard._pipemail_check()

    def test_picked_files_are_copied_and_links_checked(self):
        doc = self.env["ir.attachment"].create(
            {
                "name": "lead.pdf",
                "raw": b"%PDF lead",
                "res_model": "crm.lead",
                "res_id": self.lead.id,
            }
        )
        wizard = self.composer(res_model="crm.lead", res_id=self.lead.id).save()
        wizard.write({"attachment_ids": [Command.link(doc.id)], "subject": "Files"})
        outbox = wizard._pipemail_create_outbox().sudo()
        self.assertEqual((doc.res_model, doc.res_id), ("crm.lead", self.lead.id), "left in place")
        self.assertEqual(outbox.attachment_ids.mapped("name"), ["lead.pdf"])
        self.assertNotIn(doc, outbox.attachment_ids)
        # over RPC, a record the writer cannot read is refused as a link target
        own_only = new_test_user(
            self.env, "pm_ownonly", email="o@ourco.example", groups="sales_team.group_sale_salesman"
        )
        self.env["pipemail.account"].create(
            {
                "name": "o",
                "email": "o@ourco.example",
                "imap_host": "imap.ourco.example",
                "smtp_host": "smtp.ourco.example",
                "user_id": own_only.id,
            }
        )
        wizard = self.composer(user=own_only).save()
        with self.assertRaises(AccessError):
            wizard.write({"email_to": "bob@acme.example", "lead_id": self.lead.id})

    # ------------------------------------------------------------------ send individually

    def test_send_individually_refusals_in_plain_words(self):
        form = self.composer(res_model="crm.lead", res_id=self.lead.id)
        self.assertFalse(form.individual, "off by default")
        form.email_cc = "alice@acme.example"
        form.individual = True
        form.email_to = '"Doe, Bob" <bob@acme.example>, carol@acme.example; dan@acme.example'
        self.assertEqual(form.individual_info, "3 separate emails, one per To address")
        form.email_to = "carol@acme.example"
        self.assertEqual(form.individual_info, "One email, to this address alone")
        form.email_to = '"Doe, Bob" <bob@acme.example>, carol@acme.example; dan@acme.example'
        wizard = form.save()
        with self.assertRaisesRegex(UserError, "move the Cc and Bcc addresses to To"):
            wizard._pipemail_check()
        wizard.write({"email_cc": False, "email_bcc": "eve@acme.example"})
        with self.assertRaisesRegex(UserError, "move the Cc and Bcc addresses to To"):
            wizard._pipemail_check()
        wizard.write({"email_bcc": False, "email_to": False, "email_cc": "alice@acme.example"})
        with self.assertRaisesRegex(UserError, "move the Cc and Bcc"):
            wizard._pipemail_check()
        # the "Recipients per group email" setting, 100 unless set
        wizard.write(
            {"email_cc": False, "email_to": ", ".join(f"p{i}@x.example" for i in range(101))}
        )
        with self.assertRaisesRegex(
            UserError, "at most 100 people at once, and this email has 101 To addresses"
        ):
            wizard._pipemail_check()
        self.env["ir.config_parameter"].sudo().set_param("pipemail_campaigns.max_recipients", "2")
        wizard.email_to = "a@x.example, b@x.example, c@x.example"
        with self.assertRaisesRegex(UserError, "at most 2 people at once"):
            wizard._pipemail_check()
        wizard.email_to = "a@x.example, b@x.example"
        wizard._pipemail_check()
        self.assertFalse(
            self.env["pipemail.outbox"].sudo().search([("user_id", "=", self.owner.id)])
        )

        # a reply is never split: not offered, and refused when asked over RPC
        with self.assertRaisesRegex(AssertionError, "invisible field 'individual'"):
            self.composer(thread_id=self.thread.id, mode="reply_all").individual = True
        reply = (
            self.env["pipemail.compose"]
            .with_user(self.owner)
            .with_context(default_thread_id=self.thread.id, default_mode="reply")
            .create({"individual": True})
        )
        self.assertEqual(reply.email_to, "Bob Doe <bob@acme.example>")
        with self.assertRaisesRegex(UserError, "Send individually is for new emails and forwards"):
            reply._pipemail_check()
        forward = self.composer(thread_id=self.thread.id, mode="forward")
        forward.individual = True
        forward.email_to = "a@x.example, b@x.example"
        forward.save()._pipemail_check()

    def test_send_individually_one_outbox_per_recipient(self):
        """Built and stored in one go, before any server: one row, one Message-ID, one
        set of tracking tokens and one copy of the files per To address."""
        upload = (
            self.env["ir.attachment"]
            .with_user(self.owner)
            .create({"name": "offer.pdf", "raw": b"%PDF offer", "res_model": "pipemail.compose"})
        )
        form = self.composer(res_model="crm.lead", res_id=self.lead.id)
        form.individual = True
        form.email_to = '"Doe, Bob" <bob@acme.example>, carol@acme.example, Dan <dan@acme.example>'
        form.subject = "Offer"
        form.body = '<p>See <a href="https://shop.example.com/offer">the offer</a></p>'
        wizard = form.save()
        wizard.attachment_ids = [Command.link(upload.id)]
        outboxes = wizard._pipemail_create_outbox().sudo()
        self.assertEqual(len(outboxes), 3)
        self.assertEqual(wizard.outbox_ids.sudo(), outboxes)
        self.assertEqual(
            outboxes.mapped("email_to"),
            ['"Doe, Bob" <bob@acme.example>', "carol@acme.example", "Dan <dan@acme.example>"],
        )
        self.assertEqual(outboxes.mapped("state"), ["queued"] * 3)
        self.assertEqual(outboxes.lead_id, self.lead)
        self.assertEqual(outboxes.mapped("partner_id"), self.bob, "Bob's copy only")
        self.assertEqual(outboxes[0].partner_id, self.bob)
        self.assertEqual(len(set(outboxes.mapped("message_id_header"))), 3)
        self.assertEqual(
            [json.loads(o.rcpt_pending) for o in outboxes],
            [["bob@acme.example"], ["carol@acme.example"], ["dan@acme.example"]],
        )
        for outbox in outboxes:
            self.assertEqual(outbox.attachment_ids.mapped("name"), ["offer.pdf"])
            self.assertEqual(outbox.attachment_ids.raw, b"%PDF offer")
            self.assertEqual(outbox.link_ids.mapped("url"), ["https://shop.example.com/offer"])
        self.assertEqual(len(outboxes.attachment_ids), 3, "each copy has its own files")
        self.assertIn(upload, outboxes.attachment_ids, "the upload moved to the first copy")
        # an email to several people stays one row; sending it again never makes another
        wizard = self.composer().save()
        wizard.write({"email_to": "a@x.example, b@x.example", "email_cc": "c@x.example"})
        outbox = wizard._pipemail_create_outbox()
        self.assertEqual(wizard.outbox_ids, outbox)
        self.assertEqual(
            json.loads(outbox.sudo().rcpt_pending), ["a@x.example", "b@x.example", "c@x.example"]
        )

    # ------------------------------------------------------------------ replies

    def test_reply_reply_all_forward_defaults(self):
        reply = self.composer(thread_id=self.thread.id, mode="reply")
        self.assertEqual(reply.email_to, "Bob Doe <bob@acme.example>")
        self.assertFalse(reply.email_cc)
        self.assertEqual(reply.subject, "Re: Quote")
        self.assertEqual(reply.parent_message_id, self.incoming)
        self.assertIn("Please send the quote.", str(reply.body))
        self.assertIn("Bob Doe &lt;bob@acme.example&gt; wrote:", str(reply.body))

        reply_all = self.composer(thread_id=self.thread.id, mode="reply_all")
        self.assertEqual(reply_all.email_to, "Bob Doe <bob@acme.example>")
        self.assertEqual(
            reply_all.email_cc,
            'Alice <alice@acme.example>, "Carol, Finance" <carol@acme.example>',
            "everyone else, never our own mailboxes",
        )

        forward = self.composer(thread_id=self.thread.id, mode="forward")
        self.assertFalse(forward.email_to)
        self.assertEqual(forward.subject, "Fwd: Quote")
        self.assertIn("Forwarded message", str(forward.body))
        files = forward.save().attachment_ids
        self.assertEqual(files.mapped("name"), ["specs.pdf"])
        self.assertNotEqual(files, self.file, "a copy, not the original")
        self.assertEqual(files.raw, b"%PDF specs")

        # replying when our own email is the latest: to the same people again
        self.env["pipemail.message"].create(
            {
                "thread_id": self.thread.id,
                "account_id": self.personal.id,
                "key": "compose-out-1",
                "message_id_header": "out1@ourco.example",
                "subject": "Re: Quote",
                "email_from": "Wendy <wendy@ourco.example>",
                "email_to": "Bob Doe <bob@acme.example>",
                "date": "2024-05-03 10:00:00",
                "body_html": "<p>Here it is.</p>",
                "direction": "out",
            }
        )
        self.assertEqual(
            self.composer(thread_id=self.thread.id, mode="reply").email_to,
            "Bob Doe <bob@acme.example>",
        )

    def test_reply_only_from_own_mailboxes(self):
        other = self.env["pipemail.thread"].create(
            {
                "account_id": self.mates_box.id,
                "thread_key": "compose-2",
                "subject": "Theirs",
                "lead_id": self.lead.id,
                "visibility": "shared",
            }
        )
        self.assertTrue(other.with_user(self.owner).check_access("read") is None)
        with self.assertRaisesRegex(AccessError, "own mailboxes only"):
            self.composer(thread_id=other.id, mode="reply")

    def test_quote_header_escapes_names(self):
        self.incoming.write(
            {
                "email_from": f'"<img src=x onerror={MARK}>" <bob@acme.example>',
                "subject": f"<script>{MARK}</script>",
            }
        )
        form = self.composer(thread_id=self.thread.id, mode="forward")
        body = str(form.body)
        self.assertNotIn("<img", body)
        self.assertNotIn("<script", body)
        self.assertIn("&lt;img src=x onerror=", body)
        self.assertEqual(form.subject, f"Fwd: <script>{MARK}</script>", "plain text field")
        quote = Markup(
            self.env["pipemail.compose"].with_user(self.owner)._pipemail_reply_quote(self.incoming)
        )
        self.assertNotIn("<img", str(quote))


@tagged("post_install", "-at_install")
class TestComposeBrowser(ComposeWorld, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._world()
        cls.incoming.write(
            {
                "email_from": f'"<img src=x onerror={MARK}>" <bob@acme.example>',
                "subject": f"Quote <script>{MARK}</script>",
                "body_html": "<p>مرحبا، هذا هو العرض</p><p>Please <b>send</b> it.</p>",
            }
        )
        cls.file.name = f"<img src=x onerror={MARK}>.pdf"

    def test_reply_dialog_runs_no_vector_and_lays_out_rtl(self):
        check = """
            (async () => {
                const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
                const find = async (fn) => {
                    for (let i = 0; i < 150; i++) {
                        const el = fn();
                        if (el) return el;
                        await sleep(100);
                    }
                    return null;
                };
                const reply = await find(() => [...document.querySelectorAll(".o_form_view button")]
                    .find((b) => b.textContent.trim() === "Forward"));
                if (!reply) { console.error("no Forward button"); return; }
                reply.click();
                const dialog = await find(
                    () => document.querySelector(".o_dialog .o_pipemail_compose")
                );
                if (!dialog) { console.error("no composer dialog"); return; }
                const editable = await find(() => dialog.querySelector(".odoo-editor-editable p"));
                if (!editable) { console.error("no editor"); return; }
                await sleep(1500);
                if (window.__pmx) { console.error("an XSS vector ran in the composer"); return; }
                const text = dialog.textContent;
                if (!text.includes("<img src=x onerror=")) {
                    console.error("names not shown as text: " + text.slice(0, 500)); return;
                }
                if (!text.includes(".pdf")) { console.error("forwarded file not listed"); return; }
                const rtl = [...dialog.querySelectorAll(".odoo-editor-editable p")]
                    .find((p) => p.textContent.includes("مرحبا"));
                if (!rtl || getComputedStyle(rtl).unicodeBidi !== "plaintext") {
                    console.error("paragraphs do not follow their own direction"); return;
                }
                console.log("test successful");
            })();
        """
        self.browser_js(
            f"/odoo/action-pipemail_sync.pipemail_thread_action_inbox/{self.thread.id}",
            check,
            login=self.owner.login,
            timeout=120,
        )
