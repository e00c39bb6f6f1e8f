"""Gmail through Odoo, against the scripted Gmail peer (``tests/scripted_imap_peer.py``).

Dovecot cannot behave like Gmail (labels as folders, one message under a UID in every
folder it shows in, X-GM-MSGID / X-GM-THRID / X-GM-LABELS), so these tests point a
``pipemail.account`` at the repository's ScriptedImapPeer — a small in-memory IMAP
server that impersonates Gmail, clearly not a real one — and check what the sync and
the write-backs leave in Odoo and on the peer. The engine detects Gmail by the
server's X-GM-EXT-1 capability, so a plain IMAP/password account is enough.
"""

from odoo import Command
from odoo.tests import TransactionCase, new_test_user, tagged

from .common import TEST_SECRET_KEY, make_mail, set_class_config

try:
    from tests.scripted_imap_peer import GMAIL_ALL, GMAIL_SENT, ScriptedImapPeer
except ImportError:  # pragma: no cover - only without the repository next to the addon
    ScriptedImapPeer = None
    GMAIL_ALL = GMAIL_SENT = ""

LOGIN, PASSWORD = "sally@ourco.example", "gmail-peer-secret"
LABEL = "Clients/ACME"


@tagged("post_install", "-at_install")
class TestGmailSync(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if ScriptedImapPeer is None:
            cls.skipTest(cls, "tests/ not importable: run with the repository on PYTHONPATH")
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls.env = cls.env(
            context=dict(cls.env.context, tracking_disable=True, mail_create_nolog=True)
        )
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
        cls.sally = new_test_user(
            cls.env,
            "pm_gmail_sally",
            email=LOGIN,
            groups="sales_team.group_sale_salesman_all_leads",
            company_id=cls.env.company.id,
            company_ids=[Command.set(cls.env.company.ids)],
        )

    def setUp(self):
        super().setUp()
        # one peer per test: every test starts from an empty mailbox
        self.peer = ScriptedImapPeer("gmail", users={LOGIN: PASSWORD})
        self.addCleanup(self.peer.stop)
        self.mb = self.peer.mailbox

    # ------------------------------------------------------------------ helpers

    def connect(self, sync_every_folder=False):
        account = self.env["pipemail.account"].create(
            {
                "name": LOGIN,
                "email": LOGIN,
                "username": LOGIN,
                "password": PASSWORD,
                "provider": "imap",
                "imap_host": self.peer.host,
                "imap_port": self.peer.port,
                "imap_security": "none",
                "user_id": self.sally.id,
                "history": "all",
            }
        )
        account._action_test_connection()
        self.assertEqual(account.state, "connected", account.last_error)
        if sync_every_folder:
            # a user ticking Inbox and a label folder too must still get one record each
            account.folder_ids.write({"sync": True})
        return account

    def sync(self, account):
        self.assertTrue(account._sync(), account.last_error)
        account.invalidate_recordset()
        self.env.invalidate_all()
        self.assertEqual(account.state, "connected", account.last_error)
        self.assertFalse(account.last_error)

    def messages(self, account):
        return (
            self.env["pipemail.message"]
            .with_context(active_test=False)
            .search([("account_id", "=", account.id)])
        )

    def record_of(self, account, peer_message):
        found = self.messages(account).filtered(lambda m: m.key == f"gm:{peer_message.gm_msgid}")
        self.assertEqual(len(found), 1, f"one record for X-GM-MSGID {peer_message.gm_msgid}")
        return found

    @staticmethod
    def label_names(message):
        return set(message.label_ids.mapped("name"))

    # ------------------------------------------------------------------ tests

    def test_one_record_per_message_labels_and_gmail_threads(self):
        self.mb.create_folder(LABEL)
        quote = self.mb.deliver(
            make_mail(subject="Quote for 40 chairs", message_id="<q@acme.example>"),
            labels=[LABEL],
        )
        # no In-Reply-To / References and another subject: only X-GM-THRID joins it
        follow_up = self.mb.deliver(
            make_mail(subject="Delivery dates", message_id="<f@acme.example>"), thread_of=quote
        )
        sent = self.mb.deliver(
            make_mail(
                subject="Our offer",
                sender=LOGIN,
                to="bob@acme.example",
                message_id="<o@ourco.example>",
            ),
            GMAIL_SENT,
            flags=["\\Seen"],
        )
        other = self.mb.deliver(make_mail(subject="Lunch?", message_id="<l@else.example>"))
        # the provider shows the quote in three folders, under three UIDs
        for folder in ("INBOX", LABEL, GMAIL_ALL):
            self.assertIsNotNone(self.mb.uid(quote, folder), folder)

        account = self.connect(sync_every_folder=True)
        self.assertIn(LABEL, account.folder_ids.mapped("name"))
        self.assertEqual(account.folder_ids.filtered(lambda f: f.name == GMAIL_ALL).role, "all")
        self.sync(account)

        messages = self.messages(account)
        self.assertEqual(len(messages), 4, "one record per Gmail message, not per folder")
        self.assertEqual(
            sorted(messages.mapped("key")),
            sorted(f"gm:{m.gm_msgid}" for m in (quote, follow_up, sent, other)),
        )
        # each record sits at its All Mail UID only: Inbox and label folders are labels
        for peer_message in (quote, follow_up, sent, other):
            location = self.record_of(account, peer_message).location_ids
            self.assertEqual(location.folder_id.name, GMAIL_ALL)
            self.assertEqual(location.uid, self.mb.uid(peer_message, GMAIL_ALL))
        opened = [e.args for e in self.peer.commands("SELECT") + self.peer.commands("EXAMINE")]
        self.assertTrue(opened)
        self.assertTrue(all(args.startswith(GMAIL_ALL) for args in opened), opened)

        # labels come through as pipemail.label records of this mailbox
        self.assertEqual(self.label_names(self.record_of(account, quote)), {"\\Inbox", LABEL})
        self.assertEqual(self.label_names(self.record_of(account, sent)), {"\\Sent"})
        self.assertEqual(self.label_names(self.record_of(account, other)), {"\\Inbox"})
        labels = self.env["pipemail.label"].search([("account_id", "=", account.id)])
        self.assertEqual(set(labels.mapped("name")), {"\\Inbox", "\\Sent", LABEL})
        self.assertTrue(self.record_of(account, sent).is_read)
        self.assertEqual(self.record_of(account, sent).direction, "out")

        # conversations follow X-GM-THRID
        thread = self.record_of(account, quote).thread_id
        self.assertEqual(self.record_of(account, follow_up).thread_id, thread)
        self.assertEqual(thread.message_count, 2)
        self.assertIn(LABEL, thread.label_ids.mapped("name"))
        others = (self.record_of(account, sent) | self.record_of(account, other)).thread_id
        self.assertEqual(len(others), 2)
        self.assertNotIn(thread, others)

        # a second run adds nothing, even with Inbox and the label folder ticked
        self.sync(account)
        self.assertEqual(len(self.messages(account)), 4)
        self.assertEqual(len(self.messages(account).location_ids), 4)

    def test_label_and_read_changes_on_the_server_come_back(self):
        first = self.mb.deliver(make_mail(subject="First", message_id="<1@acme.example>"))
        second = self.mb.deliver(make_mail(subject="Second", message_id="<2@acme.example>"))
        account = self.connect()
        self.sync(account)
        self.assertFalse(self.record_of(account, first).is_read)

        # in Gmail's web UI: read and archive the first, label and star the second
        self.mb.add_flags(first, ["\\Seen"])
        self.mb.archive(first)
        self.mb.add_labels(second, ["Deals"])
        self.mb.add_flags(second, ["\\Flagged"])
        # label lists are compared as ids (a recordset compared with a command list
        # warned on every flag change and rewrote the labels each time)
        with self.assertNoLogs("py.warnings", "WARNING"):
            self.sync(account)

        record = self.record_of(account, first)
        self.assertTrue(record.is_read)
        self.assertFalse(record.thread_id.is_unread)
        self.assertEqual(self.label_names(record), set(), "archived: no \\Inbox label any more")
        self.assertFalse(record.removed, "archived is not deleted")
        self.assertEqual(record.location_ids.folder_id.name, GMAIL_ALL)
        record = self.record_of(account, second)
        self.assertEqual(self.label_names(record), {"\\Inbox", "Deals"})
        self.assertTrue(record.is_flagged)
        self.assertFalse(record.is_read)

        # and back again: unread, label removed
        self.mb.remove_flags(first, ["\\Seen"])
        self.mb.remove_labels(second, ["Deals"])
        self.sync(account)
        self.assertFalse(self.record_of(account, first).is_read)
        self.assertEqual(self.label_names(self.record_of(account, second)), {"\\Inbox"})
        self.assertEqual(len(self.messages(account)), 2)

        # deleted for good on the server: the record stays, marked removed
        self.mb.delete_forever(second)
        self.sync(account)
        self.assertTrue(self.record_of(account, second).removed)
        self.assertFalse(self.record_of(account, first).removed)

    def test_write_backs_reach_the_right_gmail_message(self):
        read_me = self.mb.deliver(make_mail(subject="Read me", message_id="<r@acme.example>"))
        archive_me = self.mb.deliver(make_mail(subject="Archive me", message_id="<a@acme.example>"))
        bystander = self.mb.deliver(make_mail(subject="Leave me", message_id="<b@acme.example>"))
        account = self.connect()
        self.sync(account)
        Writeback = self.env["pipemail.writeback"]

        self.record_of(account, read_me).thread_id.with_user(self.sally).action_mark_read()
        (row,) = Writeback.search([("account_id", "=", account.id), ("op", "=", "seen")])
        self.assertEqual(row.folder_id.name, GMAIL_ALL)
        self.assertEqual(row.uid, self.mb.uid(read_me, GMAIL_ALL))
        self.sync(account)
        self.assertEqual(row.state, "done", row.error)
        self.assertIn("\\Seen", read_me.flags)
        self.assertNotIn("\\Seen", archive_me.flags)
        self.assertNotIn("\\Seen", bystander.flags)
        record = self.record_of(account, read_me)
        self.assertTrue(record.is_read)
        self.assertIn("\\Seen", record.location_ids.flags)

        # archive: the row the CRM's archive must queue on Gmail, at the message's All
        # Mail UID (see test_archive_action_queues_the_gmail_message for the action)
        record = self.record_of(account, archive_me)
        thread = record.thread_id
        location = record.location_ids
        rows = Writeback.create(
            {
                "message_id": record.id,
                "account_id": account.id,
                "op": "archive",
                "folder_id": location.folder_id.id,
                "uidvalidity": location.uidvalidity,
                "uid": location.uid,
                "expect_key": record.key,
            }
        )
        thread.active = False
        self.sync(account)
        self.assertEqual(rows.state, "done", rows.error)
        # on Gmail archiving is dropping \Inbox; the message stays in All Mail
        self.assertNotIn("\\Inbox", archive_me.labels)
        self.assertIsNone(self.mb.uid(archive_me, "INBOX"))
        self.assertIsNotNone(self.mb.uid(archive_me, GMAIL_ALL))
        self.assertIn("\\Inbox", read_me.labels)
        self.assertIn("\\Inbox", bystander.labels)
        self.assertEqual(self.peer.commands("UID MOVE"), [])
        record = self.record_of(account, archive_me)
        self.assertFalse(record.removed)
        self.assertEqual(record.location_ids.folder_id.name, GMAIL_ALL)
        self.assertEqual(record.location_ids.uid, self.mb.uid(archive_me, GMAIL_ALL))
        self.assertNotIn("\\Inbox", self.label_names(record))
        self.assertFalse(record.thread_id.active)

        # a reply in the archived conversation brings it back, as in Gmail
        self.mb.deliver(
            make_mail(
                subject="Re: Archive me",
                message_id="<a2@acme.example>",
                in_reply_to="<a@acme.example>",
            ),
            thread_of=archive_me,
        )
        self.sync(account)
        self.assertTrue(record.thread_id.active)
        self.assertEqual(record.thread_id.message_count, 2)
        self.assertEqual(len(self.messages(account)), 4)

    def test_archive_action_queues_the_gmail_message(self):
        message = self.mb.deliver(make_mail(subject="Archive me", message_id="<a@acme.example>"))
        account = self.connect()
        self.sync(account)
        thread = self.record_of(account, message).thread_id
        thread.with_user(self.sally).action_archive_remote()
        self.assertFalse(thread.active)
        rows = self.env["pipemail.writeback"].search(
            [("account_id", "=", account.id), ("op", "=", "archive")]
        )
        self.assertEqual(len(rows), 1, "archiving a Gmail conversation queues its message")
        self.assertEqual(rows.uid, self.mb.uid(message, GMAIL_ALL))
        self.sync(account)
        self.assertEqual(rows.state, "done", rows.error)
        self.assertNotIn("\\Inbox", message.labels)
