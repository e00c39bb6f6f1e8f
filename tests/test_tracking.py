"""Tracking: tokens, instrumented HTML as received, redirect safety, machine events.

RELIABILITY tests 15 and 16 at engine level: forged, truncated, wrong-kind and
other-secret tokens all come back as the same ``None``; a click resolves only to the
target stored at send time, and stored targets that would make an open redirect are
refused.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from email import policy
from urllib.parse import urlsplit

import lxml.html
import pytest

from pipemail.outbound import OutgoingMessage, build_mime
from pipemail.smtp import send
from pipemail.tracking import (
    KIND_CLICK,
    KIND_OPEN,
    TrackingEvent,
    TrackingRef,
    classify_click,
    classify_open,
    click_target,
    instrument_html,
    safe_redirect_target,
    sign,
    verify,
)
from pipemail.types import Address, ServerConfig

SECRET = b"0123456789abcdef0123456789abcdef"
OTHER = b"fedcba9876543210fedcba9876543210"
BASE = "https://crm.example.com/pipemail"


# --- tokens -------------------------------------------------------------------------------


def test_sign_verify_round_trip():
    for ident in ["msg:123", "msg:123:r:4", "msg:1:r:2:l:0", "ünïcode:ident", ""]:
        token = sign(SECRET, KIND_OPEN, ident)
        assert verify(SECRET, KIND_OPEN, token) == ident
        assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe as is


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_bad_tokens_all_look_the_same():
    token = sign(SECRET, KIND_OPEN, "msg:123:r:4")
    ident_part, mac_part = token.split(".")
    forged_ident = f"{_b64(b'msg:124:r:4')}.{mac_part}"
    naive_mac = hmac.new(SECRET, b"msg:124", hashlib.sha256).digest()  # no kind/version
    bad = [
        forged_ident,  # someone else's message with our MAC
        f"{_b64(b'msg:124')}.{_b64(naive_mac)}",
        token[:-1],  # truncated
        token[:-4],
        ident_part,  # MAC missing
        ident_part + ".",
        token + "A",
        token + "=",  # padding: not the canonical spelling
        token + ".x",
        token.replace(".", ".."),
        "." + mac_part,
        "",
        "not a token",
        "x" * 5000,
        "é.é",
        None,
    ]
    for candidate in bad:
        assert verify(SECRET, KIND_OPEN, candidate) is None, candidate
    assert verify(SECRET, KIND_CLICK, token) is None  # a pixel token is not a click token
    assert verify(OTHER, KIND_OPEN, token) is None  # another database's secret
    assert sign(SECRET, KIND_OPEN, "msg:1") != sign(SECRET, KIND_CLICK, "msg:1")


def test_weak_secret_refused():
    with pytest.raises(ValueError):
        sign(b"short", KIND_OPEN, "msg:1")
    with pytest.raises(ValueError):
        sign(SECRET, "", "msg:1")


def test_tracking_ref():
    ref = TrackingRef(message=123, recipient=4, link=2)
    assert ref.ident == "msg:123:r:4:l:2"
    assert TrackingRef.parse(ref.ident) == ref
    assert TrackingRef.parse("msg:7") == TrackingRef(7)
    assert TrackingRef.parse("msg:7:l:0") == TrackingRef(7, None, 0)
    for junk in ["", "msg:", "msg:x", "msg:1:r:", "msg:1:l:1:r:2", "msg:-1", "msg:1\n", "msg:1 "]:
        assert TrackingRef.parse(junk) is None


# --- redirect targets (RELIABILITY 16) ------------------------------------------------------

OPEN_REDIRECT_VECTORS = [
    "//evil.com",
    "//evil.com/path",
    "/\\evil.com",
    "\\\\evil.com",
    "/%2F/evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https:///evil.com",
    "http:\\\\evil.com",
    "https://\\evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "https://good.com\r\nSet-Cookie: a=b",
    "https://good.com%0d%0aSet-Cookie:a=b",
    "https://good.com/\r\nLocation: https://evil.com",
    "https://good.com\nevil",
    "https://good@evil.com",
    "https://good.com@evil.com/",
    "https://good.com:443@evil.com",
    "https://user:pass@good.com/",
    "https://good.com%40evil.com",
    "https://evil.com\u3002good.com\u2215x",
    "https://good.com\u202e/moc.live",
    "https://good.com\u200b.evil.com",
    "https://good .com",
    "https://",
    "https://:443/x",
    "https://good.com:99999/",
    "https://good.com:-1/",
    "https://good..com/",
    "https://-good.com/",
    "ftp://good.com/file",
    "mailto:a@b.com",
    "/relative/path",
    "relative",
    "",
    "x" * 5000,
]


@pytest.mark.parametrize("url", OPEN_REDIRECT_VECTORS)
def test_safe_redirect_target_refuses(url):
    assert safe_redirect_target(url) is None


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://example.com/a?b=1&c=2#f", "https://example.com/a?b=1&c=2#f"),
        ("HTTPS://Example.COM", "https://example.com/"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://bücher.example/straße?q=é", "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%A9"),
        ("https://example.com/a%20b/%zz", "https://example.com/a%20b/%25zz"),
        ('https://example.com/<x>"', "https://example.com/%3Cx%3E%22"),
        ("http://[2001:db8::1]:80/", "http://[2001:db8::1]/"),
        ("https://example.com?x", "https://example.com/?x"),
    ],
)
def test_safe_redirect_target_normalizes(url, normalized):
    assert safe_redirect_target(url) == normalized
    assert safe_redirect_target(normalized) == normalized  # stable


def test_click_resolves_only_to_the_stored_target():
    stored = {
        (10, 0): "https://example.com/pricing",
        (10, 1): "https://good@evil.com",  # stored before validation existed
        (10, 2): "javascript:alert(1)",
        (10, 3): "//evil.com",
    }
    lookups: list[TrackingRef] = []

    def lookup(ref: TrackingRef) -> str | None:
        lookups.append(ref)
        return stored.get((ref.message, ref.link))

    good = sign(SECRET, KIND_CLICK, TrackingRef(10, 4, 0).ident)
    assert click_target(SECRET, good, lookup) == (
        TrackingRef(10, 4, 0),
        "https://example.com/pricing",
    )
    for link in (1, 2, 3, 9):
        token = sign(SECRET, KIND_CLICK, TrackingRef(10, 4, link).ident)
        assert click_target(SECRET, token, lookup) is None
    # The link index is signed: editing it, or using the pixel token, gets nothing.
    ident, mac = good.split(".")
    edited = _b64(b"msg:10:r:4:l:1") + "." + mac
    pixel = sign(SECRET, KIND_OPEN, TrackingRef(10, 4, 0).ident)
    no_link = sign(SECRET, KIND_CLICK, TrackingRef(10, 4).ident)
    n = len(lookups)
    for token in (edited, pixel, no_link, "", "https://evil.com", good + "x"):
        assert click_target(SECRET, token, lookup) is None
    assert len(lookups) == n  # nothing unauthenticated reaches the database lookup


# --- HTML instrumentation ---------------------------------------------------------------------


def _link_url(url: str, index: int) -> str:
    return f"{BASE}/c/{sign(SECRET, KIND_CLICK, TrackingRef(42, 7, index).ident)}"


PIXEL = f"{BASE}/o/{sign(SECRET, KIND_OPEN, TrackingRef(42, 7).ident)}.gif"

BODY = """
<p>Hello,</p>
<p>See <a href="https://example.com/pricing?x=1&amp;y=2">pricing</a>,
<a href="HTTP://Example.com/Docs">docs</a> and
<a href="https://example.com/pricing?x=1&amp;y=2">pricing again</a>.</p>
<p><a href="mailto:sales@example.com">mail us</a> <a href="tel:+33123456789">call</a>
<a href="#section">jump</a> <a href="/relative">rel</a> <a href="ftp://x.org/f">ftp</a>
<a href="javascript:alert(1)">js</a> <a href=" JAVA&#9;SCRIPT:alert(1)">js2</a>
<a href="data:text/html,&lt;script&gt;">data</a> <a href="https://good@evil.com">odd</a>
<a href="https://example.com/unsubscribe" data-pm-notrack>unsubscribe</a></p>
"""


def test_instrument_html_rewrites_only_http_links():
    html, links = instrument_html(BODY, pixel_url=PIXEL, link_url_for=_link_url)
    assert links == [
        (0, "https://example.com/pricing?x=1&y=2"),
        (1, "http://example.com/Docs"),
        (2, "https://example.com/pricing?x=1&y=2"),
    ]
    doc = lxml.html.document_fromstring(html)
    anchors = {a.text_content(): a for a in doc.iter("a")}
    for i, label in enumerate(["pricing", "docs", "pricing again"]):
        assert anchors[label].get("href") == _link_url("", i)
        assert anchors[label].get("data-pm-link") == str(i)
    assert anchors["mail us"].get("href") == "mailto:sales@example.com"
    assert anchors["call"].get("href") == "tel:+33123456789"
    assert anchors["jump"].get("href") == "#section"
    assert anchors["rel"].get("href") == "/relative"
    assert anchors["ftp"].get("href") == "ftp://x.org/f"
    assert anchors["odd"].get("href") == "https://good@evil.com"  # not vouched for
    assert anchors["unsubscribe"].get("href") == "https://example.com/unsubscribe"
    for label in ("js", "js2", "data"):
        assert anchors[label].get("href") is None  # neutralised, text kept
    assert "javascript" not in html.lower() and "data:" not in html

    body = doc.find("body")
    pixel = body[-1]
    assert pixel.tag == "img" and pixel.get("src") == PIXEL
    assert (pixel.get("width"), pixel.get("height"), pixel.get("alt")) == ("1", "1", "")
    assert "display" not in (pixel.get("style") or "") and "hidden" not in html


def test_instrument_html_is_idempotent():
    once, links = instrument_html(BODY, pixel_url=PIXEL, link_url_for=_link_url)
    twice, again = instrument_html(once, pixel_url=PIXEL, link_url_for=_link_url)
    assert twice == once and again == []
    # A link added later (a forwarded draft edited) gets the next index.
    more, added = instrument_html(
        once + '<p><a href="https://example.com/new">new</a></p>',
        pixel_url=PIXEL,
        link_url_for=_link_url,
    )
    assert added == [(3, "https://example.com/new")]
    assert more.count(PIXEL) == 1
    # Links already pointing at the tracker (markers stripped by a client) stay as they are.
    _, none = instrument_html(
        f'<a href="{_link_url("", 0)}">x</a>', pixel_url=None, link_url_for=_link_url,
        tracked_prefixes=[f"{BASE}/c/"],
    )  # fmt: skip
    assert none == []


def test_instrument_html_refuses_bad_tracker_urls():
    with pytest.raises(ValueError):
        instrument_html("<p>x</p>", pixel_url="javascript:alert(1)", link_url_for=None)
    with pytest.raises(ValueError):
        instrument_html(
            '<a href="https://example.com">x</a>', pixel_url=None, link_url_for=lambda u, i: "//x"
        )


def test_tracked_email_as_received(smtp_sink):
    """Instrumented, built and sent: the recipient's server gets working tracking."""
    html, links = instrument_html(BODY, pixel_url=PIXEL, link_url_for=_link_url)
    msg = OutgoingMessage(
        sender=Address("zoe@example.com"), to=[Address("ann@example.org")], subject="Hi", html=html
    )
    raw, _ = build_mime(msg, domain="example.com")
    server = ServerConfig(smtp_sink.host, smtp_sink.port, security="none",
                          allow_private_hosts=True, timeout=10)  # fmt: skip
    assert send(server, None, "zoe@example.com", ["ann@example.org"], raw).delivered
    (received,) = smtp_sink.wait_for(1)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    doc = lxml.html.document_fromstring(parsed.get_body(("html",)).get_content())
    assert doc.find("body")[-1].get("src") == PIXEL

    stored = {(42, i): url for i, url in links}  # what the sender's database keeps
    targets = []
    for a in doc.iter("a"):
        href = a.get("href") or ""
        if href.startswith(f"{BASE}/c/"):
            token = urlsplit(href).path.rsplit("/", 1)[1]
            resolved = click_target(SECRET, token, lambda ref: stored.get((ref.message, ref.link)))
            assert resolved is not None
            targets.append(resolved[1])
    assert targets == [url for _, url in links]
    # The pixel token is an open token for message 42, recipient 7.
    pixel_token = urlsplit(PIXEL).path.rsplit("/", 1)[1].removesuffix(".gif")
    assert verify(SECRET, KIND_OPEN, pixel_token) == "msg:42:r:7"
    # The text alternative carries tracked links too, since it is derived from the HTML.
    assert f"{BASE}/c/" in parsed.get_body(("plain",)).get_content()


# --- machine events ---------------------------------------------------------------------------

SENT = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)
LATER = SENT + timedelta(hours=2)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"  # noqa: E501
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
HOME_IP = "203.0.113.9"

OPEN_CASES = [
    # (user agent, ip, seconds after sending, method, sender session, machine?, reason contains)
    (CHROME, HOME_IP, 7200, "GET", False, False, ""),
    (IPHONE_MAIL, "198.51.100.4", 600, "GET", False, False, ""),
    (OUTLOOK, HOME_IP, 3600, "GET", False, False, ""),
    ("Mozilla/5.0", "17.58.63.20", 3, "GET", False, True, "seconds after sending"),
    ("Mozilla/5.0", "17.58.63.20", 4000, "GET", False, True, "Apple Mail Privacy Protection"),
    ("Mozilla/5.0", "104.28.40.1", 4000, "GET", False, True, "Apple Mail Privacy Protection"),
    (IPHONE_MAIL, "17.120.1.1", 4000, "GET", False, True, "Apple Mail Privacy Protection"),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "66.249.84.1", 600, "GET", False, True, "Gmail loads images through its own proxy"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
     "98.137.1.1", 600, "GET", False, True, "Yahoo Mail"),
    (CHROME, HOME_IP, 7200, "HEAD", False, True, "HEAD request"),
    (CHROME, HOME_IP, 7200, "GET", True, True, "sender opened it in their own session"),
    ("Barracuda Sentinel (EE)", HOME_IP, 60, "GET", False, True, "Barracuda"),
    (CHROME, "148.163.150.10", 600, "GET", False, True, "Proofpoint"),
    (CHROME, "205.139.110.20", 600, "GET", False, True, "Mimecast"),
    (CHROME, "40.92.1.1", 600, "GET", False, True, "Microsoft's mail servers"),
    (CHROME, "::ffff:40.107.2.3", 600, "GET", False, True, "Microsoft's mail servers"),
    ("", HOME_IP, 600, "GET", False, True, "No mail app or browser"),
    ("python-requests/2.31.0", HOME_IP, 600, "GET", False, True, "automated program"),
    (CHROME, HOME_IP, 1, "GET", False, True, "1 second after sending"),
    (CHROME, HOME_IP, -30, "GET", False, True, "0 seconds after sending"),  # clock skew
    (CHROME, "not-an-ip", 7200, "GET", False, False, ""),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "ip", "after", "method", "own", "machine", "reason"), OPEN_CASES)
def test_classify_open(ua, ip, after, method, own, machine, reason):
    is_machine, why = classify_open(ua, ip, SENT, SENT + timedelta(seconds=after), method, own)
    assert is_machine is machine
    assert reason in why
    assert bool(why) is machine


def test_classify_open_bursts():
    at = LATER
    earlier = [TrackingEvent(at - timedelta(seconds=s), KIND_OPEN) for s in (0.5, 1.2)]
    assert classify_open(CHROME, HOME_IP, SENT, at, recent_events=earlier) == (
        True,
        "The image was fetched 3 times within 2 seconds; people do not open an email that fast.",
    )
    spread = [TrackingEvent(at - timedelta(minutes=m), KIND_OPEN) for m in (5, 30)]
    assert classify_open(CHROME, HOME_IP, SENT, at, recent_events=spread) == (False, "")
    one = [TrackingEvent(at - timedelta(seconds=1), KIND_OPEN)]  # client reload: human
    assert classify_open(CHROME, HOME_IP, SENT, at, recent_events=one) == (False, "")
    naive = [TrackingEvent((at - timedelta(seconds=1)).replace(tzinfo=None), KIND_OPEN)]
    assert (
        classify_open(CHROME, HOME_IP, SENT.replace(tzinfo=None), at, recent_events=naive)[0]
        is False
    )


def test_classify_click():
    assert classify_click(CHROME, HOME_IP, SENT, LATER, link=0) == (False, "")
    machine, why = classify_click(CHROME, HOME_IP, SENT, SENT + timedelta(seconds=4), link=0)
    assert machine and "4 seconds after sending" in why
    machine, why = classify_click(CHROME, HOME_IP, SENT, LATER, method="HEAD", link=0)
    assert machine and "HEAD" in why
    for ua, name in [
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "Proofpoint"),
        ("Mimecast-URL-Protect/1.0", "Mimecast"),
        ("Barracuda Sentinel (EE)", "Barracuda"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246",
            "Microsoft Safe Links",
        ),
    ]:
        machine, why = classify_click(ua, HOME_IP, SENT, LATER, link=1)
        assert machine and why.startswith(name), (ua, why)
    # A scanner with a browser user agent: three different links in five seconds.
    burst = [
        TrackingEvent(LATER - timedelta(seconds=1), KIND_CLICK, link=0),
        TrackingEvent(LATER - timedelta(seconds=2), KIND_CLICK, link=1),
    ]
    machine, why = classify_click(CHROME, HOME_IP, SENT, LATER, recent_events=burst, link=2)
    assert machine and why.startswith("3 different links were followed within 5 seconds")
    # The same link twice, or two links a minute apart, is a person.
    same = [TrackingEvent(LATER - timedelta(seconds=1), KIND_CLICK, link=2)] * 3
    assert classify_click(CHROME, HOME_IP, SENT, LATER, recent_events=same, link=2) == (False, "")
    slow = [
        TrackingEvent(LATER - timedelta(seconds=60), KIND_CLICK, link=0),
        TrackingEvent(LATER - timedelta(seconds=120), KIND_CLICK, link=1),
    ]
    assert classify_click(CHROME, HOME_IP, SENT, LATER, recent_events=slow, link=2) == (False, "")
    machine, why = classify_click(CHROME, HOME_IP, SENT, LATER, sender_session=True, link=0)
    assert machine and "sender clicked it" in why
