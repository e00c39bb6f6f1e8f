"""Real-world shapes ``parse_message`` used to get wrong without saying so.

Each class below once came out wrong with no ``parse_error`` recorded, so the raw
message was not kept either. Every case here must now be decoded right, or be flagged
(``parse_error`` set, ``raw`` kept) so the caller stores the original. The fixtures are
written here; none comes from the shared corpus.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import pipemail.headers as headers
import pipemail.mime as mime
from pipemail.mime import parse_addresses, parse_message
from pipemail.store import JsonlStore
from pipemail.types import Address, FolderState, Location, ParsedMessage, RemoteMessage, SyncBatch

BOM = b"\xef\xbb\xbf"


def build(headers: str, body: str = "hello\n", *, eol: str = "\r\n") -> bytes:
    """A message from text written with ``\\n``; ``eol`` is the line end to send."""
    text = headers.strip("\n") + "\n\n" + body
    return text.replace("\n", eol).encode("utf-8")


def emails(addresses: list[Address]) -> list[str]:
    return [a.email for a in addresses]


def assert_flagged(p: ParsedMessage, raw: bytes) -> None:
    assert p.parse_error, "the engine must say it could not read this right"
    assert p.raw == raw, "a recorded error without the raw bytes would lose the message"


def assert_clean(p: ParsedMessage) -> None:
    assert p.parse_error == ""
    assert p.raw == b""


MIXED_BODY = """\
--XYZ
Content-Type: text/plain; charset=utf-8

The report is attached.
--XYZ
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--XYZ--
"""


def assert_mixed_read(p: ParsedMessage) -> None:
    assert p.text.strip() == "The report is attached."
    assert [(a.filename, a.content) for a in p.attachments] == [("report.pdf", b"%PDF-1.4\n")]


# ------------------------------------------------- a display name that is an address

SPOOFS = [
    '"alice@example.com" <bob@example.com>',  # quoted
    "alice@example.com <bob@example.com>",  # unquoted: the stdlib reads two addresses
    "alice@example.com<bob@example.com>",
    "'alice@example.com' <bob@example.com>",
    "<alice@example.com> <bob@example.com>",
    "mailto:alice@example.com <bob@example.com>",
    "=?utf-8?q?alice=40example=2Ecom?= <bob@example.com>",  # encoded-word, Q
    "=?utf-8?b?YWxpY2VAZXhhbXBsZS5jb20=?= <bob@example.com>",  # encoded-word, B
    '"=?utf-8?q?alice=40example=2Ecom?=" <bob@example.com>',
    "alice@example.com carol@example.org <bob@example.com>",
    '"alice@example.com, carol@example.org" <bob@example.com>',
    "alice@example.com (Alice) <bob@example.com>",
]


@pytest.mark.parametrize("value", SPOOFS)
@pytest.mark.parametrize("header", ["From", "Sender"])
def test_address_as_display_name_sender(header: str, value: str) -> None:
    """The angle address is the sender; the display name never names another one."""
    headers = f"{header}: {value}\nTo: team@example.net\nSubject: hi"
    if header == "Sender":
        headers = "From: undisclosed\n" + headers  # From unusable: Sender is read
    p = parse_message(build(headers))
    assert_clean(p)
    assert p.sender is not None
    assert p.sender.email == "bob@example.com"
    assert "alice" not in p.sender.name and "@" not in p.sender.name
    assert "alice" not in str(p.sender)
    assert emails(p.to) == ["team@example.net"]
    assert emails(p.participants) == ["bob@example.com", "team@example.net"]


@pytest.mark.parametrize("value", SPOOFS)
@pytest.mark.parametrize("header", ["To", "Cc", "Reply-To"])
def test_address_as_display_name_recipients(header: str, value: str) -> None:
    """No phantom recipient: one entry of the list is one address."""
    p = parse_message(build(f"From: ann@example.com\n{header}: {value}\nSubject: hi"))
    assert_clean(p)
    field = {"To": p.to, "Cc": p.cc, "Reply-To": p.reply_to}[header]
    assert emails(field) == ["bob@example.com"]
    assert field[0].name in ("", "Alice")
    assert "alice@example.com" not in emails(p.participants)


def test_address_as_display_name_in_a_list() -> None:
    value = (
        '"alice@example.com" <bob@example.com>, carol@example.org <dan@example.org>,\n'
        " Erin Example <erin@example.net>, frank@example.com,\n"
        ' =?utf-8?q?gina=40example=2Ecom?= <hank@example.com>, "Ivy, Jr." <ivy@example.com>'
    )
    p = parse_message(build(f"From: ann@example.com\nTo: {value}\nCc: {value}"))
    assert_clean(p)
    expected = [
        Address("bob@example.com"),
        Address("dan@example.org"),
        Address("erin@example.net", "Erin Example"),
        Address("frank@example.com"),
        Address("hank@example.com"),
        Address("ivy@example.com", "Ivy, Jr."),
    ]
    assert p.to == expected
    assert p.cc == expected


def test_display_name_keeps_its_words_but_not_a_foreign_address() -> None:
    pairs = parse_addresses(
        [
            '"Alice Smith (alice@example.com) via Deals" <noreply@deals.example>, '
            "Carl <carl@example.com> <dan@example.com>, "
            '"Bob (bob@example.com)" <bob@example.com>, '
            "erin@example.com (Erin) <fay@example.com>"
        ]
    )
    assert pairs == [
        Address("noreply@deals.example", "Alice Smith via Deals"),
        Address("dan@example.com", "Carl"),
        Address("bob@example.com", "Bob (bob@example.com)"),  # its own address: harmless
        Address("fay@example.com", "Erin"),
    ]


def test_everyday_address_lists_unchanged() -> None:
    """The rules above leave ordinary headers exactly as the stdlib reads them."""
    value = (
        '"Carl, Jr." <carl@example.org>, Ann Example <ann@example.com>, bob@example.org, '
        "dee@example.net (Dee Example), Team: eve@example.com, fay@example.com;, "
        "undisclosed-recipients:;, =?utf-8?q?D=C3=A9sir=C3=A9e?= <desiree@example.net>"
    )
    assert parse_addresses([value]) == [
        Address("carl@example.org", "Carl, Jr."),
        Address("ann@example.com", "Ann Example"),
        Address("bob@example.org"),
        Address("dee@example.net", "Dee Example"),
        Address("eve@example.com"),
        Address("fay@example.com"),
        Address("desiree@example.net", "Désirée"),
    ]


# ------------------------------------------------- a continuation that lost its indent


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_lost_indent_in_folded_subject_mid_headers(eol: str) -> None:
    headers = """\
Subject: Quarterly report for
the northern region, as promised
From: Ann Example <ann@example.com>
To: bob@example.org
Date: Tue, 07 May 2013 23:11:57 +0200
Message-ID: <lost.indent@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"
"""
    p = parse_message(build(headers, MIXED_BODY, eol=eol))
    assert_clean(p)
    assert p.subject == "Quarterly report for the northern region, as promised"
    assert p.sender == Address("ann@example.com", "Ann Example")
    assert emails(p.to) == ["bob@example.org"]
    assert p.date == datetime(2013, 5, 7, 21, 11, 57, tzinfo=timezone.utc)
    assert p.message_id == "lost.indent@example.com"
    assert_mixed_read(p)


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
@pytest.mark.parametrize("last", [True, False])
def test_lost_indent_in_content_type_boundary(eol: str, last: bool) -> None:
    """``boundary=`` alone on an unindented line: still the Content-Type's parameter."""
    ctype = 'Content-Type: multipart/mixed;\nboundary="XYZ"\n'
    others = "From: ann@example.com\nSubject: Report\nMIME-Version: 1.0\n"
    headers = others + ctype if last else ctype + others
    p = parse_message(build(headers, MIXED_BODY, eol=eol))
    assert_clean(p)
    assert p.subject == "Report"
    assert p.sender == Address("ann@example.com")
    assert "--XYZ" not in p.text
    assert_mixed_read(p)


def test_lost_indent_in_part_headers() -> None:
    body = MIXED_BODY.replace(
        'Content-Disposition: attachment; filename="report.pdf"',
        'Content-Disposition: attachment;\nfilename="report.pdf"',
    ).replace("Content-Type: text/plain; charset=utf-8", "Content-Type: text/plain;\ncharset=utf-8")
    p = parse_message(
        build('From: ann@example.com\nContent-Type: multipart/mixed; boundary="XYZ"', body)
    )
    assert_clean(p)
    assert_mixed_read(p)


def test_lost_indent_in_long_recipient_list() -> None:
    headers = (
        "From: ann@example.com\nTo: a1@example.com,\na2@example.com,\nBee <b3@example.com>\n"
        "Subject: many\nX-Mailer: something"
    )
    p = parse_message(build(headers))
    assert_clean(p)
    assert emails(p.to) == ["a1@example.com", "a2@example.com", "b3@example.com"]
    assert p.subject == "many"
    assert p.text == "hello\n"


def test_lost_indent_in_last_address_list() -> None:
    """Before the blank line, addresses after a field ending in "," are a continuation."""
    p = parse_message(build("From: ann@example.com\nTo: a1@example.com,\na2@example.com", "Hi.\n"))
    assert_clean(p)
    assert emails(p.to) == ["a1@example.com", "a2@example.com"]
    assert p.text == "Hi.\n"


def test_message_id_cut_before_the_body_is_flagged() -> None:
    raw = build(
        "From: ann@example.com\nReferences: <root@example.com>, <parent.\nsplit@x>", "Hi.\n"
    )
    p = parse_message(raw)
    assert_flagged(p, raw)
    assert p.references == ["root@example.com"]


def test_lost_indent_then_an_indented_line() -> None:
    headers = "From: ann@example.com\nTo: Mary\nSmith\n  <mary@example.net>\nSubject: hi"
    p = parse_message(build(headers))
    assert_clean(p)
    assert p.to == [Address("mary@example.net", "Mary Smith")]
    assert p.subject == "hi"


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_lost_indent_before_the_body_is_flagged(eol: str) -> None:
    """Continuation or first body line? Unknowable: read as the stdlib does, flagged."""
    raw = build("From: ann@example.com\nSubject: Lunch on\nFriday?", "Hi Bob,\nsee you.\n", eol=eol)
    p = parse_message(raw)
    assert_flagged(p, raw)
    assert p.subject == "Lunch on"
    assert p.sender == Address("ann@example.com")
    assert "Friday?" in p.text and "see you." in p.text


def test_header_block_without_separator_is_flagged() -> None:
    raw = b"From: ann@example.com\r\nSubject: no gap\r\nHello Bob,\r\nthe body.\r\n"
    p = parse_message(raw)
    assert_flagged(p, raw)
    assert p.subject == "no gap"
    assert p.text.startswith("Hello Bob,")


def test_obsolete_space_before_colon() -> None:
    """RFC 5322 §4.5 obsolete syntax: blanks between a field name and its colon."""
    raw = build(
        "From  : John Doe <jdoe@example.com>\nTo    : Mary Smith <mary@example.net>\n"
        "Subject     : Saying Hello\nMessage-ID  : <1234@local.example>"
    )
    p = parse_message(raw)
    assert_clean(p)
    assert p.sender == Address("jdoe@example.com", "John Doe")
    assert p.to == [Address("mary@example.net", "Mary Smith")]
    assert p.subject == "Saying Hello"
    assert p.message_id == "1234@local.example"
    assert p.text == "hello\n"


def test_mbox_from_line_still_ignored() -> None:
    raw = b"From ann@example.com Tue May  7 23:11:57 2013\r\n" + build(
        "From: ann@example.com\nSubject: mbox"
    )
    p = parse_message(raw)
    assert_clean(p)
    assert p.subject == "mbox" and p.sender == Address("ann@example.com")


# ------------------------------------------------- address headers that make the stdlib recurse


def test_huge_flat_recipient_list() -> None:
    n = 50_000
    to = ",\n ".join(f"u{i}@example.com" for i in range(n))
    p = parse_message(build(f"From: ann@example.com\nTo: {to}\nSubject: all hands"))
    assert_clean(p)
    assert len(p.to) == n and p.to[-1].email == f"u{n - 1}@example.com"
    assert p.subject == "all hands"


def test_huge_named_recipient_list() -> None:
    n = 10_000
    to = ",\n ".join(f'"User, {i}" <u{i}@example.com>' for i in range(n))
    p = parse_message(build(f"From: ann@example.com\nTo: {to}"))
    assert_clean(p)
    assert len(p.to) == n and p.to[-1] == Address(f"u{n - 1}@example.com", f"User, {n - 1}")


def test_huge_group_is_read_in_linear_time() -> None:
    n = 50_000
    to = "All staff: " + ", ".join(f"u{i}@example.com" for i in range(n)) + ";"
    start = time.process_time()
    p = parse_message(build(f"From: ann@example.com\nTo: {to}"))
    assert time.process_time() - start < 5  # ~1.5 s; the stdlib alone: ~8 s, quadratic
    assert_clean(p)
    assert len(p.to) == n


@pytest.mark.parametrize("depth", [2_000, 20_000])
def test_deeply_nested_groups(depth: int) -> None:
    to = "".join(f"g{i}: " for i in range(depth)) + "deep@example.com" + ";" * depth
    to += ", after@example.com"
    p = parse_message(build(f"From: ann@example.com\nTo: {to}\nCc: cc@example.com"))
    assert_clean(p)  # groups carry no address of their own: nothing is lost
    assert emails(p.to) == ["deep@example.com", "after@example.com"]
    assert emails(p.cc) == ["cc@example.com"]


@pytest.mark.parametrize("depth", [1_000, 50_000])
def test_deeply_nested_comments_are_flagged(depth: int) -> None:
    to = "first@example.com " + "(" * depth + "x" + ")" * depth + ", second@example.com"
    raw = build(f"From: ann@example.com\nTo: {to}\nSubject: nested")
    p = parse_message(raw)
    assert_flagged(p, raw)  # the comments' text is not read
    assert "To" in p.parse_error
    assert emails(p.to) == ["first@example.com", "second@example.com"]
    assert p.subject == "nested"


def test_address_parser_failure_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever else makes the stdlib fail, the To header is never silently empty."""

    def too_deep(values: list[str]) -> list[tuple[str, str]]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(headers, "getaddresses", too_deep)
    raw = build("From: ann@example.com\nTo: Bob (work) <bob@example.org>\nSubject: x")
    p = parse_message(raw)
    assert_flagged(p, raw)
    assert "To" in p.parse_error
    assert p.sender == Address("ann@example.com")  # the everyday shape never needs it


# ------------------------------------------------- a nested multipart reusing its parent's boundary

SAME_BOUNDARY = """\
--XX
Content-Type: multipart/alternative; boundary="XX"

--XX
Content-Type: text/plain

plain words
--XX
Content-Type: text/html

<p>html words</p>
--XX--
--XX
Content-Type: application/pdf; name="terms.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--XX--
"""


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_nested_multipart_reusing_parent_boundary(eol: str) -> None:
    raw = build(
        'From: ann@example.com\nContent-Type: multipart/mixed; boundary="XX"',
        SAME_BOUNDARY,
        eol=eol,
    )
    p = parse_message(raw)
    assert_clean(p)
    assert p.text.strip() == "plain words"
    assert p.html.strip() == "<p>html words</p>"
    assert [(a.filename, a.content) for a in p.attachments] == [("terms.pdf", b"%PDF-1.4\n")]


def test_three_levels_reusing_one_boundary() -> None:
    body = """\
--B
Content-Type: multipart/related; boundary="B"

--B
Content-Type: multipart/alternative; boundary="B"

--B
Content-Type: text/plain

plain
--B--
--B
Content-Type: image/png; name="logo.png"
Content-ID: <logo@x>

PNG
--B--
--B
Content-Type: text/csv; name="a.csv"
Content-Disposition: attachment; filename="a.csv"

1,2
--B--
"""
    p = parse_message(build('Content-Type: multipart/mixed; boundary="B"', body))
    assert_clean(p)
    assert p.text.strip() == "plain"
    assert [a.filename for a in p.attachments] == ["logo.png", "a.csv"]


def test_parts_after_the_closing_boundary_are_flagged() -> None:
    """A part after the closing delimiter lands in the epilogue, unread: flagged."""
    body = (
        "--XX\nContent-Type: text/plain\n\nplain words\n--XX--\n"
        '--XX\nContent-Type: application/pdf; name="late.pdf"\n\n%PDF\n--XX--\n'
    )
    raw = build('Content-Type: multipart/mixed; boundary="XX"', body)
    p = parse_message(raw)
    assert_flagged(p, raw)
    assert p.text.strip() == "plain words"


def test_reused_boundary_through_the_stdlib_fallback_is_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: object) -> None:
        raise mime._Fallback("as for a shape the splitter does not reproduce")

    monkeypatch.setattr(mime._Splitter, "run", refuse)
    raw = build('Content-Type: multipart/mixed; boundary="XX"', SAME_BOUNDARY)
    p = parse_message(raw)
    assert_flagged(p, raw)
    assert "plain words" in p.text


# ------------------------------------------------- a leading UTF-8 byte order mark

BOM_HEADERS = """\
From: Ann Example <ann@example.com>
To: bob@example.org
Subject: =?utf-8?q?Caf=C3=A9?= menu
Date: Tue, 07 May 2013 23:11:57 +0200
Message-ID: <bom@example.com>
Content-Type: multipart/mixed; boundary="XYZ"
"""


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_leading_bom(eol: str) -> None:
    raw = BOM + build(BOM_HEADERS, MIXED_BODY, eol=eol)
    p = parse_message(raw)
    assert_clean(p)
    assert p.subject == "Café menu"
    assert p.sender == Address("ann@example.com", "Ann Example")
    assert p.date == datetime(2013, 5, 7, 21, 11, 57, tzinfo=timezone.utc)
    assert p.message_id == "bom@example.com"
    assert_mixed_read(p)
    assert p.content_hash == hashlib.sha256(raw).hexdigest()  # identity: the bytes received
    assert p.raw_size == len(raw)


def test_leading_bom_on_an_attached_message() -> None:
    body = (
        "--XYZ\nContent-Type: message/rfc822\n\n"
        "\ufeffSubject: Inner one\nFrom: x@example.com\n\nin\n--XYZ--\n"
    )
    p = parse_message(build('Content-Type: multipart/mixed; boundary="XYZ"', body))
    assert_clean(p)
    assert [a.filename for a in p.attachments] == ["Inner one.eml"]


# ------------------------------------------------- an attached message's name and its subject's "/"


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("Invoice 3/2024 for order 17/B", "Invoice 3_2024 for order 17_B.eml"),
        ("Re: a/b\\c", "Re: a_b_c.eml"),
        ("=?utf-8?q?Devis_n=C2=B0_12/07?=", "Devis n° 12_07.eml"),
        ("/", "_.eml"),
    ],
)
def test_attached_message_name_keeps_the_whole_subject(subject: str, name: str) -> None:
    body = (
        "--XYZ\nContent-Type: text/plain\n\nsee attached\n"
        f"--XYZ\nContent-Type: message/rfc822\n\nSubject: {subject}\nFrom: x@example.com\n\ninner\n"
        "--XYZ--\n"
    )
    p = parse_message(build('Content-Type: multipart/mixed; boundary="XYZ"', body))
    assert_clean(p)
    (att,) = p.attachments
    assert att.filename == name


# ------------------------------------------------- flagged messages are stored with their raw bytes


def test_flagged_message_is_kept_raw_by_the_store(tmp_path: Path) -> None:
    raw = build("From: ann@example.com\nSubject: Lunch on\nFriday?", "Hi Bob\n")
    parsed = parse_message(raw)
    remote = RemoteMessage(
        key=mime.message_key(parsed),
        location=Location("INBOX", 7, 1),
        flags=frozenset(),
        parsed=parsed,
    )
    path = tmp_path / "store.jsonl"
    with JsonlStore(path) as store:
        store.apply(SyncBatch("acct", "INBOX", FolderState("INBOX", 7, uidnext=2), new=[remote]))
    with JsonlStore(path) as again:
        (stored,) = again.messages("acct")
        assert stored.parse_error and stored.raw == raw
