"""Linking decisions: link only when one record is clearly right, else suggest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pipemail.linking import (
    Candidate,
    Scored,
    decide,
    rank_candidates,
    should_autolink,
)
from pipemail.mime import parse_message
from pipemail.types import Address, ParsedMessage

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
PEOPLE = [
    Address("ann@owner.example", "Ann"),
    Address("bob@acme.example", "Bob"),
    Address("cat@acme.example", "Cat"),
]
TEXT = "Renewal pricing for the warehouse robots — can we discuss the quote?"


def cand(ident: int, **kw: object) -> Candidate:
    base: dict[str, object] = {
        "model": "crm.lead",
        "id": ident,
        "name": f"Lead {ident}",
        "last_activity": NOW - timedelta(days=2),
        "probability": 30.0,
    }
    base.update(kw)
    return Candidate(**base)


def test_reasons_are_sentences() -> None:
    c = cand(
        1,
        name="Warehouse robots renewal",
        partner_emails={"bob@acme.example", "Cat@Acme.example"},
        company_domain="acme.example",
        words="Quote for robots and pricing of spare parts",
    )
    (s,) = rank_candidates(PEOPLE, TEXT, [c], NOW)
    assert "Shares 2 participants" in s.reasons
    assert "Same company domain (acme.example)" in s.reasons
    assert "Activity 2 days ago" in s.reasons
    assert "Open, 30% probability" in s.reasons
    assert any(r.startswith("Shares 5 words (") for r in s.reasons), s.reasons
    assert s.score > 0


def test_exactly_one_candidate_links() -> None:
    scored = rank_candidates(PEOPLE, TEXT, [cand(1, partner_emails={"bob@acme.example"})], NOW)
    d = decide(scored)
    assert d.link is not None and d.link.id == 1
    assert d.suggestions == []
    assert "Only matching record" in d.reason


def test_clear_winner_links() -> None:
    strong = cand(1, partner_emails={"bob@acme.example", "cat@acme.example"}, probability=60)
    weak = cand(2, partner_emails={"bob@acme.example"}, last_activity=NOW - timedelta(days=300))
    scored = rank_candidates(PEOPLE, TEXT, [weak, strong], NOW)
    assert [s.candidate.id for s in scored] == [1, 2]
    assert scored[0].score >= 1.5 * scored[1].score
    d = decide(scored)
    assert d.link is strong
    assert "clearly ahead" in d.reason


def test_close_call_suggests_top_three() -> None:
    cands = [
        cand(i, partner_emails={"bob@acme.example"}, last_activity=NOW - timedelta(days=i))
        for i in range(1, 6)
    ]
    d = decide(rank_candidates(PEOPLE, TEXT, cands, NOW))
    assert d.link is None
    assert [s.candidate.id for s in d.suggestions] == [1, 2, 3]
    assert "please choose" in d.reason


def test_ratio_without_margin_does_not_link() -> None:
    a, b = cand(1), cand(2)
    d = decide([Scored(a, 0.9, ["Shares 1 participant"], 1), Scored(b, 0.3, [], 1)])
    assert d.link is None  # 3x ahead but only by 0.6


def test_lost_and_archived_never_autolinked() -> None:
    lost = cand(1, partner_emails={"bob@acme.example"}, is_lost=True)
    d = decide(rank_candidates(PEOPLE, TEXT, [lost], NOW))
    assert d.link is None
    assert d.suggestions and "Lost" in d.suggestions[0].reasons
    archived = cand(2, partner_emails={"bob@acme.example"}, active=False)
    assert decide(rank_candidates(PEOPLE, TEXT, [archived], NOW)).link is None


def test_open_beats_lost_and_won() -> None:
    people = {"bob@acme.example", "cat@acme.example"}
    won = cand(1, partner_emails=people, is_won=True)
    lost = cand(2, partner_emails=people, is_lost=True)
    open_ = cand(3, partner_emails=people)
    ranked = rank_candidates(PEOPLE, TEXT, [won, lost, open_], NOW)
    assert [s.candidate.id for s in ranked] == [3, 1, 2]


def test_words_alone_never_link() -> None:
    c = cand(1, name="Warehouse robots renewal pricing quote", last_activity=None)
    d = decide(rank_candidates(PEOPLE, TEXT, [c], NOW))
    assert d.link is None
    assert "participant" in d.reason


def test_freemail_domain_is_not_company_evidence() -> None:
    people = [Address("x@gmail.com"), Address("ann@owner.example")]
    c = cand(1, company_domain="gmail.com")
    (s,) = rank_candidates(people, "", [c], NOW)
    assert not s.same_domain
    assert decide([s]).link is None


def test_recent_activity_ranks_higher() -> None:
    people = {"bob@acme.example"}
    fresh = cand(1, partner_emails=people, last_activity=NOW - timedelta(hours=3))
    stale = cand(2, partner_emails=people, last_activity=NOW - timedelta(days=90))
    ranked = rank_candidates(PEOPLE, "", [stale, fresh], NOW)
    assert ranked[0].candidate is fresh
    assert "Activity today" in ranked[0].reasons
    assert "Activity 90 days ago" in ranked[1].reasons


def test_no_candidates() -> None:
    d = decide([])
    assert d.link is None and d.suggestions == [] and d.reason == "No matching record"


def test_naive_datetimes_are_utc() -> None:
    c = cand(1, partner_emails={"bob@acme.example"}, last_activity=datetime(2024, 5, 30))
    (s,) = rank_candidates(PEOPLE, "", [c], datetime(2024, 6, 1))
    assert "Activity 2 days ago" in s.reasons


def _p(headers: str) -> ParsedMessage:
    return parse_message(
        (
            "From: Bob <bob@acme.example>\r\nTo: ann@owner.example\r\n" + headers + "\r\n\r\nhello"
        ).encode()
    )


def test_should_autolink() -> None:
    assert should_autolink(_p("Subject: Quote"))
    for header in (
        "List-Unsubscribe: <mailto:unsub@acme.example>",
        "List-Id: <news.acme.example>",
        "Precedence: bulk",
        "Precedence: list",
        "Precedence: junk",
        "Auto-Submitted: auto-replied",
        "X-Autoreply: yes",
    ):
        assert not should_autolink(_p(header)), header
    assert should_autolink(_p("Auto-Submitted: no"))
