"""Raw 8-bit bytes in headers, without RFC 2047 / 2231 labels: file names, subjects, names.

Mailers that write them raw use UTF-8 (RFC 6532) or their own locale's charset, which
is also the one they declare for the part or the body. The parser reads them as UTF-8
first, else in that declared charset, else cp1252 -- never raising, never losing the
rest of the message. Every message here is built as raw bytes, as it arrives.
"""

from __future__ import annotations

import pytest

from pipemail.mime import parse_message
from pipemail.text import decode_header_bytes
from pipemail.types import ParsedMessage

PDF = b"%PDF-1.4 fake"


def mail(
    part_headers: bytes,
    *,
    body_charset: bytes = b"utf-8",
    subject: bytes = b"Files",
    sender: bytes = b"Ann <ann@example.com>",
    eol: bytes = b"\r\n",
) -> bytes:
    """A text body and one PDF attachment whose MIME headers are ``part_headers``."""
    lines = [
        b"From: " + sender,
        b"To: bob@example.org",
        b"Subject: " + subject,
        b"Message-ID: <8bit@example.com>",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b1"',
        b"",
        b"--b1",
        b"Content-Type: text/plain; charset=" + body_charset,
        b"",
        b"See attached.",
        b"--b1",
        *part_headers.split(b"\n"),
        b"Content-Transfer-Encoding: base64",
        b"",
        b"JVBERi0xLjQgZmFrZQ==",
        b"--b1--",
        b"",
    ]
    return eol.join(lines)


def only_attachment(raw: bytes) -> str:
    """The one attachment's file name, after checking nothing else was lost."""
    p = parse_message(raw)
    assert_intact(p)
    (att,) = p.attachments
    assert att.content == PDF
    return att.filename


def assert_intact(p: ParsedMessage) -> None:
    assert p.parse_error == ""
    assert p.text.strip() == "See attached."
    assert p.message_id == "8bit@example.com"


@pytest.mark.parametrize(
    ("part_headers", "expected"),
    [
        # UTF-8, quoted, in Content-Disposition (the name= copy says the same)
        (
            'Content-Type: application/pdf; name="Präsentation.pdf"\n'
            'Content-Disposition: attachment; filename="Präsentation.pdf"'.encode(),
            "Präsentation.pdf",
        ),
        # UTF-8 only in Content-Type's name=, unquoted
        ("Content-Type: application/pdf; name=Präsentation.pdf".encode(), "Präsentation.pdf"),
        # Windows-1252 (the euro sign is 0x80: not Latin-1)
        (
            b"Content-Type: application/pdf\n"
            + 'Content-Disposition: attachment; filename="5€ Präsentation.pdf"'.encode("cp1252"),
            "5€ Präsentation.pdf",
        ),
        # Latin-1 with no charset anywhere in the part
        (
            'Content-Type: application/pdf; name="Brief_für_Jürgen.pdf"'.encode("latin-1"),
            "Brief_für_Jürgen.pdf",
        ),
        # the part declares its charset: read in it
        (
            'Content-Type: application/pdf; charset=koi8-r; name="Отчёт.pdf"'.encode("koi8-r"),
            "Отчёт.pdf",
        ),
        # ... also when the charset comes after the name, quoted, upper case
        (
            'Content-Type: application/pdf; name="Ελλάδα.pdf"; charset="ISO-8859-7"'.encode(
                "iso-8859-7"
            ),
            "Ελλάδα.pdf",
        ),
        # valid UTF-8 wins over a declared single-byte charset
        (
            'Content-Type: application/pdf; charset=iso-8859-1; name="ciële.pdf"'.encode(),
            "ciële.pdf",
        ),
        # a label no codec answers to, or one that cannot hold 8-bit bytes: cp1252
        (
            'Content-Type: application/pdf; charset=x-nonsense; name="Grüße.pdf"'.encode("cp1252"),
            "Grüße.pdf",
        ),
        (
            'Content-Type: application/pdf; charset=us-ascii; name="Grüße.pdf"'.encode("cp1252"),
            "Grüße.pdf",
        ),
        (
            'Content-Type: application/pdf; charset=iso-2022-jp; name="Grüße.pdf"'.encode("cp1252"),
            "Grüße.pdf",
        ),
    ],
    ids=[
        "utf8-disposition",
        "utf8-name-only",
        "cp1252",
        "latin1",
        "part-charset-koi8-r",
        "part-charset-after-name",
        "utf8-over-declared",
        "bogus-label",
        "us-ascii-label",
        "7bit-label",
    ],
)
def test_8bit_filename(part_headers: bytes, expected: str) -> None:
    assert only_attachment(mail(part_headers)) == expected


def test_8bit_filename_in_the_message_charset() -> None:
    """No charset on the attachment: the one the body declares is the sender's."""
    name = 'Content-Type: application/pdf; name="Договор №5.pdf"'.encode("cp1251")
    assert only_attachment(mail(name, body_charset=b"windows-1251")) == "Договор №5.pdf"
    sjis = 'Content-Type: application/pdf; name="見積書.pdf"'.encode("shift_jis")
    assert only_attachment(mail(sjis, body_charset=b"Shift_JIS")) == "見積書.pdf"
    # the part's own label comes before the message's
    koi = 'Content-Type: application/pdf; charset=koi8-r; name="Отчёт.pdf"'.encode("koi8-r")
    assert only_attachment(mail(koi, body_charset=b"windows-1251")) == "Отчёт.pdf"
    # a body in us-ascii says nothing about the name's bytes: cp1252
    latin = 'Content-Type: application/pdf; name="Grüße.pdf"'.encode("cp1252")
    assert only_attachment(mail(latin, body_charset=b"us-ascii")) == "Grüße.pdf"


def test_8bit_filename_with_lf_line_ends() -> None:
    name = 'Content-Type: application/pdf; name="Präsentation.pdf"'.encode("cp1252")
    assert only_attachment(mail(name, eol=b"\n")) == "Präsentation.pdf"


def test_8bit_filename_of_a_single_part_message() -> None:
    raw = (
        b"From: ann@example.com\r\nSubject: scan\r\nMIME-Version: 1.0\r\n"
        + 'Content-Type: application/pdf; name="Überweisung.pdf"\r\n'.encode("cp1252")
        + b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgZmFrZQ==\r\n"
    )
    p = parse_message(raw)
    assert p.parse_error == ""
    assert [(a.filename, a.content) for a in p.attachments] == [("Überweisung.pdf", PDF)]


def test_8bit_filename_never_loses_the_other_parts() -> None:
    """Broken bytes in one name: that name gets U+FFFD or cp1252, everything else stays."""
    raw = (
        b"From: ann@example.com\r\nSubject: two\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody \xc3\xa9\r\n"
        # UTF-8 cut inside its last character (a mailer truncating the name)
        b'--b1\r\nContent-Type: application/pdf; name="\xd0\x9e\xd1\x82\xd1\x87\xd1"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgZmFrZQ==\r\n"
        # bytes undefined in cp1252 (0x81, 0x8d): Latin-1 keeps them
        b'--b1\r\nContent-Type: application/pdf; name="a\x81\x8d.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgZmFrZQ==\r\n"
        b'--b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename="ok.png"\r\n'
        b"\r\nPNG\r\n--b1--\r\n"
    )
    p = parse_message(raw)
    assert p.parse_error == ""
    assert p.text.strip() == "Body é"
    names = [a.filename for a in p.attachments]
    assert names[0] == "Отч\ufffd"
    assert names[1] == "a.pdf"  # the C1 controls are not kept in a file name
    assert names[2] == "ok.png"
    assert [a.content for a in p.attachments[:2]] == [PDF, PDF]


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        (b"filename*=utf-8''Pr%C3%A4sentation.pdf", "Präsentation.pdf"),
        (b"filename*=iso-8859-1''Pr%E4sentation.pdf", "Präsentation.pdf"),
        (b"filename*=UTF-8'de'Pr%C3%A4sentation%20%E2%82%AC.pdf", "Präsentation €.pdf"),
        (
            b"\n filename*0*=utf-8''%E3%81%8B%E3%81%8D;\n filename*1*=%E3%81%8F.txt",
            "かきく.txt",
        ),
        (b'filename="=?UTF-8?B?UHLDpHNlbnRhdGlvbi5wZGY=?="', "Präsentation.pdf"),
        (b'filename="=?iso-8859-1?Q?Pr=E4sentation.pdf?="', "Präsentation.pdf"),
        (b'filename="=?koi8-r?B?79Teo9QucGRm?="', "Отчёт.pdf"),
        (b"filename=plain.pdf", "plain.pdf"),
    ],
    ids=[
        "2231-utf8",
        "2231-latin1",
        "2231-lang",
        "2231-continued",
        "2047-b",
        "2047-q",
        "2047-koi8",
        "ascii",
    ],
)
def test_labelled_filenames_unchanged(disposition: bytes, expected: str) -> None:
    """RFC 2231 / 2047 names are read as they were, whatever the declared charsets say."""
    part = (
        b"Content-Type: application/pdf; charset=koi8-r\nContent-Disposition: attachment; "
        + disposition
    )
    assert only_attachment(mail(part, body_charset=b"windows-1251")) == expected
    assert only_attachment(mail(part.replace(b"; charset=koi8-r", b""))) == expected


def test_8bit_subject_and_names_in_the_message_charset() -> None:
    raw = mail(
        b"Content-Type: application/pdf; name=a.pdf",
        body_charset=b"windows-1251",
        subject="Отчёт за май".encode("cp1251"),
        sender="Иван Петров <ivan@example.ru>".encode("cp1251"),
    )
    p = parse_message(raw)
    assert_intact(p)
    assert p.subject == "Отчёт за май"
    assert p.sender is not None and p.sender.name == "Иван Петров"
    assert p.sender.email == "ivan@example.ru"


def test_8bit_subject_utf8_first_then_declared_then_cp1252() -> None:
    # valid UTF-8 is read as UTF-8 even when the body says koi8-r
    utf8 = parse_message(
        mail(b"Content-Type: application/pdf", body_charset=b"koi8-r", subject="Привет".encode())
    )
    assert utf8.subject == "Привет"
    # Shift_JIS subject of a Shift_JIS message
    sjis = parse_message(
        mail(
            b"Content-Type: application/pdf",
            body_charset=b"shift_jis",
            subject="会議の件".encode("shift_jis"),
        )
    )
    assert sjis.subject == "会議の件"
    # no usable label: cp1252, as before
    for label in (b"us-ascii", b"utf-8", b"x-bogus"):
        p = parse_message(
            mail(
                b"Content-Type: application/pdf",
                body_charset=label,
                subject="Grüße – Köln".encode("cp1252"),
            )
        )
        assert p.subject == "Grüße – Köln", label
    # an encoded-word beside raw bytes: both read
    mixed = parse_message(
        mail(
            b"Content-Type: application/pdf",
            body_charset=b"windows-1251",
            subject="Отчёт ".encode("cp1251") + b"=?utf-8?q?=E2=82=AC?=",
        )
    )
    assert mixed.subject == "Отчёт €"


def test_8bit_subject_of_a_single_part_message() -> None:
    raw = (
        b"From: ann@example.com\r\nSubject: "
        + "Ελλάδα".encode("iso-8859-7")
        + b"\r\nContent-Type: text/plain; charset=iso-8859-7\r\n\r\n"
        + "Γειά σου".encode("iso-8859-7")
        + b"\r\n"
    )
    p = parse_message(raw)
    assert p.subject == "Ελλάδα"
    assert p.text.strip() == "Γειά σου"


def test_enclosed_message_named_after_its_8bit_subject() -> None:
    enclosed = (
        b"From: ivan@example.ru\r\nSubject: "
        + "Счёт".encode("cp1251")
        + b"\r\nContent-Type: text/plain; charset=windows-1251\r\n\r\nx\r\n"
    )
    raw = (
        b"From: ann@example.com\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        b"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + enclosed + b"--b1--\r\n"
    )
    p = parse_message(raw)
    assert p.parse_error == ""
    assert [a.filename for a in p.attachments] == ["Счёт.eml"]


@pytest.mark.parametrize(
    ("data", "charsets", "expected"),
    [
        ("héllo".encode(), ("koi8-r",), "héllo"),  # UTF-8 first
        ("Отчёт".encode("koi8-r"), ("koi8-r",), "Отчёт"),
        ("Отчёт".encode("cp1251"), (None, "windows-1251"), "Отчёт"),  # first usable label
        ("Отчёт".encode("cp1251"), ("us-ascii", "windows-1251"), "Отчёт"),
        ("Grüße".encode("cp1252"), (), "Grüße"),
        ("Grüße".encode("cp1252"), ("iso-2022-jp",), "Grüße"),  # 7-bit label ignored
        ("“q”".encode("cp1252"), ("iso-8859-1",), "“q”"),  # latin-1 label read as cp1252
        (b"\x81\x8d", (), "\x81\x8d"),  # undefined in cp1252: latin-1, never raises
        (b"a\x00b\xff", ("utf-8",), "abÿ"),  # NUL dropped (PostgreSQL)
    ],
)
def test_decode_header_bytes(data: bytes, charsets: tuple[str | None, ...], expected: str) -> None:
    assert decode_header_bytes(data, *charsets) == expected
