"""Bounces: delivery status notifications coming back to the sender's own INBOX.

A group email copy leaves through the salesperson's SMTP, so its bounce arrives in
their mailbox like any other email. This module tells a bounce from ordinary mail
and reads what it says: which recipient failed, hard (5.x.x: the address is wrong,
stop writing to it) or soft (4.x.x: full mailbox, greylisting, try later), and the
Message-ID of the email that bounced, so the caller can find its copy.

Two shapes exist in the wild. The standard one (RFC 3464/6522):
``multipart/report; report-type=delivery-status`` with a ``message/delivery-status``
part of per-recipient fields and the original message or its headers. And plain-text
notices that predate it or ignore it (qmail, Exim, old Exchange, Yahoo, Domino...),
where the recipient, the code and the original headers are found in the text.

Nothing here raises on bad input: a message is a :class:`Bounce`, or ``None`` when
it is not a bounce (or too broken to say), and every path is covered by the corpus
in ``tests/fixtures/dsn``.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage

from pipemail.types import ParsedMessage

_REBUILT_REPORT = 'multipart/report; report-type=delivery-status; boundary="pm-dsn"'
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
HARD = "hard"
SOFT = "soft"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d\b")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_DAEMON = re.compile(
    r"mailer-daemon|postmaster|mail delivery (sub)?system|mail administrator|"
    r"microsoftexchange|internet mail delivery",
    re.IGNORECASE,
)
_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (has )?failed|"
    r"failure notice|returned mail|mail delivery failed|delivery failure|non.?delivery|"
    r"could not be delivered|warning: could not send|delayed mail|delivery delayed",
    re.IGNORECASE,
)
_AUTO_REPLY = re.compile(r"auto-?replied|auto-?generated|out of (the )?office", re.IGNORECASE)
_SOFT_WORDS = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|insufficient (system )?storage|"
    r"temporar|try again|deferred|delayed|will (continue|retry)|greylist",
    re.IGNORECASE,
)
# the lines after which text-only notices list the failed addresses
_TEXT_MARKERS = re.compile(
    r"following (address|recipient)|could not be delivered to|permanent error|"
    r"delivery to the following|unable to deliver your message|failed:|"
    r"delivery has failed to these recipients|was not delivered to|"
    r"message could not be delivered|delivery to .* failed",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FailedRecipient:
    email: str
    kind: str
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class Bounce:
    """What a bounce says. ``message_id`` is the bounced email's (``<id>``), if given."""

    recipients: tuple[FailedRecipient, ...]
    message_id: str | None
    shape: str
    """``rfc3464`` or ``text``: which reader understood it."""
    original_subject: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        """Hard when any recipient failed for good."""
        return HARD if any(r.kind == HARD for r in self.recipients) else SOFT


def _kind(status: str, text: str, action: str = "") -> str:
    if action.lower() == "delayed":
        return SOFT
    if status.startswith("4"):
        return SOFT
    if status.startswith("5"):
        return HARD
    return SOFT if _SOFT_WORDS.search(text or "") else HARD


def _clean_address(value: str) -> str:
    # "rfc822; anna@x.example" / "<anna@x.example>"
    value = value.split(";", 1)[-1].strip().strip("<>").strip()
    match = _ADDRESS.search(value)
    return match.group(0).lower() if match else ""


def _text_of(part: email.message.Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding is just unreadable text
        return ""
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _all_text(msg: email.message.Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("text/") or ctype.startswith("message/"):
            text = _text_of(part)
            if ctype == "text/html":
                text = re.sub(r"<[^>]+>", " ", text)
            chunks.append(text)
    return "\n".join(chunks)


def _embedded(part: email.message.Message) -> email.message.Message | None:
    """The message inside a ``message/rfc822`` part, if the parser found one."""
    if part.get_content_type() not in ("message/rfc822", "message/global"):
        return None
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
        return inner[0]
    return None


def _original_message_id(msg: email.message.Message, text: str) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        inner = _embedded(part)
        if inner is not None:
            value = inner.get("Message-ID")
            if value:
                found = re.search(r"<[^<>\s]+>", str(value))
                if found:
                    return found.group(0)
        if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            found = _MESSAGE_ID.search(_text_of(part))
            if found:
                return found.group(1)
    found = _MESSAGE_ID.search(text)
    return found.group(1) if found else None


def _original_subject(msg: email.message.Message, text: str) -> str:
    for part in msg.walk():
        inner = _embedded(part)
        if inner is not None and inner.get("Subject"):
            return str(inner.get("Subject"))
    found = re.search(r"^\s*Subject:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else ""


def _delivery_status_blocks(part: email.message.Message) -> list[email.message.Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, email.message.Message)]
    # some generators put the fields in one text blob: split on blank lines
    text = _text_of(part)
    blocks = [email.message_from_string(b.strip() + "\n") for b in re.split(r"\n\s*\n", text)]
    return [b for b in blocks if b.keys()]


def _from_report(msg: email.message.Message) -> list[FailedRecipient]:
    found = []
    for part in msg.walk():
        if part.get_content_type() not in _STATUS_TYPES:
            continue
        for block in _delivery_status_blocks(part):
            recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
            if not recipient:
                continue
            action = str(block.get("Action") or "").strip().lower()
            if action in ("delivered", "relayed", "expanded"):
                continue
            address = _clean_address(str(recipient))
            if not address:
                continue
            status_text = str(block.get("Status") or "")
            status_match = _STATUS.search(status_text)
            status = status_match.group(0) if status_match else ""
            diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
            if not status:
                status_match = _STATUS.search(diagnostic)
                status = status_match.group(0) if status_match else ""
            found.append(
                FailedRecipient(address, _kind(status, diagnostic, action), status, diagnostic)
            )
    return found


def _from_text(text: str, own: set[str]) -> list[FailedRecipient]:
    """Addresses a text notice lists as failed, with the code next to them."""
    marker = _TEXT_MARKERS.search(text)
    if not marker:
        return []
    # the original message's headers (quoted below the notice) name the sender and
    # other people: stop reading addresses where they start
    tail = text[marker.start() :]
    cut = re.search(
        r"^\s*(-{2,}.*(original|returned|undelivered) message|original message|"
        r"received:|return-path:|reporting-mta:|message-id:|-{2,}\s*below this line|"
        r"------ This is a copy of the message)",
        tail,
        re.IGNORECASE | re.MULTILINE,
    )
    body = tail[: cut.start()] if cut else tail[:4000]
    recipients: dict[str, FailedRecipient] = {}
    for match in _ADDRESS.finditer(body):
        address = match.group(0).lower()
        if address in own or address in recipients or _DAEMON.search(address):
            continue
        around = body[match.end() : match.end() + 400]
        status_match = _STATUS.search(around)
        status = status_match.group(0) if status_match else ""
        if not status:
            code = _SMTP_CODE.search(around)
            status = f"{code.group(1)}.0.0" if code else ""
        diagnostic = " ".join(around.split())[:300]
        recipients[address] = FailedRecipient(address, _kind(status, around), status, diagnostic)
    return list(recipients.values())


def looks_like_bounce(msg: email.message.Message) -> bool:
    """Whether ``msg`` is a delivery notice at all (not an auto-reply or a person)."""
    ctype = msg.get_content_type()
    report_type = str(msg.get_param("report-type", "") or "").lower()
    if ctype == "multipart/report" and report_type == "delivery-status":
        return True
    subject = str(msg.get("Subject") or "")
    sender = str(msg.get("From") or "")
    auto = str(msg.get("Auto-Submitted") or "").lower()
    if _AUTO_REPLY.search(auto) and not _DAEMON.search(sender):
        return False
    if msg.get("X-Failed-Recipients"):
        return True
    return bool(_DAEMON.search(sender) and _SUBJECT.search(subject)) or bool(
        _SUBJECT.search(subject)
        and str(msg.get("Return-Path") or "").strip() in ("<>", "")
        and _DAEMON.search(sender + " " + str(msg.get("Sender") or ""))
    )


def parse_bounce(raw: bytes, own_addresses: tuple[str, ...] = ()) -> Bounce | None:
    """The bounce in ``raw``, or ``None`` when it is not one (or says nothing usable).

    ``own_addresses`` (the mailbox's own) are never taken for a failed recipient.
    """
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        if not looks_like_bounce(msg):
            return None
        own = {a.lower() for a in own_addresses}
        text = _all_text(msg)
        recipients = _from_report(msg)
        shape = "rfc3464"
        warnings: list[str] = []
        if not recipients:
            shape = "text"
            recipients = _from_text(text, own)
            failed_header = str(msg.get("X-Failed-Recipients") or "")
            for address in _ADDRESS.findall(failed_header):
                if address.lower() not in {r.email for r in recipients}:
                    recipients.append(FailedRecipient(address.lower(), _kind("", text)))
        if not recipients:
            return None
        message_id = _original_message_id(msg, text)
        if message_id is None:
            warnings.append("the bounced email's Message-ID is not in the notice")
        return Bounce(
            recipients=tuple(recipients),
            message_id=message_id,
            shape=shape,
            original_subject=_original_subject(msg, text),
            warnings=tuple(warnings),
        )
    except Exception:  # noqa: BLE001 - a notice we cannot read is kept as ordinary mail
        return None


def _strip(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


def related_message_ids(bounce: Bounce, parsed: ParsedMessage) -> list[str]:
    """Message-IDs (without brackets) the bounce may be about: the one in the notice
    first, then its own In-Reply-To/References (Gmail and Exchange set them)."""
    ids = [bounce.message_id or "", parsed.in_reply_to, *parsed.references]
    return [i for i in dict.fromkeys(_strip(i) for i in ids) if i]


def parse_parsed(parsed: ParsedMessage, own_addresses: tuple[str, ...] = ()) -> Bounce | None:
    """:func:`parse_bounce` for a message the sync already parsed (it keeps the text,
    the headers that matter and the report parts as attachments, not the raw bytes).

    The report parts are put back into a ``multipart/report`` so that both readers
    see what they would have seen in the original.
    """
    try:
        if parsed.raw:
            return parse_bounce(parsed.raw, own_addresses)
        sender = str(parsed.sender or "")
        report_parts = [
            a
            for a in parsed.attachments
            if a.content_type in (*_STATUS_TYPES, "text/rfc822-headers", "message/rfc822")
        ]
        has_status = any(a.content_type in _STATUS_TYPES for a in report_parts)
        if not has_status and not (_DAEMON.search(sender) and _SUBJECT.search(parsed.subject)):
            return None
        rebuilt = EmailMessage(policy=email.policy.compat32)
        rebuilt["From"] = sender
        rebuilt["Subject"] = parsed.subject
        if parsed.auto_submitted:
            rebuilt["Auto-Submitted"] = parsed.auto_submitted
        if has_status:
            rebuilt["Content-Type"] = _REBUILT_REPORT
            chunks = ["--pm-dsn", "Content-Type: text/plain; charset=utf-8", "", parsed.text]
            for attachment in report_parts:
                content = attachment.content.decode("utf-8", "replace")
                chunks += ["--pm-dsn", f"Content-Type: {attachment.content_type}", "", content]
            chunks.append("--pm-dsn--")
            rebuilt.set_payload("\n".join(chunks))
        else:
            rebuilt["Content-Type"] = "text/plain; charset=utf-8"
            extra = "\n".join(a.content.decode("utf-8", "replace") for a in report_parts)
            rebuilt.set_payload(f"{parsed.text}\n{extra}")
        return parse_bounce(rebuilt.as_bytes(), own_addresses)
    except Exception:  # noqa: BLE001 - unreadable stays ordinary mail
        return None
