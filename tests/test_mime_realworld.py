"""Real-world shapes ``parse_message`` used to get wrong without saying so.

Each class below once came out wrong with no ``parse_error`` recorded, so the raw
message was not kept either. Every case here must now be decoded right, or be flagged
(``parse_error`` set, ``raw`` kept) so the caller stores the original. The fixtures are
written here; none comes from the shared corpus.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from pipemail.mime import parse_message
from pipemail.types import Address, ParsedMessage

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
