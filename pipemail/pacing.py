"""Pacing of outgoing mail to a provider's sending quota.

Providers limit how fast one mailbox may send: Microsoft 365 takes 30 messages a
minute and 10,000 recipients a day, Gmail about 500 recipients a day for a consumer
account and 2,000 for Workspace. Going over gets the account throttled or blocked
for a day, which stops the salesperson's ordinary mail too. So every send of a
mailbox (group email copies and the person's own 1:1 mail alike) is counted in one
history, and the next send waits until both windows have room.

This module is the arithmetic only: the history is given (when, how many
recipients), the answer is a time. Who keeps the history and locks it between
workers is the caller's business (the Odoo side keeps it in the database, one row
lock per mailbox).
"""

from __future__ import annotations

import re
from bisect import insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
MAX_SLOWDOWN = timedelta(hours=1)


@dataclass(frozen=True)
class Quota:
    """``per_minute`` messages in any 60 seconds, ``per_day`` recipients in any 24 hours.

    ``None`` means no limit of that kind.
    """

    per_minute: int | None
    per_day: int | None

    def __post_init__(self) -> None:
        for value in (self.per_minute, self.per_day):
            if value is not None and value < 1:
                raise ValueError("a quota is at least 1, or None for no limit")


PROVIDER_QUOTAS: dict[str, Quota] = {
    # Gmail publishes daily recipient limits only; 20 a minute keeps a burst from
    # looking like spam to Gmail's own abuse heuristics.
    "gmail": Quota(per_minute=20, per_day=500),
    "gmail_workspace": Quota(per_minute=60, per_day=2000),
    "microsoft": Quota(per_minute=30, per_day=10000),
    # an unknown server: conservative until the administrator says otherwise
    "imap": Quota(per_minute=10, per_day=500),
}

History = Sequence[tuple[datetime, int]]
"""Past sends: (when, how many recipients). Any order; older than a day is ignored."""


def _sorted(history: Iterable[tuple[datetime, int]], since: datetime) -> list[tuple[datetime, int]]:
    return sorted((when, max(1, count)) for when, count in history if when > since)


def next_slot(
    now: datetime,
    history: History,
    quota: Quota,
    recipients: int = 1,
    blocked_until: datetime | None = None,
) -> datetime:
    """The earliest time at or after ``now`` when a message to ``recipients`` may go.

    A message to more recipients than the whole daily quota can never fit a day: it
    is given the time the day window is empty, as a mailbox would do when sending it.
    """
    start = max(now, blocked_until) if blocked_until else now
    sends = _sorted(history, start - DAY)
    t = start
    for _round in range(len(sends) + 2):
        moved = False
        if quota.per_minute is not None:
            recent = [when for when, _count in sends if t - MINUTE < when <= t]
            if len(recent) >= quota.per_minute:
                # the oldest sends of the window must age out first
                t = recent[len(recent) - quota.per_minute] + MINUTE
                moved = True
        if quota.per_day is not None:
            day = [(when, count) for when, count in sends if t - DAY < when <= t]
            used = sum(count for _when, count in day)
            need = min(recipients, quota.per_day)
            if used + need > quota.per_day:
                freed = 0
                for when, count in day:
                    freed += count
                    if used - freed + need <= quota.per_day:
                        t = max(t, when + DAY)
                        moved = True
                        break
        if not moved:
            return t
    return t


def eta(
    now: datetime,
    history: History,
    quota: Quota,
    pending: int,
    blocked_until: datetime | None = None,
) -> datetime:
    """When the last of ``pending`` one-recipient messages would leave, sent as soon
    as the quota allows, after what ``history`` already sent."""
    sends = _sorted(history, now - DAY)
    t = now
    for _i in range(pending):
        t = next_slot(t, sends, quota, 1, blocked_until)
        insort(sends, (t, 1))
    return t


def plan(
    now: datetime, history: History, quota: Quota, pending: int, horizon: timedelta = MINUTE
) -> int:
    """How many of ``pending`` one-recipient messages may go between now and
    ``now + horizon`` (a worker's batch), without passing the quota."""
    sends = _sorted(history, now - DAY)
    count = 0
    t = now
    while count < pending:
        t = next_slot(t, sends, quota, 1)
        if t > now + horizon:
            break
        insort(sends, (t, 1))
        count += 1
    return count


_RATE_WORDS = re.compile(
    r"\brate\b|too many|too fast|limit|quota|throttl|sender thread|\b4\.7\.0\b.*try again later",
    re.IGNORECASE,
)


def is_rate_limited(smtp_code: int, text: str) -> bool:
    """Whether a server's refusal means "you are sending too fast".

    A 421/450/451/452 naming a rate or a limit (Gmail ``421 4.7.0 Try again later``,
    ``450 4.2.1 ... receiving mail at a rate``, Microsoft ``432 4.3.2 ... sender
    thread limit exceeded``), and Microsoft's ``5.2.0`` submission quota, which is
    permanent in code but lifts within a day.
    """
    if "SubmissionQuotaExceeded" in (text or ""):
        return True
    return 400 <= smtp_code < 500 and bool(_RATE_WORDS.search(text or ""))


def slowdown(strikes: int) -> timedelta:
    """How long a mailbox pauses after its ``strikes``-th rate-limit answer in a row:
    1, 2, 4... minutes, at most an hour."""
    minutes: int = 2 ** max(0, strikes - 1)
    return min(MINUTE * minutes, MAX_SLOWDOWN)
