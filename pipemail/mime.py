"""One parser for every incoming message; it never raises.

Why stdlib ``email`` with ``policy.compat32`` and our own header decoding, rather than
``policy.default``: measured on the corpus, ``policy.default`` spends ~0.5 s on the
210 KB header of ``flanker/long-header.eml`` and ~9x longer than compat32 to parse
``flanker/enclosed-endless.eml`` (it builds structured header objects while parsing);
it also turns raw UTF-8 addresses into lone surrogates and raises on some broken
headers. compat32 keeps header values raw (8-bit bytes as ``surrogateescape``), so the
message is parsed once, cheaply, and we decode exactly the headers we need:

* 8-bit header bytes: UTF-8 (RFC 6532), else cp1252, else latin-1;
* RFC 2047 encoded-words, tolerating the usual breakage (bad padding, spaces inside,
  unknown charsets, a multibyte character split across two words);
* addresses: ``email.utils.getaddresses`` on the raw value, display names decoded
  afterwards, garbage skipped.

**Address normalisation**: the whole address is lower-cased; the domain is stored as
ASCII (IDNA A-labels, ``xn--``) when it converts, else lower-case Unicode as given; the
local part stays Unicode (RFC 6532). Lower-casing the local part is not strictly RFC
correct but is what every CRM match needs.

Anything the parser cannot understand ends in ``parse_error`` (plain words) with
``raw`` kept, so the caller stores the message anyway.
"""

from __future__ import annotations

import binascii
import email
import email.parser
import email.policy
import email.utils
import hashlib
import mimetypes
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from email.message import Message

from pipemail.text import (
    clean_text,
    collapse_whitespace,
    decode_bytes,
    detect_direction,
    html_to_text,
    make_snippet,
    normalize_subject,
)
from pipemail.types import Address, Attachment, ParsedMessage

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "MAX_REFERENCES",
    "decode_header_value",
    "detect_direction",
    "message_key",
    "normalize_address",
    "normalize_subject",
    "parse_addresses",
    "parse_message",
    "sanitize_filename",
]

MAX_DEPTH = 20
"""Multipart nesting we descend into; deeper parts stay in ``raw`` (error recorded)."""
MAX_PARTS = 2000
"""MIME parts we look at per message; the rest stay in ``raw`` (error recorded)."""
MAX_REFERENCES = 50
"""References kept: the root plus the newest ones, enough for any threading decision."""
MAX_ID_LENGTH = 995
SYNTH_DOMAIN = "pipemail.invalid"

_POLICY = email.policy.compat32

# --------------------------------------------------------------------- public API


def parse_message(
    raw: bytes,
    *,
    internaldate: datetime | None = None,
    keep_attachment_content: bool = True,
) -> ParsedMessage:
    """Normalise one raw RFC 5322 message. Never raises.

    ``internaldate`` (the server's arrival time) is used when the Date header is
    missing or unreadable. With ``keep_attachment_content=False`` attachments keep
    their name, type and size but not their bytes (for listings and benchmarks).
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raw = str(raw).encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    content_hash = hashlib.sha256(raw).hexdigest()
    try:
        return _Parser(raw, content_hash, internaldate, keep_attachment_content).run()
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return _salvage(raw, content_hash, internaldate, exc)


def message_key(parsed: ParsedMessage, gm_msgid: int | str | None = None) -> str:
    """Identity of a message within one mailbox, stable across folders and UIDVALIDITY.

    Gmail's X-GM-MSGID when we have it; else a short hash of Message-ID and content,
    so two different mails reusing one Message-ID stay two, and the same mail seen in
    two folders is one.
    """
    if gm_msgid not in (None, "", 0):
        return f"gm:{gm_msgid}"
    digest = hashlib.sha256(
        f"{parsed.message_id}\x00{parsed.content_hash}".encode("utf-8", "surrogatepass")
    ).hexdigest()
    return f"h:{digest[:32]}"


# --------------------------------------------------------------------- headers

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CRLF = re.compile(r"[\r\n]+")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _fix_8bit(value: str) -> str:
    """Undo compat32's ``surrogateescape`` on 8-bit header bytes: UTF-8, else cp1252."""
    if not _SURROGATE.search(value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return clean_text(value)
    return decode_bytes(data, "utf-8")


def _unfold(value: str) -> str:
    return _CRLF.sub(" ", _FOLD.sub("", value))


def _decode_word_payload(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            data = text.strip().encode("ascii", "ignore")
            data = data.rstrip(b"=")
            if len(data) % 4 == 1:
                data = data[:-1]
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        return binascii.a2b_qp(text.encode("ascii", "ignore"), header=True)
    except (binascii.Error, ValueError):
        return None


def decode_header_value(value: str | None) -> str:
    """A raw header value as readable text: 8-bit fixed, unfolded, RFC 2047 decoded.

    Adjacent encoded-words of one charset are joined as bytes before decoding, because
    senders split UTF-8 / Shift_JIS characters across words.
    """
    if not value:
        return ""
    value = _unfold(_fix_8bit(str(value)))
    if "=?" not in value:
        return clean_text(value)
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_cs = ""
    pos = 0
    last_was_word = False

    def flush() -> None:
        nonlocal pending, pending_cs
        if pending:
            out.append(decode_bytes(bytes(pending), pending_cs))
        pending = bytearray()
        pending_cs = ""

    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        charset = match.group(1).split("*", 1)[0]
        payload = _decode_word_payload(match.group(2), match.group(3))
        if payload is None:
            flush()
            out.append(gap + match.group(0))
            last_was_word = False
            pos = match.end()
            continue
        if not (last_was_word and not gap.strip()):
            flush()
            out.append(gap)
        elif pending and charset.lower() != pending_cs.lower():
            flush()
        pending.extend(payload)
        pending_cs = charset
        last_was_word = True
        pos = match.end()
    flush()
    out.append(value[pos:])
    return clean_text("".join(out))


_BAD_LOCAL = re.compile(r"[\s<>()\[\]\\,;:\"@\x00-\x1f\x7f]")
_BAD_DOMAIN = re.compile(r"[\s<>()\\,;:\"@\x00-\x1f\x7f]")


def normalize_address(addr: str) -> str:
    """``Local@Domain`` → ``local@domain`` (IDNA domain as ASCII); ``""`` if unusable."""
    addr = addr.strip().strip("<>").strip()
    if addr.lower().startswith("mailto:"):
        addr = addr[7:]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or len(addr) > 320:
        return ""
    domain = domain.rstrip(".").lower()
    local = local.lower()
    if local.startswith('"') and local.endswith('"') and len(local) > 1:
        inner = local[1:-1]
        if not _BAD_LOCAL.search(inner):
            local = inner
    if _BAD_LOCAL.search(local) or _BAD_DOMAIN.search(domain) or not domain:
        return ""
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            domain = unicodedata.normalize("NFC", domain)
    if domain.startswith(".") or ".." in domain:
        return ""
    return f"{local}@{domain}"


def parse_addresses(values: Iterable[str]) -> list[Address]:
    """Addresses from raw header values; garbage entries are skipped, never fatal."""
    joined = [_unfold(_fix_8bit(v)) for v in values if v]
    if not joined:
        return []
    try:
        pairs = email.utils.getaddresses(joined)
    except Exception:  # noqa: BLE001 - a parser bug on one header must not lose the mail
        pairs = []
    result: list[Address] = []
    seen: set[str] = set()
    for name, addr in pairs:
        mail = normalize_address(addr)
        if not mail or mail in seen:
            continue
        seen.add(mail)
        display = collapse_whitespace(decode_header_value(name)) if name else ""
        if display.lower() == mail:
            display = ""
        result.append(Address(email=mail, name=display))
    return result


_ID_TOKEN = re.compile(r"<([^<>]{1,2000})>")
_WS = re.compile(r"\s+")


def _clean_id(token: str) -> str:
    token = _WS.sub("", token).strip("<>")
    return clean_text(token[:MAX_ID_LENGTH])


def _message_ids(value: str) -> list[str]:
    """Every ``<...>`` token in order, deduplicated; bare ``x@y`` words as a fallback."""
    value = _fix_8bit(value)
    tokens = [_clean_id(t) for t in _ID_TOKEN.findall(value)]
    if not tokens:
        tokens = [_clean_id(w) for w in value.split() if "@" in w and len(w) > 2]
    seen: set[str] = set()
    out: list[str] = []
    for tok in tokens:
        if tok and tok not in seen:
            seen.add(tok)
            out.append(tok)
    return out


def _parse_date(value: str | None, fallback: datetime | None) -> datetime | None:
    if value:
        try:
            parts = email.utils.parsedate_tz(_unfold(_fix_8bit(value)))
        except Exception:  # noqa: BLE001 - stdlib date parser raises on odd input
            parts = None
        if parts is not None:
            try:
                stamp = email.utils.mktime_tz(parts) if parts[9] is not None else None
                if stamp is None:
                    naive = datetime(*parts[:6])  # no zone given: assume UTC
                    result = naive.replace(tzinfo=timezone.utc)
                else:
                    result = datetime.fromtimestamp(stamp, tz=timezone.utc)
                if 1970 <= result.year <= 2200:
                    return result
            except (ValueError, OverflowError, OSError, TypeError):
                pass
    if fallback is not None:
        if fallback.tzinfo is None:
            return fallback.replace(tzinfo=timezone.utc)
        return fallback.astimezone(timezone.utc)
    return None


# --------------------------------------------------------------------- automation

_NOREPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster)(?:[-+_.].*)?$"
)
_REPORT_TYPES = frozenset(
    {
        "multipart/report",
        "message/delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
    }
)
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")


def _first_token(value: str) -> str:
    value = collapse_whitespace(decode_header_value(value)).lower()
    return value.split(";", 1)[0].split()[0] if value.split() else ""


# --------------------------------------------------------------------- parser


class _ShallowMessage(Message):
    """Message class for parsing only: ``message/*`` parts stay unparsed bytes.

    Enclosed messages (forwards, bounces) are stored as ``.eml`` attachments, not read,
    so letting the feed parser build them part by part is wasted work (``enclosed-
    endless.eml``: 0.1 s to parse, 0.4 s more to serialise back) and its recursion is
    the main deep-nesting risk. The parser asks ``get_content_maintype()`` /
    ``get_content_type()`` to decide; everything in this module reads the real type
    through :func:`_ctype`.
    """

    def get_content_type(self) -> str:
        ctype = Message.get_content_type(self)
        return "application/octet-stream" if ctype.startswith("message/") else ctype


def _ctype(part: Message) -> str:
    return Message.get_content_type(part)


class _Parser:
    """One parse; holds what the walk collects so no part is visited twice."""

    def __init__(
        self,
        raw: bytes,
        content_hash: str,
        internaldate: datetime | None,
        keep_content: bool,
    ) -> None:
        self.raw = raw
        self.content_hash = content_hash
        self.internaldate = internaldate
        self.keep_content = keep_content
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.attachments: list[Attachment] = []
        self.errors: list[str] = []
        self.headers: dict[str, list[str]] = {}
        self.is_report = False

    # ------------------------------------------------------------- driver
    def run(self) -> ParsedMessage:
        msg = email.message_from_bytes(self.raw, _class=_ShallowMessage, policy=_POLICY)
        for name, value in msg.raw_items():
            self.headers.setdefault(name.strip().lower(), []).append(value)
        parsed = self._headers_to_parsed()
        try:
            self._walk(msg)
        except RecursionError:
            self.errors.append("The message is nested too deeply to read every part")
        self._finish(parsed)
        return parsed

    def _h(self, name: str) -> str:
        values = self.headers.get(name)
        return values[0] if values else ""

    def _headers_to_parsed(self) -> ParsedMessage:
        raw_id = self._h("message-id")
        ids = _message_ids(raw_id) if raw_id else []
        synthesized = not ids
        message_id = ids[0] if ids else f"{self.content_hash[:32]}@{SYNTH_DOMAIN}"

        in_reply = _message_ids(self._h("in-reply-to")) if self._h("in-reply-to") else []
        refs: list[str] = []
        for value in self.headers.get("references", ()):
            refs.extend(_message_ids(value))
        refs = [r for r in dict.fromkeys(refs) if r != message_id]
        if len(refs) > MAX_REFERENCES:
            refs = [refs[0], *refs[-(MAX_REFERENCES - 1) :]]
        in_reply_to = next((i for i in in_reply if i != message_id), "")

        senders = parse_addresses(self.headers.get("from", ())) or parse_addresses(
            self.headers.get("sender", ())
        )
        return ParsedMessage(
            message_id=message_id,
            content_hash=self.content_hash,
            raw_size=len(self.raw),
            message_id_synthesized=synthesized,
            in_reply_to=in_reply_to,
            references=refs,
            subject=collapse_whitespace(decode_header_value(self._h("subject"))),
            sender=senders[0] if senders else None,
            to=parse_addresses(self.headers.get("to", ())),
            cc=parse_addresses(self.headers.get("cc", ())),
            bcc=parse_addresses(self.headers.get("bcc", ())),
            reply_to=parse_addresses(self.headers.get("reply-to", ())),
            date=_parse_date(self._h("date"), self.internaldate),
            list_id=collapse_whitespace(decode_header_value(self._h("list-id")))[:500],
            list_unsubscribe=collapse_whitespace(decode_header_value(self._h("list-unsubscribe")))[
                :2000
            ],
            precedence=_first_token(self._h("precedence")),
            auto_submitted=_first_token(self._h("auto-submitted")),
        )

    # ------------------------------------------------------------- parts
    def _walk(self, root: Message) -> None:
        """Depth-first, iterative (no recursion), bounded by MAX_DEPTH and MAX_PARTS."""
        stack: list[tuple[Message, int]] = [(root, 0)]
        count = 0
        while stack:
            part, depth = stack.pop()
            count += 1
            if count > MAX_PARTS:
                self.errors.append(
                    f"The message has more than {MAX_PARTS} parts; the rest are kept "
                    "only in the original"
                )
                return
            try:
                ctype = _ctype(part)
                payload = part.get_payload()
                if ctype in _REPORT_TYPES:
                    self.is_report = True
                if isinstance(payload, list) and ctype.startswith("multipart/"):
                    if depth >= MAX_DEPTH:
                        self.errors.append(
                            f"Parts nested deeper than {MAX_DEPTH} levels are kept only in "
                            "the original"
                        )
                        continue
                    stack.extend((sub, depth + 1) for sub in reversed(payload))
                    continue
                self._leaf(part, ctype, payload)
            except RecursionError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad part must not lose the rest
                self.errors.append(f"One part could not be read ({_describe(exc)})")

    def _leaf(self, part: Message, ctype: str, payload: object) -> None:
        _fix_part_headers(part)
        disposition = (part.get_content_disposition() or "").lower()
        filename = self._filename(part)
        maintype = ctype.partition("/")[0]
        is_body_type = ctype in ("text/plain", "text/html") or (
            maintype == "multipart"  # a multipart without usable boundary: show its text
        )
        if is_body_type and disposition != "attachment" and not filename:
            data = _payload_bytes(part, payload)
            text = decode_bytes(data, _charset(part)) if data else ""
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if ctype == "text/html":
                self.htmls.append(text)
            else:
                self.texts.append(text)
            return
        data = _payload_bytes(part, payload)
        if ctype == "message/rfc822" and not filename:
            filename = _eml_name(data)
        content_id = _clean_id(part.get("content-id", "") or "") if part.get("content-id") else ""
        if not filename:
            filename = _default_name(ctype)
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=ctype,
                size=len(data),
                content=data if self.keep_content else b"",
                content_id=content_id,
                inline=disposition == "inline"
                or (disposition != "attachment" and bool(content_id)),
            )
        )

    def _filename(self, part: Message) -> str:
        name = None
        try:
            name = part.get_filename()
        except Exception:  # noqa: BLE001 - RFC 2231 decoding bugs: try the raw param
            name = None
        if not name:
            try:
                name = part.get_param("name")
                if isinstance(name, tuple):
                    name = email.utils.collapse_rfc2231_value(name)
            except Exception:  # noqa: BLE001
                name = None
        if not name:
            return ""
        return sanitize_filename(decode_header_value(str(name)))

    # ------------------------------------------------------------- result
    def _finish(self, parsed: ParsedMessage) -> None:
        text = "\n\n".join(t for t in self.texts if t.strip())
        html = "\n".join(h for h in self.htmls if h.strip())
        if not text and html:
            text = html_to_text(html)
        parsed.text = text
        parsed.html = html
        parsed.snippet = make_snippet(text)
        parsed.attachments = self.attachments
        parsed.is_automated = self._is_automated(parsed)
        if not (text or html or self.attachments) and _body_has_content(self.raw):
            self.errors.append("No readable text or attachment was found in the body")
        if self.errors:
            parsed.parse_error = "; ".join(dict.fromkeys(self.errors))[:1000]
            parsed.raw = self.raw

    def _is_automated(self, parsed: ParsedMessage) -> bool:
        """Sent by a machine rather than a person (see the module notes on why each).

        Counted: Auto-Submitted other than "no" (RFC 3834), Precedence bulk/list/junk,
        multipart/report (bounces, read receipts), an empty Return-Path (RFC 5321
        §4.5.5: only notifications use the null sender), X-Autoreply / X-Autorespond /
        X-Auto-Response-Suppress, and senders whose local part is mailer-daemon,
        postmaster, noreply/no-reply or donotreply. Not counted: List-Id or
        List-Unsubscribe alone (a person posting to a list is still a person;
        ``linking.should_autolink`` refuses those separately).
        """
        if parsed.auto_submitted and parsed.auto_submitted != "no":
            return True
        if parsed.precedence in ("bulk", "list", "junk"):
            return True
        if self.is_report:
            return True
        ret = self.headers.get("return-path")
        if ret and ret[-1].strip() in ("<>", "< >"):
            return True
        for name in _AUTO_HEADERS:
            if name in self.headers:
                return True
        if parsed.sender is not None:
            local = parsed.sender.email.rpartition("@")[0]
            if _NOREPLY.match(local):
                return True
        return False


# --------------------------------------------------------------------- part helpers


def _payload_bytes(part: Message, payload: object) -> bytes:
    if isinstance(payload, list):
        # Only a multipart can hold a list here (message/* is parsed shallow); its
        # parts were walked, this branch is for a multipart that reached a leaf.
        return b""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - fall back to the undecoded body
        data = None
    if data is None:
        if isinstance(payload, bytes):
            data = payload
        else:
            data = str(payload or "").encode("utf-8", "surrogateescape")
    return bytes(data)


def _eml_name(data: bytes) -> str:
    """``<enclosed subject>.eml``, reading only the enclosed message's header block."""
    subject = ""
    try:
        end = min((i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0), default=-1)
        head = data[: end if end >= 0 else 65536][:65536]
        sub = email.parser.BytesHeaderParser(policy=_POLICY).parsebytes(head)
        values = [v for k, v in sub.raw_items() if k.lower() == "subject"]
        if values:
            subject = collapse_whitespace(decode_header_value(values[0]))
    except Exception:  # noqa: BLE001 - a name is a nicety
        subject = ""
    base = sanitize_filename(subject)[:120].rstrip(". ") if subject else ""
    return f"{base or 'message'}.eml"


def _fix_part_headers(part: Message) -> None:
    """Give the MIME headers of a part real text where they carry 8-bit bytes.

    compat32 hands surrogate-escaped values to ``get_param``/``get_filename`` as
    ``Header`` objects whose ``str`` is U+FFFD, so a raw UTF-8 file name would be lost.
    """
    for name, value in part.raw_items():
        if name.lower() in ("content-type", "content-disposition") and _SURROGATE.search(value):
            part.replace_header(name, _fix_8bit(value))


def _default_name(ctype: str) -> str:
    if ctype == "message/rfc822":
        return "message.eml"
    if ctype == "message/delivery-status":
        return "delivery-status.txt"
    if ctype == "text/rfc822-headers":
        return "headers.txt"
    ext = mimetypes.guess_extension(ctype, strict=False) or ".bin"
    return f"attachment{ext}"


_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def sanitize_filename(name: str) -> str:
    """A file name safe to store and offer for download.

    Keeps only the last path component, drops control and bidi-override characters
    (``invoice\\u202egnp.exe`` spoofing), leading dots and spaces, and caps the length
    while keeping the extension.
    """
    name = clean_text(name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("", name)
    name = collapse_whitespace(name).lstrip(". ").rstrip(" ")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: 200 - len(ext) - 1] + "." + ext
        else:
            name = name[:200]
    return name


def _charset(part: Message) -> str | None:
    try:
        value = part.get_param("charset")
    except Exception:  # noqa: BLE001 - a broken parameter list means "unknown"
        return None
    if isinstance(value, tuple):  # RFC 2231 form: (charset, language, value)
        value = value[2]
    return str(value) if value else None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _body_has_content(raw: bytes) -> bool:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx >= 0:
            return bool(raw[idx + len(sep) :].strip())
    return False


# --------------------------------------------------------------------- salvage


def _salvage(
    raw: bytes, content_hash: str, internaldate: datetime | None, exc: BaseException
) -> ParsedMessage:
    """Best effort after the full parse failed: headers only, body as plain text."""
    error = f"The message could not be fully read ({_describe(exc)}); the original is kept"
    try:
        split = len(raw)
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = raw.find(sep)
            if 0 <= idx < split:
                split = idx + len(sep)
        head, body = raw[:split], raw[split:]
        parser = _Parser(raw, content_hash, internaldate, False)
        msg = email.message_from_bytes(head, policy=_POLICY)
        for name, value in msg.raw_items():
            parser.headers.setdefault(name.strip().lower(), []).append(value)
        parsed = parser._headers_to_parsed()
        parsed.text = decode_bytes(body[: 1024 * 1024], _charset(msg)).replace("\r\n", "\n")
        parsed.snippet = make_snippet(parsed.text)
        parsed.is_automated = parser._is_automated(parsed)
    except Exception:  # noqa: BLE001 - last resort: identity only
        parsed = ParsedMessage(
            message_id=f"{content_hash[:32]}@{SYNTH_DOMAIN}",
            content_hash=content_hash,
            raw_size=len(raw),
            message_id_synthesized=True,
            date=_parse_date(None, internaldate),
        )
    parsed.parse_error = error
    parsed.raw = raw
    return parsed
