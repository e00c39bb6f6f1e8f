"""The Sales Inbox's folders pane: counts as each user may read them, folder domains,
and the bus notice the sync sends to the holders of what it stored (nobody else)."""

import json

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools.safe_eval import safe_eval

from ..models.pipemail_thread_folders import INBOX_NOTICE
from .common import PipemailDovecotCase, make_mail
from .visibility_common import PipemailWorldMixin


def inbox_notices(env):
    """{partner id: payload} of the inbox notices this transaction will send."""
    env.cr.precommit.run()  # the bus rows are written just before the commit
    notices = {}
    for row in env["bus.bus"].sudo().search([]):
        message = json.loads(row.message)
        if message["type"] != INBOX_NOTICE:
            continue
        channel = json.loads(row.channel)
        if channel[1:2] == ["res.partner"]:
            notices[channel[2]] = message["payload"]
    return notices


def folders_by_key(result):
    return {folder["key"]: folder for group in result["groups"] for folder in group["folders"]}


@tagged("post_install", "-at_install")
class TestInboxFolders(PipemailWorldMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()
        # a second team: the outsider's team mailbox, the stranger a member of it
        cls.team_b = (
            cls.env["pipemail.account"]
            .with_context(mail_create_nolog=True, tracking_disable=True)
            .create(
                {
                    "name": "Team B mailbox",
                    "email": "team-b@example.com",
                    "kind": "team",
                    "user_id": cls.outsider.id,
                    "member_ids": [Command.set((cls.outsider | cls.stranger).ids)],
                    "company_id": cls.company.id,
                }
            )
        )
        cls.b_thread = cls.env["pipemail.thread"].create(
            {
                "account_id": cls.team_b.id,
                "thread_key": "key-b",
                "subject": "CANARYB_SHAREDSUBJECT",
                "last_date": "2024-05-02 10:00:00",
                "visibility": "team",
            }
        )
        cls.env["pipemail.message"].create(
            {
                "thread_id": cls.b_thread.id,
                "account_id": cls.team_b.id,
                "key": "msg-b",
                "subject": "CANARYB_SHAREDSUBJECT",
                "date": "2024-05-02 10:00:00",
                "is_read": False,
            }
        )
        cls.inbox_action = cls.env.ref("pipemail_sync.pipemail_thread_action_inbox")

    def _folders(self, user):
        return self.env["pipemail.thread"].with_user(user).pipemail_folder_counts()

    def _unread_in(self, user, domain):
        """What the list shows for a folder, unread only, as the user sees it."""
        inbox = safe_eval(self.inbox_action.domain, {"uid": user.id})
        return (
            self.env["pipemail.thread"]
            .with_user(user)
            .search_count(inbox + list(domain or []) + [("is_unread", "=", True)])
        )

    def test_counts_of_two_teams(self):
        expected = {
            # owner: own mailbox (6 unread) and the team mailbox, Private included
            self.owner: ({"mine-inbox": 6, f"team-{self.team.id}-inbox": 4}, 10),
            # teammate: no mailbox of their own; the team's, Private left out
            self.teammate: ({"mine-inbox": 0, f"team-{self.team.id}-inbox": 3}, 3),
            # the other team: only its own conversation, none of the first team's
            self.outsider: ({"mine-inbox": 0, f"team-{self.team_b.id}-inbox": 1}, 1),
            self.stranger: ({"mine-inbox": 0, f"team-{self.team_b.id}-inbox": 1}, 1),
            # the other company's salesperson: their own mailbox only
            self.other_co: ({"mine-inbox": 1}, 1),
        }
        for user, (counts, total) in expected.items():
            with self.subTest(user=user.login):
                result = self._folders(user)
                folders = folders_by_key(result)
                for key, count in counts.items():
                    self.assertEqual(folders[key]["count"], count, key)
                self.assertEqual(result["unread"], total)
                teams = {g["key"] for g in result["groups"] if g["key"].startswith("team-")}
                self.assertEqual(teams, {k.rpartition("-")[0] for k in counts if "team" in k})
                # every count is what the folder's list shows the same user
                for folder in folders.values():
                    if folder["count_kind"] == "unread":
                        self.assertEqual(
                            folder["count"], self._unread_in(user, folder["domain"]), folder["key"]
                        )
                # names and counts only: no subject, snippet or body travels with them
                self.assertNotRegex(json.dumps(result), "SUBJECT|SNIPPET|BODY")

    def test_labels_count_only_readable_conversations(self):
        teammate = folders_by_key(self._folders(self.teammate))
        labels = {f["name"]: f["count"] for k, f in teammate.items() if k.startswith("label-")}
        # the team's labels are the teammate's too, but the Private conversation's
        # label counts nothing: that conversation is the owner's alone
        self.assertEqual(labels["CANARYT_SHAREDLABEL"], 1)
        self.assertEqual(labels.get("CANARYT_PRIVATELABEL", 0), 0)
        self.assertNotIn("CANARYP_SHAREDLABEL", labels, "the owner's own mailbox labels")
        stranger = folders_by_key(self._folders(self.stranger))
        self.assertFalse(
            [f for f in stranger.values() if f["name"].startswith("CANARYT")],
            "another team's labels",
        )

    def test_archive_and_sent_folders(self):
        thread = self.threads["p_unlinked"]
        thread.sudo().write({"active": False})
        self.messages["p_shared"].sudo().write({"direction": "out"})
        folders = folders_by_key(self._folders(self.owner))
        Thread = self.env["pipemail.thread"].with_user(self.owner)
        inbox = safe_eval(self.inbox_action.domain, {"uid": self.owner.id})
        archived = Thread.search(inbox + folders["mine-archive"]["domain"])
        self.assertEqual(archived, thread)
        sent = Thread.search(inbox + folders["mine-sent"]["domain"])
        self.assertEqual(sent, self.threads["p_shared"])
        self.assertNotIn(thread, Thread.search(inbox + folders["mine-inbox"]["domain"]))
        self.assertEqual(folders["mine-inbox"]["count"], 5, "archived: out of the Inbox count")

    def test_drafts_scheduled_outbox_are_the_writers(self):
        self.env["pipemail.draft"].create({"user_id": self.owner.id, "subject": "D"})
        Outbox = self.env["pipemail.outbox"].with_context(tracking_disable=True)
        common = {"account_id": self.personal.id, "user_id": self.owner.id}
        Outbox.create({**common, "state": "queued", "scheduled_at": "2099-01-01 10:00:00"})
        Outbox.create({**common, "state": "failed"})
        Outbox.create({**common, "state": "sent"})
        owner = folders_by_key(self._folders(self.owner))
        self.assertEqual([owner[k]["count"] for k in ("drafts", "scheduled", "outbox")], [1, 1, 1])
        self.assertEqual(owner["outbox"]["action"]["res_model"], "pipemail.outbox")
        teammate = folders_by_key(self._folders(self.teammate))
        self.assertEqual(
            [teammate[k]["count"] for k in ("drafts", "scheduled", "outbox")], [0, 0, 0]
        )

    def test_counts_follow_the_allowed_companies(self):
        # the owner's mailbox moves to the other company, the owner may work in both
        self.owner.company_ids = [Command.link(self.company2.id)]
        self.personal.sudo().company_id = self.company2
        Thread = self.env["pipemail.thread"].with_user(self.owner)
        both = Thread.with_context(allowed_company_ids=[self.company.id, self.company2.id])
        only_first = Thread.with_context(allowed_company_ids=[self.company.id])
        self.assertEqual(folders_by_key(both.pipemail_folder_counts())["mine-inbox"]["count"], 6)
        self.assertEqual(
            folders_by_key(only_first.pipemail_folder_counts())["mine-inbox"]["count"], 0
        )

    def test_portal_user_gets_nothing(self):
        portal = new_test_user(self.env, "pm_portal_folders", groups="base.group_portal")
        with self.assertRaises(AccessError):
            self._folders(portal)


@tagged("post_install", "-at_install")
class TestInboxNotice(PipemailWorldMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()

    def setUp(self):
        super().setUp()
        inbox_notices(self.env)
        self.env["bus.bus"].sudo().search([]).unlink()

    def test_holders_only(self):
        cases = {
            "p_shared": {self.owner},
            "p_private": {self.owner},
            "t_shared": {self.owner, self.teammate},
            "t_meta": {self.owner, self.teammate},
            "t_private": {self.owner},
            "c2_shared": {self.other_co},
        }
        for name, users in cases.items():
            with self.subTest(thread=name):
                thread = self.threads[name]
                thread._pipemail_notify_inbox()
                notices = inbox_notices(self.env)
                self.assertEqual(set(notices), {u.partner_id.id for u in users})
                for payload in notices.values():
                    self.assertEqual(payload, {"thread_ids": thread.ids})
                self.env["bus.bus"].sudo().search([]).unlink()

    def test_each_user_gets_only_their_conversations(self):
        mine = self.threads["p_shared"] | self.threads["t_team"] | self.threads["t_private"]
        mine._pipemail_notify_inbox()
        notices = inbox_notices(self.env)
        self.assertEqual(set(notices), {self.owner.partner_id.id, self.teammate.partner_id.id})
        self.assertEqual(notices[self.owner.partner_id.id]["thread_ids"], sorted(mine.ids))
        self.assertEqual(
            notices[self.teammate.partner_id.id]["thread_ids"], self.threads["t_team"].ids
        )

    def notice_rows(self):
        """{partner id: number of inbox notices} this transaction sends."""
        self.env.cr.precommit.run()
        counts = {}
        for row in self.env["bus.bus"].sudo().search([]):
            if json.loads(row.message)["type"] == INBOX_NOTICE:
                partner_id = json.loads(row.channel)[2]
                counts[partner_id] = counts.get(partner_id, 0) + 1
        return counts

    def other_team(self):
        """The outsider's own team mailbox and conversation: another team's."""
        team_b = self.env["pipemail.account"].create(
            {
                "name": "Team B mailbox",
                "email": "team-b-notice@example.com",
                "kind": "team",
                "user_id": self.outsider.id,
                "member_ids": [Command.set(self.outsider.ids)],
                "company_id": self.company.id,
            }
        )
        return self.env["pipemail.thread"].create(
            {"account_id": team_b.id, "thread_key": "key-b-notice", "subject": "B"}
        )

    def test_colleague_archiving_tells_the_other_holders(self):
        b_thread = self.other_team()
        inbox_notices(self.env)
        self.env["bus.bus"].sudo().search([]).unlink()
        team_thread = self.threads["t_shared"]
        team_thread.with_user(self.teammate).action_archive_remote()
        self.assertFalse(team_thread.active)
        notices = inbox_notices(self.env)
        # the mailbox's owner, and the teammate's own other tabs; not the outsider,
        # who reads this conversation (it is Shared) but does not hold it
        self.assertEqual(set(notices), {self.owner.partner_id.id, self.teammate.partner_id.id})
        self.assertEqual(notices[self.owner.partner_id.id], {"thread_ids": team_thread.ids})
        self.assertEqual(notices[self.teammate.partner_id.id], {"thread_ids": team_thread.ids})
        self.assertTrue(team_thread.with_user(self.outsider).has_access("read"))
        self.env["bus.bus"].sudo().search([]).unlink()
        # the other team's change is theirs alone
        b_thread.with_user(self.outsider).action_archive_remote()
        self.assertEqual(set(inbox_notices(self.env)), {self.outsider.partner_id.id})

    def test_each_change_a_holder_makes(self):
        thread = self.threads["t_shared"].with_user(self.teammate)
        label = self.env["pipemail.label"].create(
            {"name": "Urgent", "account_id": self.team.id, "company_id": self.company.id}
        )
        changes = {
            "mark read": lambda: thread.action_mark_read(),
            "mark unread": lambda: thread.action_mark_unread(),
            "label": lambda: thread.write({"label_ids": [Command.link(label.id)]}),
            "unlink": lambda: thread.action_unlink(),
            "link": lambda: thread.action_link({"res_model": "crm.lead", "res_id": self.lead.id}),
            "delete": lambda: thread.action_delete_remote(),
            "unarchive": lambda: thread.action_unarchive(),
        }
        for name, change in changes.items():
            with self.subTest(change=name):
                change()
                notices = inbox_notices(self.env)
                self.assertEqual(notices.get(self.owner.partner_id.id), {"thread_ids": thread.ids})
                self.assertNotIn(self.outsider.partner_id.id, notices)
                self.env["bus.bus"].sudo().search([]).unlink()

    def test_once_per_transaction_own_ids_only(self):
        team_threads = self.threads["t_shared"] | self.threads["t_team"]
        mine = self.threads["p_shared"] | self.threads["t_private"]
        owner_threads = (team_threads | mine).with_user(self.owner)
        # several changes in one transaction, to conversations held by different people
        owner_threads.action_mark_unread()
        owner_threads.write({"label_ids": [Command.clear()]})
        owner_threads.action_archive_remote()
        counts = self.notice_rows()
        self.assertEqual(
            counts, {self.owner.partner_id.id: 1, self.teammate.partner_id.id: 1}, "one each"
        )
        self.env["bus.bus"].sudo().search([]).unlink()
        owner_threads.action_unarchive()
        notices = inbox_notices(self.env)
        self.assertEqual(
            notices[self.owner.partner_id.id], {"thread_ids": sorted(owner_threads.ids)}
        )
        # the teammate holds the team's conversations, not the owner's own mailbox nor
        # the team's Private one
        self.assertEqual(
            notices[self.teammate.partner_id.id], {"thread_ids": sorted(team_threads.ids)}
        )

    def test_private_conversation_tells_its_owner_only(self):
        private = self.threads["t_private"].with_user(self.owner)
        private.action_mark_unread()
        private.action_archive_remote()
        self.assertEqual(set(inbox_notices(self.env)), {self.owner.partner_id.id})
        self.env["bus.bus"].sudo().search([]).unlink()
        # made Private by its owner: the teammate, who no longer holds it, hears nothing
        shared = self.threads["t_shared"].with_user(self.owner)
        shared.write({"visibility": "private"})
        self.assertEqual(set(inbox_notices(self.env)), {self.owner.partner_id.id})


@tagged("post_install", "-at_install")
class TestInboxNoticeFromSync(PipemailDovecotCase):
    def test_sync_tells_the_team_mailbox_members(self):
        bob = new_test_user(
            self.env, "pm_bob_notice", groups="sales_team.group_sale_salesman_all_leads"
        )
        eve = new_test_user(
            self.env, "pm_eve_notice", groups="sales_team.group_sale_salesman_all_leads"
        )
        login, account = self.new_mailbox(
            email="team-notice@ourco.example",
            kind="team",
            member_ids=[Command.set((self.sally | bob).ids)],
        )
        inbox_notices(self.env)
        self.env["bus.bus"].sudo().search([]).unlink()
        self.deliver(login, make_mail(subject="New order", message_id="<n1@acme.example>"))
        self.assertTrue(self.sync(account))
        thread = self.threads(account)
        self.assertEqual(len(thread), 1)
        notices = inbox_notices(self.env)
        self.assertEqual(set(notices), {self.sally.partner_id.id, bob.partner_id.id})
        self.assertNotIn(eve.partner_id.id, notices)
        self.assertEqual(notices[bob.partner_id.id], {"thread_ids": thread.ids})
