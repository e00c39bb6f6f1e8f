"""Outgoing mail as bytes: MIME structure, safe headers, reply threading, size limits.

A salesperson's email leaves through their own mailbox, so what we build must look
like what a good mail client builds: ``multipart/alternative`` with a text part that
says the same as the HTML, inline images in ``multipart/related`` next to the HTML
they belong to, non-ASCII names encoded so every client shows them, and threading
headers that put a reply in the right conversation on the recipient's side.

Every header value that came from a person (subject, display names, filenames, extra
headers) is checked for line breaks before anything is built: a subject of
``"Hi\\r\\nBcc: everyone@..."`` must be refused with a clear error, not quietly
turned into a second header.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

from pipemail import html as pm_html
from pipemail.errors import PipemailError, SizeLimitExceeded
from pipemail.types import Address

MB = 1024 * 1024
GMAIL_LIMIT = 25 * MB
OUTLOOK_LIMIT = 20 * MB
PROVIDER_LIMITS: Mapping[str, int] = {"gmail": GMAIL_LIMIT, "microsoft": OUTLOOK_LIMIT}
"""Per-provider message size limits, measured on the encoded message as the
providers do. Generic IMAP/SMTP accounts have a configurable limit instead."""

MAX_REFERENCES = 20
"""How many Message-IDs a reply's References keeps: the thread root plus the most
recent ones. Long threads otherwise grow a header of several kilobytes that some
servers truncate or reject; the root and the recent parents are what threading
algorithms (RFC 5256, Gmail, Outlook) actually use."""

# Text parts are quoted-printable: 7-bit safe for servers without 8BITMIME and no
# line ever exceeds the 998-octet limit, whatever the composer produced.
_POLICY = email_policy.SMTP
_POLICY_UTF8 = email_policy.SMTPUTF8

_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>|<[^<>\s]+>")
_BARE_MSGID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ":"
_MIMETYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
# Everything a parser somewhere treats as a line break (str.splitlines does for all of
# these), plus the other C0 controls and NUL that have no business in a header.
_FORBIDDEN_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")

_RESERVED_HEADERS = frozenset(
    {
        "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
        "in-reply-to", "references", "mime-version", "content-type",
        "content-transfer-encoding", "content-disposition", "content-id", "return-path",
        "received",
    }
)  # fmt: skip

_REPLY_PREFIX = re.compile(
    r"^\s*(re|aw|sv|vs|antw|rif|res|odp|ynt)\s*(\[\d+\]|\(\d+\))?\s*:", re.IGNORECASE
)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd|fw|tr|wg|rv|enc)\s*:", re.IGNORECASE)


class InvalidHeader(PipemailError):
    """A header value would break the message's structure (line break, control char)."""

    code = "invalid_header"


@dataclass
class OutgoingAttachment:
    """A file to send. With ``content_id`` it is an inline image of the HTML body
    (referenced as ``cid:<content_id>``) and travels in ``multipart/related``."""

    name: str
    mimetype: str
    content: bytes
    content_id: str = ""


@dataclass
class OutgoingMessage:
    """One email as the composer describes it; :func:`build_mime` turns it into bytes.

    ``text`` is derived from ``html`` when left ``None``; when ``html`` was
    instrumented for tracking, pass ``text=html_to_text(original_html)`` to keep the
    plain links in the text part (otherwise it carries the tracking URLs). ``bcc``
    addresses are only envelope recipients and never appear in the headers.
    ``message_id`` should be set by the caller and stored *before* sending: it is what
    makes a retry recognizable (see :func:`pipemail.smtp.send_with_retry`).
    """

    sender: Address
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    subject: str = ""
    html: str = ""
    text: str | None = None
    attachments: list[OutgoingAttachment] = field(default_factory=list)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers such as ``List-Unsubscribe`` / ``List-Unsubscribe-Post``."""
    message_id: str = ""
    mark_rtl: bool = True
    """Set ``dir="rtl"`` where the text is right-to-left (see :mod:`pipemail.html`)."""

    @property
    def recipients(self) -> list[str]:
        """Envelope recipients: To, Cc and Bcc, each address once."""
        seen: dict[str, str] = {}
        for addr in [*self.to, *self.cc, *self.bcc]:
            seen.setdefault(addr.email.lower(), addr.email)
        return list(seen.values())


# --- header safety ----------------------------------------------------------------------


def check_header_value(field_name: str, value: str) -> str:
    """Return ``value`` or raise :class:`InvalidHeader` if it could inject headers.

    ``field_name`` is the human name used in the error ("subject", "recipient name").
    Refused rather than stripped: silently removing a line break would send
    something other than what the person wrote, and an injection attempt deserves
    to be visible.
    """
    if not isinstance(value, str):
        raise InvalidHeader(
            f"The {field_name} must be text.", detail=f"{field_name}: {type(value).__name__}"
        )
    if _FORBIDDEN_IN_HEADER.search(value):
        raise InvalidHeader(
            f"The {field_name} contains a line break or a control character, which an "
            "email header cannot hold. Remove it and try again.",
            detail=f"{field_name}: {value!r}",
        )
    return value


def _idna_domain(domain: str, field_name: str) -> str:
    check_header_value(field_name, domain)
    try:
        ascii_domain = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidHeader(f"The {field_name} {domain!r} is not a valid domain name.")
    if not ascii_domain or not re.fullmatch(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]", ascii_domain):
        raise InvalidHeader(f"The {field_name} {domain!r} is not a valid domain name.")
    return ascii_domain


def _header_address(addr: Address, role: str) -> HeaderAddress:
    check_header_value(f"{role} name", addr.name)
    check_header_value(f"{role} address", addr.email)
    local, at, domain = addr.email.strip().rpartition("@")
    if not at or not local or not domain or any(c in local for c in ' <>(),;:"\\'):
        raise InvalidHeader(
            f"{addr.email!r} is not a valid email address ({role}).", detail=addr.email
        )
    return HeaderAddress(
        display_name=addr.name.strip(),
        username=local,
        domain=_idna_domain(domain, f"{role} address domain"),
    )


def normalize_message_id(value: str) -> str:
    """``<id@domain>`` form of a Message-ID given with or without brackets."""
    check_header_value("Message-ID", value)
    value = value.strip()
    if _BARE_MSGID.match(value):
        value = f"<{value}>"
    if not re.fullmatch(r"<[^<>\s]+>", value):
        raise InvalidHeader(f"{value!r} is not a valid Message-ID.", detail=value)
    return value


def make_message_id(domain: str) -> str:
    """A new globally unique Message-ID on ``domain`` (the sender's domain).

    Random, not time-based: nothing about the sender's machine or timing leaks, and
    two workers can never collide.
    """
    return f"<{uuid.uuid4().hex}@{_idna_domain(domain, 'Message-ID domain')}>"


def parse_message_ids(value: str | Sequence[str]) -> list[str]:
    """Message-IDs found in a References/In-Reply-To value (or a list of them), in order."""
    chunks = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for chunk in chunks:
        ids = _MSGID.findall(chunk)
        if not ids and _BARE_MSGID.match(chunk.strip()):
            ids = [f"<{chunk.strip()}>"]
        found.extend(ids)
    return found


# --- replies and forwards ---------------------------------------------------------------


def reply_headers(
    parent_message_id: str,
    parent_references: str | Sequence[str] = (),
    parent_in_reply_to: str = "",
) -> tuple[str, list[str]]:
    """``(In-Reply-To, References)`` for a reply, per RFC 5322 §3.6.4.

    References = the parent's References (or, lacking those, its single In-Reply-To)
    followed by the parent's Message-ID; duplicates are dropped and the list is
    capped at :data:`MAX_REFERENCES`, keeping the thread's root and its most recent
    ancestors.
    """
    parent = normalize_message_id(parent_message_id)
    refs = parse_message_ids(parent_references)
    if not refs and parent_in_reply_to:
        in_reply = parse_message_ids(parent_in_reply_to)
        if len(in_reply) == 1:
            refs = in_reply
    ordered: list[str] = []
    for ref in [*refs, parent]:
        if ref not in ordered:
            ordered.append(ref)
    if len(ordered) > MAX_REFERENCES:
        ordered = [ordered[0], *ordered[-(MAX_REFERENCES - 1) :]]
    return parent, ordered


def reply_subject(subject: str) -> str:
    """``Re: subject``, without stacking prefixes (``Re: Re:``, ``AW: ...`` kept as is)."""
    subject = (subject or "").strip()
    if _REPLY_PREFIX.match(subject):
        return subject
    return f"Re: {subject}"


def forward_subject(subject: str) -> str:
    """``Fwd: subject``, unless it already carries a forward prefix (``Fw:``, ``TR:``...)."""
    subject = (subject or "").strip()
    if _FORWARD_PREFIX.match(subject):
        return subject
    return f"Fwd: {subject}"


# --- size limits ------------------------------------------------------------------------


def base64_size(n: int) -> int:
    """Bytes that ``n`` bytes take once base64-encoded in 76-character lines + CRLF."""
    chars = 4 * math.ceil(n / 3)
    return chars + 2 * math.ceil(chars / 76)


_PART_OVERHEAD = 400  # MIME headers and boundary of one attachment part, generously


def estimate_size(attachments: Sequence[OutgoingAttachment], body_bytes: int = 0) -> int:
    """Encoded size of a message with these attachments, before building it.

    Lets the composer warn while the user is still attaching files; the final check
    runs on the real bytes (:func:`check_size` with ``len(raw)``).
    """
    return body_bytes + sum(base64_size(len(a.content)) + _PART_OVERHEAD for a in attachments)


def _mb(n: float) -> str:
    return f"{n:.1f}".rstrip("0").rstrip(".")


def check_size(
    raw_len_or_attachments: int | Sequence[OutgoingAttachment],
    limit_bytes: int,
    provider_name: str,
) -> int:
    """Raise :class:`SizeLimitExceeded` when the encoded message exceeds the limit.

    Takes the length of the built message, or the attachments (then estimated with
    base64's 4/3 growth, which is how providers count). Returns the size checked.
    The size is rounded *up* in the message so that "25.0 MB; at most 25 MB" can
    never be shown for a refusal.
    """
    if isinstance(raw_len_or_attachments, int):
        size = raw_len_or_attachments
    else:
        size = estimate_size(raw_len_or_attachments)
    if limit_bytes > 0 and size > limit_bytes:
        shown = math.ceil(size * 10 / MB) / 10
        raise SizeLimitExceeded(
            f"The attachments make this email {shown:.1f} MB; "
            f"{provider_name} accepts at most {_mb(limit_bytes / MB)} MB.",
            detail=f"encoded size {size} bytes > limit {limit_bytes} bytes",
        )
    return size


# --- MIME building ----------------------------------------------------------------------


def _text_part(
    content: str, subtype: str, policy: email_policy.EmailPolicy[EmailMessage]
) -> MIMEPart:
    part = MIMEPart(policy=policy)
    part.set_content(content, subtype=subtype, charset="utf-8", cte="quoted-printable")
    return part


def _multipart(
    subtype: str, parts: Sequence[MIMEPart], policy: email_policy.EmailPolicy[EmailMessage]
) -> MIMEPart:
    container = MIMEPart(policy=policy)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def _file_part(att: OutgoingAttachment, policy: email_policy.EmailPolicy[EmailMessage]) -> MIMEPart:
    name = check_header_value("attachment name", att.name)
    # A path in a filename is at best noise and at worst a traversal attempt against a
    # careless client: only the last component is sent.
    name = re.split(r"[\\/]", name)[-1].strip() or "attachment"
    mimetype = att.mimetype if _MIMETYPE.match(att.mimetype or "") else "application/octet-stream"
    maintype, subtype = mimetype.lower().split("/", 1)
    part = MIMEPart(policy=policy)
    if att.content_id:
        cid = check_header_value("image id", att.content_id).strip().strip("<>")
        part.set_content(
            att.content, maintype=maintype, subtype=subtype, disposition="inline",
            filename=name, cid=f"<{cid}>", params={"name": name},
        )  # fmt: skip
    else:
        part.set_content(
            att.content, maintype=maintype, subtype=subtype, disposition="attachment",
            filename=name, params={"name": name},
        )  # fmt: skip
    return part


def _needs_smtputf8(addresses: Sequence[Address]) -> bool:
    return any(not a.email.rpartition("@")[0].isascii() for a in addresses)


def build_mime(
    msg: OutgoingMessage, *, domain: str, now: datetime | None = None, draft: bool = False
) -> tuple[bytes, str]:
    """Build the message; returns ``(raw bytes with CRLF line ends, Message-ID)``.

    Structure: ``multipart/mixed`` (only when there are attachments) holding
    ``multipart/alternative`` of text/plain and text/html, the HTML wrapped with its
    inline images in ``multipart/related``. Display names and the subject are RFC 2047
    encoded, filenames RFC 2231, text parts quoted-printable. ``domain`` names the
    Message-ID's right-hand side when the message has none yet.

    Raises :class:`InvalidHeader` for any header value that could inject headers,
    before anything is built.
    """
    all_addresses = [msg.sender, *msg.to, *msg.cc, *msg.bcc, *msg.reply_to]
    policy = _POLICY_UTF8 if _needs_smtputf8(all_addresses) else _POLICY
    subject = check_header_value("subject", msg.subject or "")
    sender = _header_address(msg.sender, "sender")
    to = [_header_address(a, "recipient") for a in msg.to]
    cc = [_header_address(a, "recipient") for a in msg.cc]
    for a in msg.bcc:
        _header_address(a, "recipient")
    reply_to = [_header_address(a, "reply-to") for a in msg.reply_to]
    if not msg.recipients and not draft:
        # a draft (saved in the mailbox's Drafts folder) may not have one yet
        raise InvalidHeader("The email has no recipient.")
    message_id = normalize_message_id(msg.message_id) if msg.message_id else make_message_id(domain)
    in_reply_to = normalize_message_id(msg.in_reply_to) if msg.in_reply_to else ""
    references = [normalize_message_id(r) for r in msg.references]
    extra: list[tuple[str, str]] = []
    for name, value in msg.headers.items():
        if not _HEADER_NAME.match(name or ""):
            raise InvalidHeader(f"{name!r} is not a valid header name.", detail=repr(name))
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidHeader(
                f"The {name} header is set from the email's own fields, not as an extra header.",
                detail=name,
            )
        extra.append((name, check_header_value(f"{name} header", value)))

    html = msg.html or ""
    if html and msg.mark_rtl:
        html = pm_html.mark_direction(html)
    text = msg.text if msg.text is not None else (pm_html.html_to_text(msg.html) if html else "")
    # Inline images only make sense next to HTML; without it they are plain files.
    inline = [a for a in msg.attachments if a.content_id] if html else []
    files = [a for a in msg.attachments if not (html and a.content_id)]

    if html:
        html_part = _text_part(html, "html", policy)
        if inline:
            html_part = _multipart(
                "related", [html_part, *(_file_part(a, policy) for a in inline)], policy
            )
        body = _multipart("alternative", [_text_part(text, "plain", policy), html_part], policy)
    else:
        body = _text_part(text, "plain", policy)
    if files:
        body = _multipart("mixed", [body, *(_file_part(a, policy) for a in files)], policy)

    root = EmailMessage(policy=policy)
    root["From"] = sender
    if to:
        root["To"] = to
    if cc:
        root["Cc"] = cc
    if reply_to:
        root["Reply-To"] = reply_to
    root["Subject"] = subject
    root["Date"] = format_datetime(now or datetime.now(timezone.utc))
    root["Message-ID"] = message_id
    if in_reply_to:
        root["In-Reply-To"] = in_reply_to
    if references:
        root["References"] = " ".join(references)
    for name, value in extra:
        root[name] = value
    root["MIME-Version"] = "1.0"
    for name, value in body.items():
        root[name] = value
    root.set_payload(body.get_payload())
    return root.as_bytes(policy=policy), message_id
