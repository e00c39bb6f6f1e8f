"""The engine's :class:`~pipemail.types.Store`, kept in Odoo tables.

Not a model: a plain class the sync code hands to ``pipemail.sync.sync_account``. Every
:meth:`OdooStore.apply` writes one batch and its folder cursor inside one savepoint and,
when the store runs from a cron, commits right after, so the cursor can never run ahead
of the rows it covers and a killed worker resumes exactly where the last commit left it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import timezone

from psycopg2 import Error as PsycopgError

from odoo import fields
from odoo.tools import SQL, html_sanitize, plaintext2html

from pipemail.types import (
    FolderState,
    Location,
    ParsedMessage,
    RemoteMessage,
    SyncBatch,
    WriteBack,
    WriteResult,
)

from .engine import (
    detect_direction,
    folder_role,
    html_to_text,
    join_addresses,
    linking,
    normalize_subject,
    threads,
)

_logger = logging.getLogger(__name__)

_CID = re.compile(r"""(src\s*=\s*["'])cid:([^"'>\s]+)(["'])""", re.IGNORECASE)


def _utc_naive(value):
    if not value:
        return False
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _addresses(addresses) -> str:
    return join_addresses(a for a in addresses if a and a.email)


class OrmThreadLookup:
    """:class:`pipemail.threads.ThreadLookup` over the conversation tables of one
    mailbox (``owner`` is the account id: threads never span mailboxes), plus what the
    batch being stored has placed so far (``record``), not yet in the tables."""

    def __init__(self, env, account) -> None:
        self.env = env
        self.account = account
        self._ids: dict[str, str] = {}
        self._subjects: dict[str, dict[str, tuple[set[str], list]]] = {}

    def _owner_ok(self, owner: str) -> bool:
        return str(owner) == str(self.account.id)

    def record(self, parsed: ParsedMessage, key: str) -> None:
        for mid in [parsed.message_id, *parsed.references, parsed.in_reply_to]:
            if mid:
                self._ids.setdefault(mid, key)
        subject = normalize_subject(parsed.subject or "")
        if subject:
            people, dates = self._subjects.setdefault(subject, {}).setdefault(key, (set(), []))
            people.update(a.email for a in parsed.participants)
            if parsed.date:
                dates.append(_utc_naive(parsed.date))

    def thread_for_message_ids(self, owner: str, ids: list[str]) -> str | None:
        if not ids or not self._owner_ok(owner):
            return None
        rows = self.env.execute_query(
            SQL(
                "SELECT r.name, t.thread_key FROM pipemail_thread_ref r"
                " JOIN pipemail_thread t ON t.id = r.thread_id"
                " WHERE r.account_id = %s AND r.name = ANY(%s)",
                self.account.id,
                list(ids),
            )
        )
        found = dict(rows)
        for mid in ids:
            key = found.get(mid) or self._ids.get(mid)
            if key:
                return key
        return None

    def threads_for_subject(self, owner, normalized_subject, since, until=None):
        if not normalized_subject or not self._owner_ok(owner):
            return []
        since, until = _utc_naive(since), _utc_naive(until) if until is not None else None
        domain = [
            ("account_id", "=", self.account.id),
            ("normalized_subject", "=", normalized_subject),
            ("last_date", ">=", since),
        ]
        if until is not None:
            domain.append(("first_date", "<=", until))
        found = (
            self.env["pipemail.thread"]
            .with_context(active_test=False)
            .search(domain, order="last_date desc", limit=20)
        )
        out = {
            t.thread_key: {e for e in (t.participant_emails or "").split(",") if e} for t in found
        }
        for key, (people, dates) in self._subjects.get(normalized_subject, {}).items():
            if any(d >= since and (until is None or d <= until) for d in dates):
                out.setdefault(key, set()).update(people)
        return list(out.items())


class OdooStore:
    """Stores SyncBatches of one ``pipemail.account`` (used with sudo: the cron is the
    only writer; what users may read is decided by the models' access rules)."""

    def __init__(self, env, account, *, commit: bool = False) -> None:
        self.env = env(su=True)
        self.account = account.with_env(self.env)
        self.commit = commit
        self.cr = self.env.cr
        self._folders: dict[str, object] = {}
        self._labels: dict[str, object] = {}
        self._partners: dict[str, object] = {}
        self._remaining: dict[tuple[str, str], int] = {}
        self._requeue: dict[int, list[str]] = {}
        self.stored = 0
        self.failed = 0
        self.own_emails = {
            (self.account.email or "").lower(),
            (self.account.username or "").lower(),
        }

    # ------------------------------------------------------------------ helpers

    def _folder(self, name: str):
        folder = self._folders.get(name)
        if folder is None:
            Folder = self.env["pipemail.folder"]
            folder = Folder.search([("account_id", "=", self.account.id), ("name", "=", name)])
            if not folder:
                folder = Folder.create(
                    {
                        "account_id": self.account.id,
                        "name": name,
                        "role": folder_role(name),
                        "sync": False,
                    }
                )
            self._folders[name] = folder
        return folder

    def _check_account(self, account: str) -> None:
        if str(account) != str(self.account.id):
            raise ValueError(f"store of account {self.account.id} asked about account {account!r}")

    def _label(self, name: str):
        label = self._labels.get(name)
        if label is None:
            Label = self.env["pipemail.label"]
            label = Label.search([("account_id", "=", self.account.id), ("name", "=", name)])
            if not label:
                label = Label.create(
                    {
                        "account_id": self.account.id,
                        "name": name,
                        "company_id": self.account.company_id.id,
                    }
                )
            self._labels[name] = label
        return label

    def _load_partners(self, emails: Iterable[str]) -> None:
        """Existing contacts by normalized email, one query per batch (never created)."""
        missing = {e for e in emails if e and e not in self._partners}
        if not missing:
            return
        partners = self.env["res.partner"].search(
            [
                ("email_normalized", "in", sorted(missing)),
                ("company_id", "in", [False, self.account.company_id.id]),
            ],
            order="is_company asc, id asc",
        )
        for partner in partners:
            self._partners.setdefault(partner.email_normalized, partner)
        for email in missing:
            self._partners.setdefault(email, self.env["res.partner"])

    def _partner(self, email: str):
        return self._partners.get(email) or self.env["res.partner"]

    # ------------------------------------------------------------------ Store protocol

    def load_state(self, account: str, folder: str) -> FolderState | None:
        self._check_account(account)
        record = self._folder(folder)
        return record._folder_state()

    def stored_uids(self, account: str, folder: str, uidvalidity: int) -> set[int]:
        self._check_account(account)
        record = self._folder(folder)
        rows = self.env.execute_query(
            SQL(
                "SELECT uid FROM pipemail_message_location"
                " WHERE folder_id = %s AND uidvalidity = %s",
                record.id,
                uidvalidity,
            )
        )
        return {row[0] for row in rows}

    def stored_flags(self, account: str, folder: str, uidvalidity: int, uids: Iterable[int]):
        self._check_account(account)
        uids = list(uids)
        if not uids:
            return {}
        record = self._folder(folder)
        rows = self.env.execute_query(
            SQL(
                "SELECT uid, flags FROM pipemail_message_location"
                " WHERE folder_id = %s AND uidvalidity = %s AND uid = ANY(%s)",
                record.id,
                uidvalidity,
                uids,
            )
        )
        return {uid: frozenset((flags or "").split()) for uid, flags in rows}

    def pending_writes(self, account: str) -> Sequence[WriteBack]:
        self._check_account(account)
        rows = self.env["pipemail.writeback"].search(
            [("account_id", "=", self.account.id), ("state", "=", "pending")], order="id"
        )
        # archive and delete targets are found by the engine (SPECIAL-USE, Gmail labels);
        # Message-ID and size recorded at sync time let it check the message's identity
        # from its header instead of downloading it whole
        return [
            WriteBack(
                id=row.id,
                op=row.op,
                location=Location(row.folder_id.name, row.uidvalidity, row.uid),
                expect_key=row.expect_key or "",
                target_folder=row.target_folder or "",
                message_id=row.message_id.message_id_header or "",
                expect_size=row.message_id.size or 0,
            )
            for row in rows
        ]

    def writes_done(self, account: str, results: Sequence[WriteResult]) -> None:
        self._check_account(account)
        Writeback = self.env["pipemail.writeback"]
        Location_ = self.env["pipemail.message.location"]
        with self.cr.savepoint():
            for result in results:
                row = Writeback.browse(int(result.id)).exists()
                if not row:
                    continue
                row.write(
                    {
                        "state": result.status,
                        "error": (result.error or "")[:500] or False,
                        "attempts": row.attempts + 1,
                        "done_date": fields.Datetime.now(),
                    }
                )
                if result.status != "done":
                    continue
                location = Location_.search(
                    [
                        ("folder_id", "=", row.folder_id.id),
                        ("uidvalidity", "=", row.uidvalidity),
                        ("uid", "=", row.uid),
                    ]
                )
                if row.op in ("seen", "unseen", "flag", "unflag") and location:
                    flags = set((location.flags or "").split())
                    flag = "\\Seen" if row.op in ("seen", "unseen") else "\\Flagged"
                    if row.op in ("seen", "flag"):
                        flags.add(flag)
                    else:
                        flags.discard(flag)
                    location.flags = " ".join(sorted(flags))
                elif row.op in ("archive", "delete", "move"):
                    message = row.message_id
                    location.unlink()
                    new = result.new_location
                    if new is not None and message:
                        self._set_location(message, new, frozenset())
        if self.commit:
            # the server has been changed: remember it now, a retry must not redo it
            self.cr.commit()

    def apply(self, batch: SyncBatch) -> None:
        self._check_account(batch.account)
        touched = self.env["pipemail.thread"]
        with self.cr.savepoint():
            folder = self._folder(batch.folder)
            if batch.reset_uidvalidity:
                self._reset_folder(folder, batch.state.uidvalidity)
            if batch.vanished:
                self._vanish(folder, batch.vanished)
            if batch.flag_changes:
                touched |= self._flag_changes(folder, batch.flag_changes)
            if batch.new:
                touched |= self._store_new(batch.new)
            folder.state_json = json.dumps(batch.state.to_json())
        if touched:
            touched = touched.exists()
            touched._refresh_from_messages()
            self._autolink(touched)
            # open Sales Inboxes refresh their counts and list (sent on commit)
            touched._pipemail_notify_inbox()
        if self.commit:
            # a batch stored: this worker still has the account
            self.account._renew_lease()
        self._report_progress()
        if self.commit:
            # rows and cursor of this batch are saved together: a kill after this line
            # loses nothing, a kill before it replays the batch, which is idempotent
            self.cr.commit()

    # ------------------------------------------------------------------ batch parts

    def _reset_folder(self, folder, uidvalidity: int) -> None:
        """UIDVALIDITY changed: every old address in this folder is void; messages are
        matched again by key when the engine sends them as new."""
        old = self.env["pipemail.message.location"].search(
            [("folder_id", "=", folder.id), ("uidvalidity", "!=", uidvalidity)]
        )
        voided = self.env["pipemail.writeback"].search(
            [
                ("folder_id", "=", folder.id),
                ("uidvalidity", "!=", uidvalidity),
                ("state", "=", "pending"),
            ]
        )
        # flag changes are re-aimed once the message is found again at its new UID;
        # moves are not (the user may see the message back and decide again)
        for row in voided.filtered(lambda r: r.op in ("seen", "unseen", "flag", "unflag")):
            if row.message_id:
                self._requeue.setdefault(row.message_id.id, []).append(row.op)
        voided.write({"state": "stale", "error": "the folder was reset on the server"})
        messages = old.message_id
        old.unlink()
        messages.filtered(lambda m: not m.location_ids).write({"removed": True})

    def _vanish(self, folder, vanished: Sequence[Location]) -> None:
        by_validity: dict[int, list[int]] = {}
        for loc in vanished:
            by_validity.setdefault(loc.uidvalidity, []).append(loc.uid)
        Location_ = self.env["pipemail.message.location"]
        for uidvalidity, uids in by_validity.items():
            gone = Location_.search(
                [
                    ("folder_id", "=", folder.id),
                    ("uidvalidity", "=", uidvalidity),
                    ("uid", "in", uids),
                ]
            )
            messages = gone.message_id
            gone.unlink()
            messages.filtered(lambda m: not m.location_ids).write({"removed": True})

    def _flag_changes(self, folder, changes):
        Location_ = self.env["pipemail.message.location"]
        by_key = {(c.location.uidvalidity, c.location.uid): c for c in changes}
        uids = [c.location.uid for c in changes]
        locations = Location_.search([("folder_id", "=", folder.id), ("uid", "in", uids)])
        pending = set(
            self.env["pipemail.writeback"]
            .search(
                [
                    ("folder_id", "=", folder.id),
                    ("state", "=", "pending"),
                    ("op", "in", ("seen", "unseen", "flag", "unflag")),
                ]
            )
            .mapped("uid")
        )
        touched = self.env["pipemail.thread"]
        for location in locations:
            change = by_key.get((location.uidvalidity, location.uid))
            if change is None:
                continue
            flags = frozenset(change.flags)
            location.write(
                {
                    "flags": " ".join(sorted(flags)),
                    "modseq": str(change.modseq) if change.modseq else False,
                }
            )
            message = location.message_id
            vals = {}
            if location.uid not in pending:
                # a change made in the CRM and not yet pushed wins over the server's
                # older state; it reaches the server at the next push
                vals["is_read"] = "\\Seen" in flags
                vals["is_flagged"] = "\\Flagged" in flags
            vals = {k: v for k, v in vals.items() if message[k] != v}
            if change.labels is not None:
                label_ids = sorted({self._label(n).id for n in change.labels})
                # compared as ids: a recordset never equals a command list
                if label_ids != sorted(message.label_ids.ids):
                    vals["label_ids"] = [(6, 0, label_ids)]
            if vals:
                message.write(vals)
                touched |= message.thread_id
        return touched

    def _set_location(self, message, location: Location, flags: frozenset[str], modseq=None):
        folder = self._folder(location.folder)
        Location_ = self.env["pipemail.message.location"]
        existing = Location_.search(
            [
                ("folder_id", "=", folder.id),
                ("uidvalidity", "=", location.uidvalidity),
                ("uid", "=", location.uid),
            ]
        )
        vals = {
            "message_id": message.id,
            "folder_id": folder.id,
            "uidvalidity": location.uidvalidity,
            "uid": location.uid,
            "flags": " ".join(sorted(flags)),
            "modseq": str(modseq) if modseq else False,
        }
        if existing:
            existing.write(vals)
        else:
            Location_.create(vals)

    def _store_new(self, new: Sequence[RemoteMessage]):
        """Store new messages; an existing key only gains a location (a move, a copy,
        a Gmail label): one record per message per mailbox.

        The batch is written with a few bulk statements; if that fails, it is
        written again message by message, each in its own savepoint, so one bad
        message never costs the others (it is then kept raw with the error).
        """
        Message = self.env["pipemail.message"].with_context(active_test=False)
        existing = {
            m.key: m
            for m in Message.search(
                [("account_id", "=", self.account.id), ("key", "in", [rm.key for rm in new])]
            )
        }
        self._load_partners({a.email for rm in new for a in rm.parsed.participants})
        screen = getattr(Message, "_pipemail_screen_incoming", None)
        if screen:
            # pipemail_campaigns: a bounce of a group email copy is recorded on the
            # copy, and kept out of the customer's conversation
            for rm in new:
                if rm.key not in existing:
                    screen(self.account, rm)
        touched = self.env["pipemail.thread"]
        fresh = []
        for rm in new:
            message = existing.get(rm.key)
            if message is None:
                message = self._match_sent(rm)
                if message:
                    existing[rm.key] = message
            if message:
                self._set_location(message, rm.location, rm.flags, rm.modseq)
                for op in self._requeue.pop(message.id, []):
                    message._queue_writeback(op)
                vals = {"removed": False} if message.removed else {}
                if rm.labels:
                    vals["label_ids"] = [(4, self._label(n).id) for n in rm.labels]
                if vals:
                    message.write(vals)
                touched |= message.thread_id
                self.stored += 1
            else:
                fresh.append(rm)
        if not fresh:
            return touched
        try:
            with self.cr.savepoint():
                touched |= self._store_bulk(fresh)
                self.stored += len(fresh)
                return touched
        except (PsycopgError, ValueError, TypeError, KeyError) as exc:
            _logger.info(
                "pipemail: bulk store failed for account %s (%s); storing one by one",
                self.account.id,
                exc,
            )
        for rm in fresh:
            message = existing.get(rm.key)
            try:
                with self.cr.savepoint():
                    if message:
                        self._set_location(message, rm.location, rm.flags, rm.modseq)
                    else:
                        message = self._create_message(rm)
                        existing[rm.key] = message
                    touched |= message.thread_id
                    self.stored += 1
            except (PsycopgError, ValueError, TypeError, KeyError) as exc:
                # one bad message never stops the account: keep it raw with the error
                _logger.warning(
                    "pipemail: storing message %s of account %s failed: %s",
                    rm.location,
                    self.account.id,
                    exc,
                )
                self.failed += 1
                message = self._store_fallback(rm, exc)
                if message:
                    existing[rm.key] = message
                    touched |= message.thread_id
        return touched

    def _match_sent(self, rm: RemoteMessage):
        """An email sent from the CRM coming back from the Sent folder: the record made
        at send time gets the location instead of a second copy (pipemail_outbox)."""
        sender = rm.parsed.sender
        if not sender or sender.email not in self.own_emails:
            return None
        return self.env["pipemail.message"]._pipemail_match_sent(self.account, rm)

    def _store_bulk(self, fresh: Sequence[RemoteMessage]):
        Thread = self.env["pipemail.thread"].with_context(active_test=False)
        owner = str(self.account.id)
        lookup = OrmThreadLookup(self.env, self.account)
        plan: list[tuple[RemoteMessage, str]] = []
        first_of: dict[str, RemoteMessage] = {}
        duplicates: list[tuple[RemoteMessage, str]] = []
        seen: set[str] = set()
        for rm in fresh:
            if rm.key in seen:
                duplicates.append((rm, rm.key))  # the same message twice in one folder
                continue
            seen.add(rm.key)
            parsed = rm.parsed
            key = threads.assign_thread(
                parsed, owner=owner, lookup=lookup, gm_thrid=rm.gm_thrid
            ) or threads.key_for_new_thread(parsed, rm.key)
            lookup.record(parsed, key)
            plan.append((rm, key))
            first_of.setdefault(key, rm)
        by_key = {
            t.thread_key: t
            for t in Thread.search(
                [("account_id", "=", self.account.id), ("thread_key", "in", list(first_of))]
            )
        }
        missing = [k for k in first_of if k not in by_key]
        if missing:
            created = Thread.create([self._thread_vals(k, first_of[k].parsed) for k in missing])
            by_key.update(zip(missing, created, strict=True))
        self._file_refs([(by_key[key], rm.parsed) for rm, key in plan])
        messages = self.env["pipemail.message"].create(
            [self._message_vals(rm, by_key[key]) for rm, key in plan]
        )
        by_message_key = {}
        attachment_vals, location_vals, raw_for = [], [], []
        for (rm, _key), message in zip(plan, messages, strict=True):
            by_message_key[rm.key] = message
            location_vals.append(self._location_vals(message, rm))
            for att in rm.parsed.attachments:
                attachment_vals.append(self._attachment_vals(message, att))
            if rm.parsed.parse_error and rm.parsed.raw:
                raw_for.append((message, rm.parsed))
        for rm, key in duplicates:
            location_vals.append(self._location_vals(by_message_key[key], rm))
        self.env["pipemail.message.location"].create(location_vals)
        if attachment_vals:
            attachments = self.env["ir.attachment"].create(attachment_vals)
            self._rewrite_cids(attachments)
        for message, parsed in raw_for:
            self._attach_raw(message, parsed)
        self._reopen_archived(messages, [rm for rm, _key in plan])
        return messages.thread_id

    def _reopen_archived(self, messages, remotes) -> None:
        """New mail in the Inbox brings an archived conversation back, as in any mail
        client; a copy landing in Sent or Archive does not. On Gmail every message is
        stored from All Mail: being in the Inbox is its \\Inbox label."""
        inbox = {
            message
            for message, rm in zip(messages, remotes, strict=True)
            if self._folder(rm.location.folder).role == "inbox" or "\\Inbox" in (rm.labels or ())
        }
        threads = self.env["pipemail.thread"].union(*(m.thread_id for m in inbox))
        threads.filtered(lambda t: not t.active).write({"active": True})

    def _thread_vals(self, key: str, parsed: ParsedMessage) -> dict:
        """A new conversation of this mailbox, sent or synced. Its visibility is the
        mailbox's default, except that a personal mailbox has no team: "team" there
        means private."""
        visibility = self.account.default_visibility
        if self.account.kind == "personal" and visibility == "team":
            visibility = "private"
        return {
            "account_id": self.account.id,
            "thread_key": key,
            "subject": parsed.subject or False,
            "normalized_subject": normalize_subject(parsed.subject or "") or False,
            "visibility": visibility,
        }

    def _location_vals(self, message, rm: RemoteMessage) -> dict:
        return {
            "message_id": message.id,
            "folder_id": self._folder(rm.location.folder).id,
            "uidvalidity": rm.location.uidvalidity,
            "uid": rm.location.uid,
            "flags": " ".join(sorted(rm.flags)),
            "modseq": str(rm.modseq) if rm.modseq else False,
        }

    def _attachment_vals(self, message, att) -> dict:
        return {
            "name": att.filename or "attachment",
            "raw": att.content or b"",
            "mimetype": att.content_type or "application/octet-stream",
            "res_model": "pipemail.message",
            "res_id": message.id,
            "description": att.content_id or False,
        }

    def _rewrite_cids(self, attachments) -> None:
        """Inline images (``cid:``) point at their attachment, served with the
        message's access rights."""
        by_message: dict[int, dict[str, object]] = {}
        for attachment in attachments:
            if attachment.description:
                cid = attachment.description.strip("<>")
                by_message.setdefault(attachment.res_id, {})[cid] = attachment
        for message_id, by_cid in by_message.items():
            message = self.env["pipemail.message"].browse(message_id)
            if not message.body_html or "cid:" not in message.body_html:
                continue

            def replace(match, by_cid=by_cid):
                attachment = by_cid.get(match.group(2))
                if not attachment:
                    return match.group(0)
                return f"{match.group(1)}/web/image/{attachment.id}{match.group(3)}"

            message.body_html = html_sanitize(
                _CID.sub(replace, str(message.body_html)), sanitize_style=True
            )

    def _store_fallback(self, rm: RemoteMessage, exc: Exception):
        """Last resort for a message the normal path could not store: subject, sender,
        the error and the original bytes, nothing that could fail again."""
        parsed = rm.parsed
        try:
            with self.cr.savepoint():
                thread = self.env["pipemail.thread"].create(
                    self._thread_vals(f"x:{rm.key}", parsed)
                )
                message = self.env["pipemail.message"].create(
                    {
                        "thread_id": thread.id,
                        "account_id": self.account.id,
                        "key": rm.key,
                        "subject": (parsed.subject or "")[:500],
                        "email_from": str(parsed.sender or "")[:500],
                        "participant_emails": ",".join(a.email for a in parsed.participants)[:2000],
                        "date": _utc_naive(parsed.date or rm.internaldate) or fields.Datetime.now(),
                        "parse_error": f"Could not be stored normally: {exc}",
                        "is_read": "\\Seen" in rm.flags,
                    }
                )
                self._attach_raw(message, parsed)
                self._set_location(message, rm.location, rm.flags, rm.modseq)
                return message
        except (PsycopgError, ValueError, TypeError, KeyError):
            _logger.exception(
                "pipemail: message %s of account %s could not be stored at all",
                rm.location,
                self.account.id,
            )
            return None

    # ------------------------------------------------------------------ messages

    def _message_vals(self, rm: RemoteMessage, thread) -> dict:
        parsed = rm.parsed
        sender = parsed.sender
        sender_email = sender.email if sender else ""
        direction = "out" if sender_email and sender_email in self.own_emails else "in"
        recipients = [a.email for a in [*parsed.to, *parsed.cc] if a.email]
        partner_ids = {self._partner(e).id for e in recipients if self._partner(e)}
        body_html = parsed.html or ""
        body_text = parsed.text or ""
        vals = {
            "thread_id": thread.id,
            "account_id": self.account.id,
            "key": rm.key,
            "message_id_header": parsed.message_id or False,
            "in_reply_to": parsed.in_reply_to or False,
            "references": " ".join(parsed.references) or False,
            "subject": parsed.subject or False,
            "email_from": str(sender) if sender else False,
            "email_to": _addresses(parsed.to) or False,
            "email_cc": _addresses(parsed.cc) or False,
            "participant_emails": ",".join(a.email for a in parsed.participants)[:4000] or False,
            # mail from the mailbox itself is the owner's, whether or not a contact
            # carries that address
            "author_partner_id": (
                self._partner(sender_email)
                or (
                    self.account.user_id.partner_id
                    if direction == "out"
                    else self.env["res.partner"]
                )
            ).id
            or False,
            "partner_ids": [(6, 0, sorted(partner_ids))],
            "date": _utc_naive(parsed.date or rm.internaldate) or fields.Datetime.now(),
            # sanitized by the field (html_sanitize) on the way in
            "body_html": body_html or (plaintext2html(body_text) if body_text else False),
            "body_text": body_text or False,
            "snippet": parsed.snippet or False,
            "text_direction": detect_direction(body_text or html_to_text(body_html) or "")
            if body_text or body_html
            else False,
            "is_read": "\\Seen" in rm.flags,
            "is_flagged": "\\Flagged" in rm.flags,
            "direction": direction,
            "is_automated": not linking.should_autolink(parsed),
            "parse_error": parsed.parse_error or False,
            "size": rm.size or parsed.raw_size or 0,
            "has_attachments": bool(parsed.attachments),
        }
        if rm.labels:
            vals["label_ids"] = [(6, 0, [self._label(n).id for n in rm.labels])]
        return vals

    def write_sent(self, rm: RemoteMessage, thread=None, *, body_html=None, extra=None):
        """A message sent from Odoo, written exactly as the sync writes its Sent copy
        (same keys, addresses, snippet, visibility, thread references), so the copy
        the sync meets later is recognized as this row and a test can compare the two.

        ``thread``: the conversation it answers, else found or started by its headers;
        ``body_html``: the HTML as written, when the bytes sent carry tracking;
        ``extra``: fields only a sent message has (its outbox row).
        """
        parsed = rm.parsed
        self._load_partners(a.email for a in parsed.participants if a.email)
        if thread:
            self._file_refs([(thread, parsed)])
        else:
            thread = self._thread_for(rm)
        vals = self._message_vals(rm, thread)
        if body_html is not None:
            vals["body_html"] = body_html
        vals.update(extra or {})
        message = self.env["pipemail.message"].create(vals)
        if parsed.attachments:
            attachments = self.env["ir.attachment"].create(
                [self._attachment_vals(message, att) for att in parsed.attachments]
            )
            self._rewrite_cids(attachments)
        thread._refresh_from_messages()
        if not thread.active:
            thread.active = True
        return message

    def _create_message(self, rm: RemoteMessage):
        """One message on its own (the slow path, after a bulk write failed)."""
        parsed = rm.parsed
        thread = self._thread_for(rm)
        message = self.env["pipemail.message"].create(self._message_vals(rm, thread))
        self._bump_thread(thread, message)
        if parsed.attachments:
            attachments = self.env["ir.attachment"].create(
                [self._attachment_vals(message, att) for att in parsed.attachments]
            )
            self._rewrite_cids(attachments)
        if parsed.parse_error:
            self._attach_raw(message, parsed)
        self._set_location(message, rm.location, rm.flags, rm.modseq)
        self._reopen_archived(message, [rm])
        return message

    def _attach_raw(self, message, parsed: ParsedMessage) -> None:
        if not parsed.raw:
            return
        attachment = self.env["ir.attachment"].create(
            {
                "name": "original.eml",
                "raw": parsed.raw,
                "mimetype": "message/rfc822",
                "res_model": "pipemail.message",
                "res_id": message.id,
            }
        )
        message.write({"raw_attachment_id": attachment.id, "has_attachments": True})

    # ------------------------------------------------------------------ threading

    def _bump_thread(self, thread, message) -> None:
        """Keep dates and participants current message by message, so a later message
        of the same batch can join this conversation by subject; the full summary is
        recomputed once per batch."""
        emails = [e for e in (thread.participant_emails or "").split(",") if e]
        for email in (message.participant_emails or "").split(","):
            if email and email not in emails:
                emails.append(email)
        date = message.date
        thread.write(
            {
                "participant_emails": ",".join(emails)[:2000] or False,
                "last_date": max(filter(None, [thread.last_date, date])),
                "first_date": min(filter(None, [thread.first_date, date])),
            }
        )

    def _thread_for(self, rm: RemoteMessage):
        """The engine decides (Gmail thread id, then header evidence, then a subject
        match with two shared participants, never across mailboxes); we answer its
        lookups from the database and file the message's ids under the thread."""
        parsed = rm.parsed
        owner = str(self.account.id)
        lookup = OrmThreadLookup(self.env, self.account)
        key = threads.assign_thread(
            parsed, owner=owner, lookup=lookup, gm_thrid=rm.gm_thrid
        ) or threads.key_for_new_thread(parsed, rm.key)
        Thread = self.env["pipemail.thread"].with_context(active_test=False)
        thread = Thread.search([("account_id", "=", self.account.id), ("thread_key", "=", key)])
        if not thread:
            thread = Thread.create(self._thread_vals(key, parsed))
        self._file_refs([(thread, parsed)])
        return thread

    def _file_refs(self, pairs) -> None:
        """File each message's Message-ID, References and In-Reply-To under its thread
        (``pairs``: ``(thread, parsed)``), so replies join it by their headers. First
        writer wins: an id already filed under a thread stays there."""
        ref_threads, ref_names = [], []
        for thread, parsed in pairs:
            for mid in dict.fromkeys([parsed.message_id, *parsed.references, parsed.in_reply_to]):
                if mid:
                    ref_threads.append(thread.id)
                    ref_names.append(mid)
        if ref_names:
            self.cr.execute(
                SQL(
                    "INSERT INTO pipemail_thread_ref (thread_id, account_id, name)"
                    " SELECT t, %s, n FROM unnest(%s::int[], %s::varchar[]) AS x(t, n)"
                    " ON CONFLICT (account_id, name) DO NOTHING",
                    self.account.id,
                    ref_threads,
                    ref_names,
                )
            )

    # ------------------------------------------------------------------ after a batch

    def _autolink(self, threads) -> None:
        try:
            with self.cr.savepoint():
                threads._autolink()
        except (PsycopgError, ValueError, KeyError) as exc:
            # linking is a convenience: a failure there must not lose the batch
            _logger.warning("pipemail: automatic linking failed for %s: %s", threads.ids, exc)

    def on_progress(self, progress) -> None:
        """The engine's progress callback (a :class:`pipemail.sync.Progress`)."""
        if progress.phase not in ("new", "backfill") or progress.total is None:
            return
        key = (progress.folder, progress.phase)
        self._remaining[key] = max(0, int(progress.total) - int(progress.done))
        self._report_progress()
        if self.commit:
            # only the progress figures changed since the last batch commit: show them
            self.cr.commit()

    def _report_progress(self) -> None:
        """Initial-sync progress and backlog from what the engine said is left to fetch."""
        if not self._remaining:
            return  # nothing known about what is left yet: keep the figures
        backlog = sum(self._remaining.values())
        stored = self.env["pipemail.message"].search_count([("account_id", "=", self.account.id)])
        total = stored + backlog
        progress = 100 if not total else int(100 * stored / total)
        self.account._set_progress(progress, backlog)
