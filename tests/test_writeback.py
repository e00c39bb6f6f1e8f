"""pipemail.writeback against the harness Dovecot: every change verified with doveadm.

The property that matters most is "collateral changes = 0": a write-back touches the
message it names or nothing. Each test snapshots every folder on the server before and
after and checks that only the expected rows differ.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from pipemail.imap import ImapSession
from pipemail.store import MemoryStore
from pipemail.sync import sync_account
from pipemail.types import AccountConfig, Location, PasswordAuth, ServerConfig, WriteBack
from pipemail.writeback import (
    STALE_GONE,
    STALE_OTHER,
    STALE_UIDVALIDITY,
    append_sent,
    apply_writes,
    draft_message_id,
    is_crm_draft,
    remove_draft,
    save_draft,
    verify_keys,
)

FOLDERS = ("INBOX", "Sent", "Archive", "Trash", "Drafts", "Junk")


def config(dovecot, user, **kw) -> AccountConfig:
    return AccountConfig(
        key=f"acct-{user.name}",
        imap=ServerConfig(
            host=dovecot.host,
            port=dovecot.ssl_port,
            security="ssl",
            cafile=dovecot.cafile,
            allow_private_hosts=True,
            timeout=10.0,
        ),
        auth=PasswordAuth(user.name, user.password),
        folders=kw.pop("folders", ["INBOX"]),
        **kw,
    )


def mail(n: int, body: str = "") -> bytes:
    return (
        f"Message-ID: <w{n}@example.com>\r\nFrom: client{n}@customer.example\r\n"
        f"To: me@corp.example\r\nSubject: deal {n}\r\n\r\n{body or f'body {n}'}\r\n"
    ).encode()


def snapshot(dovecot, user) -> dict[str, dict[str, tuple]]:
    """folder -> message-id -> (uid, flags): the whole account as the server has it."""
    out = {}
    for folder in FOLDERS:
        out[folder] = {
            row["message_id"]: (row["uid"], row["flags"])
            for row in dovecot.fetch_state(user, folder)
        }
    return out


def changed(before, after) -> set[tuple[str, str]]:
    diffs = set()
    for folder in FOLDERS:
        for mid in set(before[folder]) | set(after[folder]):
            if before[folder].get(mid) != after[folder].get(mid):
                diffs.add((folder, mid))
    return diffs


@pytest.fixture
def synced(dovecot, imap_user):
    """Ten messages in INBOX (two already read), synced into a MemoryStore."""
    dovecot.append_many(
        imap_user, "INBOX", [(mail(n), ("\\Seen",) if n in (3, 4) else ()) for n in range(1, 11)]
    )
    cfg = config(dovecot, imap_user)
    store = MemoryStore()
    sync_account(cfg, store)
    return cfg, store


def write(store, cfg, n: int, op: str, wid: str, **kw) -> WriteBack:
    """The write-back the CRM would queue for message w<n> in INBOX."""
    msg = next(m for m in store.messages(cfg.key) if m.message_id == f"w{n}@example.com")
    (loc,) = [loc for loc in msg.locations if loc.folder == kw.pop("folder", "INBOX")]
    return WriteBack(
        id=wid, op=op, location=loc, expect_key=msg.key, message_id=f"<{msg.message_id}>", **kw
    )


def run(cfg, store, writes):
    for w in writes:
        store.queue_write(cfg.key, w)
    report = sync_account(cfg, store)
    assert report.ok, report.errors
    return {w.id: store.result(cfg.key, w.id) for w in writes}, report


# ---------------------------------------------------------------- flags


def test_seen_unseen_flag_unflag_touch_only_their_message(dovecot, imap_user, synced):
    cfg, store = synced
    before = snapshot(dovecot, imap_user)
    results, report = run(
        cfg,
        store,
        [
            write(store, cfg, 1, "seen", "a"),
            write(store, cfg, 3, "unseen", "b"),
            write(store, cfg, 5, "flag", "c"),
            write(store, cfg, 6, "flag", "d"),
        ],
    )
    assert {r.status for r in results.values()} == {"done"}
    after = snapshot(dovecot, imap_user)
    assert changed(before, after) == {
        ("INBOX", "<w1@example.com>"),
        ("INBOX", "<w3@example.com>"),
        ("INBOX", "<w5@example.com>"),
        ("INBOX", "<w6@example.com>"),
    }
    assert after["INBOX"]["<w1@example.com>"][1] == {"\\Seen"}
    assert after["INBOX"]["<w3@example.com>"][1] == frozenset()
    assert after["INBOX"]["<w5@example.com>"][1] == {"\\Flagged"}
    assert report.folders["INBOX"].writes_done == 4
    # the store agrees with the server after the same sync
    view = store.folder_view(cfg.key, "INBOX")
    for mid, (uid, flags) in after["INBOX"].items():
        assert view[uid].flags == flags, mid

    results, _ = run(cfg, store, [write(store, cfg, 5, "unflag", "e")])
    assert results["e"].status == "done"
    assert snapshot(dovecot, imap_user)["INBOX"]["<w5@example.com>"][1] == frozenset()


def test_flag_retry_is_idempotent(dovecot, imap_user, synced):
    cfg, store = synced
    wb = write(store, cfg, 2, "seen", "x")
    with ImapSession.open(cfg) as s:
        first = apply_writes(s, [wb], config=cfg)
        again = apply_writes(s, [wb], config=cfg)  # "crash before the result was saved"
    assert [r.status for r in first + again] == ["done", "done"]
    assert snapshot(dovecot, imap_user)["INBOX"]["<w2@example.com>"][1] == {"\\Seen"}


# ---------------------------------------------------------------- moves


def test_archive_moves_and_reports_new_location(dovecot, imap_user, synced):
    cfg, store = synced
    before = snapshot(dovecot, imap_user)
    wb = write(store, cfg, 7, "archive", "arch")
    key = wb.expect_key
    results, report = run(cfg, store, [wb])
    result = results["arch"]
    assert result.status == "done"
    after = snapshot(dovecot, imap_user)
    assert changed(before, after) == {
        ("INBOX", "<w7@example.com>"),
        ("Archive", "<w7@example.com>"),
    }
    new_uid = after["Archive"]["<w7@example.com>"][0]
    assert result.new_location == Location(
        "Archive", dovecot.uidvalidity(imap_user, "Archive"), new_uid
    )
    # the CRM record followed the message: same key, new location, not removed
    record = store.get(cfg.key, key)
    assert not record.removed and list(record.locations) == [result.new_location]
    assert report.folders["INBOX"].vanished == 0  # the store already knew, nothing vanished


def test_delete_moves_to_trash_and_move_to_named_folder(dovecot, imap_user, synced):
    cfg, store = synced
    dovecot.create_mailbox(imap_user, "Clients/Acme")
    before = snapshot(dovecot, imap_user)
    results, _ = run(
        cfg,
        store,
        [
            write(store, cfg, 8, "delete", "del"),
            write(store, cfg, 9, "move", "mv", target_folder="Clients/Acme"),
        ],
    )
    assert results["del"].status == "done" and results["mv"].status == "done"
    after = snapshot(dovecot, imap_user)
    assert "<w8@example.com>" in after["Trash"] and "<w8@example.com>" not in after["INBOX"]
    assert changed(before, after) == {
        ("INBOX", "<w8@example.com>"),
        ("Trash", "<w8@example.com>"),
        ("INBOX", "<w9@example.com>"),
    }
    acme = dovecot.fetch_state(imap_user, "Clients/Acme")
    assert [r["message_id"] for r in acme] == ["<w9@example.com>"]
    assert results["mv"].new_location.folder == "Clients/Acme"


def test_move_to_missing_folder_fails_and_changes_nothing(dovecot, imap_user, synced):
    cfg, store = synced
    before = snapshot(dovecot, imap_user)
    results, _ = run(cfg, store, [write(store, cfg, 1, "move", "mv", target_folder="Nope")])
    assert results["mv"].status == "failed" and "does not exist" in results["mv"].error
    assert changed(before, snapshot(dovecot, imap_user)) == set()


def test_archive_retry_after_crash_is_done_not_repeated(dovecot, imap_user, synced):
    """Killed between MOVE and saving the result: the retry finds it in Archive."""
    cfg, store = synced
    wb = write(store, cfg, 2, "archive", "arch")
    with ImapSession.open(cfg) as s:
        (first,) = apply_writes(s, [wb], config=cfg)  # result lost with the worker
    assert first.status == "done"
    after_first = snapshot(dovecot, imap_user)
    results, _ = run(cfg, store, [wb])
    assert results["arch"].status == "done"
    assert results["arch"].new_location == first.new_location
    assert changed(after_first, snapshot(dovecot, imap_user)) == set()  # nothing moved twice


def test_no_move_capability_expunges_only_the_target(dovecot, imap_user, synced):
    cfg, store = synced
    # Another client marked w10 \Deleted without expunging: a plain EXPUNGE would lose it.
    dovecot.add_flags(imap_user, "INBOX", [10], ["\\Deleted"])
    cfg.ignore_capabilities = ["MOVE"]
    results, _ = run(cfg, store, [write(store, cfg, 1, "archive", "arch")])
    assert results["arch"].status == "done" and results["arch"].new_location is not None
    inbox = snapshot(dovecot, imap_user)["INBOX"]
    assert "<w1@example.com>" not in inbox
    assert inbox["<w10@example.com>"][1] == {"\\Deleted"}  # still there, untouched


def test_no_move_no_uidplus_refuses(dovecot, imap_user, synced):
    cfg, store = synced
    cfg.ignore_capabilities = ["MOVE", "UIDPLUS"]
    before = snapshot(dovecot, imap_user)
    results, _ = run(cfg, store, [write(store, cfg, 1, "delete", "del")])
    assert results["del"].status == "failed" and "UIDPLUS" in results["del"].error
    assert changed(before, snapshot(dovecot, imap_user)) == set()


# ---------------------------------------------------------------- stale addresses


def test_uidvalidity_change_makes_queued_writes_stale(dovecot, imap_user, synced):
    cfg, store = synced
    writes = [
        write(store, cfg, 1, "seen", "s"),
        write(store, cfg, 2, "archive", "a"),
        write(store, cfg, 3, "delete", "d"),
    ]
    uv = store.state(cfg.key, "INBOX").uidvalidity
    dovecot.set_uidvalidity(imap_user, "INBOX", uv + 99)
    before = snapshot(dovecot, imap_user)
    results, report = run(cfg, store, writes)
    assert {r.status for r in results.values()} == {"stale"}
    assert all(r.error == STALE_UIDVALIDITY for r in results.values())
    assert changed(before, snapshot(dovecot, imap_user)) == set()  # wrong-target writes: 0
    assert report.folders["INBOX"].reset and len(store.messages(cfg.key)) == 10


def test_wrong_key_at_address_is_stale(dovecot, imap_user, synced):
    cfg, store = synced
    other = write(store, cfg, 5, "delete", "z")
    wrong = WriteBack(id="w", op="delete", location=other.location, expect_key="h:not-this-one")
    before = snapshot(dovecot, imap_user)
    results, _ = run(cfg, store, [wrong])
    assert results["w"].status == "stale" and results["w"].error == STALE_OTHER
    assert changed(before, snapshot(dovecot, imap_user)) == set()


def test_message_expunged_meanwhile_is_stale(dovecot, imap_user, synced):
    cfg, store = synced
    writes = [write(store, cfg, 4, "seen", "s"), write(store, cfg, 6, "archive", "a")]
    dovecot.expunge(imap_user, "INBOX", [4, 6])
    before = snapshot(dovecot, imap_user)
    results, _ = run(cfg, store, writes)
    assert results["s"].status == "stale" and results["s"].error == STALE_GONE
    assert results["a"].status == "stale"
    assert changed(before, snapshot(dovecot, imap_user)) == set()


def test_write_to_unsynced_folder_is_applied(dovecot, imap_user):
    """Write-backs aimed at a folder the account does not sync still go out."""
    uid = dovecot.append(imap_user, "Archive", mail(1))
    cfg = config(dovecot, imap_user, folders=["INBOX", "Archive"])
    store = MemoryStore()
    sync_account(cfg, store)
    wb = write(store, cfg, 1, "seen", "s", folder="Archive")
    cfg.folders = ["INBOX"]
    results, _ = run(cfg, store, [wb])
    assert results["s"].status == "done"
    assert dovecot.fetch_state(imap_user, "Archive")[0]["flags"] == {"\\Seen"}
    assert dovecot.fetch_state(imap_user, "Archive")[0]["uid"] == uid


# ---------------------------------------------------------------- append


def test_append_sent_returns_location(dovecot, imap_user):
    cfg = config(dovecot, imap_user)
    loc = append_sent(cfg, mail(42))
    state = dovecot.fetch_state(imap_user, "Sent")
    assert [(r["uid"], r["flags"]) for r in state] == [(loc.uid, {"\\Seen"})]
    assert loc == Location("Sent", dovecot.uidvalidity(imap_user, "Sent"), loc.uid)
    # and the next sync of Sent files it under the key the CRM already has
    cfg.folders = ["Sent"]
    store = MemoryStore()
    sync_account(cfg, store)
    assert store.folder_view(cfg.key, "Sent")[loc.uid].message_id == "w42@example.com"


# ---------------------------------------------------------------- drafts


def test_save_draft_replaces_its_previous_copy_and_removes_it(dovecot, imap_user):
    """The CRM's draft in the mailbox's Drafts folder (found by SPECIAL-USE), one copy
    at a time; removing it touches nothing but a draft at that very place."""
    cfg = config(dovecot, imap_user)
    first = save_draft(cfg, mail(1))
    assert first is not None and first.folder == "Drafts"
    drafts = dovecot.fetch_state(imap_user, "Drafts")
    assert [(r["uid"], r["flags"]) for r in drafts] == [(first.uid, {"\\Draft", "\\Seen"})]
    second = save_draft(cfg, mail(2), replace=first)
    drafts = dovecot.fetch_state(imap_user, "Drafts")
    assert [(r["uid"], r["message_id"]) for r in drafts] == [(second.uid, "<w2@example.com>")]

    before = snapshot(dovecot, imap_user)
    # a recreated folder (another UIDVALIDITY), a UID already gone: nothing touched
    assert not remove_draft(cfg, dataclasses.replace(second, uidvalidity=second.uidvalidity + 1))
    assert not remove_draft(cfg, first)
    # a message that is not a draft (sent from the phone meanwhile) stays
    with ImapSession.open(cfg) as session:
        kept = session.append("Drafts", mail(3), flags=["\\Seen"])
    assert not remove_draft(cfg, Location("Drafts", kept[0], kept[1]))
    assert not remove_draft(cfg, Location("No such folder", 1, 1))
    assert changed(before, snapshot(dovecot, imap_user)) == {("Drafts", "<w3@example.com>")}

    assert remove_draft(cfg, second)
    assert [r["message_id"] for r in dovecot.fetch_state(imap_user, "Drafts")] == [
        "<w3@example.com>"
    ]


def test_sync_leaves_the_crms_own_drafts_out(dovecot, imap_user):
    """The CRM's draft copies (their Message-ID says so) are not mail: the CRM has the
    draft itself. Another client's draft is synced as any message, flags and all."""
    cfg = config(dovecot, imap_user, folders=["INBOX", "Drafts"])
    with ImapSession.open(cfg) as session:
        session.append("INBOX", mail(1), flags=["\\Draft"])
        session.append("INBOX", mail(2))
    ours = draft_message_id("corp.example")
    assert is_crm_draft(ours) and not is_crm_draft("<w1@example.com>")
    save_draft(cfg, mail(3).replace(b"<w3@example.com>", ours.encode()))
    store = MemoryStore()
    sync_account(cfg, store)
    stored = {
        message.message_id: message.flags
        for folder in ("INBOX", "Drafts")
        for message in store.folder_view(cfg.key, folder).values()
    }
    assert set(stored) == {"w1@example.com", "w2@example.com"}


# ---------------------------------------------------------------- identity check cost


@pytest.fixture
def fetches(monkeypatch):
    """Every FETCH of message content on the wire: (uids, header_only, bytes returned)."""
    calls: list[tuple[list[int], bool, int]] = []
    real = ImapSession.fetch_messages

    def counting(self, uids, *, header_only=False):
        got = real(self, uids, header_only=header_only)
        calls.append((list(uids), header_only, sum(len(i.body or b"") for i in got.values())))
        return got

    monkeypatch.setattr(ImapSession, "fetch_messages", counting)
    return calls


def test_identity_check_reads_headers_not_whole_messages(dovecot, imap_user, fetches):
    """Marking large mails read: the store recorded Message-ID, size and INTERNALDATE at
    sync time, so the check reads headers only. Without them it reads every byte."""
    body = "x" * 200_000
    dovecot.append_many(imap_user, "INBOX", [mail(n, body) for n in range(1, 21)])
    cfg = config(dovecot, imap_user)
    store = MemoryStore()
    sync_account(cfg, store)
    before = snapshot(dovecot, imap_user)
    fetches.clear()
    results, _ = run(cfg, store, [write(store, cfg, n, "seen", f"s{n}") for n in range(1, 21)])
    assert {r.status for r in results.values()} == {"done"}
    assert changed(before, snapshot(dovecot, imap_user)) == {
        ("INBOX", f"<w{n}@example.com>") for n in range(1, 21)
    }
    assert [header_only for _uids, header_only, _n in fetches] == [True]
    assert sum(n for *_rest, n in fetches) < 20 * 1000

    # The same check for writes that carry nothing recorded: the whole messages.
    fetches.clear()
    bare = [write(store, cfg, n, "unseen", f"u{n}") for n in range(1, 21)]
    with ImapSession.open(cfg) as s:
        assert {r.status for r in apply_writes(s, bare, config=cfg)} == {"done"}
    assert sum(n for *_rest, n in fetches) > 20 * 200_000


def test_header_check_that_disagrees_reads_the_whole_message(dovecot, imap_user, synced, fetches):
    """A recorded value that does not match (a server reporting another size, a
    Message-ID stored differently) is never read as "another message": the key is
    recomputed from the whole message, and here it is the same message."""
    cfg, store = synced
    size = store.get(cfg.key, write(store, cfg, 2, "seen", "-").expect_key).size
    writes = [
        dataclasses.replace(write(store, cfg, 1, "seen", "size"), expect_size=size + 1),
        dataclasses.replace(
            write(store, cfg, 2, "seen", "mid"), message_id="<other@example.com>", expect_size=size
        ),
        dataclasses.replace(
            write(store, cfg, 5, "flag", "date"),
            expect_size=size,
            expect_internaldate=dt.datetime(2001, 1, 1, 12, 0),
        ),
    ]
    fetches.clear()
    results, _ = run(cfg, store, writes)
    assert {r.status for r in results.values()} == {"done"}
    whole = sorted(u for uids, header_only, _n in fetches if not header_only for u in uids)
    assert whole == sorted(w.location.uid for w in writes)


def test_message_above_size_limit_is_checked_on_its_header(dovecot, imap_user, fetches):
    """The sync keys a message above max_message_bytes by its header: the header fetch
    gives its real key, so a different message at the UID is stale, never flagged."""
    dovecot.append_many(imap_user, "INBOX", [mail(1, "y" * 300_000), mail(2, "z" * 300_000)])
    cfg = config(dovecot, imap_user, max_message_bytes=100_000)
    store = MemoryStore()
    sync_account(cfg, store)
    before = snapshot(dovecot, imap_user)
    ok = write(store, cfg, 1, "seen", "ok")
    wrong = dataclasses.replace(
        write(store, cfg, 2, "seen", "wrong"), expect_key=ok.expect_key, message_id=ok.message_id
    )
    fetches.clear()
    results, _ = run(cfg, store, [ok, wrong])
    assert results["ok"].status == "done"
    assert results["wrong"].status == "stale" and results["wrong"].error == STALE_OTHER
    assert changed(before, snapshot(dovecot, imap_user)) == {("INBOX", "<w1@example.com>")}
    assert all(header_only for _uids, header_only, _n in fetches)


def test_recreated_folder_is_checked_on_whole_messages(dovecot, imap_user):
    """The one way a UID can come to hold another message: the folder deleted and
    recreated with the same UIDVALIDITY. A copy with the same Message-ID, size and
    INTERNALDATE but other bytes passes the header check; the sync sees the folder went
    back (UIDNEXT, HIGHESTMODSEQ) and checks each write on the whole message."""
    when = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.timezone.utc)
    dovecot.create_mailbox(imap_user, "Deals")
    dovecot.append_many(imap_user, "Deals", [(mail(n), (), when) for n in range(1, 4)])
    cfg = config(dovecot, imap_user, folders=["Deals"])
    store = MemoryStore()
    sync_account(cfg, store)
    store.queue_write(cfg.key, write(store, cfg, 2, "flag", "f", folder="Deals"))
    (recorded,) = store.pending_writes(cfg.key)
    assert recorded.expect_size and recorded.expect_internaldate

    uidvalidity = store.state(cfg.key, "Deals").uidvalidity
    dovecot.delete_mailbox(imap_user, "Deals")
    dovecot.create_mailbox(imap_user, "Deals")
    dovecot.set_uidvalidity(imap_user, "Deals", uidvalidity)
    impostor = mail(2, "BODY 2")
    assert len(impostor) == len(mail(2))
    dovecot.append_many(imap_user, "Deals", [(mail(1), (), when), (impostor, (), when)])
    with ImapSession.open(cfg) as s:
        s.select("Deals")
        fooled = verify_keys(s, [recorded], max_message_bytes=cfg.max_message_bytes)
        real = verify_keys(s, [recorded], max_message_bytes=cfg.max_message_bytes, full=True)
    assert fooled == {2: recorded.expect_key} and real[2] != recorded.expect_key

    report = sync_account(cfg, store)
    assert report.ok and report.folders["Deals"].reset
    result = store.result(cfg.key, "f")
    assert result.status == "stale" and result.error == STALE_OTHER
    assert [r["flags"] for r in dovecot.fetch_state(imap_user, "Deals")] == [set(), set()]
