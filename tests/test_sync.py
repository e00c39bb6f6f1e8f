"""pipemail.sync end to end against the harness Dovecot (no IMAP mocks).

The store is compared with what Dovecot itself reports (``doveadm fetch``): every UID
present exactly once, flags equal. Faults come from doveadm (UIDVALIDITY change,
expunge, move, folder deletion), file permissions (a message Dovecot cannot read) and
the TCP proxy.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import threading

import pytest

from pipemail import sync as sync_mod
from pipemail.check import check_account
from pipemail.errors import ConnectionLost
from pipemail.store import MemoryStore
from pipemail.sync import (
    STRATEGY_QRESYNC,
    STRATEGY_UIDDIFF,
    Progress,
    sync_account,
)
from pipemail.types import AccountConfig, Location, PasswordAuth, ServerConfig, SyncBatch


def config(dovecot, user, **kw) -> AccountConfig:
    server = ServerConfig(
        host=dovecot.host,
        port=kw.pop("port", dovecot.port),
        security=kw.pop("security", "starttls"),
        cafile=dovecot.cafile,
        allow_private_hosts=True,
        timeout=10.0,
    )
    return AccountConfig(
        key=f"acct-{user.name}",
        imap=server,
        auth=PasswordAuth(user.name, user.password),
        **kw,
    )


def mail(
    n: int,
    *,
    sender: str | None = None,
    to: str = "me@corp.example",
    body: str = "",
    mid: str | None = "auto",
    subject: str | None = None,
) -> bytes:
    lines = []
    if mid == "auto":
        lines.append(f"Message-ID: <m{n}@example.com>")
    elif mid:
        lines.append(f"Message-ID: {mid}")
    lines += [
        f"From: {sender or f'client{n}@customer.example'}",
        f"To: {to}",
        f"Subject: {subject or f'message {n}'}",
        "Date: Mon, 4 Mar 2024 10:00:00 +0000",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + (body or f"body of {n}") + "\r\n").encode()


def assert_store_equals_server(dovecot, user, store, account, folder):
    server = dovecot.fetch_state(user, folder)
    uidvalidity = dovecot.uidvalidity(user, folder)
    view = store.folder_view(account, folder)
    assert sorted(view) == [row["uid"] for row in server]
    # exactly one stored location per server UID, none left over from older UIDVALIDITYs
    assert store.location_count(account, folder) == len(server)
    for row in server:
        stored = view[row["uid"]]
        assert stored.locations[Location(folder, uidvalidity, row["uid"])] == row["flags"], row
        assert not stored.removed
        if row["message_id"]:
            assert stored.message_id == row["message_id"].strip("<>")
    state = store.state(account, folder)
    assert state.uidvalidity == uidvalidity
    assert state.uidnext == dovecot.status(user, folder)["uidnext"]


def seed(dovecot, user, folder, numbers, flags_of=lambda n: ()):
    return dovecot.append_many(user, folder, [(mail(n), flags_of(n)) for n in numbers])


# ---------------------------------------------------------------- initial sync


def test_initial_sync_equals_server(dovecot, imap_user):
    seed(
        dovecot,
        imap_user,
        "INBOX",
        range(1, 451),
        lambda n: ("\\Seen",) if n % 3 == 0 else ("\\Flagged", "$Customer") if n % 7 == 0 else (),
    )
    seed(dovecot, imap_user, "Sent", range(1001, 1061), lambda n: ("\\Seen",))
    cfg = config(dovecot, imap_user, batch_size=50)
    store = MemoryStore()
    events: list[Progress] = []
    report = sync_account(cfg, store, progress=events.append)

    assert report.ok, report.errors
    assert report.strategy == STRATEGY_QRESYNC
    assert report.new == 510
    assert report.folders["INBOX"].new == 450 and report.folders["Sent"].new == 60
    for folder in ("INBOX", "Sent"):
        assert_store_equals_server(dovecot, imap_user, store, cfg.key, folder)
        state = store.state(cfg.key, folder)
        assert state.backfill_low is None and state.highestmodseq
    assert len(store.messages(cfg.key)) == 510
    # streamed in batches of batch_size, newest first, with progress
    assert store.batches >= 450 // 50
    backfill = [e for e in events if e.folder == "INBOX" and e.phase == "backfill"]
    assert backfill and backfill[-1].done == 450 and backfill[-1].total == 450
    assert [e.done for e in backfill] == sorted(e.done for e in backfill)


def test_newest_first_and_resumable_low_water_mark(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 101))
    cfg = config(dovecot, imap_user, batch_size=10, folders=["INBOX"])
    store = MemoryStore()
    seen_batches: list[SyncBatch] = []
    stop = threading.Event()

    class Spy(MemoryStore):
        def apply(self, batch):
            super().apply(batch)
            seen_batches.append(batch)
            if sum(len(b.new) for b in seen_batches) >= 30:
                stop.set()

    store = Spy()
    report = sync_account(cfg, store, stop=stop)
    assert report.stopped
    stored = sorted(store.folder_view(cfg.key, "INBOX"))
    assert stored == list(range(71, 101))  # the newest 30, nothing else
    state = store.state(cfg.key, "INBOX")
    assert state.backfill_low == 71 and state.uidnext == 101
    # every batch carried a state that claims no more than its rows
    for batch in seen_batches:
        if batch.state.backfill_low is not None and batch.new:
            assert min(m.location.uid for m in batch.new) >= batch.state.backfill_low

    report = sync_account(cfg, store)
    assert report.folders["INBOX"].new == 70
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_history_window_and_widening(dovecot, imap_user):
    now = dt.datetime.now(dt.timezone.utc)
    old = [(mail(n), (), now - dt.timedelta(days=400 + n)) for n in range(1, 21)]
    recent = [(mail(n), (), now - dt.timedelta(days=n - 100)) for n in range(101, 111)]
    dovecot.append_many(imap_user, "INBOX", old + recent)
    since = (now - dt.timedelta(days=30)).date()
    cfg = config(dovecot, imap_user, since=since, folders=["INBOX"])
    store = MemoryStore()
    report = sync_account(cfg, store)
    assert report.folders["INBOX"].new == 10
    assert {m.message_id for m in store.messages(cfg.key)} == {
        f"m{n}@example.com" for n in range(101, 111)
    }
    state = store.state(cfg.key, "INBOX")
    assert state.since == since and state.backfill_low is None

    # New mail is synced whatever its date: it arrived now.
    dovecot.append(imap_user, "INBOX", mail(500), internaldate=now - dt.timedelta(days=900))
    assert sync_account(cfg, store).folders["INBOX"].new == 1

    # Widening the window fetches the older ones, and only those.
    cfg.since = None
    report = sync_account(cfg, store)
    assert report.folders["INBOX"].new == 20
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")
    assert store.state(cfg.key, "INBOX").since is None


def test_changes_seen_while_a_widened_window_is_rescanned(dovecot, imap_user):
    now = dt.datetime.now(dt.timezone.utc)
    old = [(mail(n), (), now - dt.timedelta(days=400 + n)) for n in range(1, 31)]
    recent = [(mail(n), (), now - dt.timedelta(days=1)) for n in range(101, 111)]
    dovecot.append_many(imap_user, "INBOX", recent + old)  # old mail has the higher UIDs
    cfg = config(
        dovecot,
        imap_user,
        since=(now - dt.timedelta(days=30)).date(),
        folders=["INBOX"],
        batch_size=5,
    )
    store = MemoryStore()
    sync_account(cfg, store)
    assert len(store.messages(cfg.key)) == 10
    # widen, but stop after the first batch: the rescan is in progress
    cfg.since = None
    stop = threading.Event()
    sync_account(cfg, store, stop=stop, progress=lambda e: stop.set())
    state = store.state(cfg.key, "INBOX")
    assert state.backfill_low is not None and state.extra.get("backfill_rescan")
    # meanwhile a message stored long ago (UID 3, below backfill_low) is read and
    # another is expunged: the next run must see both, whatever the rescan does
    assert 3 < state.backfill_low
    dovecot.add_flags(imap_user, "INBOX", [3], ["\\Seen"])
    dovecot.expunge(imap_user, "INBOX", [4])
    report = sync_account(cfg, store)
    assert report.flag_changes == 1 and report.vanished == 1
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_large_message_keeps_header_only(dovecot, imap_user):
    big = mail(1, body="x" * 300_000)
    dovecot.append(imap_user, "INBOX", big)
    dovecot.append(imap_user, "INBOX", mail(2))
    cfg = config(dovecot, imap_user, max_message_bytes=100_000, folders=["INBOX"])
    store = MemoryStore(keep_parsed=True)
    sync_account(cfg, store)
    view = store.folder_view(cfg.key, "INBOX")
    assert view[1].truncated and view[1].subject == "message 1"
    assert view[1].size == len(big)
    assert not view[2].truncated


# ---------------------------------------------------------------- incremental


def test_incremental_new_flags_and_expunge_with_qresync(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 101))
    cfg = config(dovecot, imap_user, folders=["INBOX"])
    store = MemoryStore()
    sync_account(cfg, store)
    hms = store.state(cfg.key, "INBOX").highestmodseq

    # nothing changed: nothing reported
    report = sync_account(cfg, store)
    assert (report.new, report.flag_changes, report.vanished) == (0, 0, 0)

    seed(dovecot, imap_user, "INBOX", range(101, 111))
    dovecot.add_flags(imap_user, "INBOX", [3, 4, 5], ["\\Seen"])
    dovecot.add_flags(imap_user, "INBOX", [6], ["\\Flagged", "$Hot"])
    dovecot.expunge(imap_user, "INBOX", [10, 11, 12])
    report = sync_account(cfg, store)
    fr = report.folders["INBOX"]
    assert fr.strategy == STRATEGY_QRESYNC
    assert (fr.new, fr.flag_changes, fr.vanished) == (10, 4, 3)
    assert store.state(cfg.key, "INBOX").highestmodseq > hms
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")
    # an expunged message is marked removed, not deleted
    gone = store.get(
        cfg.key,
        next(
            m.key
            for m in store.messages(cfg.key, include_removed=True)
            if m.message_id == "m10@example.com"
        ),
    )
    assert gone.removed and not gone.locations


def test_flag_removed_and_keyword_changes(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 6), lambda n: ("\\Seen", "\\Flagged"))
    cfg = config(dovecot, imap_user, folders=["INBOX"])
    store = MemoryStore()
    sync_account(cfg, store)
    dovecot.remove_flags(imap_user, "INBOX", [2], ["\\Seen"])
    dovecot.set_flags(imap_user, "INBOX", [3], ["$Deal"])
    report = sync_account(cfg, store)
    assert report.flag_changes == 2
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_uid_diff_strategy_without_condstore(dovecot, imap_user):
    """The Microsoft 365 path: no CONDSTORE/QRESYNC (and no ESEARCH) on the wire."""
    seed(dovecot, imap_user, "INBOX", range(1, 201))
    clock = [1_000_000.0]
    cfg = config(
        dovecot,
        imap_user,
        folders=["INBOX"],
        disable_condstore=True,
        ignore_capabilities=["ESEARCH"],
        recent_window=50,
        reconcile_interval=3600,
    )
    store = MemoryStore()

    def now() -> float:
        return clock[0]

    if True:
        report = sync_account(cfg, store, now=now)
        assert report.folders["INBOX"].strategy == STRATEGY_UIDDIFF
        assert store.state(cfg.key, "INBOX").highestmodseq is None
        assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")

        # recent window: changes to the newest 50 are seen at once; expunges anywhere
        dovecot.add_flags(imap_user, "INBOX", [190], ["\\Seen"])
        dovecot.add_flags(imap_user, "INBOX", [20], ["\\Seen"])  # old: waits for reconcile
        dovecot.expunge(imap_user, "INBOX", [5, 195])
        seed(dovecot, imap_user, "INBOX", [201])
        clock[0] += 60
        report = sync_account(cfg, store, now=now)
        fr = report.folders["INBOX"]
        assert (fr.new, fr.flag_changes, fr.vanished, fr.reconciled) == (1, 1, 2, False)
        assert store.folder_view(cfg.key, "INBOX")[20].flags == frozenset()

        # periodic full reconciliation catches the old change
        clock[0] += 3601
        report = sync_account(cfg, store, now=now)
        fr = report.folders["INBOX"]
        assert fr.reconciled and fr.flag_changes == 1
        assert store.state(cfg.key, "INBOX").last_reconcile == clock[0]
        assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")

    # switching CONDSTORE back on: a full comparison once, then CHANGEDSINCE
    cfg.disable_condstore = False
    cfg.ignore_capabilities = []
    dovecot.add_flags(imap_user, "INBOX", [30], ["\\Flagged"])
    report = sync_account(cfg, store)
    assert report.folders["INBOX"].strategy == STRATEGY_QRESYNC
    assert report.flag_changes == 1
    assert store.state(cfg.key, "INBOX").highestmodseq
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_condstore_without_qresync(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 51))
    cfg = config(dovecot, imap_user, folders=["INBOX"], ignore_capabilities=["QRESYNC"])
    store = MemoryStore()
    report = sync_account(cfg, store)
    assert report.folders["INBOX"].strategy == "condstore"
    dovecot.add_flags(imap_user, "INBOX", [7], ["\\Seen"])
    dovecot.expunge(imap_user, "INBOX", [8])
    report = sync_account(cfg, store)
    assert (report.flag_changes, report.vanished) == (1, 1)
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


# ---------------------------------------------------------------- identity


def test_uidvalidity_change_rebuilds_without_duplicates(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 31))
    cfg = config(dovecot, imap_user, folders=["INBOX"])
    store = MemoryStore()
    sync_account(cfg, store)
    keys_before = {m.key for m in store.messages(cfg.key)}
    old_uv = store.state(cfg.key, "INBOX").uidvalidity

    dovecot.set_uidvalidity(imap_user, "INBOX", old_uv + 1000)
    report = sync_account(cfg, store)
    assert report.folders["INBOX"].reset
    assert {m.key for m in store.messages(cfg.key, include_removed=True)} == keys_before
    assert len(store.messages(cfg.key, include_removed=True)) == 30
    for m in store.messages(cfg.key):
        assert {loc.uidvalidity for loc in m.locations} == {old_uv + 1000}
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_folder_deleted_and_recreated(dovecot, imap_user):
    dovecot.create_mailbox(imap_user, "Deals")
    seed(dovecot, imap_user, "Deals", range(1, 11))
    cfg = config(dovecot, imap_user, folders=["INBOX", "Deals"])
    store = MemoryStore()
    sync_account(cfg, store)
    keys = {m.key for m in store.messages(cfg.key)}
    assert len(keys) == 10

    dovecot.delete_mailbox(imap_user, "Deals")
    report = sync_account(cfg, store)
    assert [e.folder for e in report.errors] == ["Deals"]
    assert "does not exist" in report.errors[0].message
    assert all(m.removed for m in store.messages(cfg.key, include_removed=True))
    assert store.location_count(cfg.key, "Deals") == 0

    dovecot.create_mailbox(imap_user, "Deals")
    seed(dovecot, imap_user, "Deals", range(1, 6))  # the same mails come back
    report = sync_account(cfg, store)
    assert report.ok
    assert len(store.messages(cfg.key, include_removed=True)) == 10  # no duplicates
    assert len(store.messages(cfg.key)) == 5
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "Deals")


def test_recreated_with_same_uidvalidity_is_detected(dovecot, imap_user):
    dovecot.create_mailbox(imap_user, "Deals")
    seed(dovecot, imap_user, "Deals", range(1, 11))
    cfg = config(dovecot, imap_user, folders=["Deals"])
    store = MemoryStore()
    sync_account(cfg, store)
    uv = store.state(cfg.key, "Deals").uidvalidity
    # Behind our back: deleted, recreated, given the old UIDVALIDITY, other mails in it.
    dovecot.delete_mailbox(imap_user, "Deals")
    dovecot.create_mailbox(imap_user, "Deals")
    dovecot.set_uidvalidity(imap_user, "Deals", uv)
    seed(dovecot, imap_user, "Deals", range(50, 53))
    report = sync_account(cfg, store)
    assert report.folders["Deals"].reset
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "Deals")
    assert {m.message_id for m in store.messages(cfg.key)} == {
        f"m{n}@example.com" for n in range(50, 53)
    }


def test_move_to_archive_keeps_record(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 11))
    cfg = config(dovecot, imap_user, folders=["INBOX", "Archive"])
    watched: list[bool] = []

    class Watching(MemoryStore):
        """Records after every batch whether the watched record looked removed."""

        key = ""

        def apply(self, batch):
            super().apply(batch)
            if self.key:
                watched.append(self.get(cfg.key, self.key).removed)

    store = Watching()
    sync_account(cfg, store)
    record = store.folder_view(cfg.key, "INBOX")[4]
    key = store.key = record.key

    mapping = dovecot.move(imap_user, "INBOX", "Archive", [4])
    report = sync_account(cfg, store)
    assert watched and not any(watched)  # never shown as removed, not even between batches
    assert report.folders["Archive"].new == 1 and report.folders["INBOX"].vanished == 1
    same = store.get(cfg.key, key)
    assert same is record and not same.removed
    assert same.folders == {"Archive"}
    uv = dovecot.uidvalidity(imap_user, "Archive")
    assert list(same.locations) == [Location("Archive", uv, mapping[4])]
    assert len(store.messages(cfg.key, include_removed=True)) == 10


def test_same_message_id_different_content_both_kept(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", mail(1, mid="<dup@example.com>", body="first"))
    dovecot.append(imap_user, "INBOX", mail(2, mid="<dup@example.com>", body="second"))
    cfg = config(dovecot, imap_user, folders=["INBOX"])
    store = MemoryStore()
    sync_account(cfg, store)
    msgs = store.messages(cfg.key)
    assert len(msgs) == 2 and len({m.key for m in msgs}) == 2
    assert {m.message_id for m in msgs} == {"dup@example.com"}


def test_identical_copy_in_two_folders_is_one_record(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", mail(1))
    dovecot.copy(imap_user, "INBOX", "Sent", [1])
    cfg = config(dovecot, imap_user)
    store = MemoryStore()
    sync_account(cfg, store)
    msgs = store.messages(cfg.key)
    assert len(msgs) == 1 and msgs[0].folders == {"INBOX", "Sent"}


def test_no_message_id_is_synthesised_and_stable(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", mail(1, mid=None))
    cfg = config(dovecot, imap_user, folders=["INBOX"])
    store = MemoryStore()
    sync_account(cfg, store)
    (first,) = store.messages(cfg.key)
    assert first.message_id and first.message_id_synthesized
    # seen again from scratch (rebuilt folder, another store): same id, same key
    dovecot.set_uidvalidity(imap_user, "INBOX", store.state(cfg.key, "INBOX").uidvalidity + 7)
    sync_account(cfg, store)
    other = MemoryStore()
    sync_account(cfg, other)
    assert [m.key for m in store.messages(cfg.key, include_removed=True)] == [first.key]
    assert [(m.key, m.message_id) for m in other.messages(cfg.key)] == [
        (first.key, first.message_id)
    ]


# ---------------------------------------------------------------- bad messages


def _deeply_nested(n: int) -> bytes:
    depth = 60
    parts = "".join(
        f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'
        for i in range(depth)
    )
    body = parts + f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
    body += "".join(f"--b{i}--\r\n" for i in range(depth, -1, -1))
    head = (
        f"Message-ID: <bad{n}@example.com>\r\nFrom: x@customer.example\r\nSubject: bad\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    )
    return head.encode() + body.encode()


def test_unparseable_message_stored_raw_rest_syncs(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 6))
    bad = _deeply_nested(1)
    dovecot.append(imap_user, "INBOX", bad)
    seed(dovecot, imap_user, "INBOX", range(6, 11))
    cfg = config(dovecot, imap_user, folders=["INBOX"])
    store = MemoryStore()
    report = sync_account(cfg, store)
    assert report.ok and report.new == 11 and report.quarantined == 1
    stored = store.folder_view(cfg.key, "INBOX")[6]
    assert stored.parse_error and stored.raw == bad
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_message_the_server_cannot_read_is_quarantined(dovecot, imap_user):
    """Dovecot answers FETCH of an unreadable file with BYE: isolate it, move on."""
    seed(dovecot, imap_user, "INBOX", range(1, 41))
    maildir = dovecot.mail_root / imap_user.name / "Maildir"
    files = glob.glob(str(maildir / "new" / "*")) + glob.glob(str(maildir / "cur" / "*"))
    victim = next(f for f in files if os.path.getsize(f) > 0)
    os.chmod(victim, 0)
    cfg = config(dovecot, imap_user, folders=["INBOX"], batch_size=16)
    store = MemoryStore()
    report = sync_account(cfg, store)
    assert report.ok
    assert report.new == 39 and report.quarantined == 1
    state = store.state(cfg.key, "INBOX")
    assert state.uidnext == 41 and state.backfill_low is None
    (bad_uid,) = state.extra["quarantine"]
    assert "closed the connection" in state.extra["quarantine"][bad_uid]["error"]
    assert int(bad_uid) not in store.folder_view(cfg.key, "INBOX")

    # Readable again: a later sync picks it up from the quarantine list.
    for path in glob.glob(str(maildir / "*" / "*")):
        os.chmod(path, 0o600)
    report = sync_account(cfg, store)
    assert report.new == 1
    assert "quarantine" not in store.state(cfg.key, "INBOX").extra
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


# ---------------------------------------------------------------- crashes and cuts


class CrashingStore(MemoryStore):
    """Dies (like a killed worker) on the n-th apply, before anything of it is stored."""

    def __init__(self, crash_at: int):
        super().__init__()
        self.crash_at = crash_at
        self.calls = 0

    def apply(self, batch):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("killed")
        super().apply(batch)


@pytest.mark.parametrize("crash_at", [2, 5, 9, 13])
def test_crash_between_batches_resumes_without_loss_or_duplicates(dovecot, imap_user, crash_at):
    seed(dovecot, imap_user, "INBOX", range(1, 121))
    seed(dovecot, imap_user, "Sent", range(200, 230))
    cfg = config(dovecot, imap_user, batch_size=20)
    store = CrashingStore(crash_at)
    with pytest.raises(KeyboardInterrupt):
        sync_account(cfg, store)
    for folder, count in (("INBOX", 120), ("Sent", 30)):
        state = store.state(cfg.key, folder)
        if state is None:
            continue
        # the cursor never claims a UID whose row is not committed
        stored = store.folder_view(cfg.key, folder)
        low = state.backfill_low or 1
        assert all(u in stored for u in range(low, min(state.uidnext, count + 1)))
    store.crash_at = -1
    sync_account(cfg, store)
    for folder in ("INBOX", "Sent"):
        assert_store_equals_server(dovecot, imap_user, store, cfg.key, folder)
    assert len(store.messages(cfg.key, include_removed=True)) == 150


def test_connection_cut_mid_literal_retries_and_stores_no_partial(dovecot, imap_user, tcp_proxy):
    seed(dovecot, imap_user, "INBOX", range(1, 31))
    dovecot.append(imap_user, "INBOX", mail(99, body="y" * 500_000))
    proxy = tcp_proxy(dovecot)
    cfg = config(dovecot, imap_user, port=proxy.port, security="none", folders=["INBOX"])
    store = MemoryStore(keep_parsed=True)
    proxy.cut_after(200_000, times=2)  # inside the big literal, twice
    report = sync_account(cfg, store, retries=3)
    assert report.retries >= 1
    assert report.new == 31
    big = store.folder_view(cfg.key, "INBOX")[31]
    assert big.parsed.text.count("y") == 500_000  # complete, never a partial body
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")


def test_connection_lost_beyond_retries_raises(dovecot, imap_user, tcp_proxy):
    seed(dovecot, imap_user, "INBOX", range(1, 3))
    proxy = tcp_proxy(dovecot)
    cfg = config(dovecot, imap_user, port=proxy.port, security="none", folders=["INBOX"])
    proxy.cut_after(1000, times=None)  # every connection dies in LIST, after login
    with pytest.raises(ConnectionLost):
        sync_account(cfg, MemoryStore(), retries=1)


# ---------------------------------------------------------------- filters


def filtered_mix(owner: str = "me@corp.example") -> list[bytes]:
    """UIDs 1-3 dropped by :func:`filter_config`'s rules, 4-5 kept."""
    return [
        mail(1, sender="boss@corp.example", to=owner),  # internal only
        mail(2, sender="ceo@hr-portal.example", to=owner),  # blocklisted domain
        mail(3, sender="friend@gmail.example", to=owner),  # blocklisted address
        mail(4, sender="friend@gmail.example", to=f"{owner}, buyer@customer.example"),
        mail(5, sender="buyer@customer.example", to=owner),
    ]


def filter_config(dovecot, user, **kw) -> AccountConfig:
    return config(
        dovecot,
        user,
        folders=["INBOX"],
        blocklist=["@hr-portal.example", "friend@gmail.example"],
        internal_domains=["corp.example"],
        skip_internal=True,
        **kw,
    )


def test_blocklist_and_internal_filters_advance_cursor(dovecot, imap_user):
    dovecot.append_many(imap_user, "INBOX", filtered_mix())
    cfg = filter_config(dovecot, imap_user)
    store = MemoryStore()
    report = sync_account(cfg, store)
    assert report.skipped == 3 and report.new == 2
    assert {m.message_id for m in store.messages(cfg.key)} == {"m4@example.com", "m5@example.com"}
    assert store.state(cfg.key, "INBOX").uidnext == 6
    assert sync_account(cfg, store).skipped == 0  # never fetched again


def stored_ids(store, account) -> list[str]:
    return sorted(m.message_id for m in store.messages(account, include_removed=True))


def test_full_reconciliation_does_not_fetch_filtered_messages_again(dovecot, imap_user):
    """Without CONDSTORE the full reconciliation looks for UIDs below the cursor that were
    never stored: the filtered ones are listed in the state and not downloaded again,
    a real gap still is, and a filtered UID the server expunged leaves the list."""
    dovecot.append_many(imap_user, "INBOX", filtered_mix())
    clock = [1_000_000.0]
    cfg = filter_config(
        dovecot,
        imap_user,
        disable_condstore=True,
        ignore_capabilities=["ESEARCH"],
        reconcile_interval=3600,
    )
    store = MemoryStore()
    report = sync_account(cfg, store, now=lambda: clock[0])
    assert (report.new, report.skipped) == (2, 3)
    state = store.state(cfg.key, "INBOX")
    entry = state.extra["filtered"]
    assert (entry["uids"], entry["uidvalidity"]) == ("1:3", dovecot.uidvalidity(imap_user, "INBOX"))

    # a gap the reconciliation must still find: UID 5's row lost by the store
    store.apply(
        SyncBatch(cfg.key, "INBOX", state=state, vanished=[Location("INBOX", state.uidvalidity, 5)])
    )
    dovecot.expunge(imap_user, "INBOX", [2])
    clock[0] += 3601
    report = sync_account(cfg, store, now=lambda: clock[0])
    fr = report.folders["INBOX"]
    assert fr.reconciled and (fr.new, fr.skipped) == (1, 0)
    assert report.bytes_fetched == len(filtered_mix()[4])  # the gap only
    assert store.state(cfg.key, "INBOX").extra["filtered"]["uids"] == "1,3"
    assert stored_ids(store, cfg.key) == ["m4@example.com", "m5@example.com"]

    clock[0] += 3601
    report = sync_account(cfg, store, now=lambda: clock[0])
    assert report.folders["INBOX"].reconciled
    assert (report.new, report.skipped, report.bytes_fetched) == (0, 0, 0)


def test_filter_change_judges_filtered_messages_again(dovecot, imap_user):
    """Editing the blocklist takes effect on mail already filtered (here with QRESYNC,
    where no reconciliation would ever look below the cursor): the filtered UIDs are
    fetched once more, those now allowed are stored, the others stay listed."""
    dovecot.append_many(imap_user, "INBOX", filtered_mix())
    cfg = filter_config(dovecot, imap_user)
    store = MemoryStore()
    assert sync_account(cfg, store).skipped == 3
    dovecot.expunge(imap_user, "INBOX", [2])  # reported VANISHED: leaves the list
    assert sync_account(cfg, store).bytes_fetched == 0
    assert store.state(cfg.key, "INBOX").extra["filtered"]["uids"] == "1,3"

    cfg.blocklist = ["@hr-portal.example"]  # friend@gmail.example is welcome again
    report = sync_account(cfg, store)
    assert report.ok and (report.new, report.skipped) == (1, 1)
    assert stored_ids(store, cfg.key) == [f"m{n}@example.com" for n in (3, 4, 5)]
    entry = store.state(cfg.key, "INBOX").extra["filtered"]
    assert entry["uids"] == "1" and "recheck" not in entry

    report = sync_account(cfg, store)
    assert (report.new, report.skipped, report.bytes_fetched) == (0, 0, 0)

    cfg.blocklist, cfg.skip_internal = [], False
    report = sync_account(cfg, store)
    assert (report.new, report.skipped) == (1, 0)
    assert "filtered" not in store.state(cfg.key, "INBOX").extra
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")
    assert len(store.messages(cfg.key, include_removed=True)) == 4


def test_filter_recheck_resumes_after_stop_and_crash(dovecot, imap_user):
    dovecot.append_many(
        imap_user,
        "INBOX",
        [mail(n, sender="friend@gmail.example") for n in range(1, 9)] + [mail(9), mail(10)],
    )
    cfg = filter_config(dovecot, imap_user, batch_size=2)
    store = CrashingStore(crash_at=-1)
    assert sync_account(cfg, store).skipped == 8

    cfg.blocklist = []
    stop = threading.Event()

    def progress(p: Progress) -> None:
        if p.phase == "recheck" and p.done >= 2:
            stop.set()

    report = sync_account(cfg, store, progress=progress, stop=stop)
    assert report.stopped and report.new == 2
    state = store.state(cfg.key, "INBOX")
    assert state.extra["filtered"]["recheck"] == "3:8" and state.uidnext == 11

    store.calls, store.crash_at = 0, 1  # killed while storing the next recheck chunk
    with pytest.raises(KeyboardInterrupt):
        sync_account(cfg, store)
    assert store.state(cfg.key, "INBOX").extra["filtered"]["recheck"] == "3:8"

    store.crash_at = -1
    report = sync_account(cfg, store)
    assert report.ok and (report.new, report.skipped) == (6, 0)
    assert "filtered" not in store.state(cfg.key, "INBOX").extra
    assert_store_equals_server(dovecot, imap_user, store, cfg.key, "INBOX")
    assert len(store.messages(cfg.key, include_removed=True)) == 10


def test_uidvalidity_change_voids_the_filtered_list(dovecot, imap_user):
    dovecot.append_many(imap_user, "INBOX", filtered_mix())
    cfg = filter_config(dovecot, imap_user)
    store = MemoryStore()
    sync_account(cfg, store)
    uidvalidity = store.state(cfg.key, "INBOX").uidvalidity
    dovecot.set_uidvalidity(imap_user, "INBOX", uidvalidity + 7)
    report = sync_account(cfg, store)
    assert report.folders["INBOX"].reset and (report.new, report.skipped) == (2, 3)
    entry = store.state(cfg.key, "INBOX").extra["filtered"]
    assert (entry["uidvalidity"], entry["uids"]) == (uidvalidity + 7, "1:3")
    assert len(store.messages(cfg.key, include_removed=True)) == 2


def test_filtered_list_is_bounded(dovecot, imap_user, monkeypatch):
    """Past the limit the lowest ranges are forgotten: they are fetched again by a full
    reconciliation (as before the list existed) and the list stays bounded."""
    monkeypatch.setattr(sync_mod, "FILTERED_RANGES_LIMIT", 2)
    blocked = "friend@gmail.example"
    dovecot.append_many(
        imap_user, "INBOX", [mail(n, sender=blocked if n % 2 else None) for n in range(1, 8)]
    )
    clock = [1_000_000.0]
    cfg = filter_config(dovecot, imap_user, disable_condstore=True, reconcile_interval=3600)
    store = MemoryStore()
    assert sync_account(cfg, store, now=lambda: clock[0]).skipped == 4
    assert store.state(cfg.key, "INBOX").extra["filtered"]["uids"] == "5,7"
    clock[0] += 3601
    report = sync_account(cfg, store, now=lambda: clock[0])
    assert report.folders["INBOX"].reconciled and (report.new, report.skipped) == (0, 2)
    assert store.state(cfg.key, "INBOX").extra["filtered"]["uids"] == "5,7"
    assert stored_ids(store, cfg.key) == [f"m{n}@example.com" for n in (2, 4, 6)]


# ---------------------------------------------------------------- check


def test_check_account_reports_strategy_and_counts(dovecot, imap_user):
    seed(dovecot, imap_user, "INBOX", range(1, 4), lambda n: ("\\Seen",) if n == 1 else ())
    report = check_account(config(dovecot, imap_user))
    assert report.strategy == STRATEGY_QRESYNC
    assert "QRESYNC" in report.capabilities and not report.gmail
    inbox = next(f for f in report.folders if f.name == "INBOX")
    assert (inbox.messages, inbox.unseen) == (3, 2)
    assert inbox.highestmodseq
    assert report.sync_folders == ["INBOX", "Sent"]
    assert report.roles["archive"] == "Archive"
    assert report.tls.startswith("TLSv1.")
    plain = check_account(config(dovecot, imap_user, disable_condstore=True))
    assert plain.strategy == STRATEGY_UIDDIFF
    assert any("CONDSTORE" in note for note in plain.notes)


def test_full_reconciliation_fetches_gaps_below_the_cursor(dovecot, imap_user):
    """Without CONDSTORE a UID below the cursor that was never stored (Exchange making
    UID N visible after N+1) is fetched by the full reconciliation, within the window."""
    now = dt.datetime.now(dt.timezone.utc)
    old = [(mail(n), (), now - dt.timedelta(days=400 + n)) for n in range(1, 4)]
    recent = [(mail(n), (), now - dt.timedelta(days=n - 10)) for n in range(11, 16)]
    dovecot.append_many(imap_user, "INBOX", old + recent)
    clock = [1_000_000.0]
    cfg = config(
        dovecot,
        imap_user,
        folders=["INBOX"],
        since=(now - dt.timedelta(days=30)).date(),
        disable_condstore=True,
        ignore_capabilities=["ESEARCH"],
        reconcile_interval=3600,
    )
    store = MemoryStore()
    assert sync_account(cfg, store, now=lambda: clock[0]).folders["INBOX"].new == 5
    state = store.state(cfg.key, "INBOX")
    gap = next(
        u
        for u, m in store.folder_view(cfg.key, "INBOX").items()
        if m.message_id == "m13@example.com"
    )
    store.apply(
        SyncBatch(
            cfg.key, "INBOX", state=state, vanished=[Location("INBOX", state.uidvalidity, gap)]
        )
    )
    assert gap not in store.folder_view(cfg.key, "INBOX")

    clock[0] += 60  # no full reconciliation yet: the gap stays
    fr = sync_account(cfg, store, now=lambda: clock[0]).folders["INBOX"]
    assert (fr.new, fr.reconciled) == (0, False)

    clock[0] += 3601
    fr = sync_account(cfg, store, now=lambda: clock[0]).folders["INBOX"]
    assert (fr.new, fr.vanished, fr.reconciled) == (1, 0, True)
    view = store.folder_view(cfg.key, "INBOX")
    assert view[gap].message_id == "m13@example.com" and not view[gap].removed
    assert [m.message_id for m in store.messages(cfg.key)].count("m13@example.com") == 1
    assert store.location_count(cfg.key, "INBOX") == 5  # the old three are not gaps
    assert sorted(m.message_id for m in view.values()) == [
        f"m{n}@example.com" for n in range(11, 16)
    ]
    assert store.state(cfg.key, "INBOX").uidnext == state.uidnext

    clock[0] += 3601
    fr = sync_account(cfg, store, now=lambda: clock[0]).folders["INBOX"]
    assert (fr.new, fr.flag_changes, fr.vanished, fr.reconciled) == (0, 0, 0, True)
    assert store.location_count(cfg.key, "INBOX") == 5
