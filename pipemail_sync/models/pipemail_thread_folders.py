"""The Sales Inbox's folders pane: which folders a user has, what each one holds and
how many of its conversations wait for them, and the bus notice that keeps the pane
current when the sync stores mail or a colleague changes a conversation they share.

Everything here is read as the calling user: the counts go through the same search
as the list (record rules and the visibility rules of ``pipemail_visibility``), so a
count never includes a conversation the user could not open. Folder domains are
decided here, once, and the pane applies them as they come.
"""

from odoo import _, api, models
from odoo.osv import expression

INBOX_NOTICE = "pipemail.inbox/changed"
"""Bus notification type the Sales Inbox listens to."""
NOTICE_KEY = "pipemail.inbox.notice_ids"
"""Where a transaction gathers the conversations it changed (``cr.precommit.data``)."""
NOT_SENT = ("queued", "sending", "retry", "failed", "uncertain")
"""Outgoing emails still owed to someone (pipemail_outbox states)."""
SYSTEM_LABEL_PREFIX = "\\"
"""Gmail's system labels (\\Inbox, \\Sent, \\Important...) are folders, not labels."""


class PipemailThread(models.Model):
    _inherit = "pipemail.thread"

    @api.model
    def pipemail_folder_counts(self):
        """The folders pane of the calling user, with their counts.

        Returns ``{"groups": [{"key", "name", "folders": [folder, ...]}, ...], "unread": n}``
        (``n``: unread conversations in all the user's mailboxes), where a
        folder is ``{"key", "name", "icon", "count", "count_kind", "domain", "action"}``:
        ``domain`` (on pipemail.thread, added to the Sales Inbox's own) for a folder of
        conversations, ``action`` for one of drafts or outgoing emails. ``count_kind``
        says what the count is: "unread" conversations or "pending" items.
        """
        self.check_access("read")
        accounts = (
            self.env["pipemail.account"]
            .with_context(active_test=False)
            .search(
                [
                    "|",
                    ("user_id", "=", self.env.uid),
                    "&",
                    ("kind", "=", "team"),
                    ("member_ids", "in", self.env.uid),
                ]
            )
        )
        teams = accounts.filtered(lambda a: a.kind == "team")
        own = accounts - teams
        unread = self._pipemail_unread_counts([], "account_id")
        groups = [
            {
                "key": "mine",
                "name": _("My Mailbox"),
                "folders": self._pipemail_mailbox_folders("mine", own, unread, personal=True),
            }
        ]
        labels = self._pipemail_label_folders(accounts)
        if labels:
            groups.append({"key": "labels", "name": _("Labels"), "folders": labels})
        for team in teams.sorted("name"):
            key = f"team-{team.id}"
            groups.append(
                {
                    "key": key,
                    "name": team.name,
                    "folders": self._pipemail_mailbox_folders(key, team, unread),
                }
            )
        return {"groups": groups, "unread": sum(unread.values())}

    @api.model
    def _pipemail_mailbox_folders(self, prefix, accounts, unread, personal=False):
        """Inbox, Sent and Archives of ``accounts``; the user's own Drafts, Scheduled and
        Outbox when ``personal`` (they belong to the writer, whatever the mailbox)."""
        mine = [("account_id", "in", accounts.ids)]
        folders = [
            self._pipemail_folder(
                f"{prefix}-inbox",
                _("Inbox"),
                "fa-inbox",
                count=sum(unread.get(account, 0) for account in accounts),
                domain=mine,
            )
        ]
        if personal:
            folders += self._pipemail_outgoing_folders()
        folders += [
            self._pipemail_folder(
                f"{prefix}-sent",
                _("Sent"),
                "fa-paper-plane-o",
                domain=expression.AND([mine, [("message_ids.direction", "=", "out")]]),
            ),
            self._pipemail_folder(
                f"{prefix}-archive",
                _("Archives"),
                "fa-archive",
                domain=expression.AND([mine, [("active", "=", False)]]),
            ),
        ]
        return folders

    @api.model
    def _pipemail_outgoing_folders(self):
        """Drafts, Scheduled and Outbox: the caller's own rows (global record rules)."""
        Outbox = self.env["pipemail.outbox"]
        scheduled = [("state", "=", "queued"), ("scheduled_at", "!=", False)]
        waiting = [("state", "in", NOT_SENT), ("scheduled_at", "=", False)]
        outbox_action = self._pipemail_window_action("pipemail_sync.pipemail_outbox_action")
        outbox_action.update(domain=waiting, context={})
        return [
            self._pipemail_folder(
                "drafts",
                _("Drafts"),
                "fa-pencil-square-o",
                count=self.env["pipemail.draft"].search_count([]),
                count_kind="pending",
                action=self._pipemail_window_action("pipemail_sync.pipemail_draft_action"),
            ),
            self._pipemail_folder(
                "scheduled",
                _("Scheduled"),
                "fa-clock-o",
                count=Outbox.search_count(scheduled),
                count_kind="pending",
                action=self._pipemail_window_action(
                    "pipemail_sync.pipemail_outbox_action_scheduled"
                ),
            ),
            self._pipemail_folder(
                "outbox",
                _("Outbox"),
                "fa-upload",
                count=Outbox.search_count(waiting),
                count_kind="pending",
                action=outbox_action,
            ),
        ]

    @api.model
    def _pipemail_label_folders(self, accounts):
        """CRM labels and the labels of the user's mailboxes, with their unread counts."""
        labels = self.env["pipemail.label"].search(
            ["|", ("account_id", "=", False), ("account_id", "in", accounts.ids)]
        )
        labels = labels.filtered(lambda label: not label.name.startswith(SYSTEM_LABEL_PREFIX))
        if not labels:
            return []
        unread = self._pipemail_unread_counts([("label_ids", "in", labels.ids)], "label_ids")
        return [
            self._pipemail_folder(
                f"label-{label.id}",
                label.name,
                "fa-tag",
                count=unread.get(label, 0),
                domain=[("label_ids", "in", label.ids)],
                color=label.color,
            )
            for label in labels
        ]

    @api.model
    def _pipemail_unread_counts(self, domain, groupby):
        """Unread conversations of the caller's Sales Inbox, by ``groupby``.

        Only conversations the caller holds are counted, and a holder reads their
        conversations whole: the visibility rules (``_search``, the linked-record
        rule), which cost most of the time here, would only confirm it. So the count is
        made as superuser on the same holder domain (``in_my_inbox``, the caller's uid)
        plus the one rule that still applies, the companies allowed in this request.
        ``test_inbox_folders`` checks each count against the folder's list as the user.
        """
        threads_sudo = self.sudo()
        companies = [("company_id", "in", [False, *self.env.companies.ids])]
        held_unread = [("in_my_inbox", "=", True), ("is_unread", "=", True)]
        return dict(
            threads_sudo._read_group(
                expression.AND([held_unread, companies, domain]), [groupby], ["__count"]
            )
        )

    @api.model
    def _pipemail_folder(
        self, key, name, icon, count=0, count_kind="unread", domain=None, action=None, color=0
    ):
        return {
            "key": key,
            "name": name,
            "icon": icon,
            "count": count,
            "count_kind": count_kind,
            "domain": domain or False,
            "action": action or False,
            "color": color,
        }

    @api.model
    def _pipemail_window_action(self, xmlid):
        return self.env["ir.actions.act_window"]._for_xml_id(xmlid)

    # ------------------------------------------------------------------ bus

    def _pipemail_notify_inbox(self):
        """Tell the holders of these conversations that their inbox changed, once,
        when this transaction commits: whatever changed them in it (a sync batch, a
        colleague's archive, read or link...), each holder gets one notice.

        Only holders get it (the owner; the members of a team mailbox unless the
        conversation is Private), as the conversation is at the commit: the Sales
        Inbox is theirs alone. The notice carries each user's own conversation ids
        and nothing of their content. The person who made the change gets it too:
        their other tabs and devices reload, the one they acted in takes the notice
        with its own reload (the inbox waits a moment and takes notices together).
        """
        if not self:
            return
        precommit = self.env.cr.precommit
        if NOTICE_KEY not in precommit.data:
            precommit.data[NOTICE_KEY] = set()
            precommit.add(self._pipemail_send_inbox_notices)
        precommit.data[NOTICE_KEY].update(self.ids)

    def _pipemail_send_inbox_notices(self):
        """The precommit hook of :meth:`_pipemail_notify_inbox`."""
        ids = self.env.cr.precommit.data.pop(NOTICE_KEY, set())
        threads = self.browse(sorted(ids)).sudo().with_context(active_test=False).exists()
        per_user = {}
        for thread in threads:
            users = thread.account_id.user_id
            if thread.account_id.kind == "team" and thread.visibility != "private":
                users |= thread.account_id.member_ids
            for user in users:
                per_user.setdefault(user, set()).add(thread.id)
        for user, thread_ids in per_user.items():
            if user.active and not user.share:
                user._bus_send(INBOX_NOTICE, {"thread_ids": sorted(thread_ids)})
