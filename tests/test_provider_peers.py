"""Gmail and Microsoft 365 behaviour, through the ScriptedImapPeer.

First the peer itself, driven by imapclient directly (so a broken peer cannot make the
engine tests pass); then the engine's Gmail path (All Mail once, X-GM-MSGID identity,
labels, archive = remove \\Inbox) and its Microsoft path (no CONDSTORE: new mail, flag
diffs, expunges found by full-UID reconciliation), and a server that advertises
CONDSTORE but sends no MODSEQ.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from scripted_imap_peer import GMAIL_ALL, GMAIL_SENT, GMAIL_TRASH, ScriptedImapPeer

from pipemail.errors import AuthFailed
from pipemail.imap import ImapSession
from pipemail.oauth import GoogleTokenSource
from pipemail.store import MemoryStore
from pipemail.sync import STRATEGY_GMAIL, STRATEGY_UIDDIFF, sync_account
from pipemail.types import (
    AccountConfig,
    Location,
    OAuth2Auth,
    PasswordAuth,
    ServerConfig,
    WriteBack,
)

USER, PASSWORD = "user@example.com", "secret"


def mail(n: int, *, subject: str | None = None, day: int = 1, refs: str = "") -> bytes:
    headers = [
        f"Message-ID: <p{n}@example.com>",
        "From: Client <client@example.org>",
        "To: Seller <user@example.com>",
        f"Subject: {subject or f'message {n}'}",
        f"Date: Mon, {day:02d} Jan 2024 10:00:00 +0000",
    ]
    if refs:
        headers += [f"In-Reply-To: {refs}", f"References: {refs}"]
    return ("\r\n".join(headers) + f"\r\n\r\nbody of message {n}\r\n").encode()


@pytest.fixture
def peers():
    made: list[ScriptedImapPeer] = []

    def make(provider: str = "gmail", **kwargs) -> ScriptedImapPeer:
        peer = ScriptedImapPeer(provider, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.stop()


def client(peer: ScriptedImapPeer, *, login: bool = True) -> IMAPClient:
    c = IMAPClient(peer.host, peer.port, ssl=False, timeout=5)
    if login:
        c.login(USER, PASSWORD)
    return c


def account(peer: ScriptedImapPeer, **kwargs) -> AccountConfig:
    kwargs.setdefault("provider", peer.provider)
    return AccountConfig(
        key=f"{peer.provider}-acct",
        imap=ServerConfig(
            host=peer.host, port=peer.port, security="none", allow_private_hosts=True, timeout=10
        ),
        auth=kwargs.pop("auth", PasswordAuth(USER, PASSWORD)),
        **kwargs,
    )


# ====================================================================== the peer itself


def test_gmail_capabilities_and_folders(peers):
    peer = peers("gmail")
    c = client(peer, login=False)
    assert b"X-GM-EXT-1" in c.capabilities() and b"AUTH=XOAUTH2" in c.capabilities()
    c.login(USER, PASSWORD)
    caps = c.capabilities()
    assert b"X-GM-EXT-1" in caps and b"CONDSTORE" in caps and b"QRESYNC" not in caps
    folders = {name: flags for flags, _d, name in c.list_folders()}
    assert b"\\All" in folders[GMAIL_ALL]
    assert b"\\Sent" in folders[GMAIL_SENT]
    assert b"\\Trash" in folders[GMAIL_TRASH]
    assert b"\\Noselect" in folders["[Gmail]"]
    assert "INBOX" in folders
    c.logout()


def test_gmail_same_message_in_inbox_and_all_mail(peers):
    peer = peers("gmail")
    first = peer.mailbox.deliver(mail(1))
    reply = peer.mailbox.deliver(mail(2, refs="<p1@example.com>"), thread_of=first)
    peer.mailbox.add_labels(first, ["Clients/ACME"])
    c = client(peer)
    items = ["X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS", "BODY.PEEK[]"]
    c.select_folder("INBOX")
    inbox = c.fetch(c.search(["ALL"]), items)
    c.select_folder(GMAIL_ALL)
    all_mail = c.fetch(c.search(["ALL"]), items)
    ids_inbox = sorted(v[b"X-GM-MSGID"] for v in inbox.values())
    ids_all = sorted(v[b"X-GM-MSGID"] for v in all_mail.values())
    assert ids_inbox == ids_all == sorted([first.gm_msgid, reply.gm_msgid])
    threads = {v[b"X-GM-THRID"] for v in all_mail.values()}
    assert threads == {first.gm_thrid}
    labels = {v[b"X-GM-MSGID"]: set(v[b"X-GM-LABELS"]) for v in all_mail.values()}
    assert labels[first.gm_msgid] == {b"\\Inbox", b"Clients/ACME"}
    assert all(v[b"BODY[]"].startswith(b"Message-ID:") for v in all_mail.values())
    c.logout()


def test_gmail_flags_are_per_message_and_archive_removes_inbox(peers):
    peer = peers("gmail")
    msg = peer.mailbox.deliver(mail(1))
    c = client(peer)
    c.select_folder("INBOX")
    c.add_flags([peer.mailbox.uid(msg, "INBOX")], ["\\Seen"], silent=True)
    c.select_folder(GMAIL_ALL)
    uid = peer.mailbox.uid(msg, GMAIL_ALL)
    assert b"\\Seen" in c.get_flags([uid])[uid]
    c.remove_gmail_labels([uid], ["\\Inbox"], silent=True)
    assert c.get_gmail_labels([uid])[uid] == []
    assert peer.mailbox.uids("INBOX") == []
    assert peer.mailbox.uids(GMAIL_ALL) == [uid]
    c.logout()


def test_gmail_expunge_from_label_folder_only_removes_the_label(peers):
    peer = peers("gmail")
    msg = peer.mailbox.deliver(mail(1))
    c = client(peer)
    c.select_folder("INBOX")
    c.add_flags([1], ["\\Deleted"])
    c.expunge()
    assert peer.mailbox.uids("INBOX") == []
    assert peer.mailbox.uid(msg, GMAIL_ALL) is not None
    c.select_folder(GMAIL_ALL)
    c.move([peer.mailbox.uid(msg, GMAIL_ALL)], GMAIL_TRASH)
    assert peer.mailbox.uids(GMAIL_ALL) == [] and len(peer.mailbox.uids(GMAIL_TRASH)) == 1
    c.logout()


def test_search_fetch_and_seen(peers):
    peer = peers("microsoft")
    for n in range(1, 6):
        peer.mailbox.deliver(mail(n, day=n))
    c = client(peer)
    c.select_folder("INBOX")
    assert c.search(["ALL"]) == [1, 2, 3, 4, 5]
    assert c.search(["UID", "2:4"]) == [2, 3, 4]
    assert c.search(["UID", "4:*"]) == [4, 5]
    assert c.search(["SINCE", dt.date(2024, 1, 3)]) == [3, 4, 5]
    assert c.search(["HEADER", "Message-ID", "<p2@example.com>"]) == [2]
    data = c.fetch(
        [1], ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
    )[1]
    assert data[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: message 1\r\n\r\n"
    assert data[b"RFC822.SIZE"] == len(mail(1, day=1))
    assert data[b"INTERNALDATE"].date() == dt.date(2024, 1, 1)
    assert data[b"FLAGS"] == ()
    c.fetch([2], ["BODY[]"])  # not PEEK: marks \Seen, as on a real server
    assert c.search(["SEEN"]) == [2]
    c.logout()


def test_microsoft_capabilities_folders_and_move(peers):
    peer = peers("microsoft")
    msg = peer.mailbox.deliver(mail(1))
    c = client(peer)
    caps = c.capabilities()
    assert b"CONDSTORE" not in caps and b"QRESYNC" not in caps and b"X-GM-EXT-1" not in caps
    folders = {name: flags for flags, _d, name in c.list_folders()}
    assert b"\\Sent" in folders["Sent Items"]
    assert b"\\Trash" in folders["Deleted Items"]
    assert b"\\Archive" in folders["Archive"]
    info = c.select_folder("INBOX")
    assert b"HIGHESTMODSEQ" not in info
    c.move([1], "Archive")
    assert peer.mailbox.uids("INBOX") == []
    assert peer.mailbox.uid(msg, "Archive") == 1
    c.select_folder("Archive")
    c.copy([1], "INBOX")  # Microsoft copies are separate messages
    assert len(peer.mailbox.messages) == 2
    c.add_flags([1], ["\\Deleted"])
    c.uid_expunge([1])
    assert peer.mailbox.uids("Archive") == []
    assert len(peer.mailbox.messages) == 1
    c.logout()


def test_append_returns_appenduid(peers):
    peer = peers("microsoft")
    c = client(peer)
    when = dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    resp = c.append("Sent Items", mail(9), flags=["\\Seen"], msg_time=when)
    assert b"APPENDUID" in resp
    (stored,) = peer.mailbox.in_folder("Sent Items")
    assert stored.flags == {"\\Seen"} and stored.internaldate == when
    c.logout()


def test_idle_pushes_exists_and_expunge(peers):
    peer = peers("microsoft")
    first = peer.mailbox.deliver(mail(1))
    c = client(peer)
    c.select_folder("INBOX")
    c.idle()
    peer.mailbox.deliver(mail(2))
    assert (2, b"EXISTS") in c.idle_check(2)
    peer.mailbox.delete_forever(first)
    assert (1, b"EXPUNGE") in c.idle_check(2)
    peer.mailbox.add_flags(peer.mailbox.in_folder("INBOX")[0], ["\\Flagged"])
    responses = c.idle_check(2)
    assert responses and responses[0][1] == b"FETCH"
    c.idle_done()
    c.logout()


def test_condstore_changedsince(peers):
    peer = peers("gmail")
    a = peer.mailbox.deliver(mail(1))
    peer.mailbox.deliver(mail(2))
    c = client(peer)
    info = c.select_folder(GMAIL_ALL)
    before = info[b"HIGHESTMODSEQ"]
    peer.mailbox.add_flags(a, ["\\Flagged"])
    changed = c.fetch([1, 2], ["FLAGS"], modifiers=[f"CHANGEDSINCE {before}"])
    assert list(changed) == [peer.mailbox.uid(a, GMAIL_ALL)]
    assert changed[1][b"MODSEQ"][0] > before
    c.logout()


def test_broken_condstore_advertises_but_sends_no_modseq(peers):
    peer = peers("microsoft", broken_condstore=True)
    peer.mailbox.deliver(mail(1))
    c = client(peer)
    assert b"CONDSTORE" in c.capabilities()
    info = c.select_folder("INBOX")
    assert b"HIGHESTMODSEQ" not in info
    data = c.fetch([1], ["FLAGS", "MODSEQ"])[1]
    assert b"MODSEQ" not in data
    c.logout()


def test_xoauth2_against_the_oauth_server(peers, oauth_server):
    peer = peers(
        "gmail", token_validator=lambda user, token: oauth_server.active_user(token) == user
    )
    access, _refresh = oauth_server.issue(USER)
    c = client(peer, login=False)
    c.oauth2_login(USER, access)
    c.select_folder("INBOX")
    c.logout()
    oauth_server.expire(access)
    c = client(peer, login=False)
    with pytest.raises(LoginError):
        c.oauth2_login(USER, access)  # Gmail's error challenge, then NO
    c.shutdown()


def test_engine_session_xoauth2_refreshes_once_on_gmail_peer(peers, oauth_server):
    """The session answers Gmail's error challenge and retries with one forced refresh."""
    peer = peers(
        "gmail", token_validator=lambda user, token: oauth_server.active_user(token) == user
    )
    access, refresh = oauth_server.issue(USER)
    tokens = GoogleTokenSource(
        refresh,
        "cid",
        "secret",
        token_uri=oauth_server.token_url,
        access_token=access,
        expires_at=time.time() + 3600,
    )
    oauth_server.expire(access)  # the cached token is dead before its expires_in
    config = account(peer, auth=OAuth2Auth(USER, tokens))
    with ImapSession.open(config) as session:
        assert session.is_gmail
        assert session.auth_retries == 1
    assert sum(1 for r in oauth_server.requests if r.endpoint == "token") == 1
    oauth_server.revoke_user(USER)
    with pytest.raises(AuthFailed):
        ImapSession.open(config)


def test_drop_connections(peers):
    peer = peers("microsoft")
    c = client(peer)
    c.select_folder("INBOX")
    deadline = time.monotonic() + 2
    while peer.connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert peer.drop_connections(bye="Server going away") == 1
    with pytest.raises(Exception):  # noqa: B017 - any client error: the peer is gone
        c.noop()


# ====================================================================== the engine: Gmail


def gmail_store_view(store: MemoryStore, key: str):
    return {m.key: m for m in store.messages(key)}


def test_engine_gmail_syncs_all_mail_once_keyed_by_msgid(peers):
    peer = peers("gmail")
    mb = peer.mailbox
    first = mb.deliver(mail(1))
    reply = mb.deliver(mail(2, refs="<p1@example.com>"), thread_of=first)
    sent = mb.deliver(mail(3), GMAIL_SENT)
    labelled = mb.deliver(mail(4), labels=["Clients"])
    config = account(peer)
    store = MemoryStore()
    report = sync_account(config, store)
    assert report.ok, report.errors
    assert report.strategy == STRATEGY_GMAIL
    stored = gmail_store_view(store, config.key)
    assert set(stored) == {f"gm:{m.gm_msgid}" for m in (first, reply, sent, labelled)}
    # one location each, in All Mail only: INBOX and Sent Mail were never opened
    for msg in stored.values():
        assert {loc.folder for loc in msg.locations} == {GMAIL_ALL}
    opened = [e.args for e in peer.commands("SELECT") + peer.commands("EXAMINE")]
    assert opened and all(args.startswith(GMAIL_ALL) for args in opened), opened
    assert stored[f"gm:{first.gm_msgid}"].gm_thrid == stored[f"gm:{reply.gm_msgid}"].gm_thrid
    assert stored[f"gm:{sent.gm_msgid}"].labels == {"\\Sent"}
    assert stored[f"gm:{labelled.gm_msgid}"].labels == {"\\Inbox", "Clients"}
    # a second run fetches nothing again
    before = len(peer.commands("UID FETCH"))
    again = sync_account(config, store)
    assert again.new == 0
    body_fetches = [e for e in peer.commands("UID FETCH")[before:] if "BODY" in e.args]
    assert body_fetches == []


def test_engine_gmail_label_changes_and_expunge(peers):
    peer = peers("gmail")
    mb = peer.mailbox
    a = mb.deliver(mail(1))
    b = mb.deliver(mail(2))
    config = account(peer)
    store = MemoryStore()
    sync_account(config, store)
    mb.archive(a)  # web UI: drop \Inbox
    mb.add_labels(b, ["Deals"])
    mb.add_flags(b, ["\\Flagged"])
    report = sync_account(config, store)
    assert report.ok, report.errors
    stored = gmail_store_view(store, config.key)
    assert stored[f"gm:{a.gm_msgid}"].labels == frozenset()
    assert stored[f"gm:{b.gm_msgid}"].labels == {"\\Inbox", "Deals"}
    assert "\\Flagged" in stored[f"gm:{b.gm_msgid}"].flags
    assert not stored[f"gm:{a.gm_msgid}"].removed  # archived is not deleted
    mb.delete_forever(b)
    sync_account(config, store)
    assert store.get(config.key, f"gm:{b.gm_msgid}").removed
    assert not store.get(config.key, f"gm:{a.gm_msgid}").removed


def test_engine_gmail_archive_from_crm_removes_inbox_label(peers):
    peer = peers("gmail")
    mb = peer.mailbox
    a = mb.deliver(mail(1))
    config = account(peer)
    store = MemoryStore()
    sync_account(config, store)
    (msg,) = store.messages(config.key)
    (loc,) = msg.locations
    store.queue_write(
        config.key, WriteBack(id="w1", op="archive", location=loc, expect_key=msg.key)
    )
    store.queue_write(config.key, WriteBack(id="w2", op="seen", location=loc, expect_key=msg.key))
    report = sync_account(config, store)
    assert report.ok, report.errors
    assert store.result(config.key, "w1").status == "done"
    assert store.result(config.key, "w2").status == "done"
    assert "\\Inbox" not in a.labels
    assert mb.uids("INBOX") == [] and mb.uid(a, GMAIL_ALL) == loc.uid  # still in All Mail
    assert "\\Seen" in a.flags
    assert peer.commands("UID MOVE") == []  # a label change, not a move
    stored = store.get(config.key, msg.key)
    assert not stored.removed and stored.labels == frozenset()


# ================================================================== the engine: Microsoft


def test_engine_microsoft_uid_diff_path(peers):
    peer = peers("microsoft")
    mb = peer.mailbox
    msgs = [mb.deliver(mail(n)) for n in range(1, 6)]
    mb.deliver(mail(10), "Sent Items", flags=["\\Seen"])
    config = account(peer, recent_window=2, reconcile_interval=3600.0)
    store = MemoryStore()
    report = sync_account(config, store)
    assert report.ok, report.errors
    assert report.folder("INBOX").strategy == STRATEGY_UIDDIFF
    assert set(store.folder_view(config.key, "INBOX")) == {1, 2, 3, 4, 5}
    assert set(store.folder_view(config.key, "Sent Items")) == {1}

    # new mail
    mb.deliver(mail(6))
    report = sync_account(config, store)
    assert report.new == 1 and 6 in store.folder_view(config.key, "INBOX")

    # a flag change on a recent message is found by the FLAGS diff of the newest ones
    mb.add_flags(msgs[4], ["\\Seen"])
    # one on an old message waits for the full reconciliation
    mb.add_flags(msgs[0], ["\\Flagged"])
    sync_account(config, store)
    view = store.folder_view(config.key, "INBOX")
    assert "\\Seen" in view[5].flags
    assert "\\Flagged" not in view[1].flags

    # an expunge anywhere is found by the UID comparison on every run
    mb.delete_forever(msgs[2])
    sync_account(config, store)
    assert 3 not in store.folder_view(config.key, "INBOX")

    # the periodic full reconciliation catches the old flag change
    config.reconcile_interval = 0.0
    report = sync_account(config, store)
    assert report.folder("INBOX").reconciled
    assert "\\Flagged" in store.folder_view(config.key, "INBOX")[1].flags

    # never a CONDSTORE word on the wire to a server without it
    sent = " ".join(e.command + " " + e.args for e in peer.commands())
    assert "CHANGEDSINCE" not in sent and "MODSEQ" not in sent and "ENABLE" not in sent


def test_engine_microsoft_server_move_keeps_the_record(peers):
    peer = peers("microsoft")
    mb = peer.mailbox
    msg = mb.deliver(mail(1))
    config = account(peer, folders=["INBOX", "Archive"])
    store = MemoryStore()
    sync_account(config, store)
    (stored,) = store.messages(config.key)
    key = stored.key
    mb.move(msg, "Archive")  # archived in Outlook
    report = sync_account(config, store)
    assert report.ok, report.errors
    after = store.get(config.key, key)
    assert not after.removed
    assert {loc.folder for loc in after.locations} == {"Archive"}
    assert len(store.messages(config.key)) == 1


def test_engine_microsoft_archive_from_crm_moves_with_copyuid(peers):
    peer = peers("microsoft")
    mb = peer.mailbox
    msg = mb.deliver(mail(1))
    other = mb.deliver(mail(2))
    config = account(peer)
    store = MemoryStore()
    sync_account(config, store)
    target = store.at(config.key, "INBOX", 1)
    (loc,) = target.locations
    store.queue_write(
        config.key, WriteBack(id="a1", op="archive", location=loc, expect_key=target.key)
    )
    report = sync_account(config, store)
    assert report.ok, report.errors
    result = store.result(config.key, "a1")
    assert result.status == "done"
    assert result.new_location == Location("Archive", mb.folders["Archive"].uidvalidity, 1)
    assert mb.uid(msg, "Archive") == 1 and mb.uid(msg, "INBOX") is None
    assert mb.uid(other, "INBOX") == 2  # nothing else touched
    assert len(peer.commands("UID MOVE")) == 1


def test_engine_broken_condstore_falls_back_to_uid_diff(peers):
    peer = peers("microsoft", broken_condstore=True)
    mb = peer.mailbox
    msgs = [mb.deliver(mail(n)) for n in range(1, 4)]
    config = account(peer)
    store = MemoryStore()
    report = sync_account(config, store)
    assert report.ok, report.errors
    assert "uid-diff" in report.folder("INBOX").strategy
    mb.add_flags(msgs[1], ["\\Seen"])
    mb.delete_forever(msgs[2])
    sync_account(config, store)
    view = store.folder_view(config.key, "INBOX")
    assert set(view) == {1, 2} and "\\Seen" in view[2].flags
    assert not [e for e in peer.commands("UID FETCH") if "CHANGEDSINCE" in e.args]


def test_engine_gmail_condstore_finds_flag_changes(peers):
    peer = peers("gmail")
    mb = peer.mailbox
    a = mb.deliver(mail(1))
    mb.deliver(mail(2))
    config = account(peer)
    store = MemoryStore()
    sync_account(config, store)
    mb.add_flags(a, ["\\Seen"])
    report = sync_account(config, store)
    assert report.flag_changes >= 1
    assert "\\Seen" in store.get(config.key, f"gm:{a.gm_msgid}").flags


def test_engine_gmail_many_messages_in_windows(peers):
    peer = peers("gmail")
    peer.mailbox.deliver_many([mail(n) for n in range(1, 301)])
    config = account(peer, batch_size=50)
    store = MemoryStore()
    report = sync_account(config, store)
    assert report.ok and report.new == 300
    assert len(store.messages(config.key)) == 300


def test_idle_watcher_on_the_peer_renews_idle_on_schedule(peers):
    """Re-IDLE cadence seen from the server side: DONE/IDLE pairs every interval."""
    from pipemail.idle import IdleWatcher

    peer = peers("microsoft")
    woke = threading.Event()
    watcher = IdleWatcher(
        account(peer), "INBOX", lambda w: woke.set(), reidle_interval=0.5, check_interval=0.1
    )
    with watcher:
        time.sleep(1.8)
        peer.mailbox.deliver(mail(1))
        assert woke.wait(2)
    idles = [e.at for e in peer.commands("IDLE")]
    gaps = [b - a for a, b in zip(idles, idles[1:])]
    assert len(idles) >= 3
    assert all(0.4 <= g <= 0.9 for g in gaps), gaps
    assert not peer.commands("SELECT")  # the watcher only EXAMINEs
