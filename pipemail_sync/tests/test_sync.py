import os
from datetime import datetime, timezone
from pathlib import Path
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import config

from pipemail import writeback as pm_writeback
from pipemail.imap import ImapSession

from .common import PipemailDovecotCase, make_mail

# the real-world corpus (docs/corpus.md): PIPEMAIL_CORPUS, else shared/corpus beside the checkout
CORPUS = Path(
    os.environ.get("PIPEMAIL_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)


@tagged("post_install", "-at_install")
class TestSync(PipemailDovecotCase):
    def test_initial_sync_threads_messages_attachments(self):
        login, account = self.new_mailbox()
        first = make_mail(
            subject="Quote for 40 chairs",
            message_id="<q1@acme.example>",
            html='<p onclick="steal()">Our <b>offer</b></p><script>alert(1)</script>'
            '<img src="cid:logo@acme">',
            attachments=[("quote.pdf", b"%PDF-1.4 quote", "application/pdf")],
        )
        reply = make_mail(
            subject="Re: Quote for 40 chairs",
            sender="sally@ourco.example",
            to="Bob Buyer <bob@acme.example>",
            message_id="<r1@ourco.example>",
            in_reply_to="<q1@acme.example>",
        )
        self.deliver(login, first)
        self.deliver(login, reply, folder="Sent", flags=["\\Seen"])
        self.deliver(login, make_mail(subject="Lunch?", message_id="<l1@else.example>"))

        self.assertTrue(self.sync(account))
        self.assertEqual(account.state, "connected")
        self.assertFalse(account.last_error)
        self.assertTrue(account.last_sync)
        self.assertEqual(account.progress, 100)

        threads = self.threads(account)
        self.assertEqual(len(threads), 2)
        quote = threads.filtered(lambda t: t.message_count == 2)
        self.assertEqual(quote.subject, "Quote for 40 chairs")
        self.assertTrue(quote.is_unread)
        self.assertTrue(quote.has_attachments)
        self.assertIn("bob@acme.example", quote.participant_emails)

        incoming = self.message(account, "q1@acme.example")
        self.assertEqual(incoming.direction, "in")
        self.assertEqual(incoming.thread_id, quote)
        self.assertNotIn("<script", incoming.body_html)
        self.assertNotIn("onclick", incoming.body_html)
        self.assertIn("<b>offer</b>", incoming.body_html)
        attachment = incoming.attachment_ids
        self.assertEqual(attachment.mapped("name"), ["quote.pdf"])
        self.assertEqual(attachment.raw, b"%PDF-1.4 quote")
        self.assertEqual(attachment.res_model, "pipemail.message")
        location = incoming.location_ids
        self.assertEqual(location.folder_id.name, "INBOX")
        self.assertEqual(location.uid, 1)
        self.assertTrue(location.uidvalidity)

        outgoing = self.message(account, "r1@ourco.example")
        self.assertEqual(outgoing.direction, "out")
        self.assertTrue(outgoing.is_read)
        self.assertEqual(outgoing.location_ids.folder_id.role, "sent")

        # a second run finds nothing new and duplicates nothing
        self.assertTrue(self.sync(account))
        self.assertEqual(
            self.env["pipemail.message"].search_count([("account_id", "=", account.id)]), 3
        )

    def test_new_mail_and_reply_before_parent(self):
        login, account = self.new_mailbox()
        self.deliver(
            login,
            make_mail(
                subject="Re: Plan",
                message_id="<child@x.example>",
                in_reply_to="<parent@x.example>",
            ),
        )
        self.sync(account)
        self.deliver(login, make_mail(subject="Plan", message_id="<parent@x.example>"))
        self.sync(account)
        threads = self.threads(account)
        self.assertEqual(len(threads), 1, "the late parent joins its reply's conversation")
        self.assertEqual(threads.message_count, 2)

    def test_one_copy_per_owner(self):
        """The same email in two users' mailboxes is two records, never dropped."""
        colleague = new_test_user(
            self.env,
            "pm_colin",
            email="colin@ourco.example",
            groups="sales_team.group_sale_salesman",
        )
        login_a, account_a = self.new_mailbox()
        login_b, account_b = self.new_mailbox(user=colleague)
        raw = make_mail(
            subject="To both of you",
            to="sally@ourco.example, colin@ourco.example",
            message_id="<shared@acme.example>",
        )
        self.deliver(login_a, raw)
        self.deliver(login_b, raw)
        self.sync(account_a)
        self.sync(account_b)
        copies = self.env["pipemail.message"].search(
            [("message_id_header", "=", "shared@acme.example")]
        )
        self.assertEqual(len(copies), 2)
        self.assertEqual(copies.account_id, account_a | account_b)
        self.assertEqual(len(copies.thread_id), 2, "conversations never span mailboxes")
        self.assertEqual(copies.thread_id.owner_id, self.sally | colleague)

    def test_right_to_left_mail_is_marked(self):
        login, account = self.new_mailbox()
        self.deliver(
            login,
            make_mail(
                subject="مرحبا", message_id="<ar@x.example>", body="مرحبا، نود الحصول على عرض سعر"
            ),
        )
        self.deliver(login, make_mail(subject="Hello", message_id="<en@x.example>"))
        self.sync(account)
        self.assertEqual(self.message(account, "ar@x.example").text_direction, "rtl")
        self.assertEqual(self.message(account, "en@x.example").text_direction, "ltr")

    def test_duplicate_and_missing_message_ids_are_kept(self):
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="One", message_id="<dup@x.example>", body="first"))
        self.deliver(login, make_mail(subject="Two", message_id="<dup@x.example>", body="second"))
        raw = make_mail(subject="No id", body="anonymous")
        raw = b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b"Message-ID"))
        self.deliver(login, raw)
        self.sync(account)
        messages = self.env["pipemail.message"].search([("account_id", "=", account.id)])
        self.assertEqual(len(messages), 3)
        self.assertEqual(sorted(messages.mapped("subject")), ["No id", "One", "Two"])

    def test_corpus_every_message_stored(self):
        """Every message of the shared corpus ends up in Odoo: rendered, or raw with a
        note; the account stays healthy."""
        # every file but licences and notes; an empty file is not a message (IMAP
        # refuses to store zero bytes), so it cannot reach a mailbox at all
        files = sorted(
            p
            for p in CORPUS.rglob("*")
            if p.is_file()
            and p.suffix != ".md"
            and "LICENSE" not in p.name
            and p.stat().st_size > 0
        )
        if not files:
            self.skipTest(f"no corpus at {CORPUS}")
        login, account = self.new_mailbox()
        uids = self.dovecot.append_many(login, "INBOX", [p.read_bytes() for p in files])
        self.assertEqual(len(uids), len(files))
        self.sync(account)
        self.assertEqual(account.state, "connected", account.last_error)
        messages = self.env["pipemail.message"].search([("account_id", "=", account.id)])
        stored_uids = set(messages.location_ids.mapped("uid"))
        missing = [str(f) for f, uid in zip(files, uids, strict=True) if uid not in stored_uids]
        self.assertFalse(missing, "corpus messages missing from Odoo")
        for message in messages.filtered("parse_error"):
            self.assertTrue(
                message.raw_attachment_id, "a message read with errors keeps its original"
            )
        # what is stored is valid, sanitized text
        for message in messages:
            self.assertNotIn("<script", str(message.body_html or "").lower())

    def test_blocklist_and_skip_internal(self):
        login, account = self.new_mailbox(
            blocklist="boss@secret.example\n@bank.example", skip_internal=True
        )
        self.deliver(login, make_mail(subject="Secret", sender="boss@secret.example"))
        self.deliver(login, make_mail(subject="Statement", sender="noreply@bank.example"))
        self.deliver(
            login,
            make_mail(subject="Team lunch", sender="colin@ourco.example", to="sally@ourco.example"),
        )
        self.deliver(login, make_mail(subject="Customer", sender="bob@acme.example"))
        self.company.email = "info@ourco.example"
        self.sync(account)
        subjects = (
            self.env["pipemail.message"].search([("account_id", "=", account.id)]).mapped("subject")
        )
        self.assertEqual(subjects, ["Customer"])

    # ------------------------------------------------------------------ two-way

    def test_writeback_read_unread_archive_delete(self):
        login, account = self.new_mailbox()
        account.folder_ids.filtered(lambda f: f.name == "Archive").sync = True
        uid_a = self.deliver(login, make_mail(subject="Read me", message_id="<a@x.example>"))
        self.deliver(login, make_mail(subject="Archive me", message_id="<b@x.example>"))
        self.deliver(login, make_mail(subject="Delete me", message_id="<c@x.example>"))
        self.sync(account)
        read_me = self.message(account, "a@x.example").thread_id
        archive_me = self.message(account, "b@x.example").thread_id
        delete_me = self.message(account, "c@x.example").thread_id
        lead = self.env["crm.lead"].create({"name": "Chairs"})
        archive_me.action_link(lead)

        read_me.with_user(self.sally).action_mark_read()
        self.assertFalse(read_me.is_unread)
        archive_me.with_user(self.sally).action_archive_remote()
        delete_me.with_user(self.sally).action_delete_remote()
        self.assertFalse(archive_me.active)
        self.sync(account)

        inbox = {row["message_id"]: row for row in self.dovecot.fetch_state(login, "INBOX")}
        self.assertIn("\\Seen", inbox["<a@x.example>"]["flags"])
        self.assertNotIn("<b@x.example>", inbox)
        self.assertNotIn("<c@x.example>", inbox)
        archived = [r["message_id"] for r in self.dovecot.fetch_state(login, "Archive")]
        trashed = [r["message_id"] for r in self.dovecot.fetch_state(login, "Trash")]
        self.assertEqual(archived, ["<b@x.example>"])
        self.assertEqual(trashed, ["<c@x.example>"])
        rows = self.env["pipemail.writeback"].search([("account_id", "=", account.id)])
        self.assertEqual(set(rows.mapped("state")), {"done"})

        # the archived message is the same record, now in Archive, still linked
        message = self.message(account, "b@x.example")
        self.assertEqual(message.location_ids.folder_id.name, "Archive")
        self.assertEqual(message.thread_id.lead_id, lead)
        self.assertFalse(message.removed)

        # unread from Odoo, then read again from the mail client
        read_me.with_user(self.sally).action_mark_unread()
        self.sync(account)
        flags = {r["uid"]: r["flags"] for r in self.dovecot.fetch_state(login, "INBOX")}
        self.assertNotIn("\\Seen", flags[uid_a])
        self.dovecot.add_flags(login, "INBOX", [uid_a], ["\\Seen"])
        self.sync(account)
        self.assertFalse(self.message(account, "a@x.example").thread_id.is_unread)

        # a reply to the archived conversation brings it back to the inbox
        self.deliver(
            login,
            make_mail(
                subject="Re: Archive me", message_id="<b2@x.example>", in_reply_to="<b@x.example>"
            ),
        )
        self.sync(account)
        self.assertTrue(archive_me.active)
        self.assertEqual(archive_me.message_count, 2)
        self.assertEqual(archive_me.lead_id, lead)

        # a retry of done write-backs does nothing more
        rows.write({"state": "pending"})
        self.sync(account)
        self.assertEqual(
            [r["message_id"] for r in self.dovecot.fetch_state(login, "Archive")], ["<b@x.example>"]
        )

    def test_client_move_keeps_record_and_link(self):
        login, account = self.new_mailbox()
        account.folder_ids.filtered(lambda f: f.name == "Archive").sync = True
        uid = self.deliver(login, make_mail(subject="Deal", message_id="<d@x.example>"))
        self.sync(account)
        message = self.message(account, "d@x.example")
        lead = self.env["crm.lead"].create({"name": "Deal"})
        message.thread_id.action_link(lead)
        self.dovecot.move(login, "INBOX", "Archive", [uid])
        self.sync(account)
        again = self.message(account, "d@x.example")
        self.assertEqual(again, message)
        self.assertEqual(again.location_ids.folder_id.name, "Archive")
        self.assertEqual(again.thread_id.lead_id, lead)
        # expunged everywhere: the record stays, marked removed
        self.dovecot.expunge(login, "Archive", "1:*")
        self.sync(account)
        self.assertTrue(message.removed)

    def test_uidvalidity_change_rekeys_without_duplicates(self):
        """RELIABILITY 4 in Odoo: same records, same links, no write-back to old UIDs."""
        login, account = self.new_mailbox()
        for n in range(3):
            self.deliver(login, make_mail(subject=f"Deal {n}", message_id=f"<v{n}@x.example>"))
        self.sync(account)
        message = self.message(account, "v0@x.example")
        lead = self.env["crm.lead"].create({"name": "Kept"})
        message.thread_id.action_link(lead)
        old_validity = message.location_ids.uidvalidity
        # a write-back queued before the server rebuilt the folder
        message.thread_id.with_user(self.sally).action_mark_read()
        pending = self.env["pipemail.writeback"].search([("message_id", "=", message.id)])
        self.assertEqual(pending.state, "pending")
        self.dovecot.set_uidvalidity(login, "INBOX", old_validity + 1000)
        self.sync(account)
        messages = self.env["pipemail.message"].search([("account_id", "=", account.id)])
        self.assertEqual(len(messages), 3, "no duplicates after the rebuild")
        self.assertEqual(self.message(account, "v0@x.example"), message)
        self.assertEqual(message.location_ids.uidvalidity, old_validity + 1000)
        self.assertEqual(message.thread_id.lead_id, lead)
        self.assertEqual(pending.state, "stale", "never written to an address of the old folder")
        # the read state is re-aimed at the message's new address and written next time
        self.sync(account)
        flags = {r["message_id"]: r["flags"] for r in self.dovecot.fetch_state(login, "INBOX")}
        self.assertIn("\\Seen", flags["<v0@x.example>"])
        self.assertNotIn("\\Seen", flags["<v1@x.example>"])

    def test_writeback_of_large_message_is_checked_from_its_header(self):
        """Mark-as-read of a 2 MB message: the Message-ID and size stored at sync time
        let the engine check the UID from the header, not by downloading the message."""
        login, account = self.new_mailbox()
        self.deliver(
            login, make_mail(subject="Big", message_id="<big@x.example>", body="x" * 2_000_000)
        )
        self.deliver(login, make_mail(subject="Small", message_id="<small@x.example>"))
        self.sync(account)
        message = self.message(account, "big@x.example")
        self.assertGreater(message.size, 2_000_000)
        message.thread_id.with_user(self.sally).action_mark_read()
        row = self.env["pipemail.writeback"].search([("message_id", "=", message.id)])
        self.assertEqual(row.state, "pending")

        fetched = []  # (uids, header_only, bytes received) of every content FETCH
        keyed = []  # UIDs the whole-message identity check was asked about
        real_fetch, real_keys = ImapSession.fetch_messages, pm_writeback.server_keys

        def fetch_messages(session, uids, *, header_only=False):
            got = real_fetch(session, uids, header_only=header_only)
            fetched.append((list(uids), header_only, sum(len(i.body or b"") for i in got.values())))
            return got

        def server_keys(session, uids, *, max_message_bytes):
            keyed.extend(uids)
            return real_keys(session, uids, max_message_bytes=max_message_bytes)

        with (
            patch.object(ImapSession, "fetch_messages", fetch_messages),
            patch.object(pm_writeback, "server_keys", server_keys),
        ):
            self.sync(account)

        self.assertEqual(row.state, "done", row.error)
        flags = {r["message_id"]: r["flags"] for r in self.dovecot.fetch_state(login, "INBOX")}
        self.assertIn("\\Seen", flags["<big@x.example>"])
        self.assertNotIn("\\Seen", flags["<small@x.example>"])
        self.assertEqual(keyed, [], "decided from the header: no whole-message check")
        self.assertEqual([(uids, header_only) for uids, header_only, _n in fetched], [([1], True)])
        self.assertLess(sum(n for *_rest, n in fetched), 10_000)

    def test_writeback_to_a_message_replaced_under_the_same_uid_is_stale(self):
        """The folder deleted and recreated with the same UIDVALIDITY, UID 2 now holding
        a copy with the same Message-ID, size and date but other bytes: the header
        check would take it for the same message; the sync sees the folder went back,
        checks the whole message, and leaves it alone."""
        login, account = self.new_mailbox()
        self.dovecot.create_mailbox(login, "Deals")
        account._action_test_connection()
        account.folder_ids.filtered(lambda f: f.name == "Deals").sync = True
        when = datetime(2024, 3, 4, 10, 0, tzinfo=timezone.utc)

        def deal(n, body):
            return make_mail(
                subject=f"Deal {n}", message_id=f"<deal{n}@x.example>", body=body, date=when
            )

        originals = [deal(n, f"original text {n}") for n in (1, 2, 3)]
        impostor = deal(2, "IMPOSTOR text 2")
        self.assertEqual(len(impostor), len(originals[1]))
        self.dovecot.append_many(login, "Deals", [(raw, (), when) for raw in originals])
        self.sync(account)
        target = self.message(account, "deal2@x.example")
        self.assertEqual(target.location_ids.uid, 2)
        uidvalidity = target.location_ids.uidvalidity
        target.thread_id.with_user(self.sally).action_mark_read()
        row = self.env["pipemail.writeback"].search([("message_id", "=", target.id)])
        self.assertEqual(row.state, "pending")

        self.dovecot.delete_mailbox(login, "Deals")
        self.dovecot.create_mailbox(login, "Deals")
        self.dovecot.set_uidvalidity(login, "Deals", uidvalidity)
        self.dovecot.append_many(login, "Deals", [(originals[0], (), when), (impostor, (), when)])
        self.sync(account)

        self.assertEqual(row.state, "stale")
        self.assertIn("Another message", row.error)
        state = self.dovecot.fetch_state(login, "Deals")
        self.assertEqual([r["uid"] for r in state], [1, 2])
        self.assertEqual([r["flags"] for r in state], [set(), set()], "nothing was marked read")
        # the impostor is a message of its own in Odoo, unread as on the server
        copies = self.message(account, "deal2@x.example")
        self.assertEqual(len(copies), 2)
        impostor_record = copies - target
        self.assertEqual(impostor_record.location_ids.uid, 2)
        self.assertFalse(impostor_record.is_read)
        self.assertFalse(target.location_ids)
        self.assertTrue(target.removed)

    # ------------------------------------------------------------------ health

    def test_wrong_password_marks_reconnect_without_retry_storm(self):
        login, account = self.new_mailbox()
        self.dovecot.set_password(login, "changed-elsewhere")
        with self.assertLogs(
            "odoo.addons.pipemail_sync.models.pipemail_account", "WARNING"
        ) as logs:
            self.assertFalse(self.sync(account))
        self.assertEqual(account.state, "reconnect")
        self.assertIn("password", account.last_error.lower())
        self.assertFalse(account.next_attempt)
        for line in logs.output:
            self.assertNotIn(login.password, line)
        activity = account.activity_ids
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, self.sally)
        # the cron does not pick it again until the user fixes it
        self.assertNotIn(account, self._due_accounts())
        self.assertFalse(self.sync(account))
        self.assertEqual(len(account.activity_ids), 1, "one notification, not one per attempt")

    def test_unreachable_server_backs_off(self):
        login, account = self.new_mailbox()
        self.dovecot.stop()
        try:
            self.assertFalse(self.sync(account))
        finally:
            self.dovecot.start()
        self.assertEqual(account.state, "error")
        self.assertTrue(account.last_error)
        self.assertTrue(account.next_attempt)
        self.assertNotIn(account, self._due_accounts())
        account.write({"next_attempt": False, "imap_port": self.dovecot.port})
        self.assertTrue(self.sync(account))
        self.assertEqual(account.state, "connected")
        self.assertEqual(account.fail_count, 0)

    def _due_accounts(self):
        found = self.env["pipemail.account"]
        for _i in range(5):
            account = self.env["pipemail.account"]._acquire_next()
            if not account:
                break
            found |= account
            account.sync_lock_until = "2999-01-01"
        return found

    def test_test_connection_explains(self):
        login, account = self.new_mailbox()
        account.state = "draft"
        result = account.with_user(self.sally).action_test_connection()
        self.assertEqual(result["params"]["type"], "success")
        self.assertEqual(account.state, "connected")
        self.assertIn("INBOX", account.folder_ids.mapped("name"))
        self.assertIn("archive", account.folder_ids.mapped("role"))
        account.password = "wrong"
        result = account.with_user(self.sally).action_test_connection()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("password", result["params"]["message"].lower())


@tagged("post_install", "-at_install")
class TestAccountSecurity(PipemailDovecotCase):
    def test_secret_encrypted_unreadable_not_copied(self):
        login, account = self.new_mailbox()
        self.env.flush_all()
        self.env.cr.execute("SELECT password_enc FROM pipemail_account WHERE id = %s", [account.id])
        stored = self.env.cr.fetchone()[0]
        self.assertTrue(stored.startswith("pm1:"))
        self.assertNotIn(login.password, stored)
        self.sally.groups_id |= self.env.ref("base.group_allow_export")
        as_sally = account.with_user(self.sally)
        self.assertFalse(as_sally.read(["password"])[0]["password"])
        with self.assertRaises(AccessError):
            as_sally.read(["password_enc"])
        with self.assertRaises(AccessError):
            as_sally.export_data(["password_enc"])
        self.assertEqual(as_sally.export_data(["password"])["datas"], [[""]])
        self.assertFalse(
            as_sally.search_read([("id", "=", account.id)], ["password"])[0]["password"]
        )
        # even an administrator reads only the write-only field
        self.assertFalse(account.read(["password"])[0]["password"])
        with self.assertRaises(UserError):
            account.copy()
        # the record is decrypted only with the key from the configuration
        self.assertEqual(account._get_secret("password"), login.password)

    def test_secret_key_missing_is_explained(self):
        login, account = self.new_mailbox()
        with (
            patch.dict(config.options, {"pipemail_secret_key": ""}),
            patch.dict(os.environ, {"PIPEMAIL_SECRET_KEY": ""}),
        ):
            with self.assertRaisesRegex(UserError, "pipemail_secret_key"):
                account.password = "new"

    def test_private_hosts_refused_unless_allowed(self):
        with patch.dict(os.environ, {"PIPEMAIL_ALLOW_PRIVATE_HOSTS": "0"}):
            for host in ("127.0.0.1", "169.254.169.254", "0x7f000001", "localhost"):
                with self.assertRaisesRegex(UserError, "not allowed"):
                    self.env["pipemail.account"].create(
                        {"name": "x", "email": "x@x.example", "imap_host": host, "imap_port": 993}
                    )
            self.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
            account = self.env["pipemail.account"].create(
                {"name": "x", "email": "x@x.example", "imap_host": "127.0.0.1", "imap_port": 10143}
            )
            self.assertTrue(account)
            # metadata stays refused even then
            with self.assertRaisesRegex(UserError, "not allowed"):
                account.imap_host = "169.254.169.254"

    def test_only_managers_create_mailboxes_for_others(self):
        other = self.env["res.users"].search([("login", "=", "admin")])
        with self.assertRaises(AccessError):
            self.env["pipemail.account"].with_user(self.sally).create(
                {"name": "x", "email": "x@ourco.example", "user_id": other.id}
            )
        with self.assertRaises(AccessError):
            self.env["pipemail.account"].with_user(self.sally).create(
                {"name": "x", "email": "x@ourco.example", "kind": "team"}
            )
        own = (
            self.env["pipemail.account"]
            .with_user(self.sally)
            .create({"name": "mine", "email": "sally@ourco.example"})
        )
        self.assertEqual(own.user_id, self.sally)
