"""Outgoing MIME: what a recipient's server receives, byte for byte.

Messages are built with :func:`pipemail.outbound.build_mime`, sent through the real
aiosmtpd sink and parsed back from the bytes the sink recorded, so every assertion is
about what arrives, not about our own objects.
"""

from __future__ import annotations

import email
import math
import re
from email import policy

import lxml.html
import pytest

from pipemail import outbound
from pipemail.errors import SizeLimitExceeded
from pipemail.html import html_to_text, mark_direction, text_direction
from pipemail.outbound import (
    GMAIL_LIMIT,
    MB,
    OUTLOOK_LIMIT,
    InvalidHeader,
    OutgoingAttachment,
    OutgoingMessage,
    build_mime,
    check_size,
    estimate_size,
    forward_subject,
    reply_headers,
    reply_subject,
)
from pipemail.smtp import send
from pipemail.types import Address, ServerConfig

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n.\n..\r\n%%EOF"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def _server(sink) -> ServerConfig:
    return ServerConfig(
        host=sink.host, port=sink.port, security="none", allow_private_hosts=True, timeout=10
    )


def _deliver(sink, msg: OutgoingMessage, domain: str = "example.com"):
    raw, message_id = build_mime(msg, domain=domain)
    result = send(_server(sink), None, msg.sender.email, msg.recipients, raw)
    assert result.delivered
    received = sink.wait_for(1)[-1]
    return raw, message_id, received


def _message() -> OutgoingMessage:
    return OutgoingMessage(
        sender=Address("zoe@example.com", "Zoë Ünal (Ventes)"),
        to=[Address("taro@example.jp", "山田 太郎"), Address("ann@example.org")],
        cc=[Address("cc@example.org", "Çé, Cc")],
        bcc=[Address("hidden@example.net", "Hidden Boss")],
        subject="Devis n°42 – réunion très importante",
        html=(
            "<p>Bonjour <b>Taro</b>,</p><p>Voici le devis: "
            '<a href="https://example.com/q/42">devis</a>.</p>'
            '<p><img src="cid:logo@pipemail" alt="Logo"></p>'
            "<p>.A line starting with a dot</p>"
        ),
        attachments=[
            OutgoingAttachment("Offre spéciale été 2024.pdf", "application/pdf", PDF),
            OutgoingAttachment("logo.png", "image/png", PNG, content_id="logo@pipemail"),
            OutgoingAttachment("données.csv", "text/csv", "a;b\r\né;ü\r\n".encode()),
        ],
        headers={
            "List-Unsubscribe": "<https://crm.example.com/unsub/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def test_structure_as_received(smtp_sink):
    msg = _message()
    raw, message_id, received = _deliver(smtp_sink, msg)

    assert received.data == raw  # dot-stuffing undone, nothing rewritten on the way
    assert received.rcpt_tos == [
        "taro@example.jp", "ann@example.org", "cc@example.org", "hidden@example.net"
    ]  # fmt: skip
    assert received.message_id == message_id
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", message_id)

    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"hidden" not in raw.lower() and b"bcc" not in head.lower()
    assert head.isascii()  # non-ASCII only as encoded words
    assert b"=?utf-8?" in head
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF everywhere
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))

    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert str(parsed["From"]) == '"Zoë Ünal (Ventes)" <zoe@example.com>'
    assert parsed["From"].addresses[0].display_name == "Zoë Ünal (Ventes)"
    assert [a.display_name for a in parsed["To"].addresses] == ["山田 太郎", ""]
    assert parsed["Cc"].addresses[0].display_name == "Çé, Cc"
    assert str(parsed["Subject"]) == "Devis n°42 – réunion très importante"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Date"].datetime is not None
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    tree = [(p.get_content_type(), p.get_content_disposition()) for p in parsed.walk()]
    assert tree == [
        ("multipart/mixed", None),
        ("multipart/alternative", None),
        ("text/plain", None),
        ("multipart/related", None),
        ("text/html", None),
        ("image/png", "inline"),
        ("application/pdf", "attachment"),
        ("text/csv", "attachment"),
    ]
    parts = {p.get_content_type(): p for p in parsed.walk()}
    assert parts["application/pdf"].get_filename() == "Offre spéciale été 2024.pdf"
    assert b"filename*=utf-8''" in raw  # RFC 2231
    assert parts["application/pdf"].get_content() == PDF
    assert parts["text/csv"].get_filename() == "données.csv"
    assert parts["text/csv"].get_payload(decode=True) == "a;b\r\né;ü\r\n".encode()
    assert parts["image/png"].get_content() == PNG
    assert parts["image/png"]["Content-ID"] == "<logo@pipemail>"

    text = parts["text/plain"].get_content()
    assert "Bonjour Taro," in text
    assert "devis (https://example.com/q/42)" in text
    assert ".A line starting with a dot" in text
    html = parts["text/html"].get_content()
    assert 'src="cid:logo@pipemail"' in html
    assert "<p>.A line starting with a dot</p>" in html


def test_reply_threading_headers_arrive(smtp_sink):
    chain = [f"<m{i}@example.org>" for i in range(30)]
    in_reply_to, references = reply_headers("<m30@example.org>", " ".join(chain))
    msg = OutgoingMessage(
        sender=Address("zoe@example.com"),
        to=[Address("ann@example.org")],
        subject=reply_subject("Re: Devis"),
        text="Merci !",
        in_reply_to=in_reply_to,
        references=references,
    )
    _, _, received = _deliver(smtp_sink, msg)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert parsed["In-Reply-To"] == "<m30@example.org>"
    refs = str(parsed["References"]).split()
    assert len(refs) == outbound.MAX_REFERENCES
    assert refs[0] == "<m0@example.org>"  # thread root kept
    assert refs[-1] == "<m30@example.org>"  # parent last
    assert refs[1:-1] == chain[-(outbound.MAX_REFERENCES - 2) :]
    assert str(parsed["Subject"]) == "Re: Devis"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().strip() == "Merci !"


def test_reply_headers_rules():
    assert reply_headers("a@x", "") == ("<a@x>", ["<a@x>"])
    assert reply_headers("<b@x>", "<a@x>\r\n <a@x> junk <b@x>") == ("<b@x>", ["<a@x>", "<b@x>"])
    # No References on the parent: its single In-Reply-To stands in (RFC 5322 3.6.4).
    assert reply_headers("<b@x>", "", "<a@x>") == ("<b@x>", ["<a@x>", "<b@x>"])
    assert reply_headers("<c@x>", ["<a@x>", "<b@x>"])[1] == ["<a@x>", "<b@x>", "<c@x>"]
    with pytest.raises(InvalidHeader):
        reply_headers("<a@x>\r\nBcc: victim@x", "")


@pytest.mark.parametrize(
    ("subject", "reply", "forward"),
    [
        ("Devis", "Re: Devis", "Fwd: Devis"),
        ("Re: Devis", "Re: Devis", "Fwd: Re: Devis"),
        ("RE: Devis", "RE: Devis", "Fwd: RE: Devis"),
        ("AW: Angebot", "AW: Angebot", "Fwd: AW: Angebot"),
        ("Re[2]: Devis", "Re[2]: Devis", "Fwd: Re[2]: Devis"),
        ("Fwd: Devis", "Re: Fwd: Devis", "Fwd: Devis"),
        ("TR: Devis", "Re: TR: Devis", "TR: Devis"),
        ("", "Re: ", "Fwd: "),
        ("Regarding: budget", "Re: Regarding: budget", "Fwd: Regarding: budget"),
    ],
)
def test_reply_and_forward_subjects(subject, reply, forward):
    assert reply_subject(subject) == reply
    assert forward_subject(subject) == forward


INJECTIONS = ["Hi\r\nBcc: victim@evil.com", "Hi\nBcc: x@y", "Hi\rX: y", "Hi\u2028X: y",
              "Hi\x85X: y", "Hi\x00", "Hi\x0bX"]  # fmt: skip


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize(
    "where",
    [
        "subject", "sender_name", "to_name", "to_email", "cc_email", "bcc_email",
        "header_value", "message_id", "in_reply_to", "reference", "attachment_name",
        "content_id",
    ],
)  # fmt: skip
def test_header_injection_refused(smtp_sink, where, payload):
    msg = OutgoingMessage(
        sender=Address("zoe@example.com", "Zoë"),
        to=[Address("ann@example.org", "Ann")],
        cc=[Address("cc@example.org")],
        bcc=[Address("bcc@example.org")],
        subject="Hello",
        html="<p>x</p>",
        attachments=[OutgoingAttachment("a.pdf", "application/pdf", b"x", content_id="")],
        headers={"X-Campaign": "7"},
    )
    if where == "subject":
        msg.subject = payload
    elif where == "sender_name":
        msg.sender = Address("zoe@example.com", payload)
    elif where == "to_name":
        msg.to = [Address("ann@example.org", payload)]
    elif where == "to_email":
        msg.to = [Address("ann@example.org" + payload)]
    elif where == "cc_email":
        msg.cc = [Address(payload + "cc@example.org")]
    elif where == "bcc_email":
        msg.bcc = [Address("bcc@example.org" + payload)]
    elif where == "header_value":
        msg.headers = {"X-Campaign": payload}
    elif where == "message_id":
        msg.message_id = f"<a{payload}@x>"
    elif where == "in_reply_to":
        msg.in_reply_to = f"<a@x>{payload}"
    elif where == "reference":
        msg.references = [f"<a@x>{payload}"]
    elif where == "attachment_name":
        msg.attachments = [OutgoingAttachment(f"a{payload}.pdf", "application/pdf", b"x")]
    elif where == "content_id":
        msg.attachments = [OutgoingAttachment("a.png", "image/png", b"x", content_id=payload)]
    with pytest.raises(InvalidHeader) as info:
        build_mime(msg, domain="example.com")
    assert "line break or a control character" in str(info.value) or "not a valid" in str(
        info.value
    )
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    "headers",
    [{"Bcc": "x@y"}, {"From": "ceo@bank"}, {"Content-Type": "text/html"},
     {"X Bad": "1"}, {"X:Bad": "1"}, {"": "1"}, {"Reply-To": "x@y"}],
)  # fmt: skip
def test_extra_headers_cannot_replace_structure(headers):
    msg = OutgoingMessage(sender=Address("a@x.com"), to=[Address("b@y.com")], text="t")
    msg.headers = headers
    with pytest.raises(InvalidHeader):
        build_mime(msg, domain="x.com")


def test_message_ids_and_domains():
    msg = OutgoingMessage(
        sender=Address("a@x.com"),
        to=[Address("b@bücher.example")],
        text="t",
        message_id="id1@x.com",
    )
    raw, mid = build_mime(msg, domain="x.com")
    assert mid == "<id1@x.com>"
    assert b"Message-ID: <id1@x.com>\r\n" in raw
    assert b"b@xn--bcher-kva.example" in raw
    msg.message_id = ""
    _, mid = build_mime(msg, domain="münchen.example")
    assert mid.endswith("@xn--mnchen-3ya.example>")
    with pytest.raises(InvalidHeader):
        build_mime(OutgoingMessage(sender=Address("a@x.com"), text="no recipient"), domain="x.com")


# --- size limits --------------------------------------------------------------------------


def test_size_refusal_uses_encoded_size_and_plain_words():
    # 19.5 MB of attachment is well under 25 MB raw, but base64 makes it about 26.4 MB.
    att = OutgoingAttachment("video.mp4", "video/mp4", bytes(int(19.5 * MB)))
    msg = OutgoingMessage(sender=Address("a@x.com"), to=[Address("b@y.com")], html="<p>Hi</p>")
    msg.attachments = [att]
    raw, _ = build_mime(msg, domain="x.com")
    assert len(raw) > len(att.content) * 4 / 3  # the limit is about the encoded size

    estimate = estimate_size([att])
    assert abs(estimate - len(raw)) / len(raw) < 0.01  # estimate before building is close

    with pytest.raises(SizeLimitExceeded) as info:
        check_size(len(raw), GMAIL_LIMIT, "Gmail")
    shown = math.ceil(len(raw) * 10 / MB) / 10
    assert str(info.value) == (
        f"The attachments make this email {shown:.1f} MB; Gmail accepts at most 25 MB."
    )
    with pytest.raises(SizeLimitExceeded, match=r"Outlook accepts at most 20 MB\.$"):
        check_size([att], OUTLOOK_LIMIT, "Outlook")


def test_size_message_example_and_boundaries():
    size = int(27.05 * MB)
    with pytest.raises(SizeLimitExceeded) as info:
        check_size(size, GMAIL_LIMIT, "Gmail")
    assert (
        str(info.value) == "The attachments make this email 27.1 MB; Gmail accepts at most 25 MB."
    )
    assert check_size(GMAIL_LIMIT, GMAIL_LIMIT, "Gmail") == GMAIL_LIMIT  # at the limit is fine
    with pytest.raises(SizeLimitExceeded) as info:
        check_size(GMAIL_LIMIT + 1, GMAIL_LIMIT, "Gmail")
    assert "25.1 MB" in str(info.value)  # rounded up: never "25.0 MB; at most 25 MB"
    # 18 MB of files pass Gmail's limit once encoded? No: 18 * 4/3 = 24 MB + overhead.
    files = [
        OutgoingAttachment(f"f{i}.bin", "application/octet-stream", bytes(6 * MB)) for i in range(3)
    ]
    assert check_size(files, GMAIL_LIMIT, "Gmail") > 18 * MB * 4 / 3
    with pytest.raises(SizeLimitExceeded):
        check_size(files, OUTLOOK_LIMIT, "Outlook")


# --- right to left ------------------------------------------------------------------------

SAMPLES = {
    "arabic": "مرحبا، نود أن نرسل لكم عرض الأسعار للمشروع الجديد.",
    "hebrew": "שלום, מצורפת הצעת המחיר עבור הפרויקט החדש.",
    "persian": "سلام، پیشنهاد قیمت برای پروژه جدید پیوست شده است.",
    "urdu": "السلام علیکم، نئے منصوبے کے لیے قیمت کی پیشکش منسلک ہے۔",
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_rtl_languages_marked_in_the_sent_html(smtp_sink, language):
    sample = SAMPLES[language]
    assert text_direction(sample) == "rtl"
    msg = OutgoingMessage(
        sender=Address("a@x.com"),
        to=[Address("b@y.com")],
        subject=sample[:20],
        html=f"<p>{sample}</p><p>123 456</p>",
    )
    _, _, received = _deliver(smtp_sink, msg)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    html = parsed.get_body(("html",)).get_content()
    doc = lxml.html.document_fromstring(html)
    assert doc.get("dir") == "rtl" and doc.find("body").get("dir") == "rtl"
    first, digits = doc.findall(".//p")
    assert first.text == sample
    assert digits.get("dir") is None  # neutral: inherits
    text = parsed.get_body(("plain",)).get_content()
    assert sample in text  # the text part is left exactly as written
    assert "\u200f" not in text and "\u202b" not in text


def test_ltr_and_mixed_paragraphs():
    english = "Hello, please find the quote attached."
    assert text_direction(english) == "ltr"
    assert text_direction("123 - 456 !") == ""
    assert text_direction("Order ABC-123 " + SAMPLES["hebrew"]) == "rtl"  # majority wins
    assert text_direction(SAMPLES["arabic"][:5] + " " + english) == "ltr"

    plain = lxml.html.document_fromstring(mark_direction(f"<p>{english}</p>"))
    assert plain.get("dir") is None and plain.find(".//p").get("dir") is None

    # Mostly English with an Arabic paragraph: LTR document, that paragraph RTL.
    doc = lxml.html.document_fromstring(
        mark_direction(
            f"<p>{english} {english}</p><p>{SAMPLES['arabic']}</p><ul><li>{english}</li></ul>"
        )
    )
    p1, p2 = doc.findall(".//p")
    assert doc.get("dir") is None
    assert p1.get("dir") is None and p2.get("dir") == "rtl"
    assert doc.find(".//li").get("dir") is None

    # An Arabic reply above a quoted English message: RTL document, quote LTR.
    reply = (
        f"<div><p>{SAMPLES['arabic']}</p><p>{SAMPLES['urdu']}</p></div>"
        f"<blockquote><p>{english}</p></blockquote>"
    )
    doc = lxml.html.document_fromstring(mark_direction(reply))
    assert doc.get("dir") == "rtl"
    paragraphs = doc.findall(".//p")
    assert [p.get("dir") for p in paragraphs] == [None, None, "ltr"]

    # The author's explicit choice is kept.
    doc = lxml.html.document_fromstring(mark_direction(f'<p dir="ltr">{SAMPLES["hebrew"]}</p>'))
    assert doc.find(".//p").get("dir") == "ltr"


def test_mark_rtl_can_be_turned_off():
    msg = OutgoingMessage(
        sender=Address("a@x.com"), to=[Address("b@y.com")], html=f"<p>{SAMPLES['hebrew']}</p>"
    )
    msg.mark_rtl = False
    raw, _ = build_mime(msg, domain="x.com")
    html = email.message_from_bytes(raw, policy=policy.default).get_body(("html",)).get_content()
    assert "dir=" not in html


# --- text part ------------------------------------------------------------------------------


def test_html_to_text():
    html = (
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Quote</h1><p>Hello   <b>world</b>,<br>second line</p>"
        '<p>See <a href="https://example.com/x">our page</a> or https://example.com/y '
        '<a href="https://example.com/y">https://example.com/y</a>.</p>'
        "<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>"
        "<blockquote><p>quoted</p><p>text</p></blockquote>"
        "<table><tr><td>Item</td><td>Price</td></tr><tr><td>A</td><td>10</td></tr></table>"
        '<img src="https://t.example/pixel" alt=""><script>alert(1)</script></body></html>'
    )
    assert html_to_text(html) == (
        "Quote\n\nHello world,\nsecond line\n\n"
        "See our page (https://example.com/x) or https://example.com/y https://example.com/y.\n\n"
        "- one\n- two\n\n1. first\n2. second\n\n"
        "> quoted\n>\n> text\n\n"
        "Item Price\nA 10"
    )
    assert html_to_text("") == ""
    assert html_to_text("plain words") == "plain words"
