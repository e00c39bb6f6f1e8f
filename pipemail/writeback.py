"""Write the CRM's changes back to the server without ever touching the wrong message.

A write-back is addressed by (folder, UIDVALIDITY, UID) and carries the key of the
message it means. Before acting we SELECT the folder, compare UIDVALIDITY, then check
that the UID still holds that message: if anything differs the result is ``stale`` and
nothing is sent. That is the only way to be safe when the folder was rebuilt, or the
message expunged by another client, between the click in the CRM and this run.

The key hashes the whole message, so recomputing it means downloading it: a mass
mark-as-read of large mails would fetch every byte again. When the store recorded the
Message-ID, RFC822.SIZE (and INTERNALDATE) at sync time, the check first fetches only
the header, size and date. All equal: it is the same message (within one UIDVALIDITY a
UID is never given to another message; what this guards against is a folder recreated
with the same UIDVALIDITY, where another message with the same Message-ID *and* the
same size would have to land on the same UID). Anything else (a difference, a
synthesised Message-ID, nothing recorded) is not read as "another message": the whole
message is fetched and its key recomputed, as before. A folder the sync has just seen
recreated is always checked the full way.

Retries are idempotent: STORE of a flag already set is harmless, and a move whose UID
has already left the source folder (a previous attempt moved it, then died before the
result was stored) is looked up in the target folder by Message-ID and key and reported
``done`` with its new location.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

from pipemail.errors import (
    AuthFailed,
    ConfigError,
    ConnectionLost,
    PipemailError,
    ProtocolError,
)
from pipemail.folders import FolderMap, Role, discover
from pipemail.imap import FolderMissing, ImapSession
from pipemail.imap_parse import FetchedMessage, Mailbox
from pipemail.mime import message_key, parse_message
from pipemail.outbound import make_message_id
from pipemail.types import (
    AccountConfig,
    Location,
    ParsedMessage,
    WriteBack,
    WriteResult,
)

log = logging.getLogger(__name__)

FLAG_OPS: dict[str, tuple[str, bool]] = {
    "seen": ("\\Seen", True),
    "unseen": ("\\Seen", False),
    "flag": ("\\Flagged", True),
    "unflag": ("\\Flagged", False),
}
MOVE_OPS = frozenset({"archive", "delete", "move"})
VERIFY_BUDGET = 16 * 1024 * 1024
HEADER_GROUP = 500
"""UIDs whose headers one FETCH of the cheap identity check asks for."""

STALE_UIDVALIDITY = "The folder was rebuilt on the server since; nothing was changed."
STALE_GONE = "The message is no longer in this folder; nothing was changed."
STALE_OTHER = "Another message now has this address on the server; nothing was changed."

_NO_PARSED = ParsedMessage(message_id="", content_hash="", raw_size=0)


def stale(write: WriteBack, reason: str) -> WriteResult:
    return WriteResult(id=write.id, status="stale", error=reason)


def failed(write: WriteBack, reason: str) -> WriteResult:
    return WriteResult(id=write.id, status="failed", error=reason)


def done(write: WriteBack, location: Location | None) -> WriteResult:
    return WriteResult(id=write.id, status="done", new_location=location)


def server_keys(
    session: ImapSession, uids: Sequence[int], *, max_message_bytes: int
) -> dict[int, str]:
    """The key of the message at each UID of the selected folder (absent UIDs omitted).

    Same rule as the sync: Gmail by X-GM-MSGID, elsewhere Message-ID + content hash
    of the bytes (only the header for messages above ``max_message_bytes``).
    """
    if not uids:
        return {}
    ident = session.fetch_identity(list(uids))
    if session.is_gmail:
        return {
            uid: message_key(_NO_PARSED, gm_msgid=item.gm_msgid)
            for uid, item in ident.items()
            if item.gm_msgid
        }
    keys: dict[int, str] = {}
    small = [u for u in sorted(ident) if ident[u].size <= max_message_bytes]
    big = [u for u in sorted(ident) if ident[u].size > max_message_bytes]
    for group, header_only in ((small, False), (big, True)):
        chunk: list[int] = []
        budget = 0
        for uid in [*group, None]:
            if uid is not None and (not chunk or budget + ident[uid].size <= VERIFY_BUDGET):
                chunk.append(uid)
                budget += ident[uid].size
                continue
            if chunk:
                fetched = session.fetch_messages(chunk, header_only=header_only)
                for item_uid, item in fetched.items():
                    key = _key_of(item)
                    if key:
                        keys[item_uid] = key
            chunk, budget = ([uid], ident[uid].size) if uid is not None else ([], 0)
    return keys


def _key_of(item: FetchedMessage) -> str:
    if item.body is None:
        return ""
    parsed = parse_message(item.body, internaldate=item.internaldate, keep_attachment_content=False)
    return message_key(parsed, gm_msgid=item.gm_msgid)


def _recorded(write: WriteBack) -> bool:
    """The store gave what the header check compares."""
    return bool(write.expect_key and write.message_id.strip("<> \t") and write.expect_size > 0)


def _key_from_header(
    item: FetchedMessage, writes: Sequence[WriteBack], *, max_message_bytes: int
) -> str:
    """The key at this UID decided from its header, size and date; ``""`` if undecided."""
    if item.body is None:
        return ""
    parsed = parse_message(item.body, internaldate=item.internaldate, keep_attachment_content=False)
    if item.size > max_message_bytes:
        return message_key(parsed)  # the sync keys such a message by its header alone
    if parsed.message_id_synthesized or len({w.expect_key for w in writes}) != 1:
        return ""
    for write in writes:
        if (
            write.message_id.strip("<> \t") != parsed.message_id
            or write.expect_size != item.size
            or (
                write.expect_internaldate is not None
                and write.expect_internaldate != item.internaldate
            )
        ):
            return ""
    return writes[0].expect_key


def verify_keys(
    session: ImapSession,
    writes: Sequence[WriteBack],
    *,
    max_message_bytes: int,
    full: bool = False,
) -> dict[int, str]:
    """The key of the message at each UID ``writes`` aim at (absent UIDs omitted).

    UIDs whose every write carries what the store recorded at sync time are checked on
    their header, RFC822.SIZE and INTERNALDATE first (see the module docstring); the
    others, those the header cannot decide, and all of them with ``full``, by
    :func:`server_keys`.
    """
    by_uid: dict[int, list[WriteBack]] = {}
    for write in writes:
        by_uid.setdefault(write.location.uid, []).append(write)
    uids = sorted(by_uid)
    if full or session.is_gmail:  # Gmail's key is X-GM-MSGID: already cheap
        return server_keys(session, uids, max_message_bytes=max_message_bytes)
    cheap = [u for u in uids if all(_recorded(w) for w in by_uid[u])]
    undecided = [u for u in uids if not all(_recorded(w) for w in by_uid[u])]
    keys: dict[int, str] = {}
    for start in range(0, len(cheap), HEADER_GROUP):
        group = cheap[start : start + HEADER_GROUP]
        heads = session.fetch_messages(group, header_only=True)
        for uid in group:
            item = heads.get(uid)
            if item is None:
                continue  # no longer in the folder
            key = _key_from_header(item, by_uid[uid], max_message_bytes=max_message_bytes)
            if key:
                keys[uid] = key
            else:
                undecided.append(uid)
    keys.update(server_keys(session, sorted(undecided), max_message_bytes=max_message_bytes))
    return keys


def apply_writes(
    session: ImapSession,
    writes: Iterable[WriteBack],
    *,
    config: AccountConfig,
    folders: FolderMap | None = None,
) -> list[WriteResult]:
    """Apply write-backs for any folders (SELECTs each one)."""
    fmap = folders or discover(session)
    grouped: dict[str, list[WriteBack]] = {}
    for write in writes:
        grouped.setdefault(write.location.folder, []).append(write)
    results: list[WriteResult] = []
    for folder, group in grouped.items():
        name = fmap.resolve(folder)
        if name is None:
            results += [stale(w, "The folder of this message no longer exists.") for w in group]
            continue
        try:
            mailbox = session.select(name)
        except FolderMissing:
            results += [stale(w, "The folder of this message no longer exists.") for w in group]
            continue
        results += apply_selected(session, mailbox, group, config=config, folders=fmap)
    return results


def apply_selected(
    session: ImapSession,
    mailbox: Mailbox,
    writes: Sequence[WriteBack],
    *,
    config: AccountConfig,
    folders: FolderMap,
    full_check: bool = False,
) -> list[WriteResult]:
    """Apply write-backs aimed at the folder currently selected as ``mailbox``.

    May SELECT other folders at the end (to find messages an earlier attempt moved);
    callers re-select what they need afterwards. ``full_check`` recomputes every key
    from the whole message (a folder just seen recreated with the same UIDVALIDITY).
    """
    results: dict[object, WriteResult] = {}
    live: list[WriteBack] = []
    for write in writes:
        if write.op not in FLAG_OPS and write.op not in MOVE_OPS:
            results[write.id] = failed(write, f"Unknown change {write.op!r}.")
        elif write.location.uidvalidity != mailbox.uidvalidity:
            results[write.id] = stale(write, STALE_UIDVALIDITY)
        else:
            live.append(write)

    keys = verify_keys(session, live, max_message_bytes=config.max_message_bytes, full=full_check)
    ready: list[WriteBack] = []
    lost: list[WriteBack] = []
    for write in live:
        key = keys.get(write.location.uid)
        if key is None:
            if write.op in MOVE_OPS:
                lost.append(write)
            else:
                results[write.id] = stale(write, STALE_GONE)
        elif write.expect_key and key != write.expect_key:
            results[write.id] = stale(write, STALE_OTHER)
        else:
            ready.append(write)

    _flag_writes(session, [w for w in ready if w.op in FLAG_OPS], results)
    _move_writes(session, mailbox, [w for w in ready if w.op in MOVE_OPS], folders, results)
    for write in lost:
        results[write.id] = _find_moved(session, write, mailbox, folders, config)
    return [results[w.id] for w in writes if w.id in results]


def _flag_writes(
    session: ImapSession, writes: Sequence[WriteBack], results: dict[object, WriteResult]
) -> None:
    by_op: dict[str, list[WriteBack]] = {}
    for write in writes:
        by_op.setdefault(write.op, []).append(write)
    for op, group in by_op.items():
        flag, add = FLAG_OPS[op]
        try:
            session.store_flags([w.location.uid for w in group], [flag], add=add)
        except (ConnectionLost, AuthFailed):
            raise
        except PipemailError as exc:
            for write in group:
                results[write.id] = failed(write, str(exc))
            continue
        for write in group:
            results[write.id] = done(write, write.location)


def _target(session: ImapSession, write: WriteBack, folders: FolderMap) -> tuple[str | None, str]:
    """(target folder, error). Gmail archive has no target: it is a label change."""
    if write.op == "archive":
        if session.is_gmail:
            return None, ""
        name = folders.get("archive")
        return (name, "") if name else (None, "There is no Archive folder on the server.")
    if write.op == "delete":
        name = folders.get("trash")
        return (name, "") if name else (None, "There is no Trash folder on the server.")
    name = folders.resolve(write.target_folder) if write.target_folder else None
    if name is None:
        return None, f"The folder “{write.target_folder}” does not exist on the server."
    return name, ""


def _move_writes(
    session: ImapSession,
    mailbox: Mailbox,
    writes: Sequence[WriteBack],
    folders: FolderMap,
    results: dict[object, WriteResult],
) -> None:
    by_target: dict[str, list[WriteBack]] = {}
    gmail_archive: list[WriteBack] = []
    for write in writes:
        target, error = _target(session, write, folders)
        if write.op == "archive" and session.is_gmail:
            gmail_archive.append(write)
        elif target is None:
            results[write.id] = failed(write, error)
        elif target == mailbox.name:
            results[write.id] = done(write, write.location)  # already there
        else:
            by_target.setdefault(target, []).append(write)

    if gmail_archive:
        # Archiving on Gmail is removing the Inbox label; the message stays in All Mail.
        try:
            session.store_labels([w.location.uid for w in gmail_archive], ["\\Inbox"], add=False)
        except (ConnectionLost, AuthFailed):
            raise
        except PipemailError as exc:
            for write in gmail_archive:
                results[write.id] = failed(write, str(exc))
        else:
            stays = mailbox.name == folders.get("all")
            for write in gmail_archive:
                results[write.id] = done(write, write.location if stays else None)

    for target, group in by_target.items():
        uids = [w.location.uid for w in group]
        try:
            try:
                copied = session.move(uids, target)
            except ProtocolError as exc:
                if "EXPUNGEISSUED" not in exc.detail.upper():
                    raise
                # Another client expunged some of these UIDs after our check, and the
                # server refused the whole MOVE (Dovecot does). Those are stale; the
                # others are moved once more.
                present = session.fetch_identity(uids)
                for write in group:
                    if write.location.uid not in present:
                        results[write.id] = stale(write, STALE_GONE)
                group = [w for w in group if w.location.uid in present]
                uids = [w.location.uid for w in group]
                if not group:
                    continue
                copied = session.move(uids, target)
        except (ConnectionLost, AuthFailed):
            raise
        except PipemailError as exc:  # CapabilityMissing included: that group fails alone
            for write in group:
                results[write.id] = failed(write, str(exc))
            continue
        for write in group:
            new = None
            if copied is not None:
                if write.location.uid not in copied[1]:
                    # COPYUID lists every UID this MOVE moved: this one was expunged by
                    # someone else between our check and the MOVE. We changed nothing.
                    results[write.id] = stale(write, STALE_GONE)
                    continue
                new = Location(target, copied[0], copied[1][write.location.uid])
            results[write.id] = done(write, new)


def _find_moved(
    session: ImapSession,
    write: WriteBack,
    mailbox: Mailbox,
    folders: FolderMap,
    config: AccountConfig,
) -> WriteResult:
    """The UID left the source: did an earlier attempt of this very write move it?"""
    target, _error = _target(session, write, folders)
    if target is None or target == mailbox.name or not write.expect_key:
        return stale(write, STALE_GONE)
    criteria: list[str]
    if write.expect_key.startswith("gm:") and session.is_gmail:
        criteria = ["X-GM-MSGID", write.expect_key[3:]]
    elif write.message_id:
        criteria = ["HEADER", "Message-ID", write.message_id]
    else:
        return stale(write, STALE_GONE)
    try:
        target_box = session.select(target)
        client = session._require()
        with session._guard(f"search {target}"):
            found = sorted(int(u) for u in client.search(criteria))
        keys = server_keys(session, found[-20:], max_message_bytes=config.max_message_bytes)
    except (ConnectionLost, AuthFailed):
        raise
    except PipemailError as exc:
        log.info("looking for moved message %s failed: %s", write.id, exc)
        return stale(write, STALE_GONE)
    for uid, key in keys.items():
        if key == write.expect_key:
            return done(write, Location(target, target_box.uidvalidity, uid))
    return stale(write, STALE_GONE)


def append_sent(
    config: AccountConfig,
    raw: bytes,
    folder: str | None = None,
    *,
    session: ImapSession | None = None,
    when: datetime | None = None,
) -> Location | None:
    """Save a sent message in the Sent folder, for providers that do not do it themselves.

    Marked ``\\Seen``. Returns its location when the server gives APPENDUID (UIDPLUS),
    else ``None`` (the next sync of Sent finds it by key anyway).
    """
    with _session(config, session) as s:
        target = _folder_with_role(
            s, folder, "sent", "There is no Sent folder on the server to save the message in."
        )
        found = s.append(target, raw, flags=["\\Seen"], when=when or datetime.now(timezone.utc))
        if found is None:
            return None
        return Location(target, found[0], found[1])


@contextmanager
def _session(config: AccountConfig, session: ImapSession | None) -> Iterator[ImapSession]:
    """``session`` as given, or one opened here and closed when done."""
    if session is not None:
        yield session
        return
    own = ImapSession.open(config)
    try:
        yield own
    finally:
        own.close()


def _folder_with_role(session: ImapSession, folder: str | None, role: Role, missing: str) -> str:
    """``folder``, or the server's folder with that role (SPECIAL-USE or a known name)."""
    target = folder or discover(session).get(role)
    if target is None:
        raise ConfigError(missing)
    return target


# ---------------------------------------------------------------- drafts

DRAFT_FLAGS = ("\\Draft", "\\Seen")


DRAFT_ID_PREFIX = "pmdraft."
"""The Message-ID of the CRM's own draft copies starts so: the sync leaves them out
(other clients' drafts are synced as any message, flags and all)."""


def is_draft(flags: Iterable[str]) -> bool:
    """A message some mail client is still writing (``\\Draft``)."""
    return any(flag.lower() == "\\draft" for flag in flags)


def draft_message_id(domain: str) -> str:
    """A Message-ID for a copy of a CRM draft: unique, and known to the sync as ours."""
    fresh = make_message_id(domain)
    return f"<{DRAFT_ID_PREFIX}{fresh[1:]}"


def is_crm_draft(message_id: str | None) -> bool:
    """A copy :func:`save_draft` put in the Drafts folder: the CRM has the draft itself."""
    return (message_id or "").strip().lstrip("<").startswith(DRAFT_ID_PREFIX)


def save_draft(
    config: AccountConfig,
    raw: bytes,
    folder: str | None = None,
    *,
    replace: Location | None = None,
    session: ImapSession | None = None,
    when: datetime | None = None,
) -> Location | None:
    """Put a draft in the mailbox's Drafts folder, where the person's phone sees it, then
    remove the copy it replaces (the previous save).

    The new copy is written first: a failure in between leaves two drafts, never none.
    Returns the new copy's location (``None`` without UIDPLUS: it cannot be replaced
    later, the next save adds another).
    """
    with _session(config, session) as s:
        target = _folder_with_role(
            s, folder, "drafts", "There is no Drafts folder on the server to save the draft in."
        )
        found = s.append(
            target, raw, flags=list(DRAFT_FLAGS), when=when or datetime.now(timezone.utc)
        )
        if replace is not None:
            remove_draft(config, replace, session=s)
        return Location(target, found[0], found[1]) if found else None


def remove_draft(
    config: AccountConfig, location: Location, *, session: ImapSession | None = None
) -> bool:
    """Delete the draft copy at ``location``. Only a message still flagged ``\\Draft``
    in the same folder generation is deleted (a recreated folder, a UID already gone,
    a message the person sent from their phone: nothing is touched). ``True`` when it
    was deleted."""
    with _session(config, session) as s:
        try:
            mailbox = s.select(location.folder)
        except FolderMissing:
            return False
        if mailbox.uidvalidity != location.uidvalidity:
            return False
        found, _gone = s.fetch_flags([location.uid])
        state = found.get(location.uid)
        if state is None or not is_draft(state.flags):
            return False
        s.store_flags([location.uid], ["\\Deleted"], add=True)
        if s.has("UIDPLUS"):
            s.expunge_uids([location.uid])
        return True
