"""Open and click tracking: signed tokens, HTML instrumentation, safe redirects, and
telling people from machines.

The public endpoints (pixel, click redirect) are reachable by anyone on the Internet,
so everything they act on is either signed here or looked up server-side:

* a token names *what* was opened or clicked (message, recipient, link index) and is
  an HMAC over that name and its kind, so a pixel token cannot be replayed as a click
  token and nobody can forge a token for another message;
* the click target is never in the URL: the controller looks up the link stored for
  (message, index) when the mail was sent and passes it through
  :func:`safe_redirect_target` once more, so an open redirect cannot be built even
  from a link that was odd when it was stored;
* a GET records an event and changes nothing else (RELIABILITY.md: scanners and
  Apple's proxy fetch everything), and :func:`classify_open` / :func:`classify_click`
  label the machine events so reports can leave them out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from lxml import etree

from pipemail import html as pm_html

KIND_OPEN = "open"
KIND_CLICK = "click"
KIND_UNSUBSCRIBE = "unsubscribe"

MAX_TOKEN_LENGTH = 512
"""Tokens longer than this are refused before any decoding or HMAC work."""
MAX_URL_LENGTH = 4096

_TOKEN_VERSION = b"pipemail-track-v1"
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
LINK_MARKER = "data-pm-link"
PIXEL_MARKER = "data-pm-pixel"
NO_TRACK_MARKER = "data-pm-notrack"


# --- tokens -----------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict urlsafe base64 without padding; ``None`` for anything non-canonical.

    Canonical only, so that one token has exactly one spelling: otherwise
    ``abc`` and ``abd`` could decode to the same bytes and "the same token" would
    stop meaning "the same string" in logs and rate limits.
    """
    if not _B64URL.match(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64encode(data) == text else None


def _mac(secret: bytes, kind: str, ident: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise ValueError("the tracking secret must be at least 16 random bytes")
    if not kind or "\x00" in kind:
        raise ValueError("the token kind must be a non-empty name without NUL")
    # NUL-separated and versioned: (kind, ident) pairs can never collide by
    # concatenation, and a future format cannot accept today's tokens by accident.
    message = b"\x00".join((_TOKEN_VERSION, kind.encode("utf-8"), ident))
    return hmac.new(secret, message, hashlib.sha256).digest()


def sign(secret: bytes, kind: str, ident: str) -> str:
    """A URL-safe token carrying ``ident``, valid only for ``kind``.

    The ident is readable (base64, not encrypted): it names database rows the
    server owns anyway, and readable tokens are easier to support. Integrity is
    what matters, and that is HMAC-SHA256 over (version, kind, ident).
    """
    raw = ident.encode("utf-8")
    return f"{_b64encode(raw)}.{_b64encode(_mac(secret, kind, raw))}"


def verify(secret: bytes, kind: str, token: str) -> str | None:
    """The ident inside ``token`` if it was signed with ``secret`` for ``kind``.

    Returns ``None`` for every kind of bad input, never raises on it: the public
    endpoints must answer a forged token exactly like an unknown one.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    ident_part, dot, mac_part = token.partition(".")
    if not dot or "." in mac_part:
        return None
    raw = _b64decode(ident_part)
    given = _b64decode(mac_part)
    if raw is None or given is None:
        return None
    expected = _mac(secret, kind, raw)
    if not hmac.compare_digest(expected, given):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class TrackingRef:
    """What a token points at: a sent message, optionally one recipient and one link.

    Spelt ``msg:<id>[:r:<recipient>][:l:<link index>]`` inside tokens. The link
    index is signed too, so a valid click URL cannot be edited into a click on
    another link of the same message.
    """

    message: int
    recipient: int | None = None
    link: int | None = None

    @property
    def ident(self) -> str:
        parts = [f"msg:{self.message}"]
        if self.recipient is not None:
            parts.append(f"r:{self.recipient}")
        if self.link is not None:
            parts.append(f"l:{self.link}")
        return ":".join(parts)

    @classmethod
    def parse(cls, ident: str) -> TrackingRef | None:
        m = re.fullmatch(r"msg:(\d{1,18})(?::r:(\d{1,18}))?(?::l:(\d{1,6}))?", ident or "")
        if not m:
            return None
        return cls(
            message=int(m[1]),
            recipient=int(m[2]) if m[2] else None,
            link=int(m[3]) if m[3] else None,
        )


def click_target(
    secret: bytes, token: str, lookup: Callable[[TrackingRef], str | None]
) -> tuple[TrackingRef, str] | None:
    """Resolve a click token to ``(ref, url)`` using only server-side data.

    ``lookup`` returns the URL stored for ``(ref.message, ref.link)`` when the mail
    was sent (``None`` if unknown). The stored URL is validated again at redirect
    time: a link stored before a validation rule existed must not become a
    redirect now. ``None`` means "do not redirect".
    """
    ident = verify(secret, KIND_CLICK, token)
    ref = TrackingRef.parse(ident) if ident else None
    if ref is None or ref.link is None:
        return None
    stored = lookup(ref)
    target = safe_redirect_target(stored) if stored else None
    return (ref, target) if target else None


# --- safe redirect targets --------------------------------------------------------------

_AUTHORITY = re.compile(r"^(https?)://([^/?#]*)(.*)$", re.IGNORECASE | re.DOTALL)
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_URL_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


def _normalize_host(host: str) -> str | None:
    if host.startswith("["):
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]", host)
        if not m:
            return None
        try:
            return f"[{ipaddress.IPv6Address(m[1]).compressed}]"
        except ValueError:
            return None
    if not host.isascii():
        # Letters, marks and digits only: look-alike dots and slashes (U+3002, U+2215,
        # fullwidth forms) would otherwise be folded by IDNA into a different host.
        if not all(c in ".-" or unicodedata.category(c)[0] in "LMN" for c in host):
            return None
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower().removesuffix(".")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return None
    return host


def safe_redirect_target(url: str | None) -> str | None:
    """``url`` normalized if it is a plain absolute http(s) URL, else ``None``.

    Refused: anything not starting with ``http://`` or ``https://`` (so ``//evil``,
    ``/\\evil``, ``https:evil``, ``javascript:``, ``data:``, relative paths), any
    whitespace, control or invisible format character (CR/LF header injection,
    bidi overrides, zero-width spaces), backslashes (browsers read them as ``/``),
    user-info (``https://good.com@evil.com`` goes to evil.com), empty or malformed
    hosts and bad ports. Accepted URLs come back with a lower-case scheme and host,
    the host in IDNA, default ports dropped and non-ASCII characters percent-encoded,
    so what is stored, shown and redirected to is the same string.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    for char in url:
        if char == "\\" or unicodedata.category(char)[0] in ("C", "Z"):
            return None
    m = _AUTHORITY.match(url)
    if not m:
        return None
    scheme, authority, rest = m[1].lower(), m[2], m[3]
    if not authority or "@" in authority:
        return None
    if authority.startswith("["):
        host, _, port = authority.partition("]")
        host += "]"
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
        if ":" in port:
            return None
    if port:
        if not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
            return None
        port = "" if int(port) == (443 if scheme == "https" else 80) else str(int(port))
    norm_host = _normalize_host(host)
    if norm_host is None:
        return None
    if not rest.startswith("/"):
        rest = "/" + rest
    rest = quote(_BAD_PERCENT.sub("%25", rest), safe=_URL_SAFE)
    return f"{scheme}://{norm_host}{':' + port if port else ''}{rest}"


# --- HTML instrumentation ---------------------------------------------------------------

# Schemes that run code or smuggle content when clicked; neutralised, never tracked.
_DANGEROUS_SCHEME = re.compile(r"^(javascript|vbscript|data|livescript):", re.IGNORECASE)
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")  # what browsers strip before reading a scheme


def _link_elements(root: etree._Element) -> Iterable[etree._Element]:
    for el in root.iter("a", "area"):
        if el.get("href") is not None:
            yield el


def instrument_html(
    html: str,
    *,
    pixel_url: str | None,
    link_url_for: Callable[[str, int], str] | None,
    tracked_prefixes: Sequence[str] = (),
) -> tuple[str, list[tuple[int, str]]]:
    """Rewrite http(s) links to click-tracking URLs and append the open pixel.

    Returns the new document and ``[(index, original_url), ...]`` for the links
    rewritten in this call; the caller stores them so that the click endpoint can
    find the target by (message, index). ``link_url_for(url, index)`` builds the
    tracking URL (it signs a :class:`TrackingRef` with that index).

    Left untouched: ``mailto:``, ``tel:``, ``#anchors``, relative and other-scheme
    links, links marked ``data-pm-notrack`` and links that are not a
    :func:`safe_redirect_target` (tracking them would make our redirect endpoint
    vouch for them). ``javascript:``/``vbscript:``/``data:`` links lose their
    ``href``: they have no place in an email and clients disagree on running them.

    Idempotent: links already rewritten (marked ``data-pm-link`` or starting with one
    of ``tracked_prefixes``) are kept, new links get the next free indexes, and the
    pixel is added once. Either part can be turned off with ``None``.

    The pixel is a plain 1×1 ``<img>`` with empty ``alt`` at the end of the body:
    no ``display:none`` or zero size, which some clients then never fetch, and no
    ``alt`` text that a client would show while images are blocked.
    """
    if pixel_url is not None and safe_redirect_target(pixel_url) is None:
        raise ValueError(f"pixel_url must be an absolute http(s) URL: {pixel_url!r}")
    root = pm_html.parse_document(html)
    used = {
        int(el.get(LINK_MARKER, "-1"))
        for el in _link_elements(root)
        if (el.get(LINK_MARKER) or "").isdigit()
    }
    next_index = max(used, default=-1) + 1
    links: list[tuple[int, str]] = []
    for el in _link_elements(root):
        href = (el.get("href") or "").strip()
        scheme_probe = _URL_NOISE.sub("", href)
        if _DANGEROUS_SCHEME.match(scheme_probe):
            del el.attrib["href"]
            continue
        if link_url_for is None or el.get(LINK_MARKER) is not None:
            continue
        if el.get(NO_TRACK_MARKER) is not None:
            continue
        if any(href.startswith(prefix) for prefix in tracked_prefixes if prefix):
            continue
        target = safe_redirect_target(href)
        if target is None:
            continue
        tracked = link_url_for(target, next_index)
        if safe_redirect_target(tracked) is None:
            raise ValueError(
                f"link_url_for returned a URL that is not absolute http(s): {tracked!r}"
            )
        el.set("href", tracked)
        el.set(LINK_MARKER, str(next_index))
        links.append((next_index, target))
        next_index += 1
    if pixel_url is not None and not any(True for _ in root.iter("img") if _.get(PIXEL_MARKER)):
        body = pm_html.body_of(root)
        etree.SubElement(
            body,
            "img",
            {
                "src": pixel_url,
                "width": "1",
                "height": "1",
                "alt": "",
                "border": "0",
                "style": "width:1px;height:1px;border:0",
                PIXEL_MARKER: "1",
            },
        )
    return pm_html.to_html(root), links


# --- machine events ---------------------------------------------------------------------

INSTANT_SECONDS = 10.0
"""A hit this soon after sending comes from a mail server or scanner on delivery:
no person receives, notices and opens an email within ten seconds."""
OPEN_BURST_WINDOW = 2.0
OPEN_BURST_COUNT = 3
CLICK_BURST_WINDOW = 5.0
CLICK_BURST_LINKS = 3

_NETS = ipaddress.ip_network
APPLE_NETWORKS = (_NETS("17.0.0.0/8"),)
"""Apple's own address block, where Mail Privacy Protection's preloads come from."""
MICROSOFT_MAIL_NETWORKS = (
    _NETS("40.92.0.0/15"),
    _NETS("40.107.0.0/16"),
    _NETS("52.100.0.0/15"),
    _NETS("52.102.0.0/16"),
    _NETS("52.103.0.0/17"),
    _NETS("104.47.0.0/17"),
)
"""Exchange Online Protection (published in ``spf.protection.outlook.com``): Safe
Links and link previews fetch from here on delivery."""
SCANNER_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_NETS("148.163.128.0/19"), "Proofpoint"),
    (_NETS("67.231.144.0/20"), "Proofpoint"),
    (_NETS("205.139.110.0/24"), "Mimecast"),
    (_NETS("207.211.30.0/24"), "Mimecast"),
    (_NETS("209.222.80.0/21"), "Barracuda"),
    (_NETS("64.235.144.0/20"), "Barracuda"),
)
"""Best-effort egress ranges of mail security gateways. Heuristics, not a registry:
extend them from the vendors' published lists as they change."""

_SCANNER_UA: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"barracuda", "Barracuda"),
        (r"proofpoint", "Proofpoint"),
        (r"mimecast", "Mimecast"),
        (r"safelinks|safe ?links", "Microsoft Safe Links"),
        (r"Chrome/42\.0\.2311\.135 Safari/537\.36 Edge/12\.246", "Microsoft Safe Links"),
        (r"trend ?micro", "Trend Micro"),
        (r"sophos", "Sophos"),
        (r"symantec|broadcom", "Symantec"),
        (r"forcepoint", "Forcepoint"),
        (r"ironport|cisco", "Cisco Secure Email"),
        (r"zscaler", "Zscaler"),
        (r"fortinet|fortiguard", "Fortinet"),
        (r"mcafee|trellix", "Trellix"),
    )
)
_BOT_UA = re.compile(
    r"bot\b|crawler|spider|curl/|wget/|python-requests|python-urllib|aiohttp|httpx|"
    r"go-http-client|java/|okhttp|apache-httpclient|libwww-perl|node-fetch|axios/|"
    r"headlesschrome|phantomjs|scrapy",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TrackingEvent:
    """One earlier hit on the same message (and recipient, when known)."""

    at: datetime
    kind: str  # KIND_OPEN or KIND_CLICK
    link: int | None = None
    ip: str = ""
    user_agent: str = ""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def _in(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    return ip is not None and any(ip.version == net.version and ip in net for net in nets)


def _common_checks(
    user_agent: str,
    ip: str,
    sent_at: datetime | None,
    event_at: datetime,
    method: str,
    sender_session: bool,
    what: str,
    instant_seconds: float,
) -> str:
    """Reasons shared by opens and clicks; ``""`` when none applies."""
    ua = (user_agent or "").strip()
    addr = _ip(ip)
    if (method or "GET").upper() == "HEAD":
        return (
            "A HEAD request only checks that the address answers; security scanners "
            "and proxies do that, people's mail apps do not."
        )
    if sender_session:
        return f"The sender {what} it in their own session, not a recipient."
    for pattern, name in _SCANNER_UA:
        if pattern.search(ua):
            return f"{name} (an email security scanner) checked it before delivery."
    for net, name in SCANNER_NETWORKS:
        if _in(addr, (net,)):
            return f"{name} (an email security scanner) checked it before delivery."
    if _in(addr, MICROSOFT_MAIL_NETWORKS):
        return "Microsoft's mail servers (Safe Links or link preview) fetched it on delivery."
    if sent_at is not None:
        delay = (_utc(event_at) - _utc(sent_at)).total_seconds()
        if delay < instant_seconds:
            seconds = max(0, round(delay))
            return (
                f"It happened {seconds} second{'s' if seconds != 1 else ''} after sending, "
                "before anyone could have read the email; mail servers and scanners do that."
            )
    if not ua:
        return "No mail app or browser identified itself; an automated program fetched it."
    if _BOT_UA.search(ua):
        return "An automated program (not a mail app or browser) fetched it."
    return ""


def classify_open(
    user_agent: str,
    ip: str,
    sent_at: datetime | None,
    event_at: datetime,
    method: str = "GET",
    sender_session: bool = False,
    recent_events: Sequence[TrackingEvent] = (),
    *,
    instant_seconds: float = INSTANT_SECONDS,
) -> tuple[bool, str]:
    """``(is_machine, reason)`` for a pixel hit; the reason is shown to the sender.

    Machine opens are recorded and labelled, never dropped: reports leave them out
    of rates by default, and the sender can still see that "something" fetched the
    image. Image proxies (Apple, Google, Yahoo) count as machine opens as the
    product asks; note that Gmail's proxy usually fetches when the recipient
    actually opens the mail, so this under-counts Gmail readers rather than
    over-counting anyone.
    """
    reason = _common_checks(
        user_agent, ip, sent_at, event_at, method, sender_session, "opened", instant_seconds
    )
    if reason:
        return True, reason
    ua = (user_agent or "").strip()
    addr = _ip(ip)
    if ua == "Mozilla/5.0" or _in(addr, APPLE_NETWORKS):
        return (
            True,
            "Apple Mail Privacy Protection preloads images, whether or not the email is read.",
        )
    if "googleimageproxy" in ua.lower() or "ggpht.com" in ua.lower():
        return True, (
            "Gmail loads images through its own proxy, which hides who opened the email and when."
        )
    if "yahoomailproxy" in ua.lower():
        return (
            True,
            "Yahoo Mail loads images through its own proxy, which hides who opened the email.",
        )
    event_at = _utc(event_at)
    burst = sum(
        1
        for e in recent_events
        if e.kind == KIND_OPEN and abs((_utc(e.at) - event_at).total_seconds()) <= OPEN_BURST_WINDOW
    )
    if burst + 1 >= OPEN_BURST_COUNT:
        return True, (
            f"The image was fetched {burst + 1} times within {OPEN_BURST_WINDOW:g} seconds; "
            "people do not open an email that fast."
        )
    return False, ""


def classify_click(
    user_agent: str,
    ip: str,
    sent_at: datetime | None,
    event_at: datetime,
    method: str = "GET",
    sender_session: bool = False,
    recent_events: Sequence[TrackingEvent] = (),
    link: int | None = None,
    *,
    instant_seconds: float = INSTANT_SECONDS,
) -> tuple[bool, str]:
    """``(is_machine, reason)`` for a click-redirect hit.

    Security scanners follow every link of a message within seconds of delivery,
    often with HEAD; several *different* links followed within
    :data:`CLICK_BURST_WINDOW` seconds is the signature even when the user agent
    looks like a browser. The redirect happens either way (a person behind a
    scanner-rewritten link must still arrive); only the label differs.
    """
    reason = _common_checks(
        user_agent, ip, sent_at, event_at, method, sender_session, "clicked", instant_seconds
    )
    if reason:
        return True, reason
    event_at = _utc(event_at)
    links: set[int | None] = {link} if link is not None else set()
    for e in recent_events:
        if (
            e.kind == KIND_CLICK
            and abs((_utc(e.at) - event_at).total_seconds()) <= CLICK_BURST_WINDOW
        ):
            links.add(e.link)
    links.discard(None)
    if len(links) >= CLICK_BURST_LINKS:
        return True, (
            f"{len(links)} different links were followed within {CLICK_BURST_WINDOW:g} "
            "seconds; security scanners check every link at once, people do not."
        )
    return False, ""
