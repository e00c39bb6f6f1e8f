"""A draft's copy in its mailbox's Drafts folder (IMAP APPEND), so that the person's
phone sees it too, replaced as they go on writing and removed when the draft is sent
or discarded.

Internal machinery: only the server writes these rows (no access for users; system
administrators may read them). Saving a draft only wakes the cron, a little later (a
copy per burst of typing, not per keystroke); the cron writes the new copy, then
removes the one it replaces (:func:`pipemail.writeback.save_draft`). A row whose draft
is gone (``draft_id`` emptied by the database) is a copy to remove. Personal mailboxes
only, and when the mailbox's "Drafts in the mailbox" option is on: a team mailbox's
Drafts folder is read by the whole team.
"""

import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from pipemail import errors as pm_errors
from pipemail.types import Location

from ..engine import html as pm_html
from ..engine import outbound as pm_outbound
from ..engine import parse_addresses
from ..engine import writeback as pm_writeback
from .pipemail_outbox import outgoing_attachments, sender_address

_logger = logging.getLogger(__name__)

SAVE_DELAY = timedelta(seconds=20)
"""Autosave writes every few seconds while the person types: the mailbox gets a copy
when they pause."""
MAX_ATTEMPTS = 5


class PipemailDraftCopy(models.Model):
    _name = "pipemail.draft.copy"
    _description = "Draft Copy in the Mailbox"
    _order = "id"

    draft_id = fields.Many2one(
        "pipemail.draft", ondelete="set null", index="btree_not_null", readonly=True
    )
    account_id = fields.Many2one(
        "pipemail.account", required=True, ondelete="cascade", index=True, readonly=True
    )
    folder = fields.Char(readonly=True)
    uidvalidity = fields.Integer(readonly=True)
    uid = fields.Integer(readonly=True)
    saved_version = fields.Datetime(readonly=True, help="The draft's last change this copy holds.")
    attempts = fields.Integer(readonly=True)
    error = fields.Char(readonly=True)

    @api.model
    def _pipemail_wanted(self, draft):
        """Whether ``draft`` (sudo) goes to its mailbox's Drafts folder."""
        account = draft.account_id
        return bool(
            account
            and account.kind == "personal"
            and account.drafts_to_mailbox
            and account.active
            and draft._pipemail_copy_wanted()
        )

    @api.model
    def _pipemail_queue(self, drafts):
        """After a save: a copy row per draft that goes to its mailbox (server code)."""
        Copy = self.sudo()
        work = False
        for draft in drafts.sudo():
            copies = Copy.search([("draft_id", "=", draft.id)])
            if not self._pipemail_wanted(draft):
                # the option was turned off, or the From changed to a team mailbox
                copies.write({"draft_id": False})
                work = work or bool(copies)
                continue
            work = True
            elsewhere = copies.filtered(lambda c, d=draft: c.account_id != d.account_id)
            elsewhere.write({"draft_id": False})
            current = copies - elsewhere
            if not current:
                Copy.create({"draft_id": draft.id, "account_id": draft.account_id.id})
            elif current.attempts:
                current.write({"attempts": 0, "error": False})
        if work:
            self._pipemail_wake(SAVE_DELAY)

    @api.model
    def _pipemail_wake(self, delay=None):
        cron = self.env.ref("pipemail_sync.ir_cron_pipemail_draft_copies", raise_if_not_found=False)
        if not cron:
            return
        now = fields.Datetime.now()
        if delay and self.env["ir.cron.trigger"].sudo().search_count(
            [("cron_id", "=", cron.id), ("call_at", ">=", now)], limit=1
        ):
            return  # a round is already coming: one copy per pause, not per autosave
        cron.sudo()._trigger(at=now + delay if delay else None)

    # ------------------------------------------------------------------ the cron

    @api.model
    def _cron_draft_copies(self, limit=50):
        """Write the drafts that changed since their copy, remove the copies of drafts
        gone; each row under its lock, committed one by one."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """SELECT c.id FROM pipemail_draft_copy c
                   LEFT JOIN pipemail_draft d ON d.id = c.draft_id
                  WHERE COALESCE(c.attempts, 0) < %s
                    AND (c.draft_id IS NULL OR c.saved_version IS DISTINCT FROM d.write_date)
                  ORDER BY c.id LIMIT %s FOR UPDATE OF c SKIP LOCKED""",
                MAX_ATTEMPTS,
                limit,
            )
        )
        rows = self.sudo().browse([row[0] for row in self.env.cr.fetchall()])
        for row in rows:
            row._pipemail_process()
            self.env["pipemail.outbox"]._pipemail_commit()
        return rows

    def _pipemail_process(self):
        self.ensure_one()
        location = (
            Location(self.folder, self.uidvalidity, self.uid)
            if self.folder and self.uidvalidity and self.uid
            else None
        )
        config = self.account_id._pipemail_config()
        try:
            if not self.draft_id:
                if location:
                    pm_writeback.remove_draft(config, location)
                self.unlink()
                return
            draft = self.draft_id
            version = draft.write_date
            found = pm_writeback.save_draft(config, draft._pipemail_copy_mime(), replace=location)
        except (pm_errors.PipemailError, UserError) as exc:
            _logger.info("pipemail: draft copy %s failed: %s", self.id, exc)
            self.write(
                {
                    "attempts": self.attempts + 1,
                    "error": str(exc.args[0] if isinstance(exc, UserError) else exc)[:250],
                }
            )
            return
        self.write(
            {
                "folder": found.folder if found else False,
                "uidvalidity": found.uidvalidity if found else 0,
                "uid": found.uid if found else 0,
                "saved_version": version,
                "attempts": 0,
                "error": False,
            }
        )


class PipemailDraft(models.Model):
    _inherit = "pipemail.draft"

    def _pipemail_copy_wanted(self):
        """A 1:1 draft goes to the mailbox (pipemail_campaigns keeps group drafts out)."""
        return True

    def _pipemail_copy_mime(self):
        """The draft as a message a mail client opens to go on writing: From, To, Cc,
        subject, text, files, and the reply headers of the email it answers (Bcc is
        never in a message's headers). Addresses not finished yet are left out (a draft
        may hold half an address)."""
        self.ensure_one()
        draft = self.sudo()
        html = str(draft.body or "") + str(draft.quote_html or "")
        parent = draft.parent_message_id
        sender = sender_address(draft.account_id, draft.user_id)
        message = pm_outbound.OutgoingMessage(
            sender=sender,
            to=parse_addresses(self.env, draft.email_to, strict=False),
            cc=parse_addresses(self.env, draft.email_cc, strict=False),
            bcc=parse_addresses(self.env, draft.email_bcc, strict=False),
            subject=(draft.subject or "").replace("\r", " ").replace("\n", " "),
            html=html,
            text=pm_html.html_to_text(html),
            attachments=outgoing_attachments(draft.attachment_ids),
            in_reply_to=parent.message_id_header or "" if parent else "",
            references=[parent.message_id_header] if parent and parent.message_id_header else [],
            message_id=pm_writeback.draft_message_id(sender.domain),
        )
        raw, _message_id = pm_outbound.build_mime(message, domain=sender.domain, draft=True)
        return raw

    @api.model_create_multi
    def create(self, vals_list):
        drafts = super().create(vals_list)
        self.env["pipemail.draft.copy"]._pipemail_queue(drafts)
        return drafts

    def write(self, vals):
        result = super().write(vals)
        self.env["pipemail.draft.copy"]._pipemail_queue(self)
        return result

    def unlink(self):
        had_copies = (
            self.env["pipemail.draft.copy"]
            .sudo()
            .search_count([("draft_id", "in", self.ids)], limit=1)
        )
        result = super().unlink()
        if had_copies:
            # their rows lost their draft (set null): the cron removes the copies
            self.env["pipemail.draft.copy"]._pipemail_wake()
        return result
