"""Pass 2 of a sync: flag changes and expunges of one folder, on the session and store
of an :class:`~pipemail.sync.AccountSync` run.

With CONDSTORE/QRESYNC the server says what changed since ``highestmodseq``; without it
(Exchange, some hosted IMAP) flags are compared over the newest ``recent_window``
messages each run and over every message every ``reconcile_interval``, and gaps below
the cursor are fetched. ``highestmodseq`` only advances here, to the value SELECT
reported before the CHANGEDSINCE fetch.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pipemail.imap import FLAG_WINDOW
from pipemail.imap_parse import Mailbox
from pipemail.types import FlagChange, FolderState, Location, SyncBatch

if TYPE_CHECKING:
    from pipemail.sync import AccountSync

FLAG_BATCH = 5000
"""Flag changes / vanished locations per store.apply in pass 2."""


def _in_ranges(uid: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(lo <= uid <= hi for lo, hi in ranges)


def pass_flags(run: AccountSync, name: str) -> bool:
    state = run.store.load_state(run.account, name)
    if state is None or not state.uidvalidity:
        return False
    selected = run._select(name)
    if selected is None:
        return False
    _server_name, mb = selected
    if mb.uidvalidity != state.uidvalidity:
        return False  # the next run resets the folder
    fr = run.report.folder(name)
    # From UID 1, not from backfill_low: while a widened history window is being
    # scanned again, rows below backfill_low are stored and their changes count.
    low = 1
    high = state.uidnext - 1
    changes: list[FlagChange] = []
    gone: list[Location] = []
    gmail = run.s.is_gmail
    have_modseq = mb.highestmodseq is not None and state.highestmodseq is not None
    if high >= low:
        if have_modseq and run.s.qresync and not gmail:
            if mb.highestmodseq != state.highestmodseq:
                _changed_since(run, name, mb, state, low, high, changes, gone, vanished=True)
        elif have_modseq:
            if mb.highestmodseq != state.highestmodseq:
                _changed_since(run, name, mb, state, low, high, changes, gone, vanished=False)
            _vanished_by_search(run, name, mb, state, low, high, gone)
        else:
            _vanished_by_search(run, name, mb, state, low, high, gone)
            full = (state.highestmodseq is None and mb.highestmodseq is not None) or (
                run.now() - state.last_reconcile >= run.config.reconcile_interval
            )
            _flags_by_diff(run, name, mb, full=full, changes=changes, gone=gone)
            if full:
                _fetch_gaps(run, name, mb, state, high)
            if full and not run.report.stopped:  # stopped: the next run reconciles
                state.last_reconcile = run.now()
                fr.reconciled = True
    state.highestmodseq = mb.highestmodseq
    _apply_changes(run, name, state, changes, gone)
    return True


def _changed_since(
    run: AccountSync,
    name: str,
    mb: Mailbox,
    state: FolderState,
    low: int,
    high: int,
    changes: list[FlagChange],
    gone: list[Location],
    *,
    vanished: bool,
) -> None:
    assert state.highestmodseq is not None
    gmail = run.s.is_gmail
    start = low
    done = 0
    while start <= high:
        end = min(high, start + FLAG_WINDOW - 1)
        found, ranges = run.s.fetch_flags(
            f"{start}:{end}",
            changedsince=state.highestmodseq,
            vanished=vanished,
            labels=gmail,
        )
        stored = run.store.stored_flags(run.account, name, mb.uidvalidity, found.keys())
        for uid, fs in sorted(found.items()):
            if uid not in stored:
                continue
            if stored[uid] == fs.flags and not (gmail and fs.labels is not None):
                continue
            changes.append(
                FlagChange(Location(name, mb.uidvalidity, uid), fs.flags, fs.modseq, fs.labels)
            )
        if ranges:
            gone.extend(_stored_in_ranges(run, name, mb.uidvalidity, ranges))
            run._forget_filtered(state, functools.partial(_in_ranges, ranges=ranges))
        done += len(found)
        run._progress(name, "flags", done, None)
        start = end + 1


def _stored_in_ranges(
    run: AccountSync, name: str, uidvalidity: int, ranges: Iterable[tuple[int, int]]
) -> list[Location]:
    stored = sorted(run.store.stored_uids(run.account, name, uidvalidity))
    out: list[Location] = []
    seen: set[int] = set()
    for lo, hi in ranges:
        i = bisect.bisect_left(stored, lo)
        while i < len(stored) and stored[i] <= hi:
            if stored[i] not in seen:
                seen.add(stored[i])
                out.append(Location(name, uidvalidity, stored[i]))
            i += 1
    return out


def _vanished_by_search(
    run: AccountSync,
    name: str,
    mb: Mailbox,
    state: FolderState,
    low: int,
    high: int,
    gone: list[Location],
) -> None:
    """Stored UIDs the server no longer lists (windowed UID SEARCH, no CONDSTORE);
    filtered UIDs it no longer lists leave the state's list."""
    stored = sorted(run.store.stored_uids(run.account, name, mb.uidvalidity))
    filtered = run._filtered_uids(state)
    if not stored and not filtered:
        return
    already = {loc.uid for loc in gone}
    listed: set[int] = set()
    for lo, hi, uids in run.s.search_uids(low, high):
        if filtered:
            listed.update(uids)
        i = bisect.bisect_left(stored, lo)
        j = bisect.bisect_right(stored, hi)
        if i == j:
            continue
        present = set(uids)
        for uid in stored[i:j]:
            if uid not in present and uid not in already:
                gone.append(Location(name, mb.uidvalidity, uid))
    if filtered:
        run._forget_filtered(state, lambda uid: low <= uid <= high and uid not in listed)


def _flags_by_diff(
    run: AccountSync,
    name: str,
    mb: Mailbox,
    *,
    full: bool,
    changes: list[FlagChange],
    gone: list[Location],
) -> None:
    """Compare FLAGS with the store: the newest messages every time, all of them
    on a full reconciliation (servers without CONDSTORE cannot say what changed)."""
    stored = sorted(run.store.stored_uids(run.account, name, mb.uidvalidity))
    if not full:
        stored = stored[-max(1, run.config.recent_window) :]
    vanished = {loc.uid for loc in gone}
    stored = [u for u in stored if u not in vanished]
    done = 0
    for start in range(0, len(stored), FLAG_BATCH):
        group = stored[start : start + FLAG_BATCH]
        found, _ranges = run.s.fetch_flags(group, labels=run.s.is_gmail)
        known = run.store.stored_flags(run.account, name, mb.uidvalidity, group)
        for uid in group:
            fs = found.get(uid)
            if fs is None:
                continue  # expunged since the SEARCH: the next run sees it
            if known.get(uid) != fs.flags or fs.labels is not None:
                changes.append(
                    FlagChange(Location(name, mb.uidvalidity, uid), fs.flags, fs.modseq, fs.labels)
                )
        done += len(group)
        run._progress(name, "flags", done, len(stored))


def _fetch_gaps(run: AccountSync, name: str, mb: Mailbox, state: FolderState, high: int) -> None:
    """Full reconciliation without CONDSTORE: fetch server UIDs below the cursor that
    were never stored (Exchange can make UID N visible after N+1 was fetched, so the
    cursor moved past N). Only within the history window, as the backfill sees it:
    from ``backfill_low`` while a backfill runs, INTERNALDATE SINCE ``state.since``.
    Quarantined UIDs are left to their retries; ``uidnext`` is not touched.

    UIDs the filters dropped are listed in the state and not fetched again.
    """
    low = state.backfill_low if state.backfill_low is not None else 1
    criteria: list[Any] = ["SINCE", state.since] if state.since else []
    known = set(run.store.stored_uids(run.account, name, mb.uidvalidity))
    known.update(int(u) for u in state.extra.get("quarantine") or {})
    known |= run._filtered_uids(state, recheck=True)
    missing: list[int] = []
    for _lo, _hi, uids in run.s.search_uids(low, high, criteria):
        missing.extend(u for u in uids if u not in known)
    run._fetch_below_cursor(name, mb, state, missing, phase="gaps")


def _apply_changes(
    run: AccountSync, name: str, state: FolderState, changes: list[FlagChange], gone: list[Location]
) -> None:
    fr = run.report.folder(name)
    fr.flag_changes += len(changes)
    fr.vanished += len(gone)
    # Intermediate batches keep the old cursor; only the last one advances it.
    old = run.store.load_state(run.account, name) or state
    while len(changes) > FLAG_BATCH or len(gone) > FLAG_BATCH:
        part_c, changes = changes[:FLAG_BATCH], changes[FLAG_BATCH:]
        part_g, gone = gone[:FLAG_BATCH], gone[FLAG_BATCH:]
        run._apply(SyncBatch(run.account, name, state=old, flag_changes=part_c, vanished=part_g))
    run._apply(
        SyncBatch(
            run.account,
            name,
            state=run._state_copy(state),
            flag_changes=changes,
            vanished=gone,
        )
    )
