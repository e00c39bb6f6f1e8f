"""Drafts: kept as the composer is saved, reopened exactly as left, gone once sent or
discarded, and nobody's but their writer's."""

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import make_mail
from .outbound_common import PipemailOutboundCase, parse


@tagged("post_install", "-at_install")
class TestDrafts(PipemailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.colleague = new_test_user(
            cls.env,
            "pm_draft_colleague",
            groups="sales_team.group_sale_salesman_all_leads",
            email="colleague@ourco.example",
        )
        cls.env["pipemail.account"].create(
            {
                "name": "Colleague's mailbox",
                "email": "colleague@ourco.example",
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "smtp_port": cls.sink.port,
                "smtp_security": "none",
                "user_id": cls.colleague.id,
            }
        )
        cls.portal = new_test_user(cls.env, "pm_draft_portal", groups="base.group_portal")
        cls.lead = cls.env["crm.lead"].create(
            {"name": "Forty chairs", "partner_id": cls.customer.id, "user_id": cls.sender.id}
        )
        cls.template = cls.env["mail.template"].create(
            {
                "name": "Offer",
                "model_id": cls.env.ref("crm.model_crm_lead").id,
                "subject": "Offer for {{ object.name }}",
                "body_html": "<p>Dear customer,</p>",
            }
        )

    def write_draft(self, **vals):
        upload = (
            self.env["ir.attachment"]
            .with_user(self.sender)
            .create({"name": "plan.pdf", "raw": b"%PDF plan", "res_model": "pipemail.compose"})
        )
        values = {
            "email_cc": "boss@customer.example",
            "subject": "Chairs",
            "body": "<p>First words</p>",
            "tracking": False,
            "template_id": self.template.id,
            "attachment_ids": [(6, 0, upload.ids)],
        }
        values.update(vals)
        composer = self.compose(res_model="crm.lead", res_id=self.lead.id).create(values)
        result = composer.action_save_draft()
        return composer, self.env["pipemail.draft"].with_user(self.sender).browse(
            result["draft_id"]
        )

    def test_saved_and_reopened_as_left(self):
        composer, draft = self.write_draft()
        self.assertEqual(composer.draft_id, draft)
        composer.write({"body": "<p>First words, then more</p>", "subject": "Chairs, v2"})
        composer.action_save_draft()
        drafts = self.env["pipemail.draft"].with_user(self.sender).search([])
        self.assertEqual(drafts, draft, "one draft per composer, saved over")
        self.assertEqual(draft.subject, "Chairs, v2")

        # another browser, after a restart: a new composer from the stored draft
        action = draft.action_open()
        again = self.env["pipemail.compose"].with_user(self.sender).browse(action["res_id"])
        self.assertEqual(again.draft_id, draft)
        for name in ("email_to", "email_cc", "subject", "tracking", "account_id", "template_id"):
            self.assertEqual(again[name], composer[name], name)
        self.assertEqual(again.lead_id, self.lead)
        self.assertIn("then more", str(again.body))
        self.assertEqual(again.attachment_ids.mapped("name"), ["plan.pdf"])
        self.assertEqual(again.attachment_ids.raw, b"%PDF plan")

        # sent from there: it arrives once, with its file, and the draft is gone
        again.action_send()
        [received] = self.received(1)
        [attachment] = list(parse(received.data).iter_attachments())
        self.assertEqual(attachment.get_content(), b"%PDF plan")
        self.assertFalse(draft.exists())
        self.assertFalse(again.action_save_draft(), "a later autosave keeps nothing")
        self.assertFalse(self.env["pipemail.draft"].with_user(self.sender).search([]))

    def test_reply_draft_shown_in_its_conversation(self):
        self.deliver(
            self.login,
            make_mail(subject="Chairs?", message_id="<c1@customer.example>", to=self.account.email),
        )
        self.sync(self.account)
        thread = self.threads(self.account).filtered(lambda t: t.subject == "Chairs?")
        reply = self.compose(thread_id=thread.id, mode="reply").create({"body": "<p>Yes</p>"})
        draft = self.env["pipemail.draft"].browse(reply.action_save_draft()["draft_id"])
        self.assertEqual(draft.sudo().thread_id, thread)
        self.assertEqual(thread.with_user(self.sender).my_draft_count, 1)
        self.assertEqual(thread.with_user(self.colleague).my_draft_count, 0)
        action = thread.with_user(self.sender).action_open_my_draft()
        again = self.env["pipemail.compose"].browse(action["res_id"])
        self.assertEqual((again.mode, again.thread_id), ("reply", thread))
        self.assertEqual(again.email_to, reply.email_to)

    def test_discard_deletes_draft_and_its_files(self):
        composer, draft = self.write_draft()
        files = draft.sudo().attachment_ids
        composer.action_discard_draft()
        self.assertFalse(draft.exists())
        self.assertFalse(files.exists())
        self.assertEqual(self.sink.attempts, 0)

    def test_drafts_are_their_writers_only(self):
        composer, draft = self.write_draft()
        for user in (self.colleague, self.portal):
            other = self.env["pipemail.draft"].with_user(user)
            if user == self.colleague:
                self.assertFalse(other.search([]))
            else:
                with self.assertRaises(AccessError):
                    other.search([])
            for call in (
                lambda o: o.browse(draft.id).read(["subject", "body", "email_to"]),
                lambda o: o.browse(draft.id).action_open(),
                lambda o: o.browse(draft.id).action_discard(),
                lambda o: o.browse(draft.id).unlink(),
                lambda o: o.browse(draft.id).write({"subject": "x"}),
                lambda o: o.create({"user_id": o.env.uid, "subject": "x"}),
                lambda o: composer.with_env(o.env).action_save_draft(),
                lambda o: composer.with_env(o.env).action_discard_draft(),
                lambda o: composer.with_env(o.env).action_send(),
            ):
                with self.subTest(user=user.login), self.assertRaises(AccessError):
                    call(other)
        # a composer of their own cannot be pointed at someone else's draft
        mine = self.compose(user=self.colleague).create({"email_to": "x@y.example"})
        with self.assertRaises(AccessError):
            mine.write({"draft_id": draft.id})
        with self.assertRaises(AccessError):
            self.compose(user=self.colleague).create({"draft_id": draft.id})
        self.assertEqual(draft.sudo().subject, "Chairs")
        self.assertEqual(self.sink.attempts, 0)


@tagged("post_install", "-at_install")
class TestDraftsInTheMailbox(PipemailOutboundCase):
    """A draft's copy in the mailbox's Drafts folder (a real Dovecot): written a little
    after a save, one copy at a time as the person goes on writing, removed when the
    draft is sent or discarded; never for a team mailbox; nobody's to touch over RPC."""

    def setUp(self):
        super().setUp()
        # the class shares one Dovecot mailbox: each test starts from an empty Drafts
        left = [row["uid"] for row in self.dovecot.fetch_state(self.login, "Drafts")]
        if left:
            self.dovecot.expunge(self.login, "Drafts", left)

    def drafts(self):
        return self.dovecot.fetch_state(self.login, "Drafts")

    def run_copies(self):
        self.env["pipemail.draft.copy"]._cron_draft_copies()

    def save(self, composer):
        return self.env["pipemail.draft"].browse(composer.action_save_draft()["draft_id"])

    def test_copy_follows_the_draft(self):
        composer = self.compose().create(
            {"subject": "Chairs", "body": "<p>First words</p>", "email_to": "carla@"}
        )
        draft = self.save(composer)
        self.assertEqual(self.drafts(), [], "nothing before the cron's round")
        self.run_copies()
        [first] = self.drafts()
        self.assertEqual(first["flags"], {"\\Draft", "\\Seen"})
        raw = self.dovecot.fetch_raw(self.login, "Drafts", first["uid"])
        self.assertIn(b"Subject: Chairs", raw)
        self.assertIn(b"First words", raw)
        self.assertNotIn(b"carla@", raw, "half an address is left out")
        self.run_copies()
        self.assertEqual(len(self.drafts()), 1, "unchanged: not written again")

        # written on (in real life a later transaction; a test runs in one, its clock
        # stopped: the copy is made older instead): replaced, not added to
        self.env.cr.execute(
            "UPDATE pipemail_draft_copy SET saved_version = saved_version - interval '1 minute'"
        )
        composer.write({"email_to": "carla@customer.example", "body": "<p>Second words</p>"})
        composer.action_save_draft()
        self.run_copies()
        [second] = self.drafts()
        self.assertNotEqual(second["uid"], first["uid"])
        raw = self.dovecot.fetch_raw(self.login, "Drafts", second["uid"])
        self.assertIn(b"Second words", raw)
        self.assertIn(b"carla@customer.example", raw)
        # the sync of the Drafts folder does not take the CRM's own draft for mail
        drafts_folder = self.env["pipemail.folder"].search(
            [("account_id", "=", self.account.id), ("name", "=", "Drafts")]
        ) or self.env["pipemail.folder"].create(
            {"account_id": self.account.id, "name": "Drafts", "role": "drafts", "sync": True}
        )
        drafts_folder.sync = True
        self.assertTrue(self.sync(self.account))
        self.assertFalse(
            self.env["pipemail.message"].search([("subject", "=", "Chairs")]),
            "a draft is not synced as mail",
        )

        # sent: its copy goes
        composer.action_send()
        self.assertFalse(draft.exists())
        self.run_copies()
        self.assertEqual(self.drafts(), [])
        self.assertFalse(self.env["pipemail.draft.copy"].search([]))

    def test_discarded_or_turned_off_and_team_mailboxes(self):
        composer = self.compose().create({"subject": "Tables", "body": "<p>x</p>"})
        draft = self.save(composer)
        self.run_copies()
        self.assertEqual(len(self.drafts()), 1)
        draft.with_user(self.sender).action_discard()
        self.run_copies()
        self.assertEqual(self.drafts(), [])

        # the option off: no copy
        self.account.drafts_to_mailbox = False
        other = self.save(self.compose().create({"subject": "Lamps", "body": "<p>y</p>"}))
        self.run_copies()
        self.assertEqual(self.drafts(), [])
        self.assertFalse(self.env["pipemail.draft.copy"].search([("draft_id", "=", other.id)]))

        # a team mailbox's Drafts folder is the team's: never
        self.account.write({"drafts_to_mailbox": True, "kind": "team"})
        self.save(self.compose().create({"subject": "Desks", "body": "<p>z</p>"}))
        self.run_copies()
        self.assertEqual(self.drafts(), [])

    def test_copies_are_the_servers(self):
        composer = self.compose().create({"subject": "Chairs", "body": "<p>x</p>"})
        self.save(composer)
        copy = self.env["pipemail.draft.copy"].search([])
        self.assertEqual(len(copy), 1)
        Copy = self.env["pipemail.draft.copy"].with_user(self.sender)
        with self.assertRaises(AccessError):
            Copy.search([])
        with self.assertRaises(AccessError):
            Copy.create({"account_id": self.account.id, "uid": 1})
        with self.assertRaises(AccessError):
            copy.with_user(self.sender).write({"uid": 7})
        with self.assertRaises(AccessError):
            copy.with_user(self.sender).unlink()
        # the mailbox's option is its owner's (and the admins'): not a colleague's
        colleague = new_test_user(
            self.env, "pm_copy_colleague", groups="sales_team.group_sale_salesman_all_leads"
        )
        with self.assertRaises(AccessError):
            self.account.with_user(colleague).write({"drafts_to_mailbox": False})
        self.account.with_user(self.sender).write({"drafts_to_mailbox": False})
        self.assertFalse(self.account.drafts_to_mailbox)
