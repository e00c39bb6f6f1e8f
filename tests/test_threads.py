"""Threading rules: header evidence first, subject joins only under strict conditions."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from pipemail.mime import parse_message
from pipemail.threads import (
    MemoryThreadLookup,
    assign_thread,
    header_evidence,
    key_for_root,
    new_thread_key,
    thread_messages,
)
from pipemail.types import Address, ParsedMessage

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
ANN = Address("ann@owner.example", "Ann")
BOB = Address("bob@customer.example", "Bob")
CAT = Address("cat@customer.example", "Cat")
DAN = Address("dan@other.example", "Dan")


def m(
    mid: str,
    *,
    refs: list[str] | None = None,
    irt: str = "",
    subject: str = "Offer",
    sender: Address = ANN,
    to: list[Address] | None = None,
    date: datetime | None = T0,
) -> ParsedMessage:
    return ParsedMessage(
        message_id=mid,
        content_hash=mid,
        raw_size=1,
        references=refs or [],
        in_reply_to=irt,
        subject=subject,
        sender=sender,
        to=to if to is not None else [BOB],
        date=date,
    )


# ------------------------------------------------------------------ batch (JWZ)


def test_simple_conversation_one_thread() -> None:
    msgs = [
        m("a"),
        m("b", irt="a", refs=["a"]),
        m("c", irt="b", refs=["a", "b"]),
        m("x", subject="Other"),
    ]
    keys = thread_messages(msgs)
    assert keys["a"] == keys["b"] == keys["c"] == key_for_root("a")
    assert keys["x"] == key_for_root("x")


def test_reply_before_parent_in_any_order() -> None:
    msgs = [
        m("a"),
        m("b", refs=["a"]),
        m("c", refs=["a", "b"]),
        m("d", irt="c"),  # only In-Reply-To
    ]
    expected = thread_messages(msgs)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = msgs[:]
        rng.shuffle(shuffled)
        assert thread_messages(shuffled) == expected
    assert len(set(expected.values())) == 1


def test_missing_root_is_a_placeholder() -> None:
    # "a" was never synced; both replies still thread together under it.
    keys = thread_messages([m("c", refs=["a", "b"]), m("b", refs=["a"])])
    assert keys == {"c": key_for_root("a"), "b": key_for_root("a")}
    assert keys["c"] == new_thread_key(m("c", refs=["a", "b"]))


def test_cycle_in_references_terminates() -> None:
    msgs = [
        m("a", refs=["b"]),
        m("b", refs=["a"]),
        m("c", refs=["c", "a", "b", "a"]),
        m("d", refs=["e", "d"], irt="e"),
        m("e", refs=["d"]),
    ]
    keys = thread_messages(msgs)
    assert set(keys) == {"a", "b", "c", "d", "e"}
    assert keys["a"] == keys["b"] == keys["c"]
    assert keys["d"] == keys["e"]


def test_self_reference_ignored() -> None:
    keys = thread_messages([m("a", refs=["a"], irt="a")])
    assert keys == {"a": key_for_root("a")}


def test_long_chain_is_fast_and_flat() -> None:
    msgs = [m("0")] + [m(str(i), refs=[str(j) for j in range(i)]) for i in range(1, 300)]
    keys = thread_messages(reversed(msgs))
    assert set(keys.values()) == {key_for_root("0")}


def test_batch_subject_join_requires_two_participants_and_window() -> None:
    msgs = [
        m("a", subject="Pricing"),
        m("b", subject="Re: Pricing", date=T0 + timedelta(days=3)),  # ann + bob: joins
        m("c", subject="RE: pricing", sender=DAN, to=[CAT], date=T0 + timedelta(days=4)),
        m("d", subject="Pricing", date=T0 + timedelta(days=200)),  # outside window
    ]
    keys = thread_messages(msgs, subject_window=timedelta(days=60))
    assert keys["a"] == keys["b"]
    assert keys["c"] != keys["a"]
    assert keys["d"] != keys["a"]
    # without a window subjects are ignored entirely
    plain = thread_messages(msgs)
    assert len(set(plain.values())) == 4


def test_real_headers_from_parser() -> None:
    first = parse_message(
        b"Message-ID: <1@x>\r\nFrom: ann@owner.example\r\nSubject: Hi\r\n\r\nhello"
    )
    reply = parse_message(
        b"Message-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\nReferences: <1@x>\r\n"
        b"From: bob@customer.example\r\nSubject: Re: Hi\r\n\r\nhi back"
    )
    keys = thread_messages([reply, first])
    assert keys["1@x"] == keys["2@x"]


# ------------------------------------------------------------------ incremental


def test_gmail_thread_id_wins() -> None:
    lookup = MemoryThreadLookup()
    lookup.record("ann", m("a"), "t:other")
    assert assign_thread(m("b", refs=["a"]), owner="ann", lookup=lookup, gm_thrid=42) == "gmt:42"


def test_header_evidence_newest_first() -> None:
    msg = m("d", refs=["a", "b", "c"], irt="c")
    assert header_evidence(msg) == ["c", "b", "a", "d"]
    lookup = MemoryThreadLookup()
    lookup.record("ann", m("a"), "t:A")
    lookup.record("ann", m("b"), "t:B")
    assert assign_thread(msg, owner="ann", lookup=lookup) == "t:B"


def test_reply_before_parent_incremental() -> None:
    lookup = MemoryThreadLookup()
    reply_key = lookup.place("ann", m("b", refs=["a"], subject="Re: Offer"))
    assert reply_key == key_for_root("a")
    # the parent arrives later and finds the reply that references it
    assert lookup.place("ann", m("a")) == reply_key
    # a grandchild whose parent is missing still joins
    assert lookup.place("ann", m("z", refs=["a", "y"])) == reply_key


def test_incremental_agrees_with_batch() -> None:
    msgs = [
        m("a"),
        m("b", refs=["a"]),
        m("c", refs=["a", "b"]),
        m("q", refs=["p"], subject="Re: Invoice"),
        m("p", subject="Invoice"),
        m("x", subject="Unrelated", to=[DAN]),
    ]
    batch = thread_messages(msgs)
    lookup = MemoryThreadLookup()
    incremental = {msg.message_id: lookup.place("ann", msg) for msg in msgs}
    assert incremental == batch


def test_subject_join_with_two_shared_participants() -> None:
    lookup = MemoryThreadLookup()
    key = lookup.place("ann", m("a", subject="Renewal 2024"))
    # no headers (client dropped them), same people, same normalized subject
    later = m("b", subject="RE: [crm] Renewal 2024", date=T0 + timedelta(days=5))
    assert assign_thread(later, owner="ann", lookup=lookup) == key


def test_subject_join_refused_with_one_shared_participant() -> None:
    lookup = MemoryThreadLookup()
    lookup.place("ann", m("a", subject="Renewal 2024"))
    # Ann writes to someone else with the same subject: only Ann is shared
    other = m("b", subject="Re: Renewal 2024", to=[DAN], date=T0 + timedelta(days=1))
    assert assign_thread(other, owner="ann", lookup=lookup) is None


def test_subject_join_refused_across_owners() -> None:
    lookup = MemoryThreadLookup()
    lookup.place("ann", m("a", subject="Renewal 2024"))
    same_people = m("b", subject="Re: Renewal 2024", date=T0 + timedelta(days=1))
    assert assign_thread(same_people, owner="carl", lookup=lookup) is None
    # header evidence does not cross owners either
    reply = m("c", refs=["a"], subject="Re: Renewal 2024")
    assert assign_thread(reply, owner="carl", lookup=lookup) is None


def test_subject_join_refused_outside_window_or_without_date() -> None:
    lookup = MemoryThreadLookup()
    lookup.place("ann", m("a", subject="Renewal 2024"))
    late = m("b", subject="Renewal 2024", date=T0 + timedelta(days=61))
    assert assign_thread(late, owner="ann", lookup=lookup) is None
    early = m("b", subject="Renewal 2024", date=T0 - timedelta(days=61))  # backfill order
    assert assign_thread(early, owner="ann", lookup=lookup) is None
    undated = m("b", subject="Renewal 2024", date=None)
    assert assign_thread(undated, owner="ann", lookup=lookup) is None
    assert (
        assign_thread(late, owner="ann", lookup=lookup, subject_window=timedelta(days=90))
        is not None
    )


def test_generic_subjects_never_join() -> None:
    lookup = MemoryThreadLookup()
    lookup.place("ann", m("a", subject=""))
    assert assign_thread(m("b", subject="Re:"), owner="ann", lookup=lookup) is None
    lookup.place("ann", m("c", subject="(no subject)"))
    assert assign_thread(m("d", subject="(no subject)"), owner="ann", lookup=lookup) is None


def test_subject_join_prefers_most_shared_participants() -> None:
    lookup = MemoryThreadLookup()
    # two threads with one subject (e.g. kept apart by headers)
    lookup.record("ann", m("a", subject="Offer"), "t:two")
    lookup.record("ann", m("b", subject="Offer", to=[BOB, CAT]), "t:three")
    three = "t:three"
    msg = m("c", subject="Re: Offer", to=[BOB, CAT], date=T0 + timedelta(hours=1))
    assert assign_thread(msg, owner="ann", lookup=lookup) == three


def test_synthesised_message_id_not_used_as_evidence() -> None:
    raw = b"From: ann@owner.example\r\nSubject: no id\r\n\r\nbody"
    parsed = parse_message(raw)
    assert parsed.message_id_synthesized
    assert header_evidence(parsed) == []
