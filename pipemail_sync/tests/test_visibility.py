"""Visibility matrix (RELIABILITY.md tests 13 and 14).

Users owner / teammate / outsider / stranger / sales manager / other company ×
conversations private / shared / team only / metadata only (personal and team
mailboxes, linked to a lead, a followers-only project, a contact, or nothing), read
through every path the web client and RPC offer. A leak is a row, a count or a canary
string a user must not get; the matrix counts and prints them and must find none.
"""

import logging
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import HttpCase, tagged

from ..models import pipemail_visibility
from .visibility_common import FULL, NONE, PipemailWorldMixin

_logger = logging.getLogger(__name__)

THREAD_FIELDS = [
    "subject",
    "snippet",
    "display_name",
    "label_ids",
    "message_ids",
    "link_reason",
    "suggestion_ids",
    "participant_emails",
    "last_date",
    "lead_id",
    "visibility",
    "content_hidden",
]


@tagged("post_install", "-at_install", "pipemail_visibility")
class TestVisibilityMatrix(PipemailWorldMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()

    def setUp(self):
        super().setUp()
        self.leaks = []
        self.probes = 0

    # ------------------------------------------------------------------ leak bookkeeping

    def _leak(self, user_key, path, detail):
        self.leaks.append((user_key, path, detail))

    def _scan(self, user_key, path, payload):
        self.probes += 1
        text = repr(payload)
        for canary in self._forbidden(user_key):
            if canary in text:
                self._leak(user_key, path, canary)

    def _check_ids(self, user_key, path, got, expected):
        self.probes += 1
        extra = set(got) - set(expected)
        if extra:
            self._leak(user_key, path, f"unexpected ids {sorted(extra)}")

    def _report(self, label):
        for leak in self.leaks:
            _logger.error("pipemail leak: %s", leak)
        _logger.info(
            "pipemail visibility %s: %d probes, %d leaks", label, self.probes, len(self.leaks)
        )
        # pylint: disable-next=print-used
        print(f"pipemail visibility {label}: {self.probes} probes, {len(self.leaks)} leaks")  # noqa: T201
        self.assertEqual(self.leaks, [], "visibility leaks")

    def _env(self, user_key):
        return self.env(user=self.users[user_key])

    # ------------------------------------------------------------------ ORM paths

    def _paths_orm(self, user_key):
        env = self._env(user_key)
        Thread = env["pipemail.thread"].with_context(active_test=False)
        all_ids = [t.id for t in self.threads.values()]
        visible = self._expected(user_key)
        full = self._expected(user_key, (FULL,))

        # search / search_read / search_count
        got = Thread.search([]).ids
        self._check_ids(user_key, "search", got, visible)
        missing = visible - set(got)
        if missing:
            self.fail(f"{user_key}: visible conversations missing from search: {missing}")
        rows = Thread.search_read([], THREAD_FIELDS)
        self._check_ids(user_key, "search_read", [r["id"] for r in rows], visible)
        self._scan(user_key, "search_read", rows)
        if Thread.search_count([]) != len(visible):
            self._leak(user_key, "search_count", Thread.search_count([]))

        # a hidden value must not decide whether a row matches
        for name in self.threads:
            canary = self._canaries(name)
            for domain in (
                [("subject", "ilike", canary)],
                [("snippet", "ilike", canary)],
                [("message_body", "ilike", canary)],
                [("label_ids.name", "ilike", canary)],
                [("link_reason", "ilike", canary)],
                [("display_name", "ilike", canary)],
                ["!", ("subject", "ilike", canary)],
            ):
                got = Thread.search(domain).ids
                self._check_ids(user_key, f"search {domain}", got, full)
                if domain[0] != "!" and self.access[name][user_key] != FULL and got:
                    self._leak(user_key, f"search {domain}", got)

        # order on a hidden field: metadata rows sort as if the value were empty
        ordered = Thread.search([], order="subject desc, id").ids
        self._check_ids(user_key, "search order", ordered, visible)

        # read_group / web_read_group counts
        groups = Thread.read_group([], ["visibility"], ["visibility"])
        total = sum(g["visibility_count"] for g in groups)
        if total != len(visible):
            self._leak(user_key, "read_group visibility", total)
        for groupby in (["subject"], ["label_ids"], ["snippet"], ["link_reason"]):
            groups = Thread.read_group([], groupby, groupby, lazy=False)
            self._scan(user_key, f"read_group {groupby}", groups)
            if sum(g["__count"] for g in groups) > len(full):
                self._leak(user_key, f"read_group {groupby} count", groups)
        web_groups = Thread.web_read_group([], ["account_id"], ["account_id"])
        if sum(g["account_id_count"] for g in web_groups["groups"]) != len(visible):
            self._leak(user_key, "web_read_group", web_groups)
        counts = dict(
            (account.id, count)
            for account, count in Thread._read_group([], ["account_id"], ["__count"])
        )
        if sum(counts.values()) != len(visible):
            self._leak(user_key, "_read_group", counts)

        # name_search
        for name in self.threads:
            result = Thread.name_search(self._canaries(name))
            self._scan(user_key, "name_search", result)
            self._check_ids(user_key, "name_search", [r[0] for r in result], full)
        result = Thread.name_search("", limit=1000)
        self._scan(user_key, "name_search ''", result)
        self._check_ids(user_key, "name_search ''", [r[0] for r in result], visible)

        # web_read / read / export, record by record (hidden ones must raise)
        spec = {
            "subject": {},
            "snippet": {},
            "display_name": {},
            "participants_display": {},
            "label_ids": {"fields": {"display_name": {}}},
            "message_ids": {
                "fields": {
                    "body_html": {},
                    "subject": {},
                    "attachment_ids": {"fields": {"name": {}, "datas": {}}},
                }
            },
            "suggestion_ids": {"fields": {"reason": {}}},
            "lead_id": {"fields": {"display_name": {}}},
        }
        export_fields = [
            "subject",
            "snippet",
            "display_name",
            "message_ids/body_text",
            "message_ids/attachment_ids/name",
            "label_ids/name",
            "link_reason",
            "participant_emails",
        ]
        for name, thread in self.threads.items():
            record = Thread.browse(thread.id)
            level = self.access[name][user_key]
            for path, call in (
                ("web_read", lambda r=record: r.web_read(spec)),
                ("read", lambda r=record: r.read(THREAD_FIELDS)),
                ("export_data", lambda r=record: r.export_data(export_fields)),
                ("display_name", lambda r=record: r.display_name),
                ("sudo display_name", lambda r=record: r.sudo().display_name),
            ):
                if level == NONE and path != "sudo display_name":
                    self.probes += 1
                    try:
                        result = call()
                    except AccessError:
                        continue
                    self._leak(user_key, path, f"{name} readable: {result!r}")
                    continue
                result = call()
                self._scan(user_key, f"{path} {name}", result)
                if (
                    level == FULL
                    and path in ("web_read", "read")
                    and self._canaries(name) not in repr(result)
                ):
                    self.fail(f"{user_key} should read {name} whole through {path}: {result}")
                record.invalidate_recordset()
        exported = Thread.browse(sorted(visible)).export_data(export_fields)
        self._scan(user_key, "export_data visible", exported)
        invisible = set(all_ids) - visible
        if invisible:
            self.probes += 1
            try:
                exported = Thread.browse(sorted(invisible)).export_data(export_fields)
                self._leak(user_key, "export_data hidden", exported)
            except AccessError:
                pass

        # messages: only conversations read whole
        Message = env["pipemail.message"]
        expected_msgs = {
            self.messages[n].id for n, lv in self.access.items() if lv[user_key] == FULL
        }
        rows = Message.search_read([], ["subject", "body_html", "body_text", "thread_id"])
        self._check_ids(user_key, "message search_read", [r["id"] for r in rows], expected_msgs)
        self._scan(user_key, "message search_read", rows)
        if Message.search_count([("body_text", "ilike", "CANARY")]) != len(expected_msgs):
            self._leak(user_key, "message search_count", Message.search_count([]))
        groups = Message._read_group([], ["thread_id"], ["__count"])
        self._check_ids(user_key, "message _read_group", [t.id for t, _c in groups], full)
        for name, message in self.messages.items():
            if self.access[name][user_key] == FULL:
                continue
            self.probes += 1
            try:
                result = Message.browse(message.id).read(["body_html", "subject"])
                self._leak(user_key, "message read", f"{name}: {result}")
            except AccessError:
                pass
            self.probes += 1
            try:
                result = Message.browse(message.id).export_data(["body_text"])
                self._leak(user_key, "message export", f"{name}: {result}")
            except AccessError:
                pass
            result = Message.name_search(self._canaries(name))
            if result:
                self._leak(user_key, "message name_search", result)

        # attachments of emails
        Attachment = env["ir.attachment"]
        expected_atts = {
            self.attachments[n].id for n, lv in self.access.items() if lv[user_key] == FULL
        }
        rows = Attachment.search_read([("res_model", "=", "pipemail.message")], ["name", "datas"])
        self._check_ids(user_key, "attachment search_read", [r["id"] for r in rows], expected_atts)
        self._scan(user_key, "attachment search_read", rows)
        for name, attachment in self.attachments.items():
            record = Attachment.browse(attachment.id)
            if self.access[name][user_key] == FULL:
                self.assertTrue(record.has_access("read"), f"{user_key} reads {name}'s file")
                continue
            if record.has_access("read"):
                self._leak(user_key, "attachment has_access", name)
            self.probes += 1
            try:
                result = record.read(["name", "datas"])
                self._leak(user_key, "attachment read", f"{name}: {result}")
            except AccessError:
                pass

        # the linked record's view (lead form: Emails tab and smart button)
        lead = env["crm.lead"].browse(self.lead.id)
        if lead.has_access("read"):
            values = lead.web_read(
                {
                    "pipemail_thread_count": {},
                    "pipemail_thread_ids": {
                        "fields": {
                            "subject": {},
                            "snippet": {},
                            "display_name": {},
                            "participants_display": {},
                            "label_ids": {"fields": {"display_name": {}}},
                        }
                    },
                }
            )[0]
            self._scan(user_key, "lead web_read", values)
            in_tab = [t["id"] for t in values["pipemail_thread_ids"]]
            lead_linked = {
                self.threads[n].id
                for n, lv in self.access.items()
                if lv[user_key] != NONE and self.threads[n].lead_id == self.lead
            }
            self._check_ids(user_key, "lead tab", in_tab, lead_linked)
            if values["pipemail_thread_count"] != len(lead_linked):
                self._leak(user_key, "lead count", values["pipemail_thread_count"])
            exported = lead.export_data(
                [
                    "pipemail_thread_ids/subject",
                    "pipemail_thread_ids/snippet",
                    "pipemail_thread_ids/message_ids/body_text",
                    "pipemail_thread_ids/label_ids/name",
                ]
            )
            self._scan(user_key, "lead export_data", exported)
            # searching leads by a conversation's hidden words finds nothing
            for name, levels in self.access.items():
                if levels[user_key] == FULL:
                    continue
                for path in ("subject", "snippet", "message_ids.body_text", "label_ids.name"):
                    domain = [(f"pipemail_thread_ids.{path}", "ilike", self._canaries(name))]
                    self.probes += 1
                    if env["crm.lead"].search_count(domain):
                        self._leak(user_key, f"lead search {domain}", name)
        partner = env["res.partner"].browse(self.customer.id)
        if partner.has_access("read"):
            values = partner.web_read(
                {"pipemail_thread_count": {}, "pipemail_thread_ids": {"fields": {"subject": {}}}}
            )[0]
            self._scan(user_key, "partner web_read", values)
            self._check_ids(
                user_key, "partner tab", [t["id"] for t in values["pipemail_thread_ids"]], visible
            )

        # the inbox never shows someone else's conversation
        inbox = Thread.search([("in_my_inbox", "=", True)]).ids
        held = {
            self.threads[n].id
            for n, lv in self.access.items()
            if lv[user_key] == FULL and self._holds(user_key, n)
        }
        self._check_ids(user_key, "inbox", inbox, held)

        # changing what one cannot hold
        for name, thread in self.threads.items():
            if self._holds(user_key, name):
                continue
            record = Thread.browse(thread.id)
            for path, call in (
                ("write visibility", lambda r=record: r.write({"visibility": "shared"})),
                ("action_unlink", lambda r=record: r.action_unlink()),
                ("action_mark_read", lambda r=record: r.action_mark_read()),
                ("action_link", lambda r=record: r.action_link(self.lead)),
            ):
                self.probes += 1
                try:
                    with self.env.cr.savepoint():
                        call()
                    self._leak(user_key, path, name)
                except AccessError:
                    pass

        # link suggestions quote the conversation: holders only
        suggestions = env["pipemail.link.suggestion"].search_read([], ["reason", "thread_id"])
        self._scan(user_key, "suggestion search_read", suggestions)

    def _holds(self, user_key, name):
        thread = self.threads[name]
        user = self.users[user_key]
        if thread.owner_id == user:
            return True
        return (
            thread.visibility != "private"
            and thread.account_id.kind == "team"
            and user in thread.account_id.member_ids
        )

    # ------------------------------------------------------------------ tests

    def test_matrix_orm(self):
        for user_key in self.users:
            self._paths_orm(user_key)
        self._report("matrix (ORM paths, 6 users x 11 conversations)")

    def test_matrix_orm_body_walk(self):
        """The same paths with every Body search walking the conversations instead of
        collecting matches through the index (see test_body_search)."""
        with patch.object(pipemail_visibility, "BODY_INDEX_LIMIT", 0):
            for user_key in self.users:
                self._paths_orm(user_key)
        self._report("matrix (ORM paths, Body search walking)")

    def test_matrix_http(self):
        """/web/content of each email attachment, and JSON-RPC web_read, as each user."""
        for user_key, user in self.users.items():
            self.authenticate(user.login, user.login + "x" * (8 - len(user.login)))
            for name, attachment in self.attachments.items():
                level = self.access[name][user_key]
                self.probes += 2
                response = self.url_open(f"/web/content/{attachment.id}?download=true")
                body = response.content.decode("utf-8", "replace")
                if level == FULL:
                    self.assertEqual(response.status_code, 200, f"{user_key} downloads {name}")
                    self.assertIn(self._canaries(name), body)
                elif response.status_code == 200 or self._canaries(name) in body:
                    self._leak(user_key, "/web/content", f"{name}: {response.status_code}")
                # the email's own record through /web/content (raw fields)
                message = self.messages[name]
                response = self.url_open(f"/web/content/pipemail.message/{message.id}/body_html")
                if level != FULL and self._canaries(name) in response.content.decode(
                    "utf-8", "replace"
                ):
                    self._leak(user_key, "/web/content message", name)
            for name, thread in self.threads.items():
                level = self.access[name][user_key]
                result = (
                    self.make_jsonrpc_request(
                        "/web/dataset/call_kw/pipemail.thread/web_read",
                        {
                            "model": "pipemail.thread",
                            "method": "web_read",
                            "args": [[thread.id]],
                            "kwargs": {
                                "specification": {
                                    "subject": {},
                                    "snippet": {},
                                    "display_name": {},
                                    "message_ids": {"fields": {"body_html": {}}},
                                }
                            },
                        },
                    )
                    if level != NONE
                    else None
                )
                if level == NONE:
                    self.probes += 1
                    try:
                        self.make_jsonrpc_request(
                            "/web/dataset/call_kw/pipemail.thread/web_read",
                            {
                                "model": "pipemail.thread",
                                "method": "web_read",
                                "args": [[thread.id]],
                                "kwargs": {"specification": {"subject": {}}},
                            },
                        )
                        self._leak(user_key, "rpc web_read", name)
                    except Exception as exc:  # noqa: BLE001 - the RPC error is the expected outcome
                        if self._canaries(name) in str(exc):
                            self._leak(user_key, "rpc error text", name)
                    continue
                self._scan(user_key, f"rpc web_read {name}", result)
        self._report("matrix (HTTP: /web/content, JSON-RPC)")

    def test_bus_notifications(self):
        """Whatever the mailbox's life sends on the bus goes to its holders only."""
        self.env["bus.bus"].sudo().search([]).unlink()
        owner_env = self._env("owner")
        for name in ("p_private", "p_meta", "p_shared"):
            thread = owner_env["pipemail.thread"].browse(self.threads[name].id)
            thread.action_mark_read()
            thread.action_unlink()
            thread.action_link(self.lead)
        holders = {self.owner.partner_id.id, self.owner.id}
        notes = self.env["bus.bus"].sudo().search([])
        _logger.info("pipemail visibility bus: %d notifications sent by the actions", len(notes))
        for note in notes:
            self.probes += 1
            channel = note.channel or ""
            if any(f'"{h}"' in channel or f",{h}]" in channel for h in holders):
                continue
            for user_key in ("outsider", "teammate", "manager"):
                self._scan(user_key, f"bus {channel}", note.message)
        self._report("bus")

    def test_two_companies(self):
        """Company 2's conversation, linked to a company 1 lead, stays in company 2."""
        thread = self.threads["c2_shared"]
        for user_key in ("owner", "teammate", "outsider", "manager", "stranger"):
            env = self._env(user_key)
            self.assertFalse(env["pipemail.thread"].search([("id", "=", thread.id)]))
            self.assertFalse(env["pipemail.account"].search([("id", "=", self.foreign.id)]))
            with self.assertRaises(AccessError):
                env["pipemail.thread"].browse(thread.id).read(["subject"])
        other = self._env("other_co")
        self.assertEqual(other["pipemail.thread"].search([]), thread)
        self.assertEqual(
            other["pipemail.account"].search([]),
            self.foreign,
            "a manager sees own-company mailboxes",
        )
        # switching to a company one is not allowed in changes nothing
        switched = other["pipemail.thread"].with_context(
            allowed_company_ids=[self.company2.id, self.company.id]
        )
        with self.assertRaises(AccessError):
            switched.search([])

    def test_sales_manager_policy(self):
        """Managers administer mailboxes but read conversations like everyone else."""
        env = self._env("manager")
        self.assertTrue(env["pipemail.account"].search([("id", "=", self.personal.id)]))
        self.assertFalse(env["pipemail.thread"].search([("id", "=", self.threads["p_private"].id)]))
        self.assertFalse(env["pipemail.thread"].search([("in_my_inbox", "=", True)]))
