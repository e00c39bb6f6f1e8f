from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from .. import access

DIRECTIONS = [("in", "Received"), ("out", "Sent")]
COMPOSE_MODES = ("reply", "reply_all", "forward")


class PipemailMessage(models.Model):
    """One email as it sits in one owner's mailbox.

    The same email in two users' mailboxes is two records (one per account): nothing
    is deduplicated across owners, so nobody loses a copy and visibility stays per
    owner.
    """

    _name = "pipemail.message"
    _description = "Synced Email"
    _order = "date desc, id desc"
    _rec_name = "subject"

    thread_id = fields.Many2one(
        "pipemail.thread", required=True, ondelete="cascade", index=True, readonly=True
    )
    account_id = fields.Many2one(
        "pipemail.account", required=True, ondelete="cascade", index=True, readonly=True
    )
    owner_id = fields.Many2one(related="account_id.user_id", store=True, string="Mailbox Owner")
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    key = fields.Char(required=True, readonly=True, copy=False, help="Identity in the mailbox.")
    message_id_header = fields.Char(string="Message-ID", readonly=True, index=True)
    in_reply_to = fields.Char(readonly=True)
    references = fields.Text(readonly=True)
    subject = fields.Char(readonly=True)
    email_from = fields.Char(string="From", readonly=True)
    email_to = fields.Char(string="To", readonly=True)
    email_cc = fields.Char(string="Cc", readonly=True)
    participant_emails = fields.Char(
        readonly=True, help="Normalised addresses of sender and recipients, comma separated."
    )
    author_partner_id = fields.Many2one("res.partner", string="Author", readonly=True)
    partner_ids = fields.Many2many(
        "res.partner",
        "pipemail_message_partner_rel",
        "message_id",
        "partner_id",
        string="Recipients",
        readonly=True,
    )
    date = fields.Datetime(readonly=True, index=True)
    body_html = fields.Html(
        readonly=True, sanitize=True, sanitize_style=True, sanitize_overridable=False
    )
    # a trigram index: "ilike '%term%'" on 100,000 bodies reads a few index pages instead
    # of every row (tests/bench/bench_inbox.py); it costs the sync under a millisecond a
    # message (bench_body_search.py)
    body_text = fields.Text(readonly=True, index="trigram")
    snippet = fields.Char(readonly=True)
    text_direction = fields.Selection([("ltr", "Left to right"), ("rtl", "Right to left")])
    is_read = fields.Boolean(readonly=True)
    is_flagged = fields.Boolean(readonly=True)
    direction = fields.Selection(DIRECTIONS, readonly=True, default="in")
    is_automated = fields.Boolean(readonly=True)
    attachment_ids = fields.One2many(
        "ir.attachment",
        "res_id",
        domain=[("res_model", "=", "pipemail.message")],
        string="Attachments",
        readonly=True,
    )
    has_attachments = fields.Boolean(readonly=True)
    parse_error = fields.Text(
        readonly=True, help="Why the message could not be read completely; the original is kept."
    )
    raw_attachment_id = fields.Many2one(
        "ir.attachment", string="Original Message", readonly=True, ondelete="set null"
    )
    location_ids = fields.One2many("pipemail.message.location", "message_id", readonly=True)
    removed = fields.Boolean(
        readonly=True, index=True, help="No longer in any synced folder of the mailbox."
    )
    label_ids = fields.Many2many(
        "pipemail.label", "pipemail_message_label_rel", "message_id", "label_id", string="Labels"
    )
    size = fields.Integer(readonly=True)

    _sql_constraints = [
        ("key_account_uniq", "UNIQUE(account_id, key)", "A message is stored once per mailbox."),
    ]

    def init(self):
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_message_account_msgid_idx"
            " ON pipemail_message (account_id, message_id_header)"
        )

    @api.depends("subject")
    @api.depends_context("uid")
    def _compute_display_name(self):
        for message in self:
            message.display_name = message.subject or message.email_from or ""
        access.hide_unreadable_names(self, _("Email (details hidden)"))

    def unlink(self):
        self._unlink_attachments()
        return super().unlink()

    def _unlink_attachments(self):
        if self.ids:
            self.env["ir.attachment"].sudo().search(
                [("res_model", "=", self._name), ("res_id", "in", self.ids)]
            ).unlink()

    # ------------------------------------------------------------------ actions

    def action_mark_read(self):
        self._check_can_mark()
        self._set_read(True)
        return True

    def action_mark_unread(self):
        self._check_can_mark()
        self._set_read(False)
        return True

    def _check_can_mark(self):
        """Read state is the conversation's holders' to change (nobody writes messages
        directly): the same check as the conversation's own Mark as Read."""
        self.check_access("read")
        self.thread_id._check_can_change()

    def action_pipemail_compose(self, mode="reply"):
        """The composer answering or forwarding this email, whichever message of the
        conversation it is (the header buttons answer the latest).

        Called over RPC by the conversation widget: the same rule as the header buttons
        (``in_my_inbox and not content_hidden``) is enforced here, not only in the page.
        """
        self.ensure_one()
        if mode not in COMPOSE_MODES:
            raise UserError(_("An email can be replied to, replied to all or forwarded."))
        self.check_access("read")
        thread = self.thread_id
        # asked of the database, not read from the fields: in_my_inbox is cached without
        # the uid in its key, so a value computed for another user could answer here
        held = thread.id in thread._pipemail_holder_ids(self.env.uid)
        if not held or thread._pipemail_content_hidden():
            raise AccessError(
                _("You can reply to and forward conversations of your own mailboxes only.")
            )
        return self._action_pipemail_compose(mode)

    def _action_pipemail_compose(self, mode):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "pipemail_sync.pipemail_compose_action"
        )
        action["context"] = {
            "default_thread_id": self.thread_id.id,
            "default_mode": mode,
            "default_parent_message_id": self.id,
        }
        return action

    def _set_read(self, read):
        """Change the read state here and queue the same change for the server."""
        messages_sudo = self.sudo().filtered(lambda m: m.is_read != read)
        if not messages_sudo:
            return
        messages_sudo.write({"is_read": read})
        messages_sudo._queue_writeback("seen" if read else "unseen")
        self.env["pipemail.writeback"]._trigger_processing()
        # read state is the mailbox's: the team mailbox's members see it change
        messages_sudo.thread_id._pipemail_notify_inbox()

    def _queue_writeback(self, op):
        """One write-back row per server location; the engine checks each before acting."""
        Writeback = self.env["pipemail.writeback"].sudo()
        vals_list = []
        for message in self.sudo():
            locations = message.location_ids
            if op == "archive":
                # archive means "out of the Inbox": leave copies in other folders alone.
                # Gmail is synced from All Mail, where being in the Inbox is the \Inbox
                # label: the engine archives such a location by removing the label
                in_inbox = "\\Inbox" in message.label_ids.mapped("name")
                locations = locations.filtered(
                    lambda loc, in_inbox=in_inbox: (
                        loc.folder_id.role == "inbox" or (in_inbox and loc.folder_id.role == "all")
                    )
                )
            for location in locations:
                vals_list.append(
                    {
                        "message_id": message.id,
                        "account_id": message.account_id.id,
                        "op": op,
                        "folder_id": location.folder_id.id,
                        "uidvalidity": location.uidvalidity,
                        "uid": location.uid,
                        "expect_key": message.key,
                    }
                )
        if vals_list:
            Writeback._supersede(vals_list)
            Writeback.create(vals_list)

    # ------------------------------------------------------------------ sent from Odoo

    pipemail_outbox_id = fields.Many2one(
        "pipemail.outbox", string="Outbox Item", readonly=True, index="btree_not_null", copy=False
    )

    @api.model
    def _pipemail_match_sent(self, account, remote):
        """Our own sent email coming back through sync (the Sent-folder copy).

        Called by the store for a message whose key it does not know. The provider's
        copy often differs in bytes from what we sent (Gmail and Microsoft add
        headers, Gmail keys by X-GM-MSGID), so its key differs too; its Message-ID
        does not. The email we recorded at send time gains the server location and
        the server's key, instead of a second row being created. Only a message with
        no location yet (or this very location) matches: a second, different email
        reusing the Message-ID is still stored on its own.
        """
        parsed = remote.parsed
        if not parsed.message_id or parsed.message_id_synthesized:
            return self.browse()
        candidates = self.sudo().search(
            [
                ("account_id", "=", account.id),
                ("message_id_header", "=", parsed.message_id),
                ("direction", "=", "out"),
                ("pipemail_outbox_id", "!=", False),
            ],
            limit=5,
        )
        loc = remote.location
        for message in candidates:
            locations = message.location_ids
            same_place = any(
                place.folder_id.name == loc.folder
                and place.uidvalidity == loc.uidvalidity
                and place.uid == loc.uid
                for place in locations
            )
            if locations and not same_place:
                continue
            vals = {"removed": False}
            if message.key != remote.key and not self.sudo().search_count(
                [("account_id", "=", account.id), ("key", "=", remote.key)]
            ):
                vals["key"] = remote.key
            message.write(vals)
            thread = message.thread_id
            gm_key = f"gmt:{remote.gm_thrid}" if remote.gm_thrid else None
            if (
                gm_key
                and thread.thread_key != gm_key
                and not self.env["pipemail.thread"]
                .sudo()
                .with_context(active_test=False)
                .search_count([("account_id", "=", account.id), ("thread_key", "=", gm_key)])
            ):
                # later Gmail mail of this conversation is threaded by X-GM-THRID
                thread.thread_key = gm_key
            return message
        return self.browse()
