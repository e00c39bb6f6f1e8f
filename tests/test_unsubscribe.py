"""One-click unsubscribe tokens and headers (pipemail.unsubscribe)."""

import email
import email.policy

from pipemail import outbound, tracking, unsubscribe
from pipemail.types import Address

SECRET = b"0123456789abcdef0123456789abcdef"


def test_token_round_trip_and_kind_separation():
    token = unsubscribe.recipient_token(SECRET, 42)
    assert unsubscribe.recipient_from_token(SECRET, token) == 42
    assert unsubscribe.recipient_from_token(b"another-secret-0123456789", token) is None
    other_kind = tracking.sign(SECRET, tracking.KIND_OPEN, "gr:42")
    assert unsubscribe.recipient_from_token(SECRET, other_kind) is None
    wrong_ident = tracking.sign(SECRET, unsubscribe.KIND_UNSUBSCRIBE, "msg:42")
    assert unsubscribe.recipient_from_token(SECRET, wrong_ident) is None
    for bad in ("", "x", token + "A", token[:-1], "a.b.c", "é" * 10, "x" * 5000):
        assert unsubscribe.recipient_from_token(SECRET, bad) is None


def test_headers_in_a_built_message_follow_rfc_8058():
    url = unsubscribe.unsubscribe_url("https://crm.example.com/", "tok.en")
    message = outbound.OutgoingMessage(
        sender=Address("sam@ourco.example", "Sam"),
        to=[Address("ann@clients.example", "Ann")],
        subject="News",
        html="<p>Hi</p>" + unsubscribe.footer_html(url, "From Sam.", "Unsubscribe"),
        headers=unsubscribe.list_unsubscribe_headers(url),
        message_id="<a1@ourco.example>",
    )
    raw, _mid = outbound.build_mime(message, domain="ourco.example")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == "<https://crm.example.com/pipemail/unsubscribe/tok.en>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.parse_list_unsubscribe(parsed["List-Unsubscribe"]) == [url]
    html = parsed.get_body(("html",)).get_content()
    assert f'href="{url}"' in html
    assert tracking.NO_TRACK_MARKER in html


def test_unusable_urls_refused():
    for bad in ("javascript:alert(1)", "https://x/a b", "https://x/<a>", "ftp://x/y"):
        try:
            unsubscribe.list_unsubscribe_headers(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_footer_escapes_text():
    html = unsubscribe.footer_html('https://x/u?a=1&b="2"', "<b>Sam</b>", "Stop")
    assert "<b>" not in html
    assert "&amp;b=&quot;2&quot;" in html
