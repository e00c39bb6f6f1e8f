"""Two implementations of the :class:`~pipemail.types.Store` protocol outside Odoo.

``MemoryStore`` backs the tests, the benchmarks and the CLI; ``JsonlStore`` adds an
append-only journal so a CLI sync can be resumed and so crash-safety can be tested on
something simpler than PostgreSQL. Both follow the rules the Odoo store must follow:

* one ``apply`` is atomic: its rows and its folder state land together or not at all
  (the journal writes them as ONE line and fsyncs; a torn last line is ignored on load,
  which drops the state together with its rows, never one without the other);
* a message is identified by ``(account, key)``; every folder copy is a location of that
  one record, so a move or a UIDVALIDITY rebuild never creates a duplicate;
* a message whose last location disappears is marked ``removed``, never deleted: links
  made in the CRM survive, and the record comes back if the message reappears.

Only a summary of each message is kept (not the text, HTML or attachments), so a
benchmark of tens of thousands of messages measures the engine, not this store.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipemail.threads import MemoryThreadLookup
from pipemail.types import (
    Address,
    FlagChange,
    FolderState,
    Location,
    ParsedMessage,
    RemoteMessage,
    SyncBatch,
    WriteBack,
    WriteResult,
)

__all__ = ["JsonlStore", "MemoryStore", "StoredMessage"]

_FLAG_OPS = {
    "seen": ("\\Seen", True),
    "unseen": ("\\Seen", False),
    "flag": ("\\Flagged", True),
    "unflag": ("\\Flagged", False),
}


@dataclass(slots=True)
class StoredMessage:
    """What a CRM keeps about one message of one mailbox owner."""

    account: str
    key: str
    message_id: str = ""
    message_id_synthesized: bool = False
    subject: str = ""
    sender: str = ""
    participants: tuple[str, ...] = ()
    date: datetime | None = None
    internaldate: datetime | None = None
    size: int = 0
    snippet: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    parse_error: str = ""
    raw: bytes = b""
    """Kept only when ``parse_error`` is set: the original is the source of truth."""
    truncated: bool = False
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    labels: frozenset[str] = frozenset()
    locations: dict[Location, frozenset[str]] = field(default_factory=dict)
    """Each folder copy and its flags (flags belong to a copy, not to the message)."""
    removed: bool = False
    thread: str = ""
    parsed: ParsedMessage | None = None

    @property
    def flags(self) -> frozenset[str]:
        out: set[str] = set()
        for flags in self.locations.values():
            out |= flags
        return frozenset(out)

    @property
    def folders(self) -> set[str]:
        return {loc.folder for loc in self.locations}


class MemoryStore:
    """Thread-safe in-memory store; also the base of :class:`JsonlStore`.

    ``keep_parsed=True`` keeps the full ParsedMessage (text, HTML, attachments) on each
    record, for tests that look at content.
    """

    def __init__(self, *, keep_parsed: bool = False) -> None:
        self.keep_parsed = keep_parsed
        self._lock = threading.RLock()
        self._states: dict[tuple[str, str], dict[str, Any]] = {}
        self._messages: dict[tuple[str, str], StoredMessage] = {}
        # (account, folder) -> uidvalidity -> uid -> key
        self._index: dict[tuple[str, str], dict[int, dict[int, str]]] = {}
        # Gmail thread id, then header evidence, then the strict subject rule; per owner
        self._threads = MemoryThreadLookup()
        self._writes: dict[str, dict[Any, WriteBack]] = {}
        self._results: dict[str, dict[Any, WriteResult]] = {}
        self.batches = 0

    # ------------------------------------------------------------ Store protocol

    def load_state(self, account: str, folder: str) -> FolderState | None:
        with self._lock:
            data = self._states.get((account, folder))
            # A copy each time: the engine mutates its state object while it works and
            # only ``apply`` may change what is stored.
            return FolderState.from_json(json.loads(json.dumps(data))) if data else None

    def apply(self, batch: SyncBatch) -> None:
        with self._lock:
            self._apply(batch)

    def stored_flags(
        self, account: str, folder: str, uidvalidity: int, uids: Iterable[int]
    ) -> Mapping[int, frozenset[str]]:
        with self._lock:
            index = self._index.get((account, folder), {}).get(uidvalidity, {})
            out: dict[int, frozenset[str]] = {}
            for uid in uids:
                key = index.get(uid)
                if key is None:
                    continue
                msg = self._messages.get((account, key))
                if msg is None:
                    continue
                flags = msg.locations.get(Location(folder, uidvalidity, uid))
                if flags is not None:
                    out[uid] = flags
            return out

    def stored_uids(self, account: str, folder: str, uidvalidity: int) -> set[int]:
        with self._lock:
            return set(self._index.get((account, folder), {}).get(uidvalidity, {}))

    def pending_writes(self, account: str) -> Sequence[WriteBack]:
        with self._lock:
            done = self._results.get(account, {})
            return [
                self._as_recorded(account, w)
                for wid, w in self._writes.get(account, {}).items()
                if wid not in done
            ]

    def writes_done(self, account: str, results: Sequence[WriteResult]) -> None:
        with self._lock:
            self._writes_done(account, results)

    # ------------------------------------------------------------ helpers for callers

    def queue_write(self, account: str, write: WriteBack) -> None:
        """What the CRM does when a user archives or reads a message."""
        with self._lock:
            self._queue_write(account, write)

    def result(self, account: str, write_id: Any) -> WriteResult | None:
        with self._lock:
            return self._results.get(account, {}).get(write_id)

    def state(self, account: str, folder: str) -> FolderState | None:
        return self.load_state(account, folder)

    def messages(self, account: str, *, include_removed: bool = False) -> list[StoredMessage]:
        with self._lock:
            return [
                m
                for (acct, _key), m in self._messages.items()
                if acct == account and (include_removed or not m.removed)
            ]

    def get(self, account: str, key: str) -> StoredMessage | None:
        with self._lock:
            return self._messages.get((account, key))

    def at(self, account: str, folder: str, uid: int) -> StoredMessage | None:
        """The message stored at ``uid`` of ``folder`` under its current UIDVALIDITY."""
        with self._lock:
            state = self._states.get((account, folder))
            if not state:
                return None
            key = self._index.get((account, folder), {}).get(state["uidvalidity"], {}).get(uid)
            return self._messages.get((account, key)) if key else None

    def folder_view(self, account: str, folder: str) -> dict[int, StoredMessage]:
        """uid -> message for the folder's current UIDVALIDITY (what tests compare)."""
        with self._lock:
            state = self._states.get((account, folder))
            if not state:
                return {}
            index = self._index.get((account, folder), {}).get(state["uidvalidity"], {})
            return {uid: self._messages[(account, key)] for uid, key in index.items()}

    def location_count(self, account: str, folder: str) -> int:
        with self._lock:
            return sum(len(v) for v in self._index.get((account, folder), {}).values())

    # ------------------------------------------------------------ internals

    def _queue_write(self, account: str, write: WriteBack) -> None:
        self._writes.setdefault(account, {})[write.id] = write

    def _as_recorded(self, account: str, write: WriteBack) -> WriteBack:
        """The write with what was stored at sync time about its message (Message-ID,
        size, INTERNALDATE), so the engine can check its identity from the header."""
        msg = self._messages.get((account, write.expect_key)) if write.expect_key else None
        if msg is None or write.expect_size or msg.message_id_synthesized:
            return write
        return dataclasses.replace(
            write,
            message_id=write.message_id or msg.message_id,
            expect_size=msg.size,
            expect_internaldate=msg.internaldate,
        )

    def _apply(self, batch: SyncBatch) -> None:
        account, folder = batch.account, batch.folder
        uidvalidity = batch.state.uidvalidity
        folder_index = self._index.setdefault((account, folder), {})
        if batch.reset_uidvalidity:
            for old_uv in [uv for uv in folder_index if uv != uidvalidity]:
                for uid in list(folder_index[old_uv]):
                    self._drop_location(account, Location(folder, old_uv, uid))
                folder_index.pop(old_uv, None)
        for remote in batch.new:
            self._upsert(account, remote)
        for change in batch.flag_changes:
            self._set_flags(account, change)
        for location in batch.vanished:
            self._drop_location(account, location)
        self._states[(account, folder)] = json.loads(json.dumps(batch.state.to_json()))
        self.batches += 1

    def _upsert(self, account: str, remote: RemoteMessage) -> None:
        loc = remote.location
        index = self._index.setdefault((account, loc.folder), {}).setdefault(loc.uidvalidity, {})
        previous = index.get(loc.uid)
        if previous is not None and previous != remote.key:
            # Same (folder, UIDVALIDITY, UID) holding another message cannot happen on a
            # correct server; believe the newest answer rather than keep both.
            self._drop_location(account, loc)
        msg = self._messages.get((account, remote.key))
        if msg is None:
            msg = _record(account, remote, keep_parsed=self.keep_parsed)
            msg.thread = self._threads.place(account, remote.parsed, gm_thrid=remote.gm_thrid)
            self._messages[(account, remote.key)] = msg
        else:
            msg.removed = False
            if remote.labels:
                msg.labels = frozenset(remote.labels)
        msg.locations[loc] = frozenset(remote.flags)
        index[loc.uid] = remote.key

    def _set_flags(self, account: str, change: FlagChange) -> None:
        loc = change.location
        key = self._index.get((account, loc.folder), {}).get(loc.uidvalidity, {}).get(loc.uid)
        if key is None:
            return
        msg = self._messages.get((account, key))
        if msg is None:
            return
        msg.locations[loc] = frozenset(change.flags)
        if change.labels is not None:
            msg.labels = frozenset(change.labels)

    def _drop_location(self, account: str, loc: Location) -> None:
        index = self._index.get((account, loc.folder), {}).get(loc.uidvalidity)
        key = index.pop(loc.uid, None) if index is not None else None
        if key is None:
            return
        msg = self._messages.get((account, key))
        if msg is None:
            return
        msg.locations.pop(loc, None)
        if not msg.locations:
            msg.removed = True

    def _writes_done(self, account: str, results: Sequence[WriteResult]) -> None:
        pending = self._writes.get(account, {})
        done = self._results.setdefault(account, {})
        for result in results:
            done[result.id] = result
            write = pending.get(result.id)
            if write is None or result.status != "done":
                continue
            old = write.location
            key = self._index.get((account, old.folder), {}).get(old.uidvalidity, {}).get(old.uid)
            msg = self._messages.get((account, key)) if key else None
            if msg is None and write.expect_key:
                msg = self._messages.get((account, write.expect_key))
                key = write.expect_key if msg else None
            if msg is None or key is None:
                continue
            flags = msg.locations.get(old)
            if write.op in _FLAG_OPS and flags is not None:
                flag, add = _FLAG_OPS[write.op]
                msg.locations[old] = flags | {flag} if add else flags - {flag}
            new = result.new_location
            if new is not None and new != old:
                self._drop_location(account, old)
                msg.locations[new] = flags or frozenset()
                msg.removed = False
                self._index.setdefault((account, new.folder), {}).setdefault(new.uidvalidity, {})[
                    new.uid
                ] = key
            elif new is None and write.op in ("archive", "delete", "move"):
                # Moved without COPYUID: the target folder's next sync will find it by
                # key; until then the old location is simply gone.
                self._drop_location(account, old)
                if msg.removed:
                    msg.removed = False  # still exists on the server, just not located yet


def _addr(address: Address | None) -> str:
    return address.email if address is not None else ""


def _record(account: str, remote: RemoteMessage, *, keep_parsed: bool) -> StoredMessage:
    parsed = remote.parsed
    return StoredMessage(
        account=account,
        key=remote.key,
        message_id=parsed.message_id,
        message_id_synthesized=parsed.message_id_synthesized,
        subject=parsed.subject,
        sender=_addr(parsed.sender),
        participants=tuple(a.email for a in parsed.participants),
        date=parsed.date,
        internaldate=remote.internaldate,
        size=remote.size or parsed.raw_size,
        snippet=parsed.snippet,
        in_reply_to=parsed.in_reply_to,
        references=tuple(parsed.references),
        parse_error=parsed.parse_error,
        raw=parsed.raw if parsed.parse_error else b"",
        truncated=remote.truncated,
        gm_msgid=remote.gm_msgid,
        gm_thrid=remote.gm_thrid,
        labels=frozenset(remote.labels),
        parsed=parsed if keep_parsed else None,
    )


# ---------------------------------------------------------------- JSON lines journal


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _undt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _loc(loc: Location) -> list[Any]:
    return [loc.folder, loc.uidvalidity, loc.uid]


def _unloc(data: Sequence[Any]) -> Location:
    return Location(str(data[0]), int(data[1]), int(data[2]))


def _remote_json(remote: RemoteMessage) -> dict[str, Any]:
    p = remote.parsed
    data: dict[str, Any] = {
        "key": remote.key,
        "loc": _loc(remote.location),
        "flags": sorted(remote.flags),
        "idate": _dt(remote.internaldate),
        "size": remote.size,
        "modseq": remote.modseq,
        "gm": [remote.gm_msgid, remote.gm_thrid],
        "labels": list(remote.labels),
        "trunc": remote.truncated,
        "p": {
            "mid": p.message_id,
            "synth": p.message_id_synthesized,
            "hash": p.content_hash,
            "rsize": p.raw_size,
            "subject": p.subject,
            "from": [p.sender.email, p.sender.name] if p.sender else None,
            "to": [[a.email, a.name] for a in p.to],
            "cc": [[a.email, a.name] for a in p.cc],
            "date": _dt(p.date),
            "snippet": p.snippet,
            "irt": p.in_reply_to,
            "refs": p.references,
            "error": p.parse_error,
        },
    }
    if p.parse_error and p.raw:
        data["p"]["raw"] = base64.b64encode(p.raw).decode("ascii")
    return data


def _remote_from_json(data: Mapping[str, Any]) -> RemoteMessage:
    p = data["p"]
    sender = Address(p["from"][0], p["from"][1]) if p.get("from") else None
    parsed = ParsedMessage(
        message_id=p["mid"],
        content_hash=p.get("hash", ""),
        raw_size=p.get("rsize", 0),
        message_id_synthesized=p.get("synth", False),
        in_reply_to=p.get("irt", ""),
        references=list(p.get("refs", [])),
        subject=p.get("subject", ""),
        sender=sender,
        to=[Address(e, n) for e, n in p.get("to", [])],
        cc=[Address(e, n) for e, n in p.get("cc", [])],
        date=_undt(p.get("date")),
        snippet=p.get("snippet", ""),
        parse_error=p.get("error", ""),
        raw=base64.b64decode(p["raw"]) if p.get("raw") else b"",
    )
    gm = data.get("gm") or [None, None]
    return RemoteMessage(
        key=data["key"],
        location=_unloc(data["loc"]),
        flags=frozenset(data.get("flags", [])),
        parsed=parsed,
        internaldate=_undt(data.get("idate")),
        size=data.get("size", 0),
        modseq=data.get("modseq"),
        gm_msgid=gm[0],
        gm_thrid=gm[1],
        labels=tuple(data.get("labels", [])),
        truncated=data.get("trunc", False),
    )


def _batch_json(batch: SyncBatch) -> dict[str, Any]:
    return {
        "t": "batch",
        "account": batch.account,
        "folder": batch.folder,
        "state": batch.state.to_json(),
        "reset": batch.reset_uidvalidity,
        "new": [_remote_json(r) for r in batch.new],
        "flags": [
            [_loc(c.location), sorted(c.flags), c.modseq, list(c.labels) if c.labels else None]
            for c in batch.flag_changes
        ],
        "vanished": [_loc(loc) for loc in batch.vanished],
    }


def _batch_from_json(data: Mapping[str, Any]) -> SyncBatch:
    return SyncBatch(
        account=data["account"],
        folder=data["folder"],
        state=FolderState.from_json(data["state"]),
        new=[_remote_from_json(r) for r in data.get("new", [])],
        flag_changes=[
            FlagChange(
                location=_unloc(loc),
                flags=frozenset(flags),
                modseq=modseq,
                labels=tuple(labels) if labels is not None else None,
            )
            for loc, flags, modseq, labels in data.get("flags", [])
        ],
        vanished=[_unloc(loc) for loc in data.get("vanished", [])],
        reset_uidvalidity=bool(data.get("reset")),
    )


def _write_json(write: WriteBack) -> dict[str, Any]:
    return {
        "id": write.id,
        "op": write.op,
        "loc": _loc(write.location),
        "key": write.expect_key,
        "target": write.target_folder,
        "mid": write.message_id,
    }


def _write_from_json(data: Mapping[str, Any]) -> WriteBack:
    return WriteBack(
        id=data["id"],
        op=data["op"],
        location=_unloc(data["loc"]),
        expect_key=data.get("key", ""),
        target_folder=data.get("target", ""),
        message_id=data.get("mid", ""),
    )


def _result_json(result: WriteResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "status": result.status,
        "new": _loc(result.new_location) if result.new_location else None,
        "error": result.error,
    }


def _result_from_json(data: Mapping[str, Any]) -> WriteResult:
    return WriteResult(
        id=data["id"],
        status=data["status"],
        new_location=_unloc(data["new"]) if data.get("new") else None,
        error=data.get("error", ""),
    )


class JsonlStore(MemoryStore):
    """MemoryStore with an append-only, fsynced JSON-lines journal.

    Each ``apply`` is one line holding the folder state AND its rows, written with one
    ``write`` call and fsynced before the in-memory view changes. A crash can only
    leave a partial last line; loading drops it (and truncates the file so the next
    line starts clean), which drops the state and rows of that batch together.
    """

    def __init__(self, path: str | os.PathLike[str], *, keep_parsed: bool = False) -> None:
        super().__init__(keep_parsed=keep_parsed)
        self.path = Path(path)
        self.torn_lines = 0
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        lines = data.split(b"\n")
        # The part after the last newline is either empty or a torn write.
        complete, tail = lines[:-1], lines[-1]
        offset = 0
        for number, line in enumerate(complete, start=1):
            end = offset + len(line) + 1
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    if number == len(complete) and not tail:
                        # A last line that is complete but unreadable: a torn write
                        # whose garbage happened to contain a newline. Drop it too.
                        self.torn_lines += 1
                        break
                    raise ValueError(
                        f"{self.path}: line {number} is corrupt and is not the last one: {exc}"
                    )
                self._replay(record)
            good_end = end
            offset = end
        if tail.strip():
            self.torn_lines += 1
        if good_end != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
                handle.flush()
                os.fsync(handle.fileno())

    def _replay(self, record: Mapping[str, Any]) -> None:
        kind = record.get("t")
        if kind == "batch":
            self._apply(_batch_from_json(record))
        elif kind == "write":
            self._queue_write(record["account"], _write_from_json(record["write"]))
        elif kind == "done":
            self._writes_done(record["account"], [_result_from_json(r) for r in record["results"]])

    def _append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        line += b"\n"
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def apply(self, batch: SyncBatch) -> None:
        with self._lock:
            self._append(_batch_json(batch))
            self._apply(batch)

    def queue_write(self, account: str, write: WriteBack) -> None:
        with self._lock:
            self._append({"t": "write", "account": account, "write": _write_json(write)})
            self._queue_write(account, write)

    def writes_done(self, account: str, results: Sequence[WriteResult]) -> None:
        with self._lock:
            self._append(
                {"t": "done", "account": account, "results": [_result_json(r) for r in results]}
            )
            self._writes_done(account, results)
