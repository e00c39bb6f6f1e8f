"""Property test: whatever bytes arrive, ``parse_message`` returns, with clean text.

RELIABILITY.md test 11. The generator builds the breakage seen in real mailboxes --
8-bit headers, broken encoded-words, missing or false boundaries, deep nesting, 200 KB
headers, NULs, bogus charsets and transfer encodings -- plus plain random bytes. The
number of examples run is printed at the end of the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipemail.mime import parse_message
from pipemail.types import Address, Attachment, ParsedMessage

EXAMPLES = {"run": 0}

HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Sender",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "List-Id",
    "List-Unsubscribe",
    "Precedence",
    "Auto-Submitted",
    "Return-Path",
    "X-Weird",
]
CHARSETS = [
    "utf-8",
    "UTF-8",
    "iso-8859-1",
    "us-ascii",
    "iso-2022-jp",
    "shift_jis",
    "utf-7",
    "utf-16",
    "ks_c_5601-1987",
    "x-unknown",
    "bogus-charset",
    "base64",
    "unicode_escape",
    "",
    "\x00",
    "3Dutf-8",
]
CTES = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus", ""]

atoms = st.sampled_from(
    [
        b"Ann <ann@example.com>",
        b"ann@example.com",
        b"\xc3\xa9t\xc3\xa9",  # UTF-8
        b"caf\xe9",  # latin-1
        b"\x82\xa0\x82\xa2",  # Shift_JIS
        b"\x1b$B$9$_$^$;$s\x1b(B",  # ISO-2022-JP
        b"=?utf-8?q?caf=C3=A9?=",
        b"=?utf-8?B?w6k=?=",
        b"=?utf-8?B?w6",  # unterminated
        b"=?bogus?Q?=FF=FE?=",
        b"=?utf-8?X?abc?=",
        b"=??q??=",
        b"=?utf-7?q?+2D3-?=",
        b"<id@host>",
        b"<<<>>>",
        b"\x00",
        b"\r\n ",
        b"\r\n",
        b"\n\t",
        b";",
        b",",
        b'"',
        b"\\",
        b"@",
        b"Tue, 07 May 2013 23:11:57 +0000",
        b"Mon, 32 Foo 99999 99:99:99 +9999",
    ]
)
header_value = st.one_of(
    st.lists(atoms, max_size=8).map(b" ".join),
    st.binary(max_size=200),
    # long and very long headers (up to ~200 KB)
    st.tuples(atoms, st.sampled_from([50, 2000, 20000])).map(lambda t: t[0] * t[1]),
)
header_name = st.one_of(
    st.sampled_from([n.encode() for n in HEADER_NAMES]), st.binary(min_size=1, max_size=20)
)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(header_name, header_value), max_size=12))
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return b"".join(name + b": " + value + sep for name, value in lines)


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from([b"text/plain", b"text/html", b"application/pdf", b"bogus"]))
    charset = draw(st.sampled_from(CHARSETS)).encode("latin-1")
    cte = draw(st.sampled_from(CTES)).encode()
    name = draw(st.sampled_from([b"", b'; name="../x\x00.pdf"', b"; name*=utf-8''%E2%80%AE"]))
    body = draw(st.one_of(st.binary(max_size=300), atoms))
    return (
        b"Content-Type: " + ctype + b"; charset=" + charset + name + b"\r\n"
        b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body
    )


@st.composite
def multipart(draw: st.DrawFn) -> bytes:
    """Nested multiparts whose boundaries may be missing, wrong or never closed."""
    depth = draw(st.sampled_from([1, 2, 5, 30, 300]))
    close = draw(st.booleans())
    lie = draw(st.booleans())
    inner = draw(leaf())
    for level in range(depth):
        b = f"b{level}".encode()
        declared = b"nothere" if lie and level == 0 else b
        inner = (
            b'Content-Type: multipart/mixed; boundary="' + declared + b'"\r\n\r\n'
            b"--" + b + b"\r\n" + inner + b"\r\n" + (b"--" + b + b"--\r\n" if close else b"")
        )
    if draw(st.booleans()):
        inner = b"Content-Type: message/rfc822\r\n\r\n" + inner
    return inner


messages = st.one_of(
    st.binary(max_size=2000),
    st.tuples(headers(), st.sampled_from([b"\r\n", b"\n", b""]), st.binary(max_size=500)).map(
        b"".join
    ),
    st.tuples(headers(), multipart()).map(lambda t: t[0] + t[1]),
    st.tuples(headers(), leaf()).map(lambda t: t[0] + t[1]),
)


def strings(parsed: ParsedMessage) -> Iterator[str]:
    for f in fields(parsed):
        value = getattr(parsed, f.name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                yield item
            elif isinstance(item, Address):
                yield item.email
                yield item.name
            elif isinstance(item, Attachment):
                yield item.filename
                yield item.content_type
                yield item.content_id


@pytest.fixture(scope="module", autouse=True)
def report_examples(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    line = f"\nmime property test: {EXAMPLES['run']} examples run"
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(line)
    else:  # pragma: no cover
        print(line)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=messages)
def test_parse_never_raises_and_text_is_clean(raw: bytes) -> None:
    EXAMPLES["run"] += 1
    first = parse_message(raw)
    assert isinstance(first, ParsedMessage)
    assert first.message_id
    for value in strings(first):
        value.encode("utf-8")  # no lone surrogates
        assert "\x00" not in value
    if first.parse_error:
        assert first.raw == raw
    if first.date is not None:
        assert first.date.utcoffset() is not None
    second = parse_message(raw)
    assert second.message_id == first.message_id
    assert second == first  # deterministic: same bytes, same result
