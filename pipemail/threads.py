"""Conversation threading: which messages of one mailbox belong together.

Two entry points share one notion of a thread key:

* :func:`thread_messages` threads a batch (JWZ algorithm, with placeholder containers
  for messages we do not have, safe against reference cycles and replies that arrive
  before their parents);
* :func:`assign_thread` places one new message during sync, asking the store through
  the small :class:`ThreadLookup` protocol.

Rules (RELIABILITY.md): Gmail's thread id wins; then header evidence (In-Reply-To,
References newest first); a subject match alone may join a thread only with the same
normalized subject, at least two shared participants, within one owner's mailbox and
a time window. Threads never span owners: every lookup is scoped by owner, and thread
keys are only unique *within* an owner, so stores must key threads by
``(owner, thread_key)``.

Thread keys: ``gmt:<X-GM-THRID>`` on Gmail, else ``t:<hash of the root Message-ID>``,
where the root is the oldest message the headers point to. Deriving the key from the
root means a reply synced before its parent, and the parent synced later, land on the
same key without either knowing about the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

from pipemail.text import normalize_subject
from pipemail.types import ParsedMessage

__all__ = [
    "DEFAULT_SUBJECT_WINDOW",
    "MIN_SHARED_PARTICIPANTS",
    "MemoryThreadLookup",
    "ThreadLookup",
    "assign_thread",
    "header_evidence",
    "key_for_root",
    "new_thread_key",
    "thread_messages",
]

DEFAULT_SUBJECT_WINDOW = timedelta(days=60)
MIN_SHARED_PARTICIPANTS = 2
# Subjects too generic to say anything about a conversation on their own.
_GENERIC_SUBJECTS = frozenset({"", "(no subject)", "no subject", "(sans objet)", "(kein betreff)"})


def key_for_root(root_message_id: str) -> str:
    """Thread key of the conversation whose oldest known Message-ID is this one."""
    digest = hashlib.sha256(root_message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"t:{digest[:32]}"


def _reference_chain(msg: ParsedMessage) -> list[str]:
    """References oldest → newest, In-Reply-To appended when missing; never self."""
    chain = list(dict.fromkeys(r for r in msg.references if r))
    if msg.in_reply_to and msg.in_reply_to not in chain:
        chain.append(msg.in_reply_to)
    return [r for r in chain if r != msg.message_id]


def new_thread_key(msg: ParsedMessage) -> str:
    """Key for a thread started by ``msg`` (when :func:`assign_thread` found none).

    Uses the oldest referenced Message-ID when there is one: that message, if it is
    synced later, gets the same key as its own (it is the root).
    """
    chain = _reference_chain(msg)
    return key_for_root(chain[0] if chain else msg.message_id)


def key_for_new_thread(msg: ParsedMessage, message_key: str) -> str:
    """Key for a thread started by ``msg`` (:func:`new_thread_key`), and for a message
    with no Message-ID, which nothing can ever reference, a key of its own built from
    its storage key (``k:<message key>``), so two such messages never share a thread
    by accident."""
    return new_thread_key(msg) if msg.message_id else f"k:{message_key}"


def header_evidence(msg: ParsedMessage) -> list[str]:
    """Message-IDs to look up, strongest first: In-Reply-To, References newest first,
    then the message's own id (a copy of it, or a reply to it, may already be stored)."""
    ids: list[str] = []
    if msg.in_reply_to:
        ids.append(msg.in_reply_to)
    ids.extend(reversed(msg.references))
    ids = [i for i in dict.fromkeys(ids) if i and i != msg.message_id]
    if msg.message_id and not msg.message_id_synthesized:
        ids.append(msg.message_id)
    return ids


# --------------------------------------------------------------------- batch (JWZ)


@dataclass(eq=False)
class _Container:
    id: str
    message: ParsedMessage | None = None
    parent: _Container | None = None
    children: list[_Container] = field(default_factory=list)


def _is_ancestor(candidate: _Container, node: _Container) -> bool:
    """True when ``candidate`` is ``node`` or one of its ancestors."""
    seen = 0
    current: _Container | None = node
    while current is not None:
        if current is candidate:
            return True
        current = current.parent
        seen += 1
        if seen > 100_000:  # cannot happen while links stay acyclic; belt and braces
            return True
    return False


def _link(parent: _Container, child: _Container) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def thread_messages(
    msgs: Iterable[ParsedMessage],
    *,
    subject_window: timedelta | None = None,
) -> dict[str, str]:
    """Thread one mailbox's messages: ``{message_id: thread key}``.

    JWZ (https://www.jwz.org/doc/threading.html) steps 1-4: a container per
    Message-ID, placeholders for referenced messages we do not have, links that
    would form a cycle refused. The key of every message is :func:`key_for_root` of
    its tree's root, so it agrees with :func:`new_thread_key`.

    With ``subject_window`` set, trees with the same normalized subject, at least two
    shared participants and dates within the window are merged (the only subject rule
    allowed); without it subjects are ignored. Callers pass one owner's messages only.
    """
    table: dict[str, _Container] = {}

    def container(mid: str) -> _Container:
        found = table.get(mid)
        if found is None:
            found = table[mid] = _Container(mid)
        return found

    messages: list[ParsedMessage] = []
    for msg in msgs:
        messages.append(msg)
        own = container(msg.message_id)
        if own.message is None:
            own.message = msg
        prev: _Container | None = None
        for ref in _reference_chain(msg):
            current = container(ref)
            # Link consecutive references unless already linked or it would loop.
            if (
                prev is not None
                and current.parent is None
                and current is not prev
                and not _is_ancestor(current, prev)
            ):
                _link(prev, current)
            prev = current
        # The message's own headers decide its parent, unless that makes a cycle.
        if prev is not None and prev is not own and not _is_ancestor(own, prev):
            _link(prev, own)

    def root_of(node: _Container) -> _Container:
        while node.parent is not None:
            node = node.parent
        return node

    roots: dict[str, _Container] = {}
    for msg in messages:
        roots[msg.message_id] = root_of(table[msg.message_id])

    if subject_window is not None:
        merged = _merge_by_subject(
            list({id(r): r for r in roots.values()}.values()), subject_window
        )
        return {mid: key_for_root(merged.get(root.id, root.id)) for mid, root in roots.items()}
    return {mid: key_for_root(root.id) for mid, root in roots.items()}


def _tree_messages(root: _Container) -> list[ParsedMessage]:
    out: list[ParsedMessage] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.message is not None:
            out.append(node.message)
        stack.extend(node.children)
    return out


def _participants(msgs: Iterable[ParsedMessage]) -> set[str]:
    return {a.email for m in msgs for a in m.participants}


def _merge_by_subject(roots: list[_Container], window: timedelta) -> dict[str, str]:
    """Root id → id of the root it is merged into (union-find over subject matches)."""
    info = []
    for root in roots:
        msgs = _tree_messages(root)
        dated = [m.date for m in msgs if m.date is not None]
        subjects = {normalize_subject(m.subject) for m in msgs} - _GENERIC_SUBJECTS
        if not dated or not subjects:
            continue
        info.append((root.id, subjects, _participants(msgs), min(dated), max(dated)))
    info.sort(key=lambda row: (row[3], row[0]))  # oldest tree first: it names the group
    parent: dict[str, str] = {row[0]: row[0] for row in info}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, (rid, subj, people, first, last) in enumerate(info):
        for oid, osubj, opeople, ofirst, olast in info[:i]:
            if not subj & osubj or len(people & opeople) < MIN_SHARED_PARTICIPANTS:
                continue
            if first - olast > window or ofirst - last > window:
                continue
            a, b = find(oid), find(rid)
            if a != b:
                parent[b] = a
    return {rid: find(rid) for rid in parent}


# --------------------------------------------------------------------- incremental


@runtime_checkable
class ThreadLookup(Protocol):
    """What :func:`assign_thread` asks the store. Every call is scoped to one owner."""

    def thread_for_message_ids(self, owner: str, ids: list[str]) -> str | None:
        """Thread key of a stored message of ``owner`` whose Message-ID is in ``ids``.

        ``ids`` are in priority order: return the thread of the first id that has
        one. Implementations may also match stored messages that *reference* one of
        the ids (the memory implementation does), which joins replies synced before
        their parent.
        """
        ...

    def threads_for_subject(
        self,
        owner: str,
        normalized_subject: str,
        since: datetime,
        until: datetime | None = None,
    ) -> Sequence[tuple[str, set[str]]]:
        """``(thread key, participant e-mails)`` of ``owner``'s threads with this
        normalized subject and a message dated in ``[since, until]``, most recent
        first."""
        ...


def assign_thread(
    msg: ParsedMessage,
    *,
    owner: str,
    lookup: ThreadLookup,
    gm_thrid: int | None = None,
    subject_window: timedelta = DEFAULT_SUBJECT_WINDOW,
) -> str | None:
    """Thread key for a new message of ``owner``'s mailbox, or ``None`` to start one.

    Call :func:`new_thread_key` when this returns ``None``. The order encodes how
    much we trust each kind of evidence: Gmail's own threading, then headers, then a
    subject match that must also share two participants and sit inside the window.
    """
    if gm_thrid:
        return f"gmt:{gm_thrid}"
    ids = header_evidence(msg)
    if ids:
        found = lookup.thread_for_message_ids(owner, ids)
        if found:
            return found
    return _subject_match(msg, owner, lookup, subject_window)


def _subject_match(
    msg: ParsedMessage, owner: str, lookup: ThreadLookup, window: timedelta
) -> str | None:
    subject = normalize_subject(msg.subject)
    if subject in _GENERIC_SUBJECTS or len(subject) < 3 or msg.date is None:
        return None
    people = {a.email for a in msg.participants}
    if len(people) < MIN_SHARED_PARTICIPANTS:
        return None
    candidates = lookup.threads_for_subject(
        owner, subject, msg.date - window, until=msg.date + window
    )
    best: tuple[int, str] | None = None
    for key, participants in candidates:
        shared = len(people & set(participants))
        if shared >= MIN_SHARED_PARTICIPANTS and (best is None or shared > best[0]):
            best = (shared, key)
    return best[1] if best else None


@dataclass
class _ThreadInfo:
    order: int  # creation order: the tie-break among threads last dated at the same instant
    subjects: set[str] = field(default_factory=set)
    participants: set[str] = field(default_factory=set)
    dates: list[datetime] = field(default_factory=list)  # timezone-aware


class MemoryThreadLookup:
    """In-memory :class:`ThreadLookup` for tests and the memory store, per owner.

    ``record`` files a message under a key; ``place`` = assign (or start) + record.

    Indexed so it stays fast on big mailboxes: Message-IDs and references map to their
    thread, and every (person, normalized subject) pair of a thread is indexed. Asked
    directly, ``threads_for_subject`` answers the protocol's question (every thread
    with the subject). While ``place`` decides, it answers only the threads the subject
    rule can accept for the message being placed (at least two shared participants):
    such a thread appears in at least two of the message's (person, subject) lists, so
    scanning all lists but the largest (usually the owner's) finds it. The rule then
    picks the same thread either way. Not thread-safe: MemoryStore calls it under its
    lock.
    """

    def __init__(self) -> None:
        self._by_id: dict[tuple[str, str], str] = {}
        self._by_ref: dict[tuple[str, str], str] = {}
        self._threads: dict[tuple[str, str], _ThreadInfo] = {}
        self._by_subject: dict[tuple[str, str], set[str]] = {}
        self._by_person_subject: dict[tuple[str, str, str], set[str]] = {}

    def record(self, owner: str, msg: ParsedMessage, thread_key: str) -> None:
        self._by_id.setdefault((owner, msg.message_id), thread_key)
        for ref in _reference_chain(msg):
            self._by_ref.setdefault((owner, ref), thread_key)
        info = self._threads.get((owner, thread_key))
        if info is None:
            info = self._threads[(owner, thread_key)] = _ThreadInfo(order=len(self._threads))
        subject = normalize_subject(msg.subject)
        new_subjects = {subject} - info.subjects
        new_people = {a.email for a in msg.participants} - info.participants
        info.subjects |= new_subjects
        info.participants |= new_people
        for subj in new_subjects:
            self._by_subject.setdefault((owner, subj), set()).add(thread_key)
        # keep the cross product (person x subject) of the whole thread indexed
        for person in info.participants:
            for subj in new_subjects if person not in new_people else info.subjects:
                self._by_person_subject.setdefault((owner, person, subj), set()).add(thread_key)
        if msg.date is not None:
            info.dates.append(_aware(msg.date))

    def place(
        self,
        owner: str,
        msg: ParsedMessage,
        *,
        gm_thrid: int | None = None,
        subject_window: timedelta = DEFAULT_SUBJECT_WINDOW,
    ) -> str:
        key = assign_thread(
            msg,
            owner=owner,
            lookup=_Placing(self, frozenset(a.email for a in msg.participants)),
            gm_thrid=gm_thrid,
            subject_window=subject_window,
        )
        if key is None:
            key = new_thread_key(msg)
        self.record(owner, msg, key)
        return key

    def thread_for_message_ids(self, owner: str, ids: list[str]) -> str | None:
        for mid in ids:
            key = self._by_id.get((owner, mid)) or self._by_ref.get((owner, mid))
            if key:
                return key
        return None

    def threads_for_subject(
        self,
        owner: str,
        normalized_subject: str,
        since: datetime,
        until: datetime | None = None,
    ) -> list[tuple[str, set[str]]]:
        candidates = self._by_subject.get((owner, normalized_subject), set())
        return self._hits(owner, candidates, since, until)

    def _threads_sharing(
        self,
        owner: str,
        normalized_subject: str,
        people: frozenset[str],
        since: datetime,
        until: datetime | None,
    ) -> list[tuple[str, set[str]]]:
        """:meth:`threads_for_subject` narrowed to threads sharing two of ``people``."""
        lists = [
            self._by_person_subject.get((owner, person, normalized_subject), set())
            for person in people
        ]
        lists = sorted((x for x in lists if x), key=len)
        if len(lists) < MIN_SHARED_PARTICIPANTS:
            return []
        candidates = {
            key
            for key in set().union(*lists[:-1])
            if len(self._threads[(owner, key)].participants & people) >= MIN_SHARED_PARTICIPANTS
        }
        return self._hits(owner, candidates, since, until)

    def _hits(
        self, owner: str, candidates: Iterable[str], since: datetime, until: datetime | None
    ) -> list[tuple[str, set[str]]]:
        """``candidates`` dated inside ``[since, until]``, most recent first, older
        threads first among equals."""
        since, until = _aware(since), _aware(until) if until is not None else None
        hits: list[tuple[datetime, int, str, set[str]]] = []
        for key in candidates:
            info = self._threads[(owner, key)]
            inside = [d for d in info.dates if d >= since and (until is None or d <= until)]
            if inside:
                hits.append((max(inside), -info.order, key, set(info.participants)))
        hits.sort(key=lambda h: (h[0], h[1]), reverse=True)
        return [(key, people) for _, _, key, people in hits]


class _Placing:
    """The lookup as :meth:`MemoryThreadLookup.place` shows it to :func:`assign_thread`
    for one message: subject candidates narrowed to the ones the rule can accept."""

    def __init__(self, lookup: MemoryThreadLookup, people: frozenset[str]) -> None:
        self._lookup = lookup
        self._people = people

    def thread_for_message_ids(self, owner: str, ids: list[str]) -> str | None:
        return self._lookup.thread_for_message_ids(owner, ids)

    def threads_for_subject(
        self,
        owner: str,
        normalized_subject: str,
        since: datetime,
        until: datetime | None = None,
    ) -> list[tuple[str, set[str]]]:
        return self._lookup._threads_sharing(owner, normalized_subject, self._people, since, until)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
