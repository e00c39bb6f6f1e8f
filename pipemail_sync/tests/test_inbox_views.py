"""The Sales Inbox and the Emails tabs: views load for a salesperson, filters and
searches do what their labels say, the inbox holds only one's own mailboxes, and the
link wizard / suggestions link in one click. Reply, reply all and forward from any
message of a conversation, not only the latest: who may, what the composer quotes,
the threading headers that leave, and the buttons in the reader (headless Chromium)."""

from datetime import datetime, timezone

from lxml import etree

from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, TransactionCase, tagged
from odoo.tools.safe_eval import safe_eval

from .common import make_mail
from .outbound_common import PipemailOutboundCase, parse, text_part
from .visibility_common import PipemailWorldMixin


@tagged("post_install", "-at_install")
class TestInboxViews(PipemailWorldMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()
        cls.inbox_action = cls.env.ref("pipemail_sync.pipemail_thread_action_inbox")

    def _inbox(self, user, extra=()):
        Thread = self.env(user=user)["pipemail.thread"]
        domain = safe_eval(self.inbox_action.domain, {"uid": user.id})
        return Thread.search(domain + list(extra))

    def test_views_load_for_a_salesperson(self):
        env = self.env(user=self.outsider)
        for model, types in (
            ("pipemail.thread", ["list", "form", "search"]),
            ("pipemail.message", ["list", "form", "search"]),
            ("pipemail.account", ["list", "form", "search"]),
            ("pipemail.link.wizard", ["form"]),
        ):
            views = env[model].get_views([(False, t) for t in types])
            self.assertEqual(set(views["views"]), set(types), model)
        for model, xmlid in (
            ("crm.lead", "crm.crm_lead_view_form"),
            ("project.project", "project.edit_project"),
            ("res.partner", "base.view_partner_form"),
        ):
            arch = env[model].get_view(self.env.ref(xmlid).id, "form")["arch"]
            tree = etree.fromstring(arch)
            self.assertTrue(tree.xpath("//page[@name='pipemail_emails']"), model)
            self.assertTrue(
                tree.xpath("//button[@name='action_view_pipemail_threads']"),
                f"{model} smart button",
            )
        # the inbox reader renders bodies with the sandboxed widget, never a raw html field
        form = etree.fromstring(env["pipemail.thread"].get_view(view_type="form")["arch"])
        self.assertEqual(
            form.xpath("//field[@name='message_ids']/@widget"), ["pipemail_conversation"]
        )

    def test_inbox_holds_only_own_mailboxes(self):
        held_by_teammate = {"t_shared", "t_team", "t_meta"}
        self.assertEqual(
            set(self._inbox(self.teammate).ids),
            {self.threads[n].id for n in held_by_teammate},
        )
        owner_expected = {t.id for n, t in self.threads.items() if n != "c2_shared"}
        self.assertEqual(set(self._inbox(self.owner).ids), owner_expected)
        # shared conversations the outsider reads through the lead are not in their inbox
        self.assertFalse(self._inbox(self.outsider))
        self.assertFalse(self._inbox(self.manager))

    def test_filters_and_searches(self):
        owner = self.owner
        Thread = self.env(user=owner)["pipemail.thread"]
        self.threads["p_shared"].with_user(owner).action_mark_read()
        search = etree.fromstring(Thread.get_view(view_type="search")["arch"])
        filters = {
            f.get("name"): safe_eval(f.get("domain"), {"uid": owner.id})
            for f in search.xpath("//filter[@domain]")
        }
        for domain in filters.values():
            # every filter runs for a salesperson
            self._inbox(owner, domain)
        held = set(self._inbox(owner).ids)
        self.assertNotIn(self.threads["p_shared"].id, self._inbox(owner, filters["unread"]).ids)
        self.assertIn(self.threads["p_shared"].id, self._inbox(owner, filters["read"]).ids)
        linked = set(self._inbox(owner, filters["linked"]).ids)
        unlinked = set(self._inbox(owner, filters["unlinked"]).ids)
        self.assertEqual(linked | unlinked, held)
        self.assertIn(self.threads["p_unlinked"].id, unlinked)
        self.assertIn(self.threads["p_project"].id, linked)
        self.assertEqual(len(self._inbox(owner, filters["with_attachments"])), len(held))
        archived = self.threads["p_unlinked"]
        archived.with_user(owner).action_archive_remote()
        self.assertNotIn(archived.id, self._inbox(owner).ids)
        self.assertEqual(self._inbox(owner, filters["archived"]), archived)
        held = set(self._inbox(owner).ids)
        # search by person, subject, body, label, mailbox
        fields = {f.get("name"): f for f in search.xpath("//field")}
        person = safe_eval(fields["participant_emails"].get("filter_domain"), {"self": "carla"})
        self.assertEqual(set(self._inbox(owner, person).ids), held)
        self.assertEqual(
            self._inbox(owner, [("subject", "ilike", "CANARYP_META")]), self.threads["p_meta"]
        )
        self.assertEqual(
            self._inbox(owner, [("message_body", "ilike", "CANARYT_TEAMBODY")]),
            self.threads["t_team"],
        )
        self.assertEqual(
            self._inbox(owner, [("label_ids", "ilike", "CANARYT_SHAREDLABEL")]),
            self.threads["t_shared"],
        )
        self.assertEqual(len(self._inbox(owner, [("account_id", "=", self.team.id)])), 4)

    def test_message_mark_read_buttons(self):
        """The message form's Mark as Read / Unread: the conversation's holders may, as
        from the conversation; a reader who does not hold it may not."""
        message = self.threads["t_shared"].message_ids[:1]
        message.with_user(self.teammate).action_mark_unread()
        self.assertFalse(message.is_read)
        message.with_user(self.owner).action_mark_read()
        self.assertTrue(message.is_read)
        # the outsider reads it through the lead, but it is not theirs to change
        message.with_user(self.outsider).check_access("read")
        for action in ("action_mark_unread", "action_mark_read"):
            with self.assertRaises(AccessError):
                getattr(message.with_user(self.outsider), action)()
        with self.assertRaises(AccessError):
            self.threads["t_private"].message_ids[:1].with_user(self.teammate).action_mark_read()
        self.assertTrue(message.is_read)

    def test_group_by_account_and_label(self):
        Thread = self.env(user=self.owner)["pipemail.thread"]
        domain = safe_eval(self.inbox_action.domain, {"uid": self.owner.id})
        by_account = Thread.web_read_group(domain, ["account_id"], ["account_id"])["groups"]
        self.assertEqual(
            {g["account_id"][0]: g["account_id_count"] for g in by_account},
            {self.personal.id: 6, self.team.id: 4},
        )
        by_label = Thread.web_read_group(domain, ["label_ids"], ["label_ids"])["groups"]
        self.assertEqual(len(by_label), 10)

    def test_emails_tabs_and_smart_buttons(self):
        lead = self.lead.with_user(self.outsider)
        # shared p_shared, t_shared; metadata p_meta, t_meta
        self.assertEqual(lead.pipemail_thread_count, 4)
        action = lead.action_view_pipemail_threads()
        self.assertEqual(
            self.env(user=self.outsider)["pipemail.thread"].search_count(action["domain"]), 4
        )
        partner = self.customer.with_user(self.stranger)
        self.assertEqual(partner.pipemail_thread_count, 1)
        self.assertEqual(partner.pipemail_thread_ids, self.threads["p_partner"])
        project = self.project.with_user(self.owner)
        self.assertEqual(project.pipemail_thread_ids, self.threads["p_project"])

    def test_link_wizard_and_one_click_suggestion(self):
        env = self.env(user=self.owner)
        thread = env["pipemail.thread"].browse(self.threads["p_unlinked"].id)
        action = thread.action_open_link_wizard()
        wizard = env["pipemail.link.wizard"].with_context(action["context"]).create({})
        self.assertEqual(wizard.lead_id, self.lead, "the best suggestion is preselected")
        self.assertIn("CANARYP_UNLINKEDREASON2", wizard.suggestion_ids.reason)
        wizard.action_link()
        self.assertEqual(thread.lead_id, self.lead)
        self.assertEqual(thread.link_mode, "manual")
        thread.action_unlink()
        self.assertFalse(thread.lead_id)
        # one click from the reader
        suggestion = (
            env["pipemail.link.suggestion"]
            .sudo()
            .create(
                {
                    "thread_id": thread.id,
                    "res_model": "crm.lead",
                    "res_id": self.lead.id,
                    "reason": "x",
                }
            )
        )
        suggestion.with_user(self.owner).action_accept()
        self.assertEqual(thread.lead_id, self.lead)
        # someone who does not hold the conversation cannot open the wizard for it
        with self.assertRaises(Exception):  # noqa: B017 - AccessError raised by the ORM
            self.env(user=self.outsider)["pipemail.link.wizard"].with_context(
                default_thread_id=self.threads["p_shared"].id
            ).create({})

    def test_mark_read_unread_and_visibility_change(self):
        thread = self.threads["p_meta"].with_user(self.owner)
        thread.action_mark_read()
        self.assertFalse(thread.is_unread)
        thread.action_mark_unread()
        self.assertTrue(thread.is_unread)
        thread.write({"visibility": "private"})
        self.assertFalse(
            self.env(user=self.outsider)["pipemail.thread"].search([("id", "=", thread.id)])
        )

    def test_holder_edits_in_the_form(self):
        """The reader's editable fields (visibility, labels) save and run onchange."""
        thread = self.threads["p_shared"].with_user(self.owner)
        spec = {"visibility": {}, "subject": {}, "label_ids": {}, "message_ids": {}}
        result = thread.onchange({"visibility": "private"}, ["visibility"], spec)
        self.assertNotIn("warning", result)
        thread.web_save({"visibility": "private"}, {"visibility": {}})
        self.assertEqual(thread.visibility, "private")
        outsider_thread = self.threads["p_shared"].with_user(self.outsider)
        with self.assertRaises(AccessError):
            outsider_thread.read(["subject"])

    def test_compose_from_a_message_holders_only(self):
        """The per-message Reply / Reply All / Forward: the composer action for holders
        whose content is visible, an AccessError for everyone else (RPC is not the
        page: the server checks what the widget only hides)."""
        Message = self.env["pipemail.message"]
        message = self.messages["p_shared"]
        action = Message.with_user(self.owner).browse(message.id).action_pipemail_compose("reply")
        self.assertEqual(action["type"], "ir.actions.act_window")
        self.assertEqual(action["res_model"], "pipemail.compose")
        self.assertEqual(action["target"], "new")
        self.assertEqual(
            action["context"],
            {
                "default_thread_id": self.threads["p_shared"].id,
                "default_mode": "reply",
                "default_parent_message_id": message.id,
            },
        )
        # a team mailbox member holds the team's conversations
        team_message = Message.with_user(self.teammate).browse(self.messages["t_team"].id)
        for mode in ("reply_all", "forward"):
            self.assertEqual(
                team_message.action_pipemail_compose(mode)["context"]["default_mode"], mode
            )
        with self.assertRaises(UserError):
            Message.with_user(self.owner).browse(message.id).action_pipemail_compose("new")
        refused = [
            # reads it through the lead, but it is not in their inbox
            ("outsider", "p_shared"),
            ("manager", "t_shared"),
            # cannot read it at all
            ("stranger", "p_shared"),
            ("teammate", "t_private"),
            ("other_co", "p_shared"),
            ("owner", "c2_shared"),
            # metadata only: the content is not theirs to quote
            ("outsider", "p_meta"),
            ("outsider", "t_meta"),
        ]
        for user_key, name in refused:
            with self.subTest(user=user_key, thread=name), self.assertRaises(AccessError):
                Message.with_user(self.users[user_key]).browse(
                    self.messages[name].id
                ).action_pipemail_compose("reply")
        # the holder's answer, computed just before in the same transaction, is not reused
        thread = self.threads["p_shared"]
        with self.assertRaises(AccessError):
            self.assertTrue(thread.with_user(self.owner).in_my_inbox)
            Message.with_user(self.outsider).browse(message.id).action_pipemail_compose("reply")


@tagged("post_install", "-at_install")
class TestComposeFromOlderMessage(PipemailOutboundCase):
    """Replying to and forwarding an older message of a synced conversation, through
    the action the reader's per-message buttons call, checked at the SMTP sink."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # one conversation: each email answers the one before, by the same headers
        earlier = []
        for day, (message_id, sender, cc, body, files) in enumerate(
            [
                (
                    "<m1@acme.example>",
                    "Bob Buyer <bob@acme.example>",
                    "Alice <alice@acme.example>",
                    "FIRSTBODY: do you have forty chairs?",
                    [("plan.pdf", b"%PDF plan", "application/pdf")],
                ),
                (
                    "<m2@acme.example>",
                    "Bob Buyer <bob@acme.example>",
                    "Dan <dan@acme.example>",
                    "SECONDBODY: make it fifty.",
                    [],
                ),
                (
                    "<m3@acme.example>",
                    "Alice <alice@acme.example>",
                    None,
                    "LATESTBODY: and a table.",
                    [],
                ),
            ],
            start=1,
        ):
            raw = make_mail(
                subject="Re: Forty chairs" if earlier else "Forty chairs",
                sender=sender,
                to="sam@ourco.example",
                cc=cc,
                message_id=message_id,
                in_reply_to=earlier[-1] if earlier else None,
                references=" ".join(earlier) or None,
                body=body,
                attachments=files,
                date=datetime(2024, 5, day, 9, 0, tzinfo=timezone.utc),
            )
            cls.dovecot.append(cls.login, "INBOX", raw)
            earlier.append(message_id)
        cls.account._sync()
        cls.thread = cls.env["pipemail.thread"].search([("account_id", "=", cls.account.id)])
        assert len(cls.thread) == 1 and cls.thread.message_count == 3, cls.thread

    def _older(self, message_id):
        message = self.message(self.account, message_id)
        self.assertEqual(message.thread_id, self.thread)
        return message.with_user(self.sender)

    def _composer(self, message, mode):
        action = message.action_pipemail_compose(mode)
        return Form(
            self.env[action["res_model"]].with_user(self.sender).with_context(**action["context"])
        )

    def test_reply_all_to_an_older_message(self):
        older = self._older("m2@acme.example")
        composer = self._composer(older, "reply_all")
        self.assertEqual(composer.parent_message_id, older)
        self.assertEqual(composer.subject, "Re: Forty chairs")
        self.assertEqual(composer.email_to, "Bob Buyer <bob@acme.example>")
        self.assertEqual(composer.email_cc, "Dan <dan@acme.example>", "that email's recipients")
        quote = str(composer.quote_html)
        self.assertIn("SECONDBODY", quote)
        self.assertIn("Bob Buyer &lt;bob@acme.example&gt; wrote:", quote)
        self.assertNotIn("LATESTBODY", str(composer.body), "the latest email is not quoted")
        composer.body = "<p>Fifty it is.</p>" + quote
        wizard = composer.save()
        wizard.action_send()
        [received] = self.received(1)
        sent = parse(received.data)
        self.assertEqual(sent["In-Reply-To"], "<m2@acme.example>")
        self.assertEqual(sent["References"], "<m1@acme.example> <m2@acme.example>")
        self.assertEqual(sorted(received.rcpt_tos), ["bob@acme.example", "dan@acme.example"])
        self.assertIn("SECONDBODY", text_part(sent))
        self.assertNotIn("LATESTBODY", text_part(sent))
        outbox = wizard.outbox_id.sudo()
        self.assertEqual(outbox.parent_message_id, older)
        self.assertEqual(outbox.sent_message_id.thread_id, self.thread, "same conversation")
        self.assertEqual(self.thread.message_count, 4)

    def test_reply_and_forward_the_first_message(self):
        first = self._older("m1@acme.example")
        reply = self._composer(first, "reply")
        self.assertEqual(reply.email_to, "Bob Buyer <bob@acme.example>")
        self.assertFalse(reply.email_cc)
        self.assertIn("FIRSTBODY", str(reply.quote_html))
        self.assertNotIn("SECONDBODY", str(reply.body))

        forward = self._composer(first, "forward")
        self.assertEqual(forward.subject, "Fwd: Forty chairs")
        self.assertFalse(forward.email_to)
        self.assertIn("FIRSTBODY", str(forward.quote_html))
        self.assertNotIn("LATESTBODY", str(forward.body))
        forward.email_to = "Finance <finance@ourco.example>"
        wizard = forward.save()
        self.assertEqual(wizard.attachment_ids.mapped("name"), ["plan.pdf"], "that email's file")
        wizard.action_send()
        [received] = self.received(1)
        sent = parse(received.data)
        self.assertEqual(str(sent["Subject"]), "Fwd: Forty chairs")
        self.assertEqual(sent["In-Reply-To"], "<m1@acme.example>")
        self.assertEqual(sent["References"], "<m1@acme.example>")
        [attachment] = list(sent.iter_attachments())
        self.assertEqual(attachment.get_content(), b"%PDF plan")

    def test_someone_else_cannot_open_it(self):
        message = self.message(self.account, "m2@acme.example")
        # Sally cannot read Sam's unlinked conversation, so neither can she answer it
        with self.assertRaises(AccessError):
            message.with_user(self.sally).action_pipemail_compose("reply")
        # nor open the composer on it directly, even with a mailbox of her own
        self.new_mailbox(self.sally)
        with self.assertRaises(AccessError):
            self.env["pipemail.compose"].with_user(self.sally).with_context(
                default_thread_id=self.thread.id,
                default_mode="reply",
                default_parent_message_id=message.id,
            ).default_get(["thread_id", "parent_message_id"])


@tagged("post_install", "-at_install")
class TestConversationComposeButtons(PipemailWorldMixin, HttpCase):
    """The reader in headless Chromium: each opened message has its own Reply, and it
    quotes that message; who does not hold the conversation sees no button."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()
        cls.thread = cls.threads["p_shared"]
        cls.older = cls.env["pipemail.message"].create(
            {
                "thread_id": cls.thread.id,
                "account_id": cls.personal.id,
                "key": "msg-p_shared-older",
                "message_id_header": "older@customer.example",
                "subject": "Older",
                "email_from": "Olga Older <olga@customer.example>",
                "email_to": cls.personal.email,
                "date": "2024-04-20 10:00:00",
                "body_html": "<p>OLDERBODY</p>",
                "body_text": "OLDERBODY",
                "snippet": "OLDERBODY",
                "is_read": True,
            }
        )
        cls.middle = cls.older.copy(
            {
                "key": "msg-p_shared-middle",
                "message_id_header": "middle@customer.example",
                "date": "2024-04-25 10:00:00",
                "body_html": "<p>MIDDLEBODY</p>",
                "snippet": "MIDDLEBODY",
            }
        )

    def _check_in_browser(self, url, user, steps):
        """Run ``steps`` (the body of an async function, with ``until``) as ``user``."""
        script = (
            """
            const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
            async function until(fn, what) {
                for (let i = 0; i < 150; i++) {
                    const found = fn();
                    if (found) { return found; }
                    await sleep(100);
                }
                throw new Error("never appeared: " + what);
            }
            (async () => {"""
            + steps
            + """
                console.log("test successful");
            })().catch((e) => console.error(e.message));
            """
        )
        self.browser_js(url, script, login=user.login, timeout=120)

    def test_reply_on_an_older_message_quotes_it(self):
        steps = """
            const card = await until(
                () => document.querySelector('.o_pipemail_message[data-message-id="OLDER_ID"]'),
                "the older message"
            );
            if (card.querySelector(".o_pipemail_reply")) {
                throw new Error("a folded message shows its buttons");
            }
            card.querySelector(".card-header").click();
            const reply = await until(() => card.querySelector(".o_pipemail_reply"), "Reply");
            for (const other of [".o_pipemail_reply_all", ".o_pipemail_forward"]) {
                if (!card.querySelector(other)) { throw new Error("missing " + other); }
            }
            reply.click();
            const dialog = await until(
                () => document.querySelector(".o_dialog .o_pipemail_compose"), "the composer"
            );
            const editor = await until(
                () => dialog.querySelector(".odoo-editor-editable"), "the editor"
            );
            const quote = await until(
                () => editor.textContent.includes("wrote:") && editor.textContent, "the quote"
            );
            if (!quote.includes("OLDERBODY") || !quote.includes("Olga Older")) {
                throw new Error("not the older message quoted: " + quote);
            }
            if (dialog.textContent.includes("CANARYP_SHAREDBODY")) {
                throw new Error("the latest message quoted too");
            }
            const subject = dialog.querySelector("div[name=subject] input").value;
            if (subject !== "Re: Older") {
                throw new Error("subject: " + subject);
            }
        """.replace("OLDER_ID", str(self.older.id))
        self._check_in_browser(
            f"/odoo/action-pipemail_sync.pipemail_thread_action_inbox/{self.thread.id}",
            self.owner,
            steps,
        )

    def test_no_buttons_for_who_reads_it_through_the_lead(self):
        steps = """
            await until(
                () => document.querySelector(".o_pipemail_conversation .o_pipemail_body"),
                "the conversation"
            );
            const buttons = ".o_pipemail_reply, .o_pipemail_reply_all, .o_pipemail_forward";
            if (document.querySelector(buttons)) {
                throw new Error("compose buttons for a reader who does not hold it");
            }
        """
        self._check_in_browser(f"/odoo/pipemail.thread/{self.thread.id}", self.outsider, steps)
