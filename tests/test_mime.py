"""Unit tests of ``pipemail.mime``: each case is a message shape seen in the wild."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from pipemail.headers import RecipientError, format_address, join_addresses, parse_recipients
from pipemail.mime import (
    MAX_PARTS,
    MAX_REFERENCES,
    decode_header_value,
    detect_direction,
    message_key,
    normalize_address,
    normalize_subject,
    parse_message,
)
from pipemail.text import decode_bytes, html_to_text, make_snippet
from pipemail.types import Address


def msg(headers: str, body: str | bytes = "hello\n") -> bytes:
    head = headers.strip("\n").replace("\n", "\r\n").encode("utf-8")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + b"\r\n\r\n" + data


BASIC = """\
From: Ann Example <Ann@Example.COM>
To: bob@example.org, "Carl, Jr." <carl@example.org>
Cc: =?utf-8?q?D=C3=A9sir=C3=A9e?= <desiree@example.net>
Subject: Hello there
Date: Tue, 07 May 2013 23:11:57 +0200
Message-ID: <abc.123@example.com>
"""


def test_basic_fields() -> None:
    p = parse_message(msg(BASIC, "Hi Bob,\nsee you.\n"))
    assert p.parse_error == ""
    assert p.raw == b""  # only kept when something went wrong
    assert p.message_id == "abc.123@example.com"
    assert not p.message_id_synthesized
    assert p.sender is not None and p.sender.email == "ann@example.com"
    assert p.sender.name == "Ann Example"
    assert [a.email for a in p.to] == ["bob@example.org", "carl@example.org"]
    assert p.to[1].name == "Carl, Jr."
    assert p.cc[0].name == "Désirée"
    assert p.date == datetime(2013, 5, 7, 21, 11, 57, tzinfo=timezone.utc)
    assert p.text == "Hi Bob,\nsee you.\n"
    assert p.snippet == "Hi Bob, see you."
    assert p.content_hash == hashlib.sha256(msg(BASIC, "Hi Bob,\nsee you.\n")).hexdigest()
    assert p.raw_size == len(msg(BASIC, "Hi Bob,\nsee you.\n"))


def test_missing_message_id_is_synthesised_stably() -> None:
    raw = msg("From: a@example.com\nSubject: x")
    one, two = parse_message(raw), parse_message(raw)
    assert one.message_id_synthesized
    assert one.message_id == two.message_id
    assert one.message_id == hashlib.sha256(raw).hexdigest()[:32] + "@pipemail.invalid"
    other = parse_message(raw + b"different")
    assert other.message_id != one.message_id


def test_references_cleaned_deduplicated_and_capped() -> None:
    refs = " ".join(f"<r{i}@x>" for i in range(200))
    raw = msg(
        f"Message-ID: <self@x>\nIn-Reply-To: <r199@x> (Ann's message)\n"
        f"References: <r0@x> <r0@x> junk <self@x>\n {refs}\n"
    )
    p = parse_message(raw)
    assert p.in_reply_to == "r199@x"
    assert "self@x" not in p.references
    assert len(p.references) == MAX_REFERENCES
    assert p.references[0] == "r0@x"  # the root survives the cap
    assert p.references[-1] == "r199@x"
    assert len(set(p.references)) == len(p.references)


def test_folded_message_id_is_joined() -> None:
    p = parse_message(msg("Message-ID:\n <long.part.one\n .two@example.com>"))
    assert p.message_id == "long.part.one.two@example.com"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?UTF-8?B?44G+44G/44KA44KB44KC?=", "まみむめも"),
        # adjacent encoded words: the whitespace between them disappears
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        # a UTF-8 character split across two words (bytes joined before decoding)
        ("=?utf-8?B?w6k=?= =?utf-8?B?4oKs?=", "é€"),
        ("=?utf-8?B?4o?= =?utf-8?B?gqw=?=", "€"),
        # bad base64 padding
        ("=?utf-8?B?Y2Fmw6k?=", "café"),
        # unknown charset: falls back to UTF-8 / cp1252
        ("=?x-bogus?q?caf=E9?=", "café"),
        # encoded word with language suffix (RFC 2231)
        ("=?utf-8*fr?q?caf=C3=A9?=", "café"),
        # not closed: left as it is, no crash
        ("=?utf-8?q?caf=C3=A9", "=?utf-8?q?caf=C3=A9"),
        ("plain =?iso-8859-1?q?Gr=FC=DFe?= text", "plain Grüße text"),
        ("=?iso-2022-jp?B?GyRCJDkkXyReJDskcyEjGyhC?=", "すみません。"),
        ("=?shift_jis?B?grGC8YLJgr+CzQ==?=", "こんにちは"),
        ("=?utf-7?q?+AOk-?=", "é"),
    ],
)
def test_encoded_words(raw: str, expected: str) -> None:
    assert decode_header_value(raw) == expected


def test_8bit_headers_utf8_then_cp1252() -> None:
    raw = (
        b"From: J\xc3\xb6hn <j\xc3\xb6hn@m\xc3\xa4chine.example>\r\n"
        b"Subject: Gr\xfc\xdfe aus K\xf6ln\r\n\r\nbody\r\n"
    )
    p = parse_message(raw)
    assert p.sender is not None
    assert p.sender.name == "Jöhn"
    assert p.sender.email == "jöhn@xn--mchine-bua.example"
    assert p.subject == "Grüße aus Köln"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("<ann@example.com>", "ann@example.com"),
        ("ann@bücher.example", "ann@xn--bcher-kva.example"),
        ("mailto:Ann@example.com", "ann@example.com"),
        ("ann@example.com.", "ann@example.com"),
        ("not an address", ""),
        ("@example.com", ""),
        ("ann@", ""),
        ("a b@example.com", ""),
        ("ann@exa mple.com", ""),
        ("ann@@example.com", ""),
        ("ann@example..com", ""),
    ],
)
def test_normalize_address(given: str, expected: str) -> None:
    assert normalize_address(given) == expected


def test_garbage_addresses_skipped() -> None:
    raw = msg("From: nobody\nTo: , ;, <>, good@example.com, @@, undisclosed-recipients:;")
    p = parse_message(raw)
    assert p.sender is None
    assert [a.email for a in p.to] == ["good@example.com"]
    assert p.parse_error == ""


def test_sender_header_used_when_from_unusable() -> None:
    p = parse_message(msg("From: garbage\nSender: Real <real@example.com>"))
    assert p.sender is not None and p.sender.email == "real@example.com"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 07 May 2013 23:11:57 +0000", datetime(2013, 5, 7, 23, 11, 57, tzinfo=timezone.utc)),
        ("7 May 2013 23:11:57 -0500", datetime(2013, 5, 8, 4, 11, 57, tzinfo=timezone.utc)),
        ("Tue, 07 May 2013 23:11:57", datetime(2013, 5, 7, 23, 11, 57, tzinfo=timezone.utc)),
    ],
)
def test_dates_are_aware_utc(date: str, expected: datetime) -> None:
    p = parse_message(msg(f"Date: {date}"))
    assert p.date == expected
    assert p.date is not None and p.date.utcoffset() == timedelta(0)


def test_bad_date_falls_back_to_internaldate() -> None:
    internal = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    p = parse_message(msg("Date: yesterday-ish"), internaldate=internal)
    assert p.date == internal
    assert p.date is not None and p.date.tzinfo == timezone.utc
    assert parse_message(msg("Date: yesterday-ish")).date is None
    assert parse_message(msg("Date: Tue, 07 May 1900 23:11:57 +0000")).date is None


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("héllo".encode(), "utf-8", "héllo"),
        ("héllo".encode("cp1252"), "utf-8", "héllo"),  # mislabelled as UTF-8
        ("héllo".encode(), "iso-8859-1", "hÃ©llo"),  # declared wins when it decodes
        ("héllo".encode(), "us-ascii", "héllo"),  # ascii label on UTF-8 bytes
        ("“quotes”".encode("cp1252"), "iso-8859-1", "“quotes”"),  # latin-1 label → cp1252
        ("héllo".encode(), "x-unknown", "héllo"),
        ("héllo".encode("cp1252"), "base64", "héllo"),  # non-text codec refused
        ("héllo".encode("cp1252"), "unicode_escape", "héllo"),
        ("스티해".encode("cp949"), "ks_c_5601-1987", "스티해"),
        ("あいう".encode("cp932"), "Shift_JIS", "あいう"),
        ("中文".encode("gb18030"), "gb2312", "中文"),
        (b"\x81\x8d\x8f", "x-unknown", "\x81\x8d\x8f"),  # undefined in cp1252: latin-1
        (b"plain", "3Dutf-8", "plain"),
    ],
)
def test_decode_bytes_fallbacks(data: bytes, charset: str, expected: str) -> None:
    assert decode_bytes(data, charset) == expected


def test_nul_and_surrogates_never_reach_text() -> None:
    raw = msg(
        "Subject: a\x00b\nContent-Type: text/plain; charset=utf-7",
        b"+2D3-x\x00y",  # UTF-7 for a lone high surrogate
    )
    p = parse_message(raw)
    for value in (p.subject, p.text, p.snippet):
        assert "\x00" not in value
        value.encode("utf-8")
    assert "x" in p.text and "y" in p.text


def test_html_only_gets_text() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<script>alert(1)</script><p>Dear&nbsp;Ann,</p><div>Price: <b>12&euro;</b></div>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    p = parse_message(msg("Content-Type: text/html; charset=utf-8", html))
    assert p.html == html
    assert "alert" not in p.text and "color" not in p.text
    assert "Dear Ann," in p.text
    assert "Price: 12€" in p.text
    assert "- one\n- two" in p.text
    assert p.snippet.startswith("Dear Ann, Price: 12€")


@pytest.mark.parametrize("html", ["", "   ", "<", "<html></html>", "\x00<p>x</p>", "<!-- -->"])
def test_html_to_text_junk(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_snippet_drops_quoted_reply() -> None:
    text = (
        "Sounds good, see you Monday.\n\n"
        "On Tue, 7 May 2013 at 23:11, Ann Example <ann@example.com>\nwrote:\n"
        "> Shall we meet?\n> Ann\n"
    )
    assert make_snippet(text) == "Sounds good, see you Monday."
    outlook = "Yes.\n\nFrom: Ann\nSent: Monday\nTo: Bob\nSubject: Q\n\nShall we?"
    assert make_snippet(outlook) == "Yes."
    assert make_snippet("> only quoted") == "> only quoted"  # better than nothing
    long = make_snippet("word " * 100)
    assert len(long) <= 200 and long.endswith("…")


MULTI = b"""\
From: a@example.com\r
Subject: files\r
Content-Type: multipart/mixed; boundary="B1"\r
\r
--B1\r
Content-Type: multipart/alternative; boundary="B2"\r
\r
--B2\r
Content-Type: text/plain; charset=utf-8\r
\r
plain body\r
--B2\r
Content-Type: text/html; charset=utf-8\r
\r
<p>html body</p>\r
--B2--\r
--B1\r
Content-Type: application/pdf; name="=?utf-8?q?R=C3=A9sum=C3=A9.pdf?="\r
Content-Disposition: attachment; filename*=utf-8''..%2F..%2Fetc%2Fpasswd%E2%80%AEfdp.exe\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--B1\r
Content-Type: image/png\r
Content-ID: <img1@x>\r
Content-Disposition: inline\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--B1\r
Content-Type: message/rfc822\r
\r
From: b@example.com\r
Subject: Forwarded one\r
Content-Type: multipart/mixed; boundary="B3"\r
\r
--B3\r
Content-Type: text/plain\r
\r
inner text must not leak into the outer body\r
--B3--\r
--B1--\r
"""


def test_multipart_bodies_and_attachments() -> None:
    p = parse_message(MULTI)
    assert p.parse_error == ""
    assert p.text == "plain body"
    assert p.html == "<p>html body</p>"
    assert "inner text" not in p.text
    names = [a.filename for a in p.attachments]
    pdf, png, eml = p.attachments
    # path components and the RTL override are gone
    assert pdf.filename == "passwdfdp.exe"
    assert pdf.content == b"%PDF-1.4\n" and pdf.size == 9
    assert pdf.content_type == "application/pdf" and not pdf.inline
    assert png.content_id == "img1@x" and png.inline
    assert png.filename.startswith("attachment")
    assert eml.filename == "Forwarded one.eml"
    assert eml.content_type == "message/rfc822"
    assert b"inner text must not leak" in eml.content
    assert eml.content.startswith(b"From: b@example.com")
    assert len(names) == 3


def test_keep_attachment_content_false() -> None:
    p = parse_message(MULTI, keep_attachment_content=False)
    assert [a.content for a in p.attachments] == [b"", b"", b""]
    assert p.attachments[0].size == 9


def test_rfc2231_and_8bit_filenames() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
        b"--X\r\nContent-Type: text/plain; name=ci\xc3\xablle.txt\r\n"
        b"Content-Disposition: attachment; filename=ci\xc3\xablle.txt\r\n\r\nHi\r\n"
        b"--X\r\nContent-Type: text/plain\r\nContent-Disposition: attachment;\r\n"
        b" filename*0*=utf-8''%E3%81%8B%E3%81%8D;\r\n filename*1*=.txt\r\n\r\nHo\r\n"
        b"--X--\r\n"
    )
    p = parse_message(raw)
    assert [a.filename for a in p.attachments] == ["ciëlle.txt", "かき.txt"]
    assert p.text == ""


def test_missing_boundary_keeps_text() -> None:
    raw = msg(
        'Content-Type: multipart/alternative; boundary="nothere"',
        "--other\r\nContent-Type: text/plain\r\n\r\nthe words\r\n--other--\r\n",
    )
    p = parse_message(raw)
    assert "the words" in p.text or p.parse_error


def test_deep_nesting_is_bounded() -> None:
    depth = 60
    parts = []
    for i in range(depth):
        parts.append(f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n')
    body = "".join(parts) + f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
    body += "".join(f"--b{i}--\r\n" for i in range(depth, -1, -1))
    raw = msg('Content-Type: multipart/mixed; boundary="b0"', body)
    p = parse_message(raw)
    assert p.parse_error  # the deepest part is beyond MAX_DEPTH
    assert p.raw == raw


def test_many_parts_are_bounded() -> None:
    n = MAX_PARTS + 50
    body = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\np{i}\r\n" for i in range(n))
    raw = msg('Content-Type: multipart/mixed; boundary="b"', body + "--b--\r\n")
    p = parse_message(raw)
    assert "parts" in p.parse_error
    assert p.raw == raw
    assert "p0" in p.text


def test_not_an_email_at_all() -> None:
    for raw in (b"", b"\x00\x01\x02", b"\xff" * 1000, b":::\r\n\r\n", b"\r\n\r\n\r\n"):
        p = parse_message(raw)
        assert p.message_id
        assert p.content_hash == hashlib.sha256(raw).hexdigest()


def test_parse_failure_keeps_raw(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipemail.mime as mime

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(mime._Parser, "_walk", boom)
    raw = msg(BASIC, "text that the walk never reached")
    p = mime.parse_message(raw)
    assert "could not be fully read" in p.parse_error
    assert p.raw == raw
    assert p.subject == "Hello there"  # salvaged from the header block
    assert "never reached" in p.text


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
        "X-Autoreply: yes",
        "X-Auto-Response-Suppress: All",
        "Return-Path: <>",
        "Content-Type: multipart/report; report-type=delivery-status; boundary=x",
    ],
)
def test_automated_markers(header: str) -> None:
    p = parse_message(msg(f"From: person@example.com\n{header}"))
    assert p.is_automated


@pytest.mark.parametrize(
    "sender",
    ["MAILER-DAEMON@example.com", "postmaster@example.com", "no-reply@x.com", "noreply+x@y.com"],
)
def test_automated_senders(sender: str) -> None:
    assert parse_message(msg(f"From: {sender}")).is_automated


def test_not_automated() -> None:
    for header in ("Auto-Submitted: no", "List-Id: <sales.example.com>", "Precedence: first-class"):
        p = parse_message(msg(f"From: person@example.com\n{header}"))
        assert not p.is_automated, header
    p = parse_message(msg("From: replyall@example.com\nList-Unsubscribe: <mailto:u@x>"))
    assert p.list_unsubscribe == "<mailto:u@x>"
    assert not p.is_automated


def test_list_headers_recorded() -> None:
    p = parse_message(
        msg("List-Id: Sales <sales.example.com>\nPrecedence: Bulk\nAuto-Submitted: Auto-Generated")
    )
    assert p.list_id == "Sales <sales.example.com>"
    assert p.precedence == "bulk"
    assert p.auto_submitted == "auto-generated"


def test_message_key() -> None:
    p = parse_message(msg(BASIC))
    assert message_key(p, gm_msgid=1234567890123) == "gm:1234567890123"
    key = message_key(p)
    assert key.startswith("h:") and len(key) == 34
    assert key == message_key(parse_message(msg(BASIC)))
    # same Message-ID, different content: two keys
    assert key != message_key(parse_message(msg(BASIC, "other body")))


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Offer", "offer"),
        ("RE: Fwd: FW: aw: WG: Offer", "offer"),
        ("[sales] Re: [sales] Offer   for  you", "offer for you"),
        ("SV: VS: TR: Réf : Offer", "offer"),
        ("回复：Offer", "offer"),
        ("答复: Offer", "offer"),
        ("Re[2]: Offer", "offer"),
        ("Re: Re: re:", ""),
        ("Offer (fwd)", "offer"),
        ("Regarding the offer", "regarding the offer"),
        ("", ""),
    ],
)
def test_normalize_subject(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world", "ltr"),
        ("שלום עולם", "rtl"),
        ("مرحبا بالعالم", "rtl"),
        ("سلام دنیا", "rtl"),  # Persian
        ("ہیلو دنیا", "rtl"),  # Urdu
        ("שלום, the CRM product", "ltr"),  # English is the majority
        ("מחיר: 1234 ₪ ok", "rtl"),  # digits and symbols do not vote
        ("12345 !!!", "ltr"),
        ("", "ltr"),
    ],
)
def test_detect_direction(text: str, expected: str) -> None:
    assert detect_direction(text) == expected


def test_good_addresses_kept_where_python_parses_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pythons with the CVE-2023-27043 fix (e.g. Debian 12's 3.11.2+deb12u6) answer
    ``[("", "")]`` for a whole header when one entry is malformed, unless asked
    ``strict=False``; emulated here so the test means the same on every Python."""
    import email.utils

    from pipemail import headers

    lenient = email.utils.getaddresses

    def strict_by_default(values, *, strict=True):  # noqa: ANN001, ANN202 - stdlib's shape
        return [("", "")] if strict else lenient(values)

    monkeypatch.setattr(email.utils, "getaddresses", strict_by_default)
    monkeypatch.setattr(headers, "_GETADDRESSES_STRICT", True)
    p = parse_message(msg("From: nobody\nTo: , ;, <>, good@example.com, @@, Ann <ann@example.com>"))
    assert [a.email for a in p.to] == ["good@example.com", "ann@example.com"]


# --------------------------------------------------------------- addresses a person types


@pytest.mark.parametrize(
    ("address", "printed"),
    [
        (Address("bob@acme.example", "Doe, Bob"), '"Doe, Bob" <bob@acme.example>'),
        (Address("x@y.example", 'Eve "E" <x>'), '"Eve \\"E\\" <x>" <x@y.example>'),
        (Address("ann@acme.example", "Ann  Lee"), "Ann Lee <ann@acme.example>"),
        (Address("ann@acme.example", "ANN@acme.example"), "ann@acme.example"),
        (Address("ann@acme.example"), "ann@acme.example"),
    ],
)
def test_address_prints_as_one_address(address: Address, printed: str) -> None:
    """What an Address prints reads back as that one address (synced and sent To/Cc
    fields are written this way)."""
    assert str(address) == printed
    read_back = parse_recipients(printed)
    assert [a.email for a in read_back] == [address.email]
    if "<" in printed:
        assert read_back[0].name == " ".join(address.name.split())


def test_recipients_typed_by_a_person() -> None:
    typed = '"Doe, Bob" <bob@ACME.example>; carol@acme.example, Bob <BOB@acme.example>, '
    assert parse_recipients(typed) == [
        Address("bob@acme.example", "Doe, Bob"),
        Address("carol@acme.example"),
    ]
    assert (
        join_addresses(parse_recipients(typed))
        == '"Doe, Bob" <bob@acme.example>, carol@acme.example'
    )
    for bad in ("junk", "a@b\nBcc: c@d", "x y@z.example"):
        with pytest.raises(RecipientError):
            parse_recipients(bad)
    assert parse_recipients("junk, x@y.example", strict=False) == [Address("x@y.example")]
    assert format_address(" ann@acme.example ", "Lee, Ann") == '"Lee, Ann" <ann@acme.example>'
