"""Two-way mailbox sync of one account into a :class:`~pipemail.types.Store`.

Per folder, in RFC 4549 order: check UIDVALIDITY, push the CRM's pending changes, fetch
what is new, then resync flags and expunges. The run has two passes over the folders:

1. SELECT, UIDVALIDITY check, write-backs, new mail (``UID > uidnext``) and the
   newest-first history backfill, for every folder;
2. SELECT again and resync flags/expunges, for every folder.

Doing all fetching before any expunge is applied means a message moved between two
synced folders (INBOX -> Archive) gains its new location before losing the old one:
its record is never shown as removed, not even for a moment.

The cursor rules that make a crash at any point harmless:

* every ``store.apply`` carries the folder state together with the rows that justify
  it, so the cursor can never be ahead of what is stored;
* ``uidnext`` only moves past UIDs that were stored, filtered, or recorded as
  quarantined; ``backfill_low`` only moves down the same way;
* UIDs dropped by the filters are listed in ``state.extra["filtered"]`` (compact UID
  set, with the UIDVALIDITY and a digest of the filter rules) in the same ``apply``, so
  nothing below the cursor is downloaded twice for them; when the rules change they are
  fetched once more and judged by the new rules;
* ``highestmodseq`` is only advanced in pass 2, to the value SELECT reported *before*
  the CHANGEDSINCE fetch, so a change racing with the sync is seen next time.

Anything wrong with one message is quarantined (stored raw with its error, or recorded
in ``state.extra["quarantine"]`` when even the bytes could not be fetched) and the sync
moves on; a failing SEARCH or FETCH command is never read as "no new mail".
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipemail import folders as folders_mod
from pipemail import sync_flags, writeback
from pipemail.errors import (
    AuthFailed,
    ConnectionLost,
    PipemailError,
    ProtocolError,
)
from pipemail.imap import FolderMissing, ImapSession, retry_delay
from pipemail.imap_parse import FetchedMessage, Mailbox, parse_uid_set
from pipemail.mime import message_key, parse_message
from pipemail.types import (
    AccountConfig,
    FolderState,
    Location,
    ParsedMessage,
    RemoteMessage,
    Store,
    SyncBatch,
    WriteBack,
)

log = logging.getLogger(__name__)

FETCH_BUDGET = 24 * 1024 * 1024
"""Bytes of message bodies asked for in one FETCH: bounds memory whatever the sizes."""
SIZE_GROUP = 1000
"""UIDs whose sizes are asked for in one FETCH when planning body fetches."""
MAX_ISOLATION_RECONNECTS = 40
"""Reconnects spent finding messages that make the server drop the connection."""
QUARANTINE_RETRIES = 3
"""Later syncs try a quarantined UID again this many times (transient failures heal)."""
QUARANTINE_LIMIT = 1000
"""Entries kept in ``state.extra["quarantine"]``; older ones are dropped (logged)."""
FILTERED_RANGES_LIMIT = 10_000
"""UID ranges kept in ``state.extra["filtered"]`` (~100 KB of JSON at most, saved with
every batch); the lowest are dropped beyond it (logged): a full reconciliation without
CONDSTORE then fetches those again, as it did before the list existed."""

STRATEGY_QRESYNC = "condstore+qresync"
STRATEGY_CONDSTORE = "condstore"
STRATEGY_UIDDIFF = "uid-diff (no CONDSTORE)"
STRATEGY_GMAIL = "gmail"


# ---------------------------------------------------------------- reports


@dataclass
class FolderReport:
    folder: str
    strategy: str = ""
    uidvalidity: int = 0
    new: int = 0
    flag_changes: int = 0
    vanished: int = 0
    quarantined: int = 0
    skipped: int = 0
    writes_done: int = 0
    writes_stale: int = 0
    writes_failed: int = 0
    reset: bool = False
    backfill_complete: bool = True
    reconciled: bool = False


@dataclass
class SyncError:
    folder: str
    code: str
    message: str
    detail: str = ""


@dataclass
class SyncReport:
    account: str
    strategy: str = ""
    folders: dict[str, FolderReport] = field(default_factory=dict)
    errors: list[SyncError] = field(default_factory=list)
    duration: float = 0.0
    retries: int = 0
    stopped: bool = False
    bytes_fetched: int = 0

    def folder(self, name: str) -> FolderReport:
        if name not in self.folders:
            self.folders[name] = FolderReport(folder=name)
        return self.folders[name]

    def _sum(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.folders.values())

    @property
    def new(self) -> int:
        return self._sum("new")

    @property
    def flag_changes(self) -> int:
        return self._sum("flag_changes")

    @property
    def vanished(self) -> int:
        return self._sum("vanished")

    @property
    def quarantined(self) -> int:
        return self._sum("quarantined")

    @property
    def skipped(self) -> int:
        return self._sum("skipped")

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        parts = [
            f"{self.new} new",
            f"{self.flag_changes} flag changes",
            f"{self.vanished} removed",
        ]
        if self.quarantined:
            parts.append(f"{self.quarantined} quarantined")
        if self.skipped:
            parts.append(f"{self.skipped} skipped by filters")
        text = ", ".join(parts) + f" in {self.duration:.1f} s"
        if self.errors:
            text += f"; {len(self.errors)} error(s)"
        if self.stopped:
            text += " (stopped early)"
        return text


@dataclass(frozen=True)
class Progress:
    account: str
    folder: str
    phase: str
    """``new``, ``backfill``, ``recheck`` (filter rules changed), ``flags`` or ``gaps``."""
    done: int
    total: int | None


@dataclass
class Isolation:
    """What one sync run learnt about messages that kill the connection.

    Survives the reconnects of :func:`sync_account` (one AccountSync per connection).
    """

    suspects: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    failures: dict[tuple[str, int], dict[int, int]] = field(default_factory=dict)
    poison: dict[tuple[str, int], dict[int, str]] = field(default_factory=dict)
    grew: bool = False


ProgressCallback = Callable[[Progress], None]
StopSignal = threading.Event | Callable[[], bool] | None


def choose_folders(
    config: AccountConfig, session: ImapSession, fmap: folders_mod.FolderMap
) -> list[str]:
    """Gmail: All Mail only (labels are folders, one message would come once per label).
    Elsewhere: the configured folders, else the discovered Inbox and Sent."""
    if session.is_gmail or config.provider == "gmail":
        all_mail = fmap.get("all")
        if all_mail:
            return [all_mail]
    if config.folders:
        return list(dict.fromkeys(config.folders))
    return folders_mod.default_sync_folders(fmap, gmail=False)


def strategy_name(session: ImapSession, mailbox: Mailbox | None = None) -> str:
    if session.is_gmail:
        return STRATEGY_GMAIL
    if mailbox is not None and mailbox.highestmodseq is None:
        return STRATEGY_UIDDIFF if not session.condstore else "uid-diff (NOMODSEQ folder)"
    if session.qresync:
        return STRATEGY_QRESYNC
    if session.condstore:
        return STRATEGY_CONDSTORE
    return STRATEGY_UIDDIFF


# ---------------------------------------------------------------- filters


def _domain_match(domain: str, entry: str) -> bool:
    return domain == entry or domain.endswith("." + entry)


class _Filter:
    """Blocklist and internal-only rules, decided on the participants of a message.

    The owner's own address is ignored: it is on nearly every message, so "all
    participants are blocklisted" must mean all the *other* people are.
    """

    def __init__(self, config: AccountConfig) -> None:
        self.emails: set[str] = set()
        self.domains: list[str] = []
        for entry in config.blocklist:
            entry = entry.strip().lower()
            if not entry:
                continue
            if "@" in entry and not entry.startswith("@"):
                self.emails.add(entry)
            else:
                self.domains.append(entry.lstrip("@"))
        self.internal = [d.strip().lower().lstrip("@") for d in config.internal_domains if d]
        self.skip_internal = config.skip_internal and bool(self.internal)
        username = getattr(config.auth, "username", "") or ""
        self.owner = username.lower() if "@" in username else ""
        self.active = bool(self.emails or self.domains or self.skip_internal)
        rules = [
            sorted(self.emails),
            sorted(set(self.domains)),
            sorted(set(self.internal)) if self.skip_internal else [],
            self.skip_internal,
            self.owner,
        ]
        self.rules = hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]
        """Digest of everything :meth:`skip` decides on: UIDs filtered under other rules
        are judged again."""

    def blocked(self, email: str) -> bool:
        if email in self.emails:
            return True
        domain = email.rpartition("@")[2]
        return any(_domain_match(domain, d) for d in self.domains)

    def internal_addr(self, email: str) -> bool:
        domain = email.rpartition("@")[2]
        return any(_domain_match(domain, d) for d in self.internal)

    def skip(self, parsed: ParsedMessage) -> bool:
        if not self.active or parsed.parse_error:
            return False
        people = [a.email for a in parsed.participants if a.email]
        if not people:
            return False
        if self.skip_internal and all(self.internal_addr(p) for p in people):
            return True
        others = [p for p in people if p != self.owner]
        if not others:
            return False
        return all(
            self.blocked(p) or (self.skip_internal and self.internal_addr(p)) for p in others
        ) and any(self.blocked(p) for p in others)


# ---------------------------------------------------------------- the sync


def _stop_requested(stop: StopSignal) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _compact(uids: Iterable[int], *, limit: int | None = None) -> tuple[str, int]:
    """UIDs as an IMAP sequence set ("3,5:9"), keeping the highest ``limit`` ranges.

    Returns the text and how many ranges were dropped.
    """
    ranges: list[list[int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    dropped = 0
    if limit is not None and len(ranges) > limit:
        dropped = len(ranges) - limit
        ranges = ranges[dropped:]
    return ",".join(f"{a}:{b}" if b != a else str(a) for a, b in ranges), dropped


def _uids_of(text: Any) -> set[int]:
    return set(parse_uid_set(text)) if isinstance(text, str) and text else set()


def _salvaged(raw: bytes, exc: BaseException) -> ParsedMessage:
    digest = hashlib.sha256(raw).hexdigest()
    return ParsedMessage(
        message_id=f"{digest[:32]}@pipemail.invalid",
        content_hash=digest,
        raw_size=len(raw),
        message_id_synthesized=True,
        parse_error=f"The message could not be read ({type(exc).__name__}); the original is kept",
        raw=raw,
    )


class AccountSync:
    """One run over one account on an open session. Use :func:`sync_account`."""

    def __init__(
        self,
        config: AccountConfig,
        store: Store,
        session: ImapSession,
        report: SyncReport,
        *,
        progress: ProgressCallback | None = None,
        stop: StopSignal = None,
        keep_attachment_content: bool = True,
        now: Callable[[], float] | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        self.config = config
        self.account = config.key
        self.store = store
        self.s = session
        self.report = report
        self.progress = progress
        self.stop = stop
        self.keep_attachments = keep_attachment_content
        self.filter = _Filter(config)
        self.now = now or time.time
        self.batch_size = max(1, int(config.batch_size))
        self.folder_map: folders_mod.FolderMap | None = None
        self.isolation = isolation or Isolation()

    # ------------------------------------------------------------ run

    def run(self) -> None:
        s = self.s
        self.report.strategy = strategy_name(s)
        fmap = folders_mod.discover(s)
        self.folder_map = fmap
        names = self.folder_names(fmap)
        writes: dict[str, list[WriteBack]] = {}
        for write in self.store.pending_writes(self.account):
            writes.setdefault(write.location.folder, []).append(write)

        fetched: list[str] = []
        for name in names:
            if self.stopped():
                break
            if self._guarded(name, self.pass_fetch, name, writes.pop(name, [])):
                fetched.append(name)

        for folder, pending in writes.items():
            if self.stopped():
                break
            self._guarded(folder, self.push_writes_elsewhere, folder, pending)

        for name in fetched:
            if self.stopped():
                break
            self._guarded(name, self.pass_flags, name)

    def stopped(self) -> bool:
        if _stop_requested(self.stop):
            self.report.stopped = True
            return True
        return False

    def _guarded(self, folder: str, func: Callable[..., bool | None], *args: Any) -> bool:
        """Folder-level failure: record it and go on with the next folder.

        Account-level failures (connection lost, authentication) propagate: the
        caller reconnects or reports the account.
        """
        try:
            result = func(*args)
            return result is not False
        except (ConnectionLost, AuthFailed):
            raise
        except PipemailError as exc:
            log.warning("sync %s %s: %s (%s)", self.account, folder, exc, exc.detail)
            self.report.errors.append(SyncError(folder, exc.code, str(exc), exc.detail))
            return False

    def folder_names(self, fmap: folders_mod.FolderMap) -> list[str]:
        return choose_folders(self.config, self.s, fmap)

    def _progress(self, folder: str, phase: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            try:
                self.progress(Progress(self.account, folder, phase, done, total))
            except Exception:  # noqa: BLE001 - a broken progress bar must not stop a sync
                log.exception("progress callback failed")

    def _apply(self, batch: SyncBatch) -> None:
        self.store.apply(batch)

    def _state_copy(self, state: FolderState) -> FolderState:
        return FolderState.from_json(state.to_json())

    # ------------------------------------------------------------ pass 1

    def _select(self, name: str) -> tuple[str, Mailbox] | None:
        fmap = self.folder_map
        server_name = fmap.resolve(name) if fmap is not None else name
        if server_name is None:
            return None
        try:
            return server_name, self.s.select(server_name)
        except FolderMissing:
            return None

    def pass_fetch(self, name: str, writes: list[WriteBack]) -> bool:
        fr = self.report.folder(name)
        state = self.store.load_state(self.account, name)
        selected = self._select(name)
        if selected is None:
            self._folder_gone(name, state, writes)
            return False
        server_name, mb = selected
        fr.strategy = strategy_name(self.s, mb)
        fr.uidvalidity = mb.uidvalidity

        state = self._check_uidvalidity(name, state, mb)

        if writes:
            # A folder just found recreated: its UIDs may hold other messages with the
            # same Message-ID and size, so each key is computed from the whole message.
            self._push_writes(name, mb, writes, full_check=fr.reset)
            if self.s.selected is None or self.s.selected.name != server_name:
                mb = self.s.select(server_name)
            if mb.uidvalidity != state.uidvalidity:
                return False  # changed under us: next run resets cleanly

        self._recheck_filtered(name, mb, state)
        self._retry_quarantined(name, mb, state)
        self._maybe_widen_history(name, state)
        if mb.uidnext > state.uidnext:
            self._fetch_new(name, mb, state)
        if state.backfill_low is not None and not self.stopped():
            self._backfill(name, mb, state)
        fr.backfill_complete = state.backfill_low is None
        return not self.report.stopped

    def _check_uidvalidity(self, name: str, state: FolderState | None, mb: Mailbox) -> FolderState:
        """Start a folder from scratch (first sync, UIDVALIDITY change, recreation).

        A folder deleted and recreated may get the *same* UIDVALIDITY back; UIDNEXT or
        HIGHESTMODSEQ going backwards gives it away, and then the stored UIDs of that
        UIDVALIDITY are voided explicitly.
        """
        if state is not None and state.uidvalidity == mb.uidvalidity:
            went_back = mb.uidnext < state.uidnext or (
                state.highestmodseq is not None
                and mb.highestmodseq is not None
                and mb.highestmodseq < state.highestmodseq
            )
            if not went_back:
                return state
        reset = state is not None
        vanished: list[Location] = []
        if reset and state is not None and state.uidvalidity == mb.uidvalidity:
            vanished = [
                Location(name, mb.uidvalidity, uid)
                for uid in sorted(self.store.stored_uids(self.account, name, mb.uidvalidity))
            ]
        new_state = FolderState(
            folder=name,
            uidvalidity=mb.uidvalidity,
            uidnext=mb.uidnext,
            highestmodseq=mb.highestmodseq,
            backfill_low=mb.uidnext if mb.uidnext > 1 else None,
            since=self.config.since,
            last_reconcile=self.now(),
        )
        fr = self.report.folder(name)
        fr.reset = reset
        if reset:
            log.warning(
                "%s %s: UIDVALIDITY %s -> %s, rebuilding by message key",
                self.account,
                name,
                state.uidvalidity if state else None,
                mb.uidvalidity,
            )
            fr.vanished += len(vanished)
        self._apply(
            SyncBatch(
                self.account,
                name,
                state=self._state_copy(new_state),
                vanished=vanished,
                reset_uidvalidity=reset,
            )
        )
        return new_state

    def _folder_gone(self, name: str, state: FolderState | None, writes: list[WriteBack]) -> None:
        """The folder is not on the server any more: its copies are gone, and queued
        write-backs aimed at it can only be stale."""
        if writes:
            results = [
                writeback.stale(w, "The folder of this message no longer exists.") for w in writes
            ]
            self.store.writes_done(self.account, results)
            self.report.folder(name).writes_stale += len(results)
        if state is not None and state.uidvalidity:
            gone = FolderState(folder=name, uidvalidity=0, uidnext=1, extra={"missing": True})
            self._apply(SyncBatch(self.account, name, state=gone, reset_uidvalidity=True))
        raise FolderMissing(f"The folder “{name}” does not exist on the server.")

    def _push_writes(
        self, name: str, mb: Mailbox, writes: list[WriteBack], *, full_check: bool = False
    ) -> None:
        assert self.folder_map is not None
        results = writeback.apply_selected(
            self.s, mb, writes, config=self.config, folders=self.folder_map, full_check=full_check
        )
        self.store.writes_done(self.account, results)
        fr = self.report.folder(name)
        for result in results:
            if result.status == "done":
                fr.writes_done += 1
            elif result.status == "stale":
                fr.writes_stale += 1
            else:
                fr.writes_failed += 1

    def push_writes_elsewhere(self, folder: str, writes: list[WriteBack]) -> bool:
        """Write-backs for folders this account does not sync (e.g. Archive)."""
        selected = self._select(folder)
        if selected is None:
            self._folder_gone(folder, None, writes)
            return False
        _server_name, mb = selected
        self._push_writes(folder, mb, writes)
        return True

    def _retry_quarantined(self, name: str, mb: Mailbox, state: FolderState) -> None:
        """Give UIDs quarantined without their bytes another chance (a cut connection or
        a server hiccup is not a broken message), a few times, then leave them listed."""
        quarantine: dict[str, dict[str, Any]] = state.extra.get("quarantine") or {}
        if not quarantine:
            return
        for uid_text in [
            u for u, e in quarantine.items() if e.get("uidvalidity") != mb.uidvalidity
        ]:
            quarantine.pop(uid_text)  # voided by a UIDVALIDITY change
        todo = sorted(
            int(u)
            for u, e in quarantine.items()
            if int(e.get("attempts", 1)) < QUARANTINE_RETRIES and int(u) < state.uidnext
        )
        new: list[RemoteMessage] = []
        if todo:
            sizes = self.s.fetch_sizes(todo)
            for uid in todo:
                if uid not in sizes:
                    quarantine.pop(str(uid), None)  # expunged meanwhile
                    continue
                got, bad = self._fetch_isolating(name, mb.uidvalidity, [uid], sizes)
                item = got.get(uid)
                if item is not None and item.body is not None:
                    quarantine.pop(str(uid), None)
                    remote = self._remote(name, mb.uidvalidity, item)
                    if self.filter.skip(remote.parsed):
                        self._remember_filtered(name, state, [uid])
                    else:
                        new.append(remote)
                else:
                    entry = quarantine[str(uid)]
                    entry["attempts"] = int(entry.get("attempts", 1)) + 1
                    entry["error"] = bad.get(uid, entry.get("error", ""))[:500]
            self.report.folder(name).new += len(new)
        if not quarantine:
            state.extra.pop("quarantine", None)
        self._apply(SyncBatch(self.account, name, state=self._state_copy(state), new=new))

    # ------------------------------------------------------------ filtered UIDs

    def _filtered_entry(self, name: str, state: FolderState) -> dict[str, Any]:
        """``state.extra["filtered"]`` for the folder's UIDVALIDITY and the current rules.

        Another UIDVALIDITY voids the list. Other rules (the blocklist or the internal
        domains were edited) move the listed UIDs to ``recheck``: they are fetched once
        more and judged by the new rules, so un-blocking a sender brings their mail in.
        """
        entry = state.extra.get("filtered")
        if not isinstance(entry, dict) or entry.get("uidvalidity") != state.uidvalidity:
            entry = {"uidvalidity": state.uidvalidity, "rules": self.filter.rules, "uids": ""}
            state.extra["filtered"] = entry
        elif entry.get("rules") != self.filter.rules:
            again = _uids_of(entry.get("uids")) | _uids_of(entry.get("recheck"))
            entry["rules"] = self.filter.rules
            entry["uids"] = ""
            entry["recheck"] = _compact(again)[0]
            log.info(
                "%s %s: filter rules changed, %d filtered messages to judge again",
                self.account,
                name,
                len(again),
            )
        return entry

    def _filtered_uids(self, state: FolderState, *, recheck: bool = False) -> set[int]:
        """UIDs the current rules dropped (plus, with ``recheck``, those waiting to be
        judged again after a rules change): never to be fetched by a gap search."""
        entry = state.extra.get("filtered")
        if not isinstance(entry, dict) or entry.get("uidvalidity") != state.uidvalidity:
            return set()
        listed = _uids_of(entry.get("uids"))
        if entry.get("rules") != self.filter.rules:
            # Listed under other rules: all of them wait to be judged again.
            return listed | _uids_of(entry.get("recheck")) if recheck else set()
        return listed | _uids_of(entry.get("recheck")) if recheck else listed

    def _remember_filtered(
        self,
        name: str,
        state: FolderState,
        uids: Iterable[int],
        *,
        rechecked: Iterable[int] = (),
    ) -> None:
        """Called before the ``apply`` that moves the cursor past these UIDs."""
        entry = self._filtered_entry(name, state)
        text, dropped = _compact(
            _uids_of(entry.get("uids")) | set(uids), limit=FILTERED_RANGES_LIMIT
        )
        entry["uids"] = text
        if dropped:
            log.info(
                "%s %s: %d ranges of filtered UIDs forgotten (the list is full)",
                self.account,
                name,
                dropped,
            )
        if entry.get("recheck"):
            entry["recheck"] = _compact(_uids_of(entry["recheck"]) - set(rechecked))[0]

    def _forget_filtered(self, state: FolderState, expunged: Callable[[int], bool]) -> None:
        """Filtered UIDs the server no longer has leave the list (it would only grow)."""
        entry = state.extra.get("filtered")
        if not isinstance(entry, dict) or not entry.get("uids"):
            return
        listed = _uids_of(entry["uids"])
        kept = {uid for uid in listed if not expunged(uid)}
        if len(kept) != len(listed):
            entry["uids"] = _compact(kept)[0]

    def _recheck_filtered(self, name: str, mb: Mailbox, state: FolderState) -> None:
        """Fetch again, oldest first, the UIDs filtered under rules that have changed.

        Resumable: each chunk's ``apply`` removes it from ``recheck`` and lists what the
        new rules still drop; the cursor is not touched.
        """
        if not isinstance(state.extra.get("filtered"), dict):
            return
        entry = self._filtered_entry(name, state)
        if "recheck" not in entry:
            return
        todo = sorted(u for u in _uids_of(entry["recheck"]) if u < state.uidnext)
        if not self._fetch_below_cursor(name, mb, state, todo, phase="recheck"):
            return
        # Done; UIDs the plan left out were expunged meanwhile.
        entry.pop("recheck", None)
        if not entry.get("uids"):
            state.extra.pop("filtered", None)
        self._apply(SyncBatch(self.account, name, state=self._state_copy(state)))

    def _maybe_widen_history(self, name: str, state: FolderState) -> None:
        """A history window moved to an earlier date: scan the older UIDs again.

        Stored UIDs are skipped during that rescan, so widening never refetches.
        """
        wanted = self.config.since
        have = state.since
        if (
            state.backfill_low is not None
            or have is None
            or (wanted is not None and wanted >= have)
        ):
            return
        if state.uidnext <= 1:
            return
        state.backfill_low = state.uidnext
        state.since = wanted
        state.extra["backfill_rescan"] = True
        self._apply(SyncBatch(self.account, name, state=self._state_copy(state)))

    def _fetch_new(self, name: str, mb: Mailbox, state: FolderState) -> None:
        """UIDs in [stored uidnext, server uidnext), oldest first.

        Ascending order lets ``uidnext`` advance after every batch: it always marks
        the point below which everything was handled.
        """
        low, high = state.uidnext, mb.uidnext - 1
        done = 0
        total = max(0, mb.uidnext - state.uidnext)
        for _lo, hi, uids in self.s.search_uids(low, high):
            for chunk, sizes in self._plan(uids):
                if self.stopped():
                    return
                self._store_chunk(name, mb, state, chunk, sizes, advance="new")
                done += len(chunk)
                self._progress(name, "new", done, max(total, done))
            if state.uidnext <= hi:
                state.uidnext = hi + 1
        if state.uidnext != mb.uidnext:
            state.uidnext = mb.uidnext
        self._apply(SyncBatch(self.account, name, state=self._state_copy(state)))

    def _backfill(self, name: str, mb: Mailbox, state: FolderState) -> None:
        """History window, newest first, resumable from ``backfill_low``."""
        assert state.backfill_low is not None
        top = state.backfill_low - 1
        criteria: list[Any] = ["SINCE", state.since] if state.since else []
        skip: set[int] = set()
        if state.extra.get("backfill_rescan"):
            skip = self.store.stored_uids(self.account, name, state.uidvalidity)
            skip |= self._filtered_uids(state, recheck=True)
        total: int | None = None
        if top >= 1:
            total = self.s.count(["UID", f"1:{top}", *criteria])
            if total is None:
                total = mb.exists
        done = 0
        for lo, _hi, uids in self.s.search_uids(1, top, criteria, descending=True):
            if skip:
                uids = [u for u in uids if u not in skip]
            for chunk, sizes in self._plan(uids):
                if self.stopped():
                    self._apply(SyncBatch(self.account, name, state=self._state_copy(state)))
                    return
                self._store_chunk(name, mb, state, chunk, sizes, advance="backfill")
                done += len(chunk)
                self._progress(name, "backfill", done, total)
            state.backfill_low = lo
        state.backfill_low = None
        state.extra.pop("backfill_rescan", None)
        self._apply(SyncBatch(self.account, name, state=self._state_copy(state)))

    def _plan(self, uids: Sequence[int]) -> Iterator[tuple[list[int], dict[int, int]]]:
        """Split UIDs (in the given order) into FETCH chunks under count and byte limits.

        Sizes come from one small FETCH per SIZE_GROUP UIDs; UIDs missing from that
        answer were expunged since the SEARCH and are dropped here.
        """
        for start in range(0, len(uids), SIZE_GROUP):
            group = list(uids[start : start + SIZE_GROUP])
            try:
                sizes = self.s.fetch_sizes(group)
            except ProtocolError as exc:
                # A server that cannot even give sizes for one bad message: plan blind,
                # the body fetch isolates the culprit.
                log.info("size fetch failed (%s), planning without sizes", exc.detail)
                sizes = dict.fromkeys(group, 0)
            chunk: list[int] = []
            chunk_bytes = 0
            for uid in group:
                if uid not in sizes:
                    continue
                size = min(sizes[uid], self.config.max_message_bytes)
                if chunk and (len(chunk) >= self.batch_size or chunk_bytes + size > FETCH_BUDGET):
                    yield chunk, sizes
                    chunk, chunk_bytes = [], 0
                chunk.append(uid)
                chunk_bytes += size
            if chunk:
                yield chunk, sizes

    def _fetch_group(
        self, uids: list[int], sizes: dict[int, int]
    ) -> tuple[dict[int, FetchedMessage], dict[int, str]]:
        """Fetch UIDs; when the server refuses (NO/BAD), halve until the bad UID is alone."""
        big = [u for u in uids if sizes.get(u, 0) > self.config.max_message_bytes]
        normal = [u for u in uids if u not in set(big)]
        try:
            got = self.s.fetch_messages(normal) if normal else {}
            if big:
                got.update(self.s.fetch_messages(big, header_only=True))
            return got, {}
        except ProtocolError as exc:
            if len(uids) == 1:
                return {}, {uids[0]: f"{exc} {exc.detail}".strip()}
            half = len(uids) // 2
            got_a, bad_a = self._fetch_group(uids[:half], sizes)
            got_b, bad_b = self._fetch_group(uids[half:], sizes)
            got_a.update(got_b)
            bad_a.update(bad_b)
            return got_a, bad_a

    def _fetch_isolating(
        self, name: str, uidvalidity: int, uids: list[int], sizes: dict[int, int]
    ) -> tuple[dict[int, FetchedMessage], dict[int, str]]:
        """Fetch a chunk, surviving a message that makes the server drop the connection.

        Dovecot answers a FETCH of an unreadable message with BYE: the session is gone
        and a plain retry would die on the same message forever. So the UIDs in flight
        when a connection dies become suspects; on the next connection they are fetched
        one by one, and a UID that kills two single fetches is quarantined.
        """
        iso = self.isolation
        where = (name, uidvalidity)
        poison = iso.poison.setdefault(where, {})
        suspects = iso.suspects.setdefault(where, set())
        bad = {u: poison[u] for u in uids if u in poison}
        got: dict[int, FetchedMessage] = {}
        for uid in [u for u in uids if u in suspects and u not in poison]:
            try:
                one, one_bad = self._fetch_group([uid], sizes)
            except ConnectionLost as exc:
                failures = iso.failures.setdefault(where, {})
                failures[uid] = failures.get(uid, 0) + 1
                if failures[uid] >= 2:
                    poison[uid] = (
                        "The server closed the connection each time this message was "
                        f"fetched ({exc.detail or exc})."
                    )
                iso.grew = True
                raise
            got.update(one)
            bad.update(one_bad)
            suspects.discard(uid)
        rest = [u for u in uids if u not in suspects and u not in poison]
        try:
            more, more_bad = self._fetch_group(rest, sizes) if rest else ({}, {})
        except ConnectionLost:
            if len(rest) > 0:
                suspects.update(rest)
                iso.grew = True
            raise
        got.update(more)
        bad.update(more_bad)
        return got, bad

    def _store_chunk(
        self,
        name: str,
        mb: Mailbox,
        state: FolderState,
        chunk: list[int],
        sizes: dict[int, int],
        *,
        advance: str,
    ) -> None:
        fr = self.report.folder(name)
        got, bad = self._fetch_isolating(name, mb.uidvalidity, chunk, sizes)
        for uid in chunk:
            item = got.get(uid)
            if uid in bad or (item is not None and item.body is not None):
                continue
            # Asked for, not returned: expunged meanwhile, or a server that silently
            # skips a broken message. Only the server can tell which.
            if self.s.uid_exists(uid):
                bad[uid] = "The server returned no content for this message."
        new: list[RemoteMessage] = []
        filtered: list[int] = []
        for uid in chunk:
            item = got.get(uid)
            if item is None or item.body is None:
                continue
            self.report.bytes_fetched += len(item.body)
            remote = self._remote(name, mb.uidvalidity, item)
            if remote.parsed.parse_error:
                fr.quarantined += 1
            # the CRM's own draft copies (save_draft): the CRM has the draft itself
            if writeback.is_crm_draft(remote.parsed.message_id) or self.filter.skip(remote.parsed):
                fr.skipped += 1
                filtered.append(uid)
                continue
            new.append(remote)
        if filtered or advance == "recheck":
            self._remember_filtered(name, state, filtered, rechecked=chunk)
        if bad:
            fr.quarantined += len(bad)
            quarantine = state.extra.setdefault("quarantine", {})
            for uid, error in bad.items():
                log.warning("%s %s: UID %s quarantined: %s", self.account, name, uid, error)
                quarantine[str(uid)] = {
                    "error": error[:500],
                    "uidvalidity": mb.uidvalidity,
                    "attempts": 1,
                }
            while len(quarantine) > QUARANTINE_LIMIT:
                quarantine.pop(next(iter(quarantine)))
        if advance == "new":
            state.uidnext = max(state.uidnext, max(chunk) + 1)
        elif advance == "backfill":
            low = min(chunk)
            state.backfill_low = low if state.backfill_low is None else min(state.backfill_low, low)
        fr.new += len(new)
        self._apply(SyncBatch(self.account, name, state=self._state_copy(state), new=new))

    def _remote(self, name: str, uidvalidity: int, item: FetchedMessage) -> RemoteMessage:
        raw = item.body or b""
        try:
            parsed = parse_message(
                raw,
                internaldate=item.internaldate,
                keep_attachment_content=self.keep_attachments,
            )
            key = message_key(parsed, gm_msgid=item.gm_msgid)
        except Exception as exc:  # noqa: BLE001 - parse_message promises not to raise
            parsed = _salvaged(raw, exc)
            key = message_key(parsed, gm_msgid=item.gm_msgid)
        if item.truncated and not parsed.parse_error:
            parsed.raw = b""
        return RemoteMessage(
            key=key,
            location=Location(name, uidvalidity, item.uid),
            flags=item.flags,
            parsed=parsed,
            internaldate=item.internaldate,
            size=item.size,
            modseq=item.modseq,
            gm_msgid=item.gm_msgid,
            gm_thrid=item.gm_thrid,
            labels=item.labels or (),
            truncated=item.truncated,
        )

    # ------------------------------------------------------------ pass 2

    def _fetch_below_cursor(
        self, name: str, mb: Mailbox, state: FolderState, uids: list[int], *, phase: str
    ) -> bool:
        """Fetch, filter and store UIDs the cursor has already passed (gaps, filtered
        messages to judge again); ``False`` when stopped before the end."""
        done = 0
        for chunk, sizes in self._plan(uids):
            if self.stopped():
                return False
            self._store_chunk(name, mb, state, chunk, sizes, advance=phase)
            done += len(chunk)
            self._progress(name, phase, done, len(uids))
        return True

    def pass_flags(self, name: str) -> bool:
        """Pass 2 on one folder: flag changes and expunges (:mod:`pipemail.sync_flags`)."""
        return sync_flags.pass_flags(self, name)


# ---------------------------------------------------------------- entry points


def sync_account(
    config: AccountConfig,
    store: Store,
    *,
    progress: ProgressCallback | None = None,
    stop: StopSignal = None,
    retries: int = 2,
    keep_attachment_content: bool = True,
    now: Callable[[], float] | None = None,
) -> SyncReport:
    """Sync one account once. Returns a report; raises only for account-level failures.

    Account-level failures (unreachable server, TLS, authentication, a connection lost
    more than ``retries`` times) raise their typed error so the caller can mark the
    account. Folder-level failures are listed in ``report.errors`` and the other
    folders are still synced. A lost connection is retried with a fresh session:
    everything committed so far stays committed, and the run resumes from the cursors.
    ``now`` (wall clock, seconds) decides when a full reconciliation is due.
    """
    report = SyncReport(account=config.key)
    started = time.monotonic()
    attempt = 0
    isolating = 0
    isolation = Isolation()
    try:
        while True:
            try:
                with ImapSession.open(config) as session:
                    AccountSync(
                        config,
                        store,
                        session,
                        report,
                        progress=progress,
                        stop=stop,
                        keep_attachment_content=keep_attachment_content,
                        isolation=isolation,
                        now=now,
                    ).run()
                return report
            except ConnectionLost as exc:
                if _stop_requested(stop):
                    raise
                report.retries += 1
                if isolation.grew and isolating < MAX_ISOLATION_RECONNECTS:
                    # Progress was made narrowing down a message that kills the
                    # connection: reconnect at once, without spending a retry.
                    isolation.grew = False
                    isolating += 1
                    log.info("%s: %s (%s); isolating", config.key, exc, exc.detail)
                    time.sleep(0.05)
                    continue
                if attempt >= retries:
                    raise
                delay = retry_delay(attempt)
                attempt += 1
                log.info("%s: %s (%s); retrying in %.1f s", config.key, exc, exc.detail, delay)
                time.sleep(delay)
    finally:
        report.duration = time.monotonic() - started
