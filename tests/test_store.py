"""MemoryStore and JsonlStore: the Store contract the Odoo side must also honour.

Pure tests (batches built by hand) for the contract, one end-to-end run through
Dovecot for the journal, and the crash cases: a torn last line drops that batch's
state together with its rows, never one without the other.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest

from pipemail.store import JsonlStore, MemoryStore
from pipemail.sync import sync_account
from pipemail.types import (
    AccountConfig,
    Address,
    FlagChange,
    FolderState,
    Location,
    ParsedMessage,
    PasswordAuth,
    RemoteMessage,
    ServerConfig,
    Store,
    SyncBatch,
    WriteBack,
    WriteResult,
)

A = "acct"


def remote(key: str, folder: str, uv: int, uid: int, flags=(), **parsed_kw) -> RemoteMessage:
    parsed = ParsedMessage(
        message_id=parsed_kw.pop("message_id", f"{key}@example.com"),
        content_hash="h" + key,
        raw_size=10,
        subject=parsed_kw.pop("subject", f"subject {key}"),
        sender=Address("a@customer.example", "A"),
        to=[Address("me@corp.example")],
        **parsed_kw,
    )
    return RemoteMessage(
        key=key,
        location=Location(folder, uv, uid),
        flags=frozenset(flags),
        parsed=parsed,
        internaldate=datetime(2024, 3, 4, 10, 0, tzinfo=timezone.utc),
        size=10,
    )


def state(folder="INBOX", uv=7, uidnext=1, **kw) -> FolderState:
    return FolderState(folder=folder, uidvalidity=uv, uidnext=uidnext, **kw)


@pytest.fixture(params=["memory", "jsonl"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
    else:
        s = JsonlStore(tmp_path / "journal.jsonl")
        yield s
        s.close()


def test_both_implement_the_protocol(tmp_path):
    assert isinstance(MemoryStore(), Store)
    with JsonlStore(tmp_path / "j.jsonl") as j:
        assert isinstance(j, Store)


def test_apply_rows_and_state_together(store):
    store.apply(
        SyncBatch(
            A,
            "INBOX",
            state(uidnext=3),
            new=[remote("k1", "INBOX", 7, 1, ["\\Seen"]), remote("k2", "INBOX", 7, 2)],
        )
    )
    assert store.load_state(A, "INBOX").uidnext == 3
    assert store.stored_uids(A, "INBOX", 7) == {1, 2}
    assert store.stored_flags(A, "INBOX", 7, [1, 2, 3]) == {1: {"\\Seen"}, 2: frozenset()}
    assert store.stored_uids(A, "INBOX", 8) == set()
    assert store.load_state(A, "Sent") is None


def test_loaded_state_is_a_copy(store):
    store.apply(SyncBatch(A, "INBOX", state(uidnext=3, extra={"quarantine": {}})))
    loaded = store.load_state(A, "INBOX")
    loaded.uidnext = 99
    loaded.extra["quarantine"]["5"] = {"error": "x"}
    again = store.load_state(A, "INBOX")
    assert again.uidnext == 3 and again.extra == {"quarantine": {}}


def test_same_key_in_two_folders_is_one_record(store):
    store.apply(SyncBatch(A, "INBOX", state(), new=[remote("k1", "INBOX", 7, 1)]))
    store.apply(SyncBatch(A, "Sent", state("Sent", 9), new=[remote("k1", "Sent", 9, 4)]))
    (msg,) = store.messages(A)
    assert msg.folders == {"INBOX", "Sent"}


def test_vanished_marks_removed_and_reappearing_restores(store):
    store.apply(SyncBatch(A, "INBOX", state(), new=[remote("k1", "INBOX", 7, 1)]))
    store.apply(SyncBatch(A, "INBOX", state(), vanished=[Location("INBOX", 7, 1)]))
    assert store.messages(A) == []
    (gone,) = store.messages(A, include_removed=True)
    assert gone.removed and gone.subject == "subject k1"  # kept, not deleted
    store.apply(SyncBatch(A, "Archive", state("Archive", 3), new=[remote("k1", "Archive", 3, 8)]))
    (back,) = store.messages(A)
    assert back is gone and not back.removed


def test_flag_changes_and_labels(store):
    store.apply(SyncBatch(A, "INBOX", state(), new=[remote("k1", "INBOX", 7, 1)]))
    store.apply(
        SyncBatch(
            A,
            "INBOX",
            state(),
            flag_changes=[
                FlagChange(
                    Location("INBOX", 7, 1), frozenset({"\\Flagged"}), 5, ("\\Inbox", "Customers")
                )
            ],
        )
    )
    (msg,) = store.messages(A)
    assert msg.flags == {"\\Flagged"} and msg.labels == {"\\Inbox", "Customers"}


def test_reset_uidvalidity_voids_old_locations_and_rekeys(store):
    store.apply(
        SyncBatch(
            A, "INBOX", state(uv=7), new=[remote("k1", "INBOX", 7, 1), remote("k2", "INBOX", 7, 2)]
        )
    )
    store.apply(SyncBatch(A, "INBOX", state(uv=8), reset_uidvalidity=True))
    assert store.stored_uids(A, "INBOX", 7) == set()
    assert all(m.removed for m in store.messages(A, include_removed=True))
    store.apply(SyncBatch(A, "INBOX", state(uv=8), new=[remote("k2", "INBOX", 8, 1)]))
    assert [m.key for m in store.messages(A)] == ["k2"]
    assert len(store.messages(A, include_removed=True)) == 2  # no duplicate for k2


def test_threads_by_header_evidence_per_owner(store):
    root = remote("k1", "INBOX", 7, 1, message_id="root@x")
    reply = remote(
        "k2", "INBOX", 7, 2, message_id="reply@x", in_reply_to="root@x", references=["root@x"]
    )
    unrelated = remote("k3", "INBOX", 7, 3, message_id="other@x", subject="subject k1")
    store.apply(SyncBatch(A, "INBOX", state(), new=[root, reply, unrelated]))
    threads = {m.key: m.thread for m in store.messages(A)}
    assert threads["k1"] == threads["k2"] != threads["k3"]  # a subject alone joins nothing


def test_writes_queue_and_results(store):
    store.apply(SyncBatch(A, "INBOX", state(), new=[remote("k1", "INBOX", 7, 1)]))
    archive = WriteBack("w1", "archive", Location("INBOX", 7, 1), expect_key="k1")
    seen = WriteBack("w2", "seen", Location("INBOX", 7, 1), expect_key="k1")
    store.queue_write(A, archive)
    store.queue_write(A, seen)
    assert [w.id for w in store.pending_writes(A)] == ["w1", "w2"]
    store.writes_done(A, [WriteResult("w2", "done", Location("INBOX", 7, 1))])
    (msg,) = store.messages(A)
    assert msg.flags == {"\\Seen"}
    store.writes_done(A, [WriteResult("w1", "done", Location("Archive", 3, 40))])
    assert store.pending_writes(A) == []
    (msg,) = store.messages(A)
    assert list(msg.locations) == [Location("Archive", 3, 40)]
    assert msg.locations[Location("Archive", 3, 40)] == {"\\Seen"}
    assert store.stored_uids(A, "Archive", 3) == {40}


def test_pending_writes_carry_what_was_recorded_at_sync(store):
    """Message-ID, RFC822.SIZE and INTERNALDATE of the stored message go with the write
    (the engine checks its target from the header with them); nothing known, nothing
    added, and a synthesised Message-ID is no evidence."""
    synthesized = remote("k2", "INBOX", 7, 2, message_id_synthesized=True)
    store.apply(SyncBatch(A, "INBOX", state(), new=[remote("k1", "INBOX", 7, 1), synthesized]))
    for n, key in enumerate(("k1", "k2", "unknown"), start=1):
        store.queue_write(A, WriteBack(f"w{n}", "seen", Location("INBOX", 7, n), expect_key=key))
    recorded, *others = store.pending_writes(A)
    assert (recorded.message_id, recorded.expect_size, recorded.expect_internaldate) == (
        "k1@example.com",
        10,
        datetime(2024, 3, 4, 10, 0, tzinfo=timezone.utc),
    )
    assert [(w.message_id, w.expect_size, w.expect_internaldate) for w in others] == [
        ("", 0, None),
        ("", 0, None),
    ]


def test_memory_store_is_thread_safe():
    store = MemoryStore()

    def worker(folder: str) -> None:
        for uid in range(1, 201):
            store.apply(
                SyncBatch(
                    A,
                    folder,
                    state(folder, 1, uid + 1),
                    new=[remote(f"{folder}-{uid}", folder, 1, uid)],
                )
            )
            store.stored_flags(A, folder, 1, range(1, uid + 1))

    threads = [threading.Thread(target=worker, args=(f"F{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.messages(A)) == 800


# ---------------------------------------------------------------- JSON lines journal


def _fill(path, n=3) -> None:
    with JsonlStore(path) as j:
        for i in range(1, n + 1):
            j.apply(
                SyncBatch(A, "INBOX", state(uidnext=i + 1), new=[remote(f"k{i}", "INBOX", 7, i)])
            )
        j.queue_write(A, WriteBack("w", "seen", Location("INBOX", 7, 1), expect_key="k1"))


def test_journal_reloads_everything(tmp_path):
    path = tmp_path / "j.jsonl"
    _fill(path)
    with JsonlStore(path) as j:
        assert j.load_state(A, "INBOX").uidnext == 4
        assert {m.key for m in j.messages(A)} == {"k1", "k2", "k3"}
        assert [w.id for w in j.pending_writes(A)] == ["w"]
        j.writes_done(A, [WriteResult("w", "done", Location("INBOX", 7, 1))])
    with JsonlStore(path) as j:
        assert j.pending_writes(A) == []
        assert j.get(A, "k1").flags == {"\\Seen"}


@pytest.mark.parametrize("cut", [1, 17, 200, -2])
def test_torn_last_line_drops_state_and_rows_together(tmp_path, cut):
    path = tmp_path / "j.jsonl"
    _fill(path, n=3)
    lines = path.read_bytes().split(b"\n")
    # the last batch line is lines[2] (lines[3] is the queued write); tear the write
    # away and cut into the last batch, as a crash in the middle of os.write would
    data = b"\n".join(lines[:2]) + b"\n" + lines[2][: cut if cut > 0 else len(lines[2]) + cut]
    path.write_bytes(data)
    with JsonlStore(path) as j:
        assert j.torn_lines == 1
        assert j.load_state(A, "INBOX").uidnext == 3  # the state of batch 2
        assert {m.key for m in j.messages(A)} == {"k1", "k2"}  # and exactly its rows
        assert j.pending_writes(A) == []
        # the next batch starts on a clean line
        j.apply(SyncBatch(A, "INBOX", state(uidnext=9), new=[remote("k8", "INBOX", 7, 8)]))
    with JsonlStore(path) as j:
        assert j.torn_lines == 0
        assert j.load_state(A, "INBOX").uidnext == 9
        assert {m.key for m in j.messages(A)} == {"k1", "k2", "k8"}
    for line in path.read_bytes().splitlines():
        json.loads(line)


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "j.jsonl"
    _fill(path)
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"{garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match="line 2"):
        JsonlStore(path)


def test_journal_keeps_raw_of_unparseable(tmp_path):
    path = tmp_path / "j.jsonl"
    bad = remote("kb", "INBOX", 7, 1, parse_error="could not be read", raw=b"\xff\x00raw")
    with JsonlStore(path) as j:
        j.apply(SyncBatch(A, "INBOX", state(uidnext=2), new=[bad]))
    with JsonlStore(path) as j:
        msg = j.get(A, "kb")
        assert msg.parse_error and msg.raw == b"\xff\x00raw"


def test_jsonl_end_to_end_resume(dovecot, imap_user, tmp_path):
    dovecot.append_many(
        imap_user,
        "INBOX",
        [f"Message-ID: <j{n}@x>\r\nSubject: {n}\r\n\r\nb\r\n".encode() for n in range(1, 61)],
    )
    cfg = AccountConfig(
        key="j",
        imap=ServerConfig(dovecot.host, dovecot.port, security="none", allow_private_hosts=True),
        auth=PasswordAuth(imap_user.name, imap_user.password),
        folders=["INBOX"],
        batch_size=10,
    )
    path = tmp_path / "sync.jsonl"
    stop = threading.Event()

    def progress(event):
        if event.done >= 20:
            stop.set()

    with JsonlStore(path) as j:
        assert sync_account(cfg, j, progress=progress, stop=stop).stopped
    with JsonlStore(path) as j:
        assert len(j.messages("j")) == 20
        assert j.load_state("j", "INBOX").backfill_low == 41
        report = sync_account(cfg, j)
        assert report.new == 40
    with JsonlStore(path) as j:
        server = dovecot.fetch_state(imap_user, "INBOX")
        view = j.folder_view("j", "INBOX")
        assert sorted(view) == [r["uid"] for r in server]
