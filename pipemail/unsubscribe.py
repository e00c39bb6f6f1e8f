"""One-click unsubscribe for group email (RFC 2369 ``List-Unsubscribe``, RFC 8058).

Every copy of a group email names its recipient in a signed token (the tracking
token format of :mod:`pipemail.tracking`, under its own kind, so an open or click
token is never an unsubscribe token and the other way round). The token is carried
twice: in the ``List-Unsubscribe`` header, which Gmail, Yahoo and Apple Mail turn
into an "Unsubscribe" button that POSTs ``List-Unsubscribe=One-Click`` to the URL
(RFC 8058), and in a footer link a person can follow. Following the link only shows
a page with a button: mail scanners fetch every link of a message, and a GET must
never unsubscribe anyone by itself.
"""

from __future__ import annotations

import html
import re

from pipemail import tracking as pm_tracking

KIND_UNSUBSCRIBE = "unsubscribe"
UNSUBSCRIBE_PATH = "/pipemail/unsubscribe/"
ONE_CLICK_VALUE = "List-Unsubscribe=One-Click"
"""The body of the POST a mail client sends (RFC 8058 section 3.1)."""

_IDENT = re.compile(r"^gr:([1-9][0-9]{0,17})$")
_URL = re.compile(r"^https?://[^\s<>,\"]+$")


def recipient_token(secret: bytes, recipient_id: int) -> str:
    """The signed token naming one recipient of one group email."""
    if recipient_id <= 0:
        raise ValueError("a recipient id is a positive integer")
    return pm_tracking.sign(secret, KIND_UNSUBSCRIBE, f"gr:{recipient_id}")


def recipient_from_token(secret: bytes, token: str) -> int | None:
    """The recipient id inside ``token``, or ``None`` for anything forged or malformed."""
    ident = pm_tracking.verify(secret, KIND_UNSUBSCRIBE, token)
    match = _IDENT.match(ident or "")
    return int(match.group(1)) if match else None


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}{token}"


def list_unsubscribe_headers(url: str) -> dict[str, str]:
    """The two headers of RFC 8058 for ``url``.

    RFC 8058 requires an HTTPS URI for one-click; plain HTTP is accepted here only so
    that a test server or an intranet without TLS still gets a working header (the
    providers then show no button, nothing breaks).
    """
    if not _URL.match(url):
        raise ValueError(f"not usable as a List-Unsubscribe URL: {url!r}")
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK_VALUE}


def parse_list_unsubscribe(value: str) -> list[str]:
    """The URIs of a ``List-Unsubscribe`` value (``<uri>, <uri>``), in order."""
    return re.findall(r"<([^<>\s]+)>", value or "")


def footer_html(url: str, text: str, link_text: str) -> str:
    """The footer of a copy: ``text`` and a link to the unsubscribe page.

    Marked ``data-pm-notrack`` so open/click tracking leaves the link alone (a click
    redirect in front of it would only add a hop and a scanner hit).
    """
    return (
        '<p style="font-size:12px;color:#888888;margin-top:24px">'
        f"{html.escape(text)} "
        f'<a href="{html.escape(url, quote=True)}" {pm_tracking.NO_TRACK_MARKER}="1">'
        f"{html.escape(link_text)}</a></p>"
    )
