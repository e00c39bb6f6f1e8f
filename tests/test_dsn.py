"""Bounce reading (pipemail.dsn) over a corpus of real-world bounce shapes.

Each file in tests/fixtures/dsn is either matched (recipient, hard/soft, the bounced
email's Message-ID) or reported as not usable; none may raise.
"""

from pathlib import Path

import pytest

from pipemail import dsn, mime

FIXTURES = Path(__file__).parent / "fixtures" / "dsn"
OWN = ("sam@ourco.example",)


def mid(local):
    return f"<{local}@ourco.example>"


# file: (shape, {recipient: kind}, message id) or None when it is no (usable) bounce
EXPECTED = {
    "01_postfix_rfc3464_user_unknown.eml": (
        "rfc3464", {"ghost@clients.example": "hard"}, mid("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    ),
    "02_postfix_delayed_soft.eml": (
        "rfc3464", {"slow@clients.example": "soft"}, mid("0000000000000000000000000000slow")
    ),
    "03_gmail_dsn_failure.eml": (
        "rfc3464", {"nobody.here@gmail.com": "hard"}, mid("b2c3d4e5f60718293a4b5c6d7e8f9001")
    ),
    "04_gmail_delay_soft.eml": (
        "rfc3464", {"full@clients.example": "soft"}, mid("c3d4e5f60718293a4b5c6d7e8f900112")
    ),
    "05_exchange_online_ndr.eml": (
        "rfc3464", {"olga@clients.example": "hard"}, mid("d4e5f60718293a4b5c6d7e8f90011223")
    ),
    "06_exchange_2003_text_only.eml": (
        "text", {"paul.gone@clients.example": "hard"}, mid("e5f60718293a4b5c6d7e8f9001122334")
    ),
    "07_qmail.eml": (
        "text", {"quentin@clients.example": "hard"}, mid("f60718293a4b5c6d7e8f900112233445")
    ),
    "08_exim.eml": (
        "text", {"rita@clients.example": "hard"}, mid("0718293a4b5c6d7e8f90011223344556")
    ),
    "09_yahoo_text.eml": (
        "text", {"sven.nobody@yahoo.com": "hard"}, mid("18293a4b5c6d7e8f9001122334455667")
    ),
    "10_yahoo_mailbox_full_soft.eml": (
        "text", {"tina.full@yahoo.com": "soft"}, mid("293a4b5c6d7e8f900112233445566778")
    ),
    "11_sendmail_rfc3464.eml": (
        "rfc3464", {"ursula@clients.example": "hard"}, mid("3a4b5c6d7e8f90011223344556677889")
    ),
    "12_amazon_ses_multi_recipient.eml": (
        "rfc3464",
        {"victor@clients.example": "hard", "wanda@clients.example": "hard"},
        mid("4b5c6d7e8f900112233445566778899a"),
    ),
    "13_domino_text.eml": (
        "text", {"yves@clients.example": "hard"}, mid("5c6d7e8f900112233445566778899aab")
    ),
    "14_no_message_id_unmatched.eml": ("rfc3464", {"zoe@clients.example": "hard"}, None),
    "15_truncated_report_no_crash.eml": None,
    "16_out_of_office_not_a_bounce.eml": None,
    "17_person_mentions_undeliverable.eml": None,
    "18_garbage_bytes_no_crash.eml": None,
}  # fmt: skip


def test_corpus_is_complete():
    files = sorted(p.name for p in FIXTURES.glob("*.eml"))
    assert files == sorted(EXPECTED)
    assert sum(1 for v in EXPECTED.values() if v) >= 13


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bounce_matched_or_reported(name):
    bounce = dsn.parse_bounce((FIXTURES / name).read_bytes(), OWN)
    expected = EXPECTED[name]
    if expected is None:
        assert bounce is None
        return
    shape, recipients, message_id = expected
    assert bounce is not None
    assert bounce.shape == shape
    assert {r.email: r.kind for r in bounce.recipients} == recipients
    assert bounce.message_id == message_id
    if message_id is None:
        assert bounce.warnings, "an unmatched bounce says why"


def test_status_and_diagnostic_kept():
    bounce = dsn.parse_bounce((FIXTURES / "03_gmail_dsn_failure.eml").read_bytes(), OWN)
    [recipient] = bounce.recipients
    assert recipient.status == "5.1.1"
    assert "does not exist" in recipient.diagnostic
    assert bounce.original_subject == "Spring news for you"
    assert bounce.kind == dsn.HARD


@pytest.mark.parametrize("cut", [0, 1, 17, 100, 333, 1000, 2000])
def test_any_truncation_never_raises(cut):
    for path in FIXTURES.glob("*.eml"):
        dsn.parse_bounce(path.read_bytes()[:cut], OWN)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_answer_from_what_the_sync_keeps(name):
    """The sync keeps the parsed message (text, report parts as attachments), not the
    raw bytes: the bounce read from that is the same."""
    parsed = mime.parse_message((FIXTURES / name).read_bytes(), keep_attachment_content=True)
    parsed.raw = b""
    bounce = dsn.parse_parsed(parsed, OWN)
    expected = EXPECTED[name]
    if expected is None:
        assert bounce is None
        return
    _shape, recipients, message_id = expected
    assert bounce is not None
    assert {r.email: r.kind for r in bounce.recipients} == recipients
    related = dsn.related_message_ids(bounce, parsed)
    if message_id:
        assert related[0] == message_id.strip("<>")
