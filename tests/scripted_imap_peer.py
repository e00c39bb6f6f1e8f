"""ScriptedImapPeer: a small in-memory IMAP server that impersonates Gmail or Microsoft 365.

Dovecot is the real server for most tests, but two providers behave in ways Dovecot
cannot be configured to show:

* **Gmail** (``provider="gmail"``): ``X-GM-EXT-1``, folders are labels. The same
  message is visible in ``INBOX`` and ``[Gmail]/All Mail`` under different UIDs but the
  same ``X-GM-MSGID``; flags are per message, not per folder; archiving is removing
  the ``\\Inbox`` label; expunging from a label folder removes that label only; FETCH
  returns ``X-GM-MSGID``, ``X-GM-THRID`` and ``X-GM-LABELS``. CONDSTORE, no QRESYNC.
* **Microsoft 365** (``provider="microsoft"``): no CONDSTORE, no QRESYNC, folders
  ``Sent Items``, ``Deleted Items``, ``Archive``, ``Junk Email``; a flag change or an
  expunge can only be found by comparing UIDs and FLAGS.
* ``broken_condstore=True``: advertises CONDSTORE but never sends HIGHESTMODSEQ or
  MODSEQ (servers like that exist; RELIABILITY "some servers advertise it and return
  no MODSEQ").

It speaks only as much IMAP as imapclient and the engine need: LOGIN, AUTHENTICATE
XOAUTH2/PLAIN, CAPABILITY, ENABLE, ID, NAMESPACE, LIST (with SPECIAL-USE attributes),
STATUS, SELECT/EXAMINE, (UID) SEARCH, (UID) FETCH, (UID) STORE (flags and Gmail labels),
(UID) COPY/MOVE with COPYUID, (UID) EXPUNGE, APPEND with APPENDUID, CLOSE, UNSELECT,
CREATE, NOOP, IDLE/DONE, LOGOUT. It is not a conformance reference: when in doubt it
does what the provider does, documented next to the code.

Tests drive the "provider side" through :class:`PeerMailbox` (deliver, flag, label,
move, expunge) and inspect what clients sent through ``peer.log``. Each connection is
served by its own thread on a free loopback port; every mutation wakes IDLE sessions.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import itertools
import re
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

ProviderName = Literal["gmail", "microsoft"]

GMAIL_ALL = "[Gmail]/All Mail"
GMAIL_SENT = "[Gmail]/Sent Mail"
GMAIL_TRASH = "[Gmail]/Trash"
GMAIL_SPAM = "[Gmail]/Spam"
GMAIL_DRAFTS = "[Gmail]/Drafts"
GMAIL_STARRED = "[Gmail]/Starred"

# Gmail folder -> the label that puts a message in it (None: membership is not a label)
_GMAIL_SYSTEM: dict[str, str | None] = {
    "INBOX": "\\Inbox",
    GMAIL_ALL: None,
    GMAIL_SENT: "\\Sent",
    GMAIL_DRAFTS: "\\Draft",
    GMAIL_STARRED: None,
    GMAIL_SPAM: None,
    GMAIL_TRASH: None,
}
_GMAIL_FOLDERS: list[tuple[str, tuple[str, ...]]] = [
    ("INBOX", ("\\HasNoChildren",)),
    ("[Gmail]", ("\\HasChildren", "\\Noselect")),
    (GMAIL_ALL, ("\\All", "\\HasNoChildren")),
    (GMAIL_DRAFTS, ("\\Drafts", "\\HasNoChildren")),
    (GMAIL_SENT, ("\\HasNoChildren", "\\Sent")),
    (GMAIL_SPAM, ("\\HasNoChildren", "\\Junk")),
    (GMAIL_STARRED, ("\\Flagged", "\\HasNoChildren")),
    (GMAIL_TRASH, ("\\HasNoChildren", "\\Trash")),
]
_MICROSOFT_FOLDERS: list[tuple[str, tuple[str, ...]]] = [
    ("INBOX", ("\\HasNoChildren",)),
    ("Archive", ("\\Archive", "\\HasNoChildren")),
    ("Deleted Items", ("\\HasNoChildren", "\\Trash")),
    ("Drafts", ("\\Drafts", "\\HasNoChildren")),
    ("Junk Email", ("\\HasNoChildren", "\\Junk")),
    ("Sent Items", ("\\HasNoChildren", "\\Sent")),
]

# Capabilities: the real providers' lists, minus what this peer does not implement.
_GMAIL_PRE_AUTH = "IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN X-GM-EXT-1 AUTH=XOAUTH2 AUTH=PLAIN"
_GMAIL_CAPS = (
    "IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE SPECIAL-USE"
)
_MS_PRE_AUTH = (
    "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE"
)
_MS_CAPS = (
    "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE"
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class PeerError(Exception):
    """A command the peer refuses: ``kind`` is NO or BAD, ``code`` an optional resp-code."""

    def __init__(self, text: str, kind: str = "NO", code: str = "") -> None:
        super().__init__(text)
        self.kind = kind
        self.code = code


# ------------------------------------------------------------------------ the model


@dataclass
class PeerMessage:
    """One message. On Gmail it is shared by every folder (label) it appears in."""

    id: int
    raw: bytes
    internaldate: dt.datetime
    flags: set[str] = field(default_factory=set)
    gm_msgid: int = 0
    gm_thrid: int = 0
    labels: set[str] = field(default_factory=set)
    folder: str = ""  # Microsoft: the one folder holding it
    trashed: bool = False  # Gmail
    spam: bool = False  # Gmail
    modseq: int = 1

    @property
    def message_id(self) -> str:
        match = re.search(rb"^Message-ID:\s*(<[^>\r\n]*>)", self.raw, re.I | re.M)
        return match.group(1).decode("ascii", "replace") if match else ""


@dataclass
class PeerFolder:
    name: str
    attributes: tuple[str, ...]
    uidvalidity: int
    uidnext: int = 1
    uids: dict[int, int] = field(default_factory=dict)  # uid -> message id, ascending
    by_msg: dict[int, int] = field(default_factory=dict)  # message id -> uid
    highestmodseq: int = 1

    @property
    def selectable(self) -> bool:
        return "\\Noselect" not in self.attributes


class PeerMailbox:
    """One user's mail, as the provider stores it. Thread-safe; every change wakes IDLE."""

    def __init__(self, provider: ProviderName, *, uidvalidity_base: int = 1) -> None:
        self.provider = provider
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.messages: dict[int, PeerMessage] = {}
        self.folders: dict[str, PeerFolder] = {}
        self._ids = itertools.count(1)
        self._gm_ids = itertools.count(1_600_000_000_000_000_001)
        self._modseq = 1
        template = _GMAIL_FOLDERS if provider == "gmail" else _MICROSOFT_FOLDERS
        for i, (name, attrs) in enumerate(template):
            self.folders[name] = PeerFolder(name, attrs, uidvalidity=uidvalidity_base + i)

    @property
    def gmail(self) -> bool:
        return self.provider == "gmail"

    # -- provider-side API for tests -------------------------------------------------

    def deliver(
        self,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: Iterable[str] = (),
        labels: Iterable[str] = (),
        internaldate: dt.datetime | None = None,
        thread_of: PeerMessage | None = None,
    ) -> PeerMessage:
        """Put a new message in ``folder`` (on Gmail: give it that folder's label)."""
        with self.lock:
            msg = self._new_message(raw, flags, internaldate)
            if thread_of is not None:
                msg.gm_thrid = thread_of.gm_thrid
            msg.labels |= set(labels)
            self._place(msg, folder)
            self._commit()
            return msg

    def deliver_many(self, raws: Iterable[bytes], folder: str = "INBOX") -> list[PeerMessage]:
        """Many messages with one membership update (deliver() is O(messages) each)."""
        with self.lock:
            out = []
            for raw in raws:
                msg = self._new_message(raw, (), None)
                self._place(msg, folder)
                out.append(msg)
            self._commit()
            return out

    def set_flags(self, msg: PeerMessage, flags: Iterable[str]) -> None:
        with self.lock:
            msg.flags = set(flags)
            self._touch(msg)
            self._commit()

    def add_flags(self, msg: PeerMessage, flags: Iterable[str]) -> None:
        self.set_flags(msg, msg.flags | set(flags))

    def remove_flags(self, msg: PeerMessage, flags: Iterable[str]) -> None:
        self.set_flags(msg, msg.flags - set(flags))

    def add_labels(self, msg: PeerMessage, labels: Iterable[str]) -> None:
        with self.lock:
            self._labels(msg, set(labels), add=True)
            self._commit()

    def remove_labels(self, msg: PeerMessage, labels: Iterable[str]) -> None:
        with self.lock:
            self._labels(msg, set(labels), add=False)
            self._commit()

    def archive(self, msg: PeerMessage) -> None:
        """What the provider's web UI does: Gmail drops \\Inbox, Microsoft moves to Archive."""
        if self.gmail:
            self.remove_labels(msg, ["\\Inbox"])
        else:
            self.move(msg, "Archive")

    def move(self, msg: PeerMessage, folder: str) -> None:
        """Microsoft: move to another folder (new UID there)."""
        with self.lock:
            self._require_folder(folder)
            msg.folder = folder
            self._touch(msg)
            self._commit()

    def delete_forever(self, msg: PeerMessage) -> None:
        with self.lock:
            self.messages.pop(msg.id, None)
            self._commit()

    def create_folder(self, name: str, attributes: Sequence[str] = ("\\HasNoChildren",)) -> None:
        with self.lock:
            if name not in self.folders:
                base = max(f.uidvalidity for f in self.folders.values())
                self.folders[name] = PeerFolder(name, tuple(attributes), uidvalidity=base + 1)
            self._commit()

    def set_uidvalidity(self, folder: str, value: int) -> None:
        """Rebuild a folder as a server would after losing its index: new UIDVALIDITY."""
        with self.lock:
            f = self._require_folder(folder)
            f.uidvalidity, f.uidnext = value, 1
            f.uids.clear()
            f.by_msg.clear()
            self._commit()

    def uid(self, msg: PeerMessage, folder: str) -> int | None:
        with self.lock:
            return self._require_folder(folder).by_msg.get(msg.id)

    def uids(self, folder: str) -> list[int]:
        with self.lock:
            return list(self._require_folder(folder).uids)

    def in_folder(self, folder: str) -> list[PeerMessage]:
        with self.lock:
            f = self._require_folder(folder)
            return [self.messages[mid] for mid in f.uids.values()]

    def find(self, message_id: str) -> list[PeerMessage]:
        with self.lock:
            return [m for m in self.messages.values() if m.message_id == message_id]

    # -- internals ---------------------------------------------------------------------

    def _new_message(
        self, raw: bytes, flags: Iterable[str], internaldate: dt.datetime | None
    ) -> PeerMessage:
        when = internaldate or _header_date(raw) or dt.datetime.now(dt.timezone.utc)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        msg = PeerMessage(next(self._ids), raw, when, set(flags))
        if self.gmail:
            msg.gm_msgid = next(self._gm_ids)
            msg.gm_thrid = msg.gm_msgid
        self.messages[msg.id] = msg
        self._touch(msg)
        return msg

    def _touch(self, msg: PeerMessage) -> None:
        self._modseq += 1
        msg.modseq = self._modseq

    def _require_folder(self, name: str) -> PeerFolder:
        folder = self.resolve(name)
        if folder is None or not folder.selectable:
            raise PeerError(f"Unknown folder {name}", code="NONEXISTENT")
        return folder

    def resolve(self, name: str) -> PeerFolder | None:
        if name.upper() == "INBOX":
            return self.folders["INBOX"]
        return self.folders.get(name)

    def label_of(self, folder: str) -> str | None:
        """The Gmail label that means "in this folder" (custom folders: their name)."""
        if folder in _GMAIL_SYSTEM:
            return _GMAIL_SYSTEM[folder]
        return folder

    def member(self, msg: PeerMessage, folder: PeerFolder) -> bool:
        if not self.gmail:
            return msg.folder == folder.name
        name = folder.name
        if name == GMAIL_TRASH:
            return msg.trashed
        if msg.trashed:
            return False
        if name == GMAIL_SPAM:
            return msg.spam
        if msg.spam:
            return False
        if name == GMAIL_ALL:
            return True
        if name == GMAIL_STARRED:
            return "\\Flagged" in msg.flags
        label = self.label_of(name)
        return label is not None and label in msg.labels

    def _place(self, msg: PeerMessage, folder: str) -> None:
        """Make ``msg`` a member of ``folder`` (APPEND, COPY, MOVE target)."""
        target = self._require_folder(folder)
        if not self.gmail:
            msg.folder = target.name
        elif target.name == GMAIL_TRASH:
            msg.trashed = True
        elif target.name == GMAIL_SPAM:
            msg.spam = True
        elif target.name == GMAIL_STARRED:
            msg.flags.add("\\Flagged")
        elif target.name != GMAIL_ALL:
            msg.trashed = msg.spam = False
            msg.labels.add(self.label_of(target.name) or target.name)
        self._touch(msg)

    def _leave(self, msg: PeerMessage, folder: PeerFolder, *, expunge: bool) -> None:
        """Take ``msg`` out of ``folder`` (EXPUNGE, MOVE source)."""
        if not self.gmail:
            if expunge:
                self.messages.pop(msg.id, None)
            return
        # Gmail: leaving a label folder removes the label; expunging from All Mail
        # sends the message to Trash; expunging from Trash deletes it for good.
        msg.flags.discard("\\Deleted")
        if folder.name == GMAIL_TRASH:
            if expunge:
                self.messages.pop(msg.id, None)
            else:
                msg.trashed = False
        elif folder.name == GMAIL_SPAM:
            msg.spam = False
        elif folder.name == GMAIL_ALL:
            if expunge:
                msg.trashed = True
        elif folder.name == GMAIL_STARRED:
            msg.flags.discard("\\Flagged")
        else:
            label = self.label_of(folder.name)
            if label:
                msg.labels.discard(label)
        self._touch(msg)

    def _labels(self, msg: PeerMessage, labels: set[str], *, add: bool) -> None:
        for label in labels:
            if label in ("\\Trash", "\\Spam"):
                attr = "trashed" if label == "\\Trash" else "spam"
                setattr(msg, attr, add)
            elif add:
                msg.labels.add(label)
            else:
                msg.labels.discard(label)
        self._touch(msg)

    def _commit(self) -> None:
        """Recompute folder membership, hand out UIDs to newcomers, wake IDLE sessions."""
        order = sorted(self.messages.values(), key=lambda m: m.id)
        for folder in self.folders.values():
            if not folder.selectable:
                continue
            members = {m.id for m in order if self.member(m, folder)}
            gone = [uid for uid, mid in folder.uids.items() if mid not in members]
            for uid in gone:
                del folder.by_msg[folder.uids.pop(uid)]
            if gone:
                self._modseq += 1
                folder.highestmodseq = max(folder.highestmodseq, self._modseq)
            for m in order:
                if m.id in members and m.id not in folder.by_msg:
                    folder.uids[folder.uidnext] = m.id
                    folder.by_msg[m.id] = folder.uidnext
                    folder.uidnext += 1
            for mid in folder.uids.values():
                folder.highestmodseq = max(folder.highestmodseq, self.messages[mid].modseq)
        self.version += 1
        self.changed.notify_all()


def _header_date(raw: bytes) -> dt.datetime | None:
    match = re.search(rb"^Date:\s*([^\r\n]+)", raw, re.I | re.M)
    if not match:
        return None
    try:
        return parsedate_to_datetime(match.group(1).decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------------ the wire


class Lit(bytes):
    """A quoted string or literal argument (an atom is a ``str``)."""


def _imap_date(value: dt.datetime) -> str:
    off = value.utcoffset() or dt.timedelta(0)
    sign = "-" if off < dt.timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return (
        f"{value.day:2d}-{_MONTHS[value.month - 1]}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def _parse_search_date(text: str) -> dt.date:
    day, mon, year = text.strip('"').split("-")
    return dt.date(int(year), _MONTHS.index(mon.capitalize()) + 1, int(day))


def _parse_append_date(text: str) -> dt.datetime:
    date_part, time_part, zone = text.split()
    day, mon, year = date_part.split("-")
    hh, mm, ss = (int(x) for x in time_part.split(":"))
    sign = -1 if zone[0] == "-" else 1
    offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
    return dt.datetime(
        int(year),
        _MONTHS.index(mon.capitalize()) + 1,
        int(day),
        hh,
        mm,
        ss,
        tzinfo=dt.timezone(offset),
    )


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _astring(text: str) -> str:
    if text and re.fullmatch(r"[A-Za-z0-9_.\-\\$]+", text) and not text.startswith("\\\\"):
        return text
    return _quote(text)


def _flag_list(flags: Iterable[str]) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


def _label_list(labels: Iterable[str]) -> str:
    # Gmail sends system labels as atoms (\Inbox) and user labels as atoms or strings.
    return (
        "("
        + " ".join(label if label.startswith("\\") else _astring(label) for label in sorted(labels))
        + ")"
    )


class _Tokens:
    """Tokenizer for one command line whose literals were already read in."""

    def __init__(self, parts: list[bytes | Lit]) -> None:
        # parts alternate: raw text chunks (bytes) and literal payloads (Lit)
        self.parts = parts

    def parse(self) -> list[Any]:
        stack: list[list[Any]] = [[]]
        for part in self.parts:
            if isinstance(part, Lit):
                stack[-1].append(part)
                continue
            i, text = 0, part
            while i < len(text):
                c = text[i : i + 1]
                if c == b" ":
                    i += 1
                elif c == b"(":
                    stack.append([])
                    i += 1
                elif c == b")":
                    if len(stack) == 1:
                        raise PeerError("Unbalanced parenthesis", "BAD")
                    done = stack.pop()
                    stack[-1].append(done)
                    i += 1
                elif c == b'"':
                    j, buf = i + 1, bytearray()
                    while j < len(text) and text[j : j + 1] != b'"':
                        if text[j : j + 1] == b"\\":
                            j += 1
                        buf += text[j : j + 1]
                        j += 1
                    stack[-1].append(Lit(bytes(buf)))
                    i = j + 1
                else:
                    j, depth = i, 0
                    while j < len(text):
                        ch = text[j : j + 1]
                        if ch == b"[":
                            depth += 1
                        elif ch == b"]":
                            depth -= 1
                        elif depth == 0 and ch in b" ()":
                            break
                        j += 1
                    stack[-1].append(text[i:j].decode("utf-8", "replace"))
                    i = j
        if len(stack) != 1:
            raise PeerError("Unbalanced parenthesis", "BAD")
        return stack[0]


def _text(token: Any) -> str:
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    if isinstance(token, str):
        return token
    raise PeerError("Expected a string", "BAD")


def _uid_set(spec: str, highest: int) -> set[int] | Callable[[int], bool]:
    """Members of a UID or sequence set; ``*`` is the highest value present."""
    out: set[int] = set()
    for part in spec.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            lo = highest if a == "*" else int(a)
            hi = highest if b == "*" else int(b)
            lo, hi = min(lo, hi), max(lo, hi)
            if hi - lo > 10_000_000:
                return lambda v, lo=lo, hi=hi: lo <= v <= hi  # type: ignore[misc]
            out.update(range(lo, hi + 1))
        else:
            out.add(highest if part == "*" else int(part))
    return out


def _contains(members: set[int] | Callable[[int], bool], value: int) -> bool:
    return members(value) if callable(members) else value in members


# ------------------------------------------------------------------------ sessions


@dataclass
class LogEntry:
    """One command as the peer received it (for asserting on client behaviour)."""

    at: float
    session: int
    tag: str
    command: str
    args: str


class _Session:
    """State of one connection: login, selected folder, and what the client was told."""

    def __init__(self, peer: ScriptedImapPeer, sock: socket.socket, number: int) -> None:
        self.peer = peer
        self.sock = sock
        self.number = number
        self.buffer = b""
        self.user: str | None = None
        self.mailbox: PeerMailbox | None = None
        self.folder: PeerFolder | None = None
        self.readonly = False
        self.view: list[int] = []  # UIDs in sequence-number order, as the client knows them
        self.known: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        self.seen_version = -1
        self.closed = False

    # -- io ------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def line(self, text: str) -> None:
        self.send(text + "\r\n")

    def _fill(self, timeout: float | None) -> bool:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not chunk:
            raise ConnectionError("client closed")
        self.buffer += chunk
        return True

    def readline(self, timeout: float | None = None) -> bytes | None:
        while b"\r\n" not in self.buffer:
            if not self._fill(timeout):
                return None
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill(None)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_command(self) -> list[bytes | Lit] | None:
        parts: list[bytes | Lit] = []
        while True:
            line = self.readline(self.peer.session_timeout)
            if line is None:
                return None
            match = re.search(rb"\{(\d+)(\+?)\}$", line)
            if not match:
                parts.append(line)
                return parts
            parts.append(line[: match.start()])
            if not match.group(2):
                self.line("+ Ready for literal data")
            parts.append(Lit(self.read_exact(int(match.group(1)))))

    # -- view updates ----------------------------------------------------------------------

    def state_of(self, mid: int) -> tuple[frozenset[str], frozenset[str]]:
        assert self.mailbox is not None
        msg = self.mailbox.messages[mid]
        return frozenset(msg.flags), frozenset(msg.labels)

    def reset_view(self) -> None:
        assert self.folder is not None
        self.view = list(self.folder.uids)
        self.known = {uid: self.state_of(mid) for uid, mid in self.folder.uids.items()}
        self.seen_version = self.mailbox.version if self.mailbox else -1

    def updates(self, *, expunges: bool) -> None:
        """Tell the client what changed in the selected folder since it last heard.

        EXPUNGE is only sent where RFC 3501 allows it (not during FETCH/STORE/SEARCH),
        which is also when real servers send it.
        """
        mb, folder = self.mailbox, self.folder
        if mb is None or folder is None:
            return
        with mb.lock:
            if expunges:
                for seq in range(len(self.view), 0, -1):
                    uid = self.view[seq - 1]
                    if uid not in folder.uids:
                        self.line(f"* {seq} EXPUNGE")
                        del self.view[seq - 1]
                        self.known.pop(uid, None)
            for seq, uid in enumerate(self.view, 1):
                mid = folder.uids.get(uid)
                if mid is None:
                    continue
                state = self.state_of(mid)
                if self.known.get(uid) != state:
                    self.known[uid] = state
                    extra = self.peer._modseq_item(mb.messages[mid])
                    labels = f" X-GM-LABELS {_label_list(state[1])}" if mb.gmail else ""
                    self.line(
                        f"* {seq} FETCH (UID {uid} FLAGS {_flag_list(state[0])}{labels}{extra})"
                    )
            newer = [
                uid
                for uid in folder.uids
                if uid not in self.known and (not self.view or uid > self.view[-1])
            ]
            if newer:
                for uid in newer:
                    self.view.append(uid)
                    self.known[uid] = self.state_of(folder.uids[uid])
                self.line(f"* {len(self.view)} EXISTS")
            if expunges:
                self.seen_version = mb.version


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        peer = self.server.peer
        sock: socket.socket = self.request
        # Responses go out line by line: without NODELAY, Nagle + delayed ACK add ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if peer.tls:
            sock = peer._tls.server_context().wrap_socket(sock, server_side=True)
        session = _Session(peer, sock, next(peer._session_ids))
        with peer._lock:
            peer._sessions.add(session)
        try:
            greeting = (
                "* OK Gimap ready for requests"
                if peer.gmail
                else ("* OK The Microsoft Exchange IMAP4 service is ready.")
            )
            session.line(greeting)
            while not session.closed:
                parts = session.read_command()
                if parts is None:
                    session.line("* BYE Connection timed out")
                    return
                peer._dispatch(session, parts)
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            with peer._lock:
                peer._sessions.discard(session)
            try:
                sock.close()
            except OSError:
                pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    peer: ScriptedImapPeer


class ScriptedImapPeer:
    """A Gmail- or Microsoft-365-like IMAP server on a free loopback port.

    ``users`` maps login -> password (XOAUTH2 tokens are checked by
    ``token_validator(user, token)``, or against ``peer.tokens[user]``).
    """

    def __init__(
        self,
        provider: ProviderName = "gmail",
        *,
        users: dict[str, str] | None = None,
        condstore: bool | None = None,
        broken_condstore: bool = False,
        idle: bool = True,
        tls: bool = False,
        token_validator: Callable[[str, str], bool] | None = None,
        session_timeout: float = 1800.0,
        start: bool = True,
    ) -> None:
        self.provider: ProviderName = provider
        self.condstore = (provider == "gmail") if condstore is None else condstore
        self.broken_condstore = broken_condstore
        self.idle = idle
        self.tls = tls
        self.token_validator = token_validator
        self.session_timeout = session_timeout
        self.users = dict(users or {"user@example.com": "secret"})
        self.tokens: dict[str, set[str]] = {}
        self.mailboxes = {
            user: PeerMailbox(provider, uidvalidity_base=1000 + 100 * i)
            for i, user in enumerate(self.users)
        }
        self.log: list[LogEntry] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()
        self._sessions: set[_Session] = set()
        self._session_ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tls: Any = None
        if tls:
            from harness import tls_material

            self._tls = tls_material()
            self.cafile = str(self._tls.cafile)
        if start:
            self.start()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def gmail(self) -> bool:
        return self.provider == "gmail"

    @property
    def user(self) -> str:
        return next(iter(self.users))

    @property
    def mailbox(self) -> PeerMailbox:
        """The first user's mailbox (most tests have one user)."""
        return self.mailboxes[self.user]

    def start(self) -> ScriptedImapPeer:
        if self._server is None:
            server = _Server((self.host, 0), _Handler)
            server.peer = self
            self._server = server
            self.port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"scripted-imap-{self.provider}-{self.port}",
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.drop_connections()

    close = stop

    def __enter__(self) -> ScriptedImapPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self, bye: str | None = None) -> int:
        """Close every client connection (optionally after ``* BYE``), like a kick."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            try:
                if bye:
                    s.line(f"* BYE {bye}")
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(sessions)

    def connections(self) -> int:
        with self._lock:
            return len(self._sessions)

    def commands(self, name: str | None = None) -> list[LogEntry]:
        with self._lock:
            return [e for e in self.log if name is None or e.command == name.upper()]

    # -- capabilities ------------------------------------------------------------------------

    def capabilities(self, authenticated: bool) -> str:
        if self.gmail:
            caps = _GMAIL_CAPS if authenticated else _GMAIL_PRE_AUTH
        else:
            caps = _MS_CAPS if authenticated else _MS_PRE_AUTH
        words = caps.split()
        if authenticated and (self.condstore or self.broken_condstore) and "CONDSTORE" not in words:
            words += ["CONDSTORE"]
            if "ENABLE" not in words:
                words.append("ENABLE")
        if not self.idle:
            words = [w for w in words if w != "IDLE"]
        return " ".join(words)

    @property
    def modseqs(self) -> bool:
        return self.condstore and not self.broken_condstore

    def _modseq_item(self, msg: PeerMessage) -> str:
        return f" MODSEQ ({msg.modseq})" if self.modseqs else ""

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, s: _Session, parts: list[bytes | Lit]) -> None:
        head = parts[0] if parts and not isinstance(parts[0], Lit) else b""
        tag, _, rest = bytes(head).partition(b" ")
        tag_s = tag.decode("ascii", "replace") or "*"
        parts = [rest, *parts[1:]]
        try:
            tokens = _Tokens(parts).parse()
        except PeerError as exc:
            s.line(f"{tag_s} BAD {exc}")
            return
        if not tokens:
            s.line(f"{tag_s} BAD Missing command")
            return
        command = _text(tokens[0]).upper()
        args = tokens[1:]
        uid = False
        if command == "UID" and args:
            uid, command, args = True, _text(args[0]).upper(), args[1:]
        shown = " ".join(_text(a) if not isinstance(a, list) else "(...)" for a in args)[:300]
        if command in ("LOGIN", "AUTHENTICATE"):
            shown = shown.split(" ")[0] + " ***"
        with self._lock:
            self.log.append(
                LogEntry(time.time(), s.number, tag_s, ("UID " if uid else "") + command, shown)
            )
        handler = getattr(self, f"_cmd_{command.lower()}", None)
        try:
            if handler is None:
                raise PeerError(f"Unknown command {command}", "BAD")
            if (
                command not in ("CAPABILITY", "LOGIN", "AUTHENTICATE", "LOGOUT", "NOOP", "ID")
                and s.user is None
            ):
                raise PeerError("Not authenticated", "BAD")
            if (
                command
                in (
                    "FETCH",
                    "STORE",
                    "SEARCH",
                    "COPY",
                    "MOVE",
                    "EXPUNGE",
                    "CLOSE",
                    "UNSELECT",
                    "IDLE",
                )
                and s.folder is None
            ):
                raise PeerError("No mailbox selected", "BAD")
            result = (
                handler(s, tag_s, args, uid)
                if command in ("FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE")
                else handler(s, tag_s, args)
            )
            if result is not None:
                s.line(f"{tag_s} {result}")
        except PeerError as exc:
            code = f"[{exc.code}] " if exc.code else ""
            s.line(f"{tag_s} {exc.kind} {code}{exc}")
        except (ValueError, IndexError, KeyError) as exc:
            s.line(f"{tag_s} BAD Could not parse command ({type(exc).__name__})")

    # -- any state -------------------------------------------------------------------------

    def _cmd_capability(self, s: _Session, tag: str, args: list[Any]) -> str:
        s.line(f"* CAPABILITY {self.capabilities(s.user is not None)}")
        return "OK Success"

    def _cmd_noop(self, s: _Session, tag: str, args: list[Any]) -> str:
        s.updates(expunges=True)
        return "OK Success"

    _cmd_check = _cmd_noop

    def _cmd_logout(self, s: _Session, tag: str, args: list[Any]) -> str:
        s.line("* BYE LOGOUT Requested")
        s.closed = True
        return "OK 73 GoodBye"

    def _cmd_id(self, s: _Session, tag: str, args: list[Any]) -> str:
        name = "GImap" if self.gmail else "Microsoft.Exchange.Imap4"
        s.line(f'* ID ("name" "{name}" "vendor" "pipemail scripted peer")')
        return "OK Success"

    def _cmd_namespace(self, s: _Session, tag: str, args: list[Any]) -> str:
        s.line('* NAMESPACE (("" "/")) NIL NIL')
        return "OK Success"

    def _cmd_enable(self, s: _Session, tag: str, args: list[Any]) -> str:
        wanted = [_text(a).upper() for a in args]
        enabled = [
            w for w in wanted if w == "CONDSTORE" and (self.condstore or self.broken_condstore)
        ]
        s.line("* ENABLED" + "".join(f" {w}" for w in enabled))
        return "OK Success"

    # -- authentication ----------------------------------------------------------------------

    def _login_ok(self, s: _Session, user: str) -> str:
        s.user = user
        s.mailbox = self.mailboxes[user]
        return f"OK [CAPABILITY {self.capabilities(True)}] {user} authenticated (Success)"

    def _cmd_login(self, s: _Session, tag: str, args: list[Any]) -> str:
        user, password = _text(args[0]), _text(args[1])
        if self.users.get(user) != password or user not in self.mailboxes:
            raise PeerError("Invalid credentials (Failure)", code="AUTHENTICATIONFAILED")
        return self._login_ok(s, user)

    def _token_ok(self, user: str, token: str) -> bool:
        if user not in self.mailboxes:
            return False
        if self.token_validator is not None:
            return bool(self.token_validator(user, token))
        return token in self.tokens.get(user, set())

    def _cmd_authenticate(self, s: _Session, tag: str, args: list[Any]) -> str:
        mech = _text(args[0]).upper()
        if mech not in ("XOAUTH2", "PLAIN"):
            raise PeerError("Unsupported authentication mechanism", code="CANNOT")
        if len(args) > 1:
            payload = bytes(args[1]) if isinstance(args[1], bytes) else _text(args[1]).encode()
        else:
            s.line("+ ")
            payload = s.readline(self.session_timeout) or b""
        try:
            decoded = base64.b64decode(payload, validate=False)
        except ValueError:
            raise PeerError("Invalid SASL argument", "BAD")
        if mech == "PLAIN":
            _authz, user_b, password_b = (decoded.split(b"\0") + [b"", b""])[:3]
            user, password = user_b.decode(errors="replace"), password_b.decode(errors="replace")
            if self.users.get(user) == password and user in self.mailboxes:
                return self._login_ok(s, user)
            raise PeerError("Invalid credentials (Failure)", code="AUTHENTICATIONFAILED")
        fields = dict(part.split(b"=", 1) for part in decoded.split(b"\x01") if b"=" in part)
        user = fields.get(b"user", b"").decode(errors="replace")
        auth = fields.get(b"auth", b"").decode(errors="replace")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if self._token_ok(user, token):
            return self._login_ok(s, user)
        if self.gmail:
            # Gmail answers a bad token with an error challenge the client must
            # acknowledge (an empty line) before the tagged NO.
            err = b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
            s.line("+ " + base64.b64encode(err).decode())
            s.readline(self.session_timeout)
            raise PeerError("Invalid credentials (Failure)", code="AUTHENTICATIONFAILED")
        raise PeerError("AUTHENTICATE failed.")

    # -- folders ---------------------------------------------------------------------------

    def _cmd_list(self, s: _Session, tag: str, args: list[Any]) -> str:
        assert s.mailbox is not None
        reference, pattern = _text(args[0]), _text(args[1])
        if pattern == "":
            s.line('* LIST (\\Noselect) "/" ""')
            return "OK Success"
        glob = (reference + pattern).replace("%", "*")
        with s.mailbox.lock:
            for folder in s.mailbox.folders.values():
                if fnmatch.fnmatchcase(folder.name, glob) or (
                    folder.name == "INBOX" and fnmatch.fnmatchcase("INBOX", glob.upper())
                ):
                    s.line(f'* LIST ({" ".join(folder.attributes)}) "/" {_quote(folder.name)}')
        return "OK Success"

    _cmd_xlist = _cmd_list

    def _cmd_lsub(self, s: _Session, tag: str, args: list[Any]) -> str:
        self._cmd_list(s, tag, args)
        return "OK Success"

    def _cmd_create(self, s: _Session, tag: str, args: list[Any]) -> str:
        assert s.mailbox is not None
        s.mailbox.create_folder(_text(args[0]))
        return "OK Success"

    def _cmd_status(self, s: _Session, tag: str, args: list[Any]) -> str:
        mb = s.mailbox
        assert mb is not None
        name = _text(args[0])
        items = [_text(a).upper() for a in args[1]]
        with mb.lock:
            folder = mb._require_folder(name)
            values = {
                "MESSAGES": len(folder.uids),
                "RECENT": 0,
                "UIDNEXT": folder.uidnext,
                "UIDVALIDITY": folder.uidvalidity,
                "UNSEEN": sum(
                    1 for mid in folder.uids.values() if "\\Seen" not in mb.messages[mid].flags
                ),
            }
            if self.modseqs:
                values["HIGHESTMODSEQ"] = folder.highestmodseq
        shown = " ".join(f"{k} {values[k]}" for k in items if k in values)
        s.line(f"* STATUS {_quote(folder.name)} ({shown})")
        return "OK Success"

    def _cmd_select(self, s: _Session, tag: str, args: list[Any], readonly: bool = False) -> str:
        mb = s.mailbox
        assert mb is not None
        s.folder = None
        with mb.lock:
            folder = mb._require_folder(_text(args[0]))
            s.folder, s.readonly = folder, readonly
            s.reset_view()
            flags = "\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing"
            s.line(f"* FLAGS ({flags})")
            s.line(f"* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted.")
            s.line(f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid.")
            s.line(f"* {len(s.view)} EXISTS")
            s.line("* 0 RECENT")
            s.line(f"* OK [UIDNEXT {folder.uidnext}] Predicted next UID.")
            if self.modseqs:
                s.line(f"* OK [HIGHESTMODSEQ {folder.highestmodseq}]")
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        return f"OK [{mode}] {folder.name} selected. (Success)"

    def _cmd_examine(self, s: _Session, tag: str, args: list[Any]) -> str:
        return self._cmd_select(s, tag, args, readonly=True)

    def _cmd_unselect(self, s: _Session, tag: str, args: list[Any]) -> str:
        s.folder = None
        s.view, s.known = [], {}
        return "OK Returned to authenticated state. (Success)"

    def _cmd_close(self, s: _Session, tag: str, args: list[Any]) -> str:
        if s.folder is not None and not s.readonly:
            self._expunge(s, None, announce=False)
        return self._cmd_unselect(s, tag, args)

    # -- messages --------------------------------------------------------------------------

    def _targets(self, s: _Session, spec: str, uid: bool) -> list[tuple[int, int, PeerMessage]]:
        """(seq, uid, message) for a UID or sequence set, in ascending order."""
        mb, folder = s.mailbox, s.folder
        assert mb is not None and folder is not None
        out: list[tuple[int, int, PeerMessage]] = []
        if uid:
            highest = max(folder.uids, default=0)
            members = _uid_set(spec, highest)
            # Messages the client has not heard of yet get sequence numbers too: the
            # EXISTS sent before the tagged reply tells it about them.
            s.updates(expunges=False)
            for seq, u in enumerate(s.view, 1):
                if _contains(members, u) and u in folder.uids:
                    out.append((seq, u, mb.messages[folder.uids[u]]))
        else:
            members = _uid_set(spec, len(s.view))
            for seq, u in enumerate(s.view, 1):
                if _contains(members, seq) and u in folder.uids:
                    out.append((seq, u, mb.messages[folder.uids[u]]))
        return out

    def _cmd_fetch(self, s: _Session, tag: str, args: list[Any], uid: bool) -> str:
        mb = s.mailbox
        assert mb is not None
        spec = _text(args[0])
        items_arg = args[1]
        items = (
            [_text(i).upper() for i in items_arg]
            if isinstance(items_arg, list)
            else [_text(items_arg).upper()]
        )
        macros = {
            "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
            "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
            "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
        }
        if len(items) == 1 and items[0] in macros:
            items = macros[items[0]]
        changedsince: int | None = None
        if len(args) > 2 and isinstance(args[2], list):
            mods = [_text(m).upper() for m in args[2]]
            if "CHANGEDSINCE" in mods:
                if not (self.condstore or self.broken_condstore):
                    raise PeerError("CHANGEDSINCE without CONDSTORE", "BAD")
                changedsince = int(mods[mods.index("CHANGEDSINCE") + 1])
            if "VANISHED" in mods:
                raise PeerError("QRESYNC is not supported", "BAD")
        if uid and "UID" not in items:
            items.insert(0, "UID")
        if changedsince is not None and self.modseqs and "MODSEQ" not in items:
            items.append("MODSEQ")
        with mb.lock:
            for seq, u, msg in self._targets(s, spec, uid):
                if changedsince is not None and self.modseqs and msg.modseq <= changedsince:
                    continue
                chunks: list[bytes] = []
                for item in items:
                    chunks.append(self._fetch_item(s, u, msg, item))
                    if item.startswith("BODY[") or item in ("RFC822", "RFC822.TEXT"):
                        msg.flags.add("\\Seen")  # a non-PEEK body fetch sets \Seen
                body = b" ".join(c for c in chunks if c)
                s.send(f"* {seq} FETCH (".encode() + body + b")\r\n")
                s.known[u] = s.state_of(msg.id)
        return "OK Success"

    def _fetch_item(self, s: _Session, uid: int, msg: PeerMessage, item: str) -> bytes:
        mb = s.mailbox
        assert mb is not None
        if item == "UID":
            return f"UID {uid}".encode()
        if item == "FLAGS":
            return f"FLAGS {_flag_list(msg.flags)}".encode()
        if item == "INTERNALDATE":
            return f'INTERNALDATE "{_imap_date(msg.internaldate)}"'.encode()
        if item == "RFC822.SIZE":
            return f"RFC822.SIZE {len(msg.raw)}".encode()
        if item == "MODSEQ":
            return f"MODSEQ ({msg.modseq})".encode() if self.modseqs else b""
        if item in ("X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS"):
            if not mb.gmail:
                raise PeerError(f"Unknown FETCH item {item}", "BAD")
            if item == "X-GM-MSGID":
                return f"X-GM-MSGID {msg.gm_msgid}".encode()
            if item == "X-GM-THRID":
                return f"X-GM-THRID {msg.gm_thrid}".encode()
            return f"X-GM-LABELS {_label_list(msg.labels)}".encode()
        name, data = self._section(msg, item)
        return f"{name} {{{len(data)}}}\r\n".encode() + data

    def _section(self, msg: PeerMessage, item: str) -> tuple[str, bytes]:
        raw = msg.raw
        split = raw.find(b"\r\n\r\n")
        header, body = (raw[: split + 4], raw[split + 4 :]) if split >= 0 else (raw, b"")
        if item in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
            return item, {"RFC822": raw, "RFC822.HEADER": header, "RFC822.TEXT": body}[item]
        match = re.fullmatch(r"BODY(?:\.PEEK)?\[([^\]]*)\](?:<(\d+)\.(\d+)>)?", item)
        if not match:
            raise PeerError(f"Unsupported FETCH item {item}", "BAD")
        section = match.group(1).upper()
        if section == "":
            data = raw
        elif section == "HEADER":
            data = header
        elif section == "TEXT":
            data = body
        elif section.startswith("HEADER.FIELDS"):
            names = re.findall(r"[^\s()]+", section.split("(", 1)[1]) if "(" in section else []
            wanted = {n.upper() for n in names}
            negate = section.startswith("HEADER.FIELDS.NOT")
            lines = re.split(rb"\r\n(?![ \t])", header.rstrip(b"\r\n"))
            keep = [
                ln
                for ln in lines
                if (ln.split(b":", 1)[0].decode("latin-1").strip().upper() in wanted) != negate
            ]
            data = b"".join(ln + b"\r\n" for ln in keep) + b"\r\n"
        else:
            raise PeerError(f"Unsupported body section {section}", "BAD")
        name = f"BODY[{match.group(1)}]"
        if match.group(2) is not None:
            start, length = int(match.group(2)), int(match.group(3))
            data = data[start : start + length]
            name += f"<{start}>"
        return name, data

    def _cmd_search(self, s: _Session, tag: str, args: list[Any], uid: bool) -> str:
        mb, folder = s.mailbox, s.folder
        assert mb is not None and folder is not None
        if args and _text(args[0]).upper() == "CHARSET":
            args = args[2:]
        with mb.lock:
            s.updates(expunges=False)
            found = []
            highest_uid = max(folder.uids, default=0)
            for seq, u in enumerate(s.view, 1):
                mid = folder.uids.get(u)
                if mid is None:
                    continue
                if _matches(
                    list(args), mb.messages[mid], seq, u, len(s.view), highest_uid, mb.gmail
                ):
                    found.append(u if uid else seq)
        s.line("* SEARCH" + "".join(f" {n}" for n in found))
        return "OK SEARCH completed (Success)"

    def _cmd_store(self, s: _Session, tag: str, args: list[Any], uid: bool) -> str:
        mb = s.mailbox
        assert mb is not None
        if s.readonly:
            raise PeerError("Mailbox is read-only")
        spec = _text(args[0])
        rest = list(args[1:])
        if rest and isinstance(rest[0], list):  # (UNCHANGEDSINCE n): accept, not enforced
            rest = rest[1:]
        action = _text(rest[0]).upper()
        values = rest[1] if isinstance(rest[1], list) else rest[1:]
        names = [_text(v) for v in values]
        silent = action.endswith(".SILENT")
        action = action.removesuffix(".SILENT")
        mode = action[0] if action[0] in "+-" else "="
        what = action.lstrip("+-")
        if what not in ("FLAGS", "X-GM-LABELS") or (what == "X-GM-LABELS" and not mb.gmail):
            raise PeerError(f"Unsupported STORE item {what}", "BAD")
        with mb.lock:
            targets = self._targets(s, spec, uid)
            for _seq, _u, msg in targets:
                if what == "FLAGS":
                    new = set(names)
                    msg.flags = (
                        msg.flags | new if mode == "+" else msg.flags - new if mode == "-" else new
                    )
                    mb._touch(msg)
                elif mode == "=":
                    msg.labels = set()
                    mb._labels(msg, set(names), add=True)
                else:
                    mb._labels(msg, set(names), add=mode == "+")
            mb._commit()
            for seq, u, msg in targets:
                if u not in (s.folder.uids if s.folder else {}):
                    continue
                s.known[u] = s.state_of(msg.id)
                if not silent:
                    labels = f" X-GM-LABELS {_label_list(msg.labels)}" if mb.gmail else ""
                    flags = _flag_list(msg.flags)
                    modseq = self._modseq_item(msg)
                    s.line(f"* {seq} FETCH (UID {u} FLAGS {flags}{labels}{modseq})")
        return "OK Success"

    def _copy(self, s: _Session, spec: str, target_name: str, uid: bool, *, move: bool) -> str:
        mb, folder = s.mailbox, s.folder
        assert mb is not None and folder is not None
        with mb.lock:
            target = mb.resolve(target_name)
            if target is None or not target.selectable:
                raise PeerError(f"Folder {target_name} does not exist", code="TRYCREATE")
            pairs: list[tuple[int, PeerMessage]] = []
            for _seq, u, msg in self._targets(s, spec, uid):
                if mb.gmail or move:
                    mb._place(msg, target.name)
                    pairs.append((u, msg))
                else:
                    clone = mb._new_message(msg.raw, msg.flags, msg.internaldate)
                    mb._place(clone, target.name)
                    pairs.append((u, clone))
                if move and target is not folder and mb.gmail:
                    mb._leave(msg, folder, expunge=False)
            mb._commit()
            src = [u for u, _ in pairs]
            dst = [target.by_msg.get(m.id) for _, m in pairs]
            if not pairs or None in dst:
                code = ""
            else:
                src_set, dst_set = ",".join(map(str, src)), ",".join(map(str, dst))
                code = f"COPYUID {target.uidvalidity} {src_set} {dst_set}"
            if move:
                if code:
                    s.line(f"* OK [{code}]")
                s.updates(expunges=True)
                return "OK Success"
        return f"OK [{code}] Success" if code else "OK Success"

    def _cmd_copy(self, s: _Session, tag: str, args: list[Any], uid: bool) -> str:
        return self._copy(s, _text(args[0]), _text(args[1]), uid, move=False)

    def _cmd_move(self, s: _Session, tag: str, args: list[Any], uid: bool) -> str:
        if s.readonly:
            raise PeerError("Mailbox is read-only")
        return self._copy(s, _text(args[0]), _text(args[1]), uid, move=True)

    def _expunge(
        self, s: _Session, only: set[int] | Callable[[int], bool] | None, *, announce: bool
    ) -> None:
        mb, folder = s.mailbox, s.folder
        assert mb is not None and folder is not None
        with mb.lock:
            for u, mid in list(folder.uids.items()):
                msg = mb.messages.get(mid)
                if msg is None or "\\Deleted" not in msg.flags:
                    continue
                if only is not None and not _contains(only, u):
                    continue
                mb._leave(msg, folder, expunge=True)
            mb._commit()
            if announce:
                s.updates(expunges=True)

    def _cmd_expunge(self, s: _Session, tag: str, args: list[Any], uid: bool) -> str:
        if s.readonly:
            raise PeerError("Mailbox is read-only")
        only = None
        if uid:
            assert s.folder is not None
            only = _uid_set(_text(args[0]), max(s.folder.uids, default=0))
        self._expunge(s, only, announce=True)
        return "OK Success"

    def _cmd_append(self, s: _Session, tag: str, args: list[Any]) -> str:
        mb = s.mailbox
        assert mb is not None
        name = _text(args[0])
        flags: list[str] = []
        when: dt.datetime | None = None
        rest = args[1:]
        if rest and isinstance(rest[0], list):
            flags = [_text(f) for f in rest[0]]
            rest = rest[1:]
        if len(rest) == 2:
            when = _parse_append_date(_text(rest[0]))
            rest = rest[1:]
        if len(rest) != 1 or not isinstance(rest[0], Lit):
            raise PeerError("APPEND needs a message literal", "BAD")
        with mb.lock:
            target = mb.resolve(name)
            if target is None or not target.selectable:
                raise PeerError(f"Folder {name} does not exist", code="TRYCREATE")
            msg = mb._new_message(bytes(rest[0]), flags, when)
            mb._place(msg, target.name)
            mb._commit()
            new_uid = target.by_msg.get(msg.id)
            if s.folder is target:
                s.updates(expunges=False)
        return f"OK [APPENDUID {target.uidvalidity} {new_uid}] (Success)"

    def _cmd_idle(self, s: _Session, tag: str, args: list[Any]) -> str:
        mb = s.mailbox
        assert mb is not None
        if not self.idle:
            raise PeerError("Unknown command IDLE", "BAD")
        s.line("+ idling")
        s.updates(expunges=True)
        while True:
            with mb.lock:
                if mb.version != s.seen_version:
                    s.updates(expunges=True)
            line = s.readline(timeout=0.05)
            if line is None:
                continue
            with self._lock:
                self.log.append(LogEntry(time.time(), s.number, tag, "DONE", ""))
            if line.strip().upper() == b"DONE":
                return "OK IDLE terminated (Success)"
            return "BAD Expected DONE"


def _matches(
    crit: list[Any], msg: PeerMessage, seq: int, uid: int, count: int, highest_uid: int, gmail: bool
) -> bool:
    """Evaluate a SEARCH key list (implicit AND) against one message."""
    i = 0

    def one() -> bool:
        nonlocal i
        token = crit[i]
        i += 1
        if isinstance(token, list):
            return _matches(token, msg, seq, uid, count, highest_uid, gmail)
        key = _text(token).upper()
        if key == "ALL":
            return True
        if key == "NOT":
            return not one()
        if key == "OR":
            a = one()
            b = one()
            return a or b
        if key == "UID":
            spec = _text(crit[i])
            i += 1
            return _contains(_uid_set(spec, highest_uid), uid)
        if key in ("SINCE", "BEFORE", "ON"):
            day = _parse_search_date(_text(crit[i]))
            i += 1
            mine = msg.internaldate.date()
            return mine >= day if key == "SINCE" else mine < day if key == "BEFORE" else mine == day
        flag_keys = {
            "SEEN": "\\Seen",
            "ANSWERED": "\\Answered",
            "FLAGGED": "\\Flagged",
            "DELETED": "\\Deleted",
            "DRAFT": "\\Draft",
        }
        if key in flag_keys:
            return flag_keys[key] in msg.flags
        if key.startswith("UN") and key[2:] in flag_keys:
            return flag_keys[key[2:]] not in msg.flags
        if key in ("KEYWORD", "UNKEYWORD"):
            word = _text(crit[i])
            i += 1
            return (word in msg.flags) == (key == "KEYWORD")
        if key == "HEADER":
            name, value = _text(crit[i]), _text(crit[i + 1])
            i += 2
            pattern = rb"^" + re.escape(name.encode()) + rb":[ \t]*(.*(?:\r\n[ \t].*)*)"
            found = re.search(pattern, msg.raw.split(b"\r\n\r\n", 1)[0], re.I | re.M)
            return (
                bool(found) and value.lower() in found.group(1).decode("utf-8", "replace").lower()
            )
        if key in ("X-GM-MSGID", "X-GM-THRID") and gmail:
            value = int(_text(crit[i]))
            i += 1
            return (msg.gm_msgid if key == "X-GM-MSGID" else msg.gm_thrid) == value
        if key == "X-GM-LABELS" and gmail:
            label = _text(crit[i])
            i += 1
            return label in msg.labels
        if re.fullmatch(r"[\d:*,]+", key):
            return _contains(_uid_set(key, count), seq)
        raise PeerError(f"Unsupported SEARCH key {key}", "BAD")

    while i < len(crit):
        if not one():
            return False
    return True
