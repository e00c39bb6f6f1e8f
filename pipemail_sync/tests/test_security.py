"""The attacker's view: what a colleague, a salesperson of another team, a portal user
and an internal user without sales rights can *do* with another user's ids.

The read paths are walked by test_visibility. Here every create and write path is:
a generated matrix over every relational field the three addons define (on their own
models and on the models they extend), tried over the ORM as each attacker with the
records of the owner's Private conversation, plus one test per class found by the
adversarial review (issue 9), each of which failed before its fix.
"""

import logging
from functools import partial

import psycopg2

from odoo import Command
from odoo.exceptions import AccessError, MissingError, UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged

from .common import TEST_SECRET_KEY, set_class_config
from .visibility_common import PipemailWorldMixin

_logger = logging.getLogger(__name__)

ADDONS = frozenset({"pipemail_sync", "pipemail_ai", "pipemail_campaigns"})
REFUSED = (AccessError, MissingError, UserError, ValidationError)
ATTACKERS = ("teammate", "outsider", "stranger", "manager", "other_co", "portal", "internal")
SALESPEOPLE = ("teammate", "outsider", "stranger", "manager")

# The expected answer of the matrix, for every (model, field, operation, attacker):
# "refused" (an error) or "ignored" (no error, and the attacker's record does not point
# at the victim's afterwards). "accepted" — the attacker's record now points at the
# victim's record — is never expected; an entry here would name the exception and why.
_ADMIN = "a sales manager is the email administrator: sets up mailboxes for their people"
EXPECTED_ACCEPTED = {
    ("pipemail.account", "user_id", "create", "manager"): _ADMIN,
    ("pipemail.account", "user_id", "write", "manager"): _ADMIN,
    ("pipemail.account", "member_ids", "create", "manager"): _ADMIN,
    ("pipemail.account", "member_ids", "write", "manager"): _ADMIN,
    ("pipemail.account", "-", "unlink", "manager"): _ADMIN + " and removes them",
}


class _Rollback(Exception):
    pass


@tagged("post_install", "-at_install", "pipemail_security")
class TestAttackerMatrix(PipemailWorldMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls._pipemail_world()
        env = cls.env
        cls.portal = new_test_user(env, "pm_portal", groups="base.group_portal")
        cls.internal = new_test_user(env, "pm_internal", groups="base.group_user")
        cls.users.update(portal=cls.portal, internal=cls.internal)
        cls.own = {key: cls._own_world(key) for key in SALESPEOPLE}
        cls.victims = cls._victim_world()

    # ------------------------------------------------------------------ the world

    @classmethod
    def _own_world(cls, key):
        """A mailbox of the attacker's own with a conversation, an email, a label, a
        folder and an attachment: what their writes legitimately start from."""
        env, user = cls.env, cls.users[key]
        account = env["pipemail.account"].create(
            {
                "name": f"{key} mailbox",
                "email": f"{key}@example.com",
                "user_id": user.id,
                "company_id": cls.company.id,
            }
        )
        label = env["pipemail.label"].create(
            {"name": f"{key} label", "account_id": account.id, "company_id": cls.company.id}
        )
        folder = env["pipemail.folder"].create({"account_id": account.id, "name": "Own folder"})
        thread = env["pipemail.thread"].create(
            {
                "account_id": account.id,
                "thread_key": f"own-{key}",
                "subject": f"{key} own conversation",
                "visibility": "shared",
            }
        )
        message = env["pipemail.message"].create(
            {
                "thread_id": thread.id,
                "account_id": account.id,
                "key": f"own-msg-{key}",
                "subject": f"{key} own email",
                "email_from": f"{key}@example.com",
            }
        )
        return {
            "pipemail.account": account,
            "pipemail.label": label,
            "pipemail.folder": folder,
            "pipemail.thread": thread,
            "pipemail.message": message,
        }

    @classmethod
    def _victim_world(cls):
        """The owner's records behind their Private conversation, machinery included."""
        env = cls.env
        thread, message = cls.threads["p_private"], cls.messages["p_private"]
        folder = env["pipemail.folder"].create(
            {"account_id": cls.personal.id, "name": "Victim folder", "role": "inbox", "sync": True}
        )
        location = env["pipemail.message.location"].create(
            {"message_id": message.id, "folder_id": folder.id, "uidvalidity": 1, "uid": 7}
        )
        writeback = env["pipemail.writeback"].create(
            {
                "message_id": message.id,
                "account_id": cls.personal.id,
                "op": "seen",
                "folder_id": folder.id,
                "uidvalidity": 1,
                "uid": 7,
            }
        )
        outbox = env["pipemail.outbox"].create(
            {
                "account_id": cls.personal.id,
                "user_id": cls.owner.id,
                "company_id": cls.company.id,
                "state": "sent",
                "subject": "CANARYP_PRIVATEOUTBOX",
                "thread_id": thread.id,
                "parent_message_id": message.id,
                "sent_message_id": message.id,
            }
        )
        link = env["pipemail.tracking.link"].create(
            {"outbox_id": outbox.id, "link_index": 0, "url": "https://example.com/secret"}
        )
        event = env["pipemail.tracking.event"].create(
            {"outbox_id": outbox.id, "kind": "open", "ts": "2024-05-01 10:00:00"}
        )
        ref = env["pipemail.thread.ref"].create(
            {"thread_id": thread.id, "account_id": cls.personal.id, "name": "<p@x>"}
        )
        suggestion = env["pipemail.link.suggestion"].create(
            {
                "thread_id": thread.id,
                "res_model": "crm.lead",
                "res_id": cls.lead.id,
                "score": 0.5,
                "reason": "CANARYP_PRIVATESUGGESTION",
            }
        )
        compose = env["pipemail.compose"].with_user(cls.owner).create({"email_to": "c@x.example"})
        return {
            "pipemail.account": cls.personal,
            "pipemail.thread": thread,
            "pipemail.message": message,
            "pipemail.label": thread.label_ids[:1],
            "pipemail.folder": folder,
            "pipemail.message.location": location,
            "pipemail.writeback": writeback,
            "pipemail.outbox": outbox,
            "pipemail.tracking.link": link,
            "pipemail.tracking.event": event,
            "pipemail.thread.ref": ref,
            "pipemail.link.suggestion": suggestion,
            "pipemail.compose": compose,
            "ir.attachment": cls.attachments["p_private"],
            "res.users": cls.owner,
        }

    # ------------------------------------------------------------------ the matrix

    def _addon_relational_fields(self):
        """(model, field) for every relational field the three addons define whose
        target is one of the victim's kinds of record."""
        for model_name in sorted(self.env.registry.models):
            Model = self.env[model_name]
            if Model._abstract:
                continue
            for name, field in sorted(Model._fields.items()):
                if field.type not in ("many2one", "many2many", "one2many"):
                    continue
                if field.comodel_name not in self.victims or field.related:
                    continue
                if not ADDONS & set(getattr(field, "_modules", ()) or ()):
                    continue
                yield model_name, name

    def _base_values(self, model_name, key):
        """Values with which the attacker may create a record of the model (None: the
        model is not theirs to create)."""
        own = self.own.get(key, {})
        return {
            "pipemail.account": {"name": "new", "email": f"{key}-new@example.com"},
            "pipemail.label": {"name": f"{key} new label"},
            "pipemail.compose": {"email_to": "someone@x.example"},
            "pipemail.link.wizard": {"thread_id": own["pipemail.thread"].id} if own else {},
        }.get(model_name, {})

    def _own_record(self, model_name, key):
        own = self.own.get(key)
        if not own:
            return None
        if model_name in own:
            return own[model_name]
        user = self.users[key]
        if model_name == "pipemail.compose":
            return self.env[model_name].with_user(user).create(self._base_values(model_name, key))
        if model_name == "pipemail.link.wizard":
            return self.env[model_name].with_user(user).create(self._base_values(model_name, key))
        if model_name == "res.partner":
            return user.partner_id
        if model_name == "res.users":
            return user
        if model_name == "crm.lead":
            return self.env["crm.lead"].create({"name": f"{key} lead", "user_id": user.id})
        return None

    @staticmethod
    def _value(field, victim):
        return victim.id if field.type == "many2one" else [Command.link(victim.id)]

    def _attempt(self, do, check):
        """Run one attack in a savepoint that is always rolled back; the outcome is
        'refused' (an error), 'accepted' (check() finds the victim referenced, or only
        a database constraint stopped the write) or 'ignored'."""
        outcome = None
        try:
            with self.env.cr.savepoint():
                try:
                    record = do()
                    record.env.flush_all()
                except REFUSED:
                    outcome = "refused"
                except psycopg2.Error:
                    # the ORM let it through; only the database's constraints stopped it
                    outcome = "accepted"
                else:
                    outcome = "accepted" if check(record) else "ignored"
                raise _Rollback
        except _Rollback:
            pass
        finally:
            self.env.invalidate_all()
        return outcome

    @staticmethod
    def _references(record, fname, victim):
        record.invalidate_recordset()
        return victim.id in record.sudo().with_context(active_test=False)[fname].ids

    @staticmethod
    def _write(record, vals):
        record.write(vals)
        return record

    @staticmethod
    def _unlink(record):
        record.unlink()
        return record

    @staticmethod
    def _gone(record, victim):
        return not victim.exists()

    def test_attack_matrix_create_write_unlink(self):
        results = {}
        pairs = list(self._addon_relational_fields())
        self.assertGreater(len(pairs), 40, "the walk found the addons' fields")
        for model_name, fname in pairs:
            field = self.env[model_name]._fields[fname]
            victim = self.victims[field.comodel_name]
            vals = {fname: self._value(field, victim)}
            for key in ATTACKERS:
                user = self.users[key]
                if model_name.startswith("pipemail."):
                    Model = self.env[model_name].with_user(user)
                    base = self._base_values(model_name, key)
                    results[model_name, fname, "create", key] = self._attempt(
                        partial(Model.create, {**base, **vals}),
                        partial(self._references, fname=fname, victim=victim),
                    )
                own = self._own_record(model_name, key)
                if own is not None:
                    results[model_name, fname, "write", key] = self._attempt(
                        partial(self._write, own.with_user(user), vals),
                        partial(self._references, fname=fname, victim=victim),
                    )
        # the victim's own records: nobody else deletes or rewrites them
        for model_name, victim in sorted(self.victims.items()):
            if not model_name.startswith("pipemail."):
                continue
            for key in ATTACKERS:
                target = victim.with_user(self.users[key])
                results[model_name, "-", "unlink", key] = self._attempt(
                    partial(self._unlink, target), partial(self._gone, victim=victim)
                )
        accepted = {k: v for k, v in results.items() if v == "accepted"}
        unexpected = {k for k in accepted if k not in EXPECTED_ACCEPTED}
        counts = {o: sum(1 for v in results.values() if v == o) for o in set(results.values())}
        _logger.info(
            "attack matrix: %d attempts over %d fields by %d attackers: %s",
            len(results),
            len(pairs),
            len(ATTACKERS),
            counts,
        )
        self.assertFalse(
            "\n".join(map(str, sorted(unexpected))),
            "an attacker's record points at the victim's, or the victim's record is gone",
        )
        self.assertEqual(set(accepted), set(EXPECTED_ACCEPTED), "the documented exceptions hold")

    # ------------------------------------------------------------------ the classes found

    def test_1_outbox_cannot_be_forged_or_retried(self):
        """Sending as a colleague: no outbox row by hand, no retry of someone else's."""
        bob = self.teammate
        with self.assertRaises(AccessError):
            self.env["pipemail.outbox"].with_user(bob).create(
                {
                    "account_id": self.personal.id,
                    "user_id": bob.id,
                    "company_id": self.company.id,
                    "raw_mime": "Rm9yZ2Vk",
                    "state": "failed",
                    "rcpt_pending": "x@evil.example",
                    "sent_copy_state": "pending",
                }
            )
        outbox = self.victims["pipemail.outbox"]
        outbox.sudo().write({"state": "failed"})
        for action in ("action_retry", "action_send_anyway", "action_mark_sent", "action_cancel"):
            with self.subTest(action=action), self.assertRaises(AccessError):
                getattr(outbox.with_user(bob), action)()
        self.assertEqual(outbox.state, "failed")

    def test_2_attachments_cannot_be_copied_out(self):
        """Attachments of emails the caller cannot read never reach their composer."""
        for key in ("teammate", "outsider", "manager"):
            for name in ("p_private", "t_private", "p_meta"):
                if self.access[name][key] == "full":
                    continue
                attachment = self.attachments[name]
                with self.subTest(user=key, thread=name), self.assertRaises(AccessError):
                    self.env["pipemail.compose"].with_user(self.users[key]).create(
                        {"email_to": "x@y.example", "attachment_ids": [Command.link(attachment.id)]}
                    )

    def test_2b_raw_mime_of_a_sent_email_cannot_be_attached(self):
        outbox = self.victims["pipemail.outbox"]
        outbox.sudo().raw_mime = self._b64(b"Subject: CANARYRAW\r\n\r\nsecret body")
        raw = (
            self.env["ir.attachment"]
            .sudo()
            .search(
                [
                    ("res_model", "=", "pipemail.outbox"),
                    ("res_id", "=", outbox.id),
                    ("res_field", "=", "raw_mime"),
                ]
            )
        )
        self.assertTrue(raw)
        for key in ("teammate", "outsider", "manager"):
            with self.subTest(user=key), self.assertRaises(AccessError):
                self.env["pipemail.compose"].with_user(self.users[key]).create(
                    {"email_to": "x@y.example", "attachment_ids": [Command.link(raw.id)]}
                )

    def test_3_no_writing_into_someone_elses_conversation(self):
        bob, own = self.teammate, self.own["teammate"]
        with self.assertRaises(AccessError):
            own["pipemail.thread"].with_user(bob).write({"account_id": self.personal.id})
        self.assertEqual(own["pipemail.thread"].account_id, own["pipemail.account"])
        with self.assertRaises(AccessError):
            self.env["pipemail.compose"].with_user(bob).create(
                {"email_to": "x@y.example", "thread_id": self.threads["p_private"].id}
            )
        team_folder = self.env["pipemail.folder"].create(
            {"account_id": self.team.id, "name": "Team INBOX", "sync": True}
        )
        for vals in ({"name": "renamed"}, {"sync": False}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                team_folder.with_user(bob).write(vals)
        self.assertEqual((team_folder.name, team_folder.sync), ("Team INBOX", True))
        # the mailbox's owner still manages its folders
        team_folder.with_user(self.owner).write({"sync": False})

    def test_4_names_do_not_leak_through_links(self):
        bob = self.teammate
        for name in ("p_private", "t_private"):
            message = self.messages[name]
            with self.subTest(thread=name), self.assertRaises(AccessError):
                self.env["pipemail.compose"].with_user(bob).create(
                    {"email_to": "x@y.example", "parent_message_id": message.id}
                )
        with self.assertRaises(AccessError):
            self.env["pipemail.message"].with_user(bob).create(
                {
                    "thread_id": self.own["teammate"]["pipemail.thread"].id,
                    "key": "forged",
                    "raw_attachment_id": self.attachments["p_private"].id,
                }
            )
        # a row that already points at what the reader cannot see shows no name
        own_outbox = self.env["pipemail.outbox"].create(
            {
                "account_id": self.own["teammate"]["pipemail.account"].id,
                "user_id": bob.id,
                "company_id": self.company.id,
                "state": "sent",
                "parent_message_id": self.messages["p_private"].id,
                "thread_id": self.threads["p_private"].id,
            }
        )
        spec = {
            "parent_message_id": {"fields": {"display_name": {}}},
            "thread_id": {"fields": {"display_name": {}}},
        }
        [values] = own_outbox.with_user(bob).web_read(spec)
        self.assertNotIn("CANARY", repr(values))
        raw = self.env["pipemail.message"].create(
            {
                "thread_id": self.own["teammate"]["pipemail.thread"].id,
                "account_id": self.own["teammate"]["pipemail.account"].id,
                "key": "own-raw",
                "raw_attachment_id": self.attachments["p_private"].id,
            }
        )
        [values] = raw.with_user(bob).web_read(
            {"raw_attachment_id": {"fields": {"display_name": {}}}}
        )
        self.assertNotIn("CANARY", repr(values))

    def test_5_writeback_rows_are_not_for_users(self):
        for key in ("owner", "teammate", "manager"):
            with self.subTest(user=key), self.assertRaises(AccessError):
                self.env["pipemail.writeback"].with_user(self.users[key]).search_read(
                    [], ["message_id"]
                )

    def test_6_link_wizard_shows_nothing_of_others_conversations(self):
        for key, name in (
            ("teammate", "t_private"),
            ("outsider", "p_private"),
            ("outsider", "t_team"),
        ):
            with self.subTest(user=key, thread=name), self.assertRaises(AccessError):
                self.env["pipemail.link.wizard"].with_user(self.users[key]).create(
                    {"thread_id": self.threads[name].id, "lead_id": self.lead.id}
                )
        wizard = (
            self.env["pipemail.link.wizard"]
            .with_user(self.teammate)
            .create({"thread_id": self.threads["t_team"].id, "lead_id": self.lead.id})
        )
        self.assertTrue(wizard.thread_id)

    def test_7_the_password_does_not_follow_the_server(self):
        account = self.personal.with_user(self.owner)
        account.write({"imap_host": "imap.example.com", "password": "s3cret"})
        self.assertTrue(account.password_set)
        for vals in (
            {"imap_host": "imap.evil.example"},
            {"imap_port": 143},
            {"smtp_host": "smtp.evil.example"},
            {"username": "someone-else"},
            {"imap_security": "starttls"},
        ):
            account.sudo().write({"password": "s3cret"})
            with self.subTest(vals=vals):
                account.write(vals)
                account.invalidate_recordset()
                self.assertFalse(account.password_set, "the secret was given for another server")
                self.assertEqual(account.error_code, "credentials_cleared")
        # a name or a visibility change keeps it
        account.sudo().write({"password": "s3cret"})
        account.write({"name": "Renamed", "default_visibility": "private"})
        account.invalidate_recordset()
        self.assertTrue(account.password_set)
        # only the owner or a system administrator edits the connection
        self.assertTrue(account.connection_editable)
        self.assertFalse(self.personal.with_user(self.manager).connection_editable, "read-only")
        account.write({"imap_host": "imap.example.com", "imap_port": 993, "password": "s3cret"})
        for key in ("manager", "teammate"):
            with self.subTest(user=key), self.assertRaises(AccessError):
                self.personal.with_user(self.users[key]).write({"imap_host": "imap.evil.example"})
        self.assertEqual(self.personal.imap_host, "imap.example.com")
        self.assertTrue(self.personal.password_set)
        # a Google mailbox signs in to Google only
        with self.assertRaises(UserError):
            account.write({"provider": "gmail", "imap_host": "imap.evil.example"})

    def test_8_oauth_start_is_no_id_oracle(self):
        self.env["ir.config_parameter"].sudo().set_param("pipemail.google_client_id", "x")
        self.authenticate("pm_teammate", "pm_teammate")
        missing = self.env["pipemail.account"].search([], order="id desc", limit=1).id + 1000
        answers = []
        for account_id in (missing, self.personal.id):
            response = self.url_open(
                f"/pipemail/oauth/gmail/start?account_id={account_id}", allow_redirects=False
            )
            answers.append(response.status_code)
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0], 404)
