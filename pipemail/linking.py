"""Which CRM record a conversation belongs to: pure decision logic.

The Odoo side gathers candidate records (leads, opportunities, partners...) whose
contacts appear in the thread and hands them over as :class:`Candidate`; this module
scores them and decides whether one is clearly the right home. A wrong automatic link
files a customer's mail under someone else's deal, which is worse than asking, so the
rules only link on their own when the answer is unambiguous and otherwise offer the
top three as suggestions. Every score carries its reasons in plain sentences, shown to
the salesperson next to the suggestion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipemail.types import Address, ParsedMessage

__all__ = [
    "AUTOLINK_MARGIN",
    "AUTOLINK_RATIO",
    "Candidate",
    "Decision",
    "Scored",
    "decide",
    "rank_candidates",
    "should_autolink",
]

AUTOLINK_RATIO = 1.5
"""The best candidate must score at least this many times the runner-up..."""
AUTOLINK_MARGIN = 1.0
"""...and be ahead by at least this much, so two weak scores never decide."""
MAX_SUGGESTIONS = 3

# Shared webmail domains say nothing about which company a person works for.
FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "orange.fr",
        "free.fr",
        "proton.me",
        "protonmail.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
    }
)

_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)
_STOPWORDS = frozenset(
    """
    about above after again also been before being below between both cannot could
    does doing down during each from further have having here hers herself himself
    into itself just more most myself once only other ours ourselves over same should
    some such than that their theirs them themselves then there these they this those
    through under until very were what when where which while whom will with would
    your yours yourself yourselves dear hello thanks thank regards best kind please
    sent mail email message subject wrote reply forward attached attachment today
    tomorrow week monday tuesday wednesday thursday friday saturday sunday
    """.split()
)


@dataclass
class Candidate:
    """A CRM record the thread could belong to, as the Odoo side describes it."""

    model: str
    id: int
    name: str
    partner_emails: set[str] = field(default_factory=set)
    company_domain: str = ""
    stage_sequence: int = 0
    probability: float = 0.0
    is_won: bool = False
    is_lost: bool = False
    active: bool = True
    last_activity: datetime | None = None
    words: str = ""
    """Name and description of the record, for the shared-words signal."""

    @property
    def closed(self) -> bool:
        """Lost or archived: may be suggested, never linked automatically."""
        return self.is_lost or not self.active


@dataclass
class Scored:
    candidate: Candidate
    score: float
    reasons: list[str] = field(default_factory=list)
    shared_participants: int = 0
    same_domain: bool = False

    @property
    def people_evidence(self) -> bool:
        """Words and recency alone never justify an automatic link; people do."""
        return self.shared_participants > 0 or self.same_domain


@dataclass
class Decision:
    link: Candidate | None
    suggestions: list[Scored]
    reason: str


def _emails(participants: Iterable[str | Address]) -> set[str]:
    out: set[str] = set()
    for p in participants:
        mail = p.email if isinstance(p, Address) else str(p)
        mail = mail.strip().lower()
        if "@" in mail:
            out.add(mail)
    return out


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS}


def _ago(days: float) -> str:
    whole = int(days)
    if whole <= 0:
        return "Activity today"
    if whole == 1:
        return "Activity yesterday"
    return f"Activity {whole} days ago"


def _score(
    emails: set[str], domains: set[str], words: set[str], cand: Candidate, now: datetime
) -> Scored:
    score = 0.0
    reasons: list[str] = []

    shared = emails & {e.strip().lower() for e in cand.partner_emails}
    if shared:
        # The strongest signal: the record's own contacts are in the conversation.
        score += 3.0 * min(len(shared), 3)
        noun = "participant" if len(shared) == 1 else "participants"
        reasons.append(f"Shares {len(shared)} {noun}")

    domain = cand.company_domain.strip().lower().lstrip("@")
    same_domain = domain not in FREEMAIL_DOMAINS and domain in domains
    if domain and same_domain:
        score += 2.0
        reasons.append(f"Same company domain ({domain})")

    if cand.last_activity is not None:
        last = cand.last_activity
        if last.tzinfo is None:
            last = last.replace(tzinfo=timezone.utc)
        days = max((now - last).total_seconds() / 86400, 0.0)
        # Halves about every three weeks: a deal touched this week is likelier the
        # topic than one dormant since last year.
        score += 2.0 * math.exp(-days / 30)
        reasons.append(_ago(days))

    if cand.is_won:
        reasons.append("Already won")
    elif not cand.closed:
        prob = min(max(cand.probability, 0.0), 100.0)
        score += 1.0 + prob / 100
        reasons.append(f"Open, {prob:.0f}% probability")

    common = words & _words(f"{cand.name} {cand.words}")
    if common:
        score += 0.5 * min(len(common), 6)
        shown = ", ".join(sorted(common)[:4])
        reasons.append(f"Shares {len(common)} word{'s' if len(common) > 1 else ''} ({shown})")

    if cand.closed:
        score *= 0.2
        reasons.append("Lost" if cand.is_lost else "Archived")
    elif cand.is_won:
        score *= 0.6
    return Scored(cand, round(score, 3), reasons, len(shared), bool(domain and same_domain))


def rank_candidates(
    thread_participants: Iterable[str | Address],
    thread_subject_and_text: str,
    candidates: Sequence[Candidate],
    now: datetime,
) -> list[Scored]:
    """Candidates scored from the thread's people, words and the record's state,
    best first (ties keep the caller's order)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    emails = _emails(thread_participants)
    domains = {e.rpartition("@")[2] for e in emails}
    words = _words(thread_subject_and_text[:20000])
    scored = [_score(emails, domains, words, c, now) for c in candidates]
    return sorted(scored, key=lambda s: s.score, reverse=True)


def decide(scored: Sequence[Scored]) -> Decision:
    """Link when one record is clearly the answer, else offer up to three.

    Linked automatically only: an open (or won) record that shares people with the
    thread, and that is either the only candidate or at least
    :data:`AUTOLINK_RATIO` times and :data:`AUTOLINK_MARGIN` ahead of the runner-up.
    """
    ranked = sorted(scored, key=lambda s: s.score, reverse=True)
    if not ranked:
        return Decision(None, [], "No matching record")
    best = ranked[0]
    top = ranked[:MAX_SUGGESTIONS]
    if best.candidate.closed:
        return Decision(None, top, "The best match is lost or archived; not linked automatically")
    if not best.people_evidence:
        return Decision(None, top, "No record shares a participant with this conversation")
    if len(ranked) == 1:
        return Decision(best.candidate, [], f"Only matching record: {best.candidate.name}")
    second = ranked[1]
    if best.score >= AUTOLINK_RATIO * second.score and best.score - second.score >= (
        AUTOLINK_MARGIN
    ):
        return Decision(
            best.candidate,
            [],
            f"{best.candidate.name} is clearly ahead of {second.candidate.name} "
            f"({best.score:.1f} vs {second.score:.1f})",
        )
    return Decision(
        None,
        top,
        f"{len(ranked)} records match about equally well; please choose",
    )


def should_autolink(parsed: ParsedMessage) -> bool:
    """False for newsletters, mailing lists and machine mail: those never create or
    join a CRM link on their own (a person may still link them by hand)."""
    if parsed.is_automated:
        return False
    if parsed.list_unsubscribe or parsed.list_id:
        return False
    if parsed.precedence in ("bulk", "list", "junk"):
        return False
    return parsed.auto_submitted in ("", "no")
