"""Header decoding: encoded words, 8-bit bytes, addresses, Message-IDs and dates.

Everything here takes the raw (``compat32``) value of one header and returns text, typed
addresses or a datetime; nothing raises on bad input. :mod:`pipemail.mime` walks the
MIME tree and calls these for the headers it needs. The address rules (lower-cased
address, IDNA domain, Unicode local part) are described in :mod:`pipemail.mime`.

Also here: reading and writing the addresses a person types in To/Cc/Bcc
(:func:`parse_recipients`, :func:`format_address`, :func:`join_addresses`), so that
synced and sent messages write address fields the same way.
"""

from __future__ import annotations

import binascii
import email
import email.utils
import inspect
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone

from pipemail.text import clean_text, collapse_whitespace, decode_bytes, decode_header_bytes
from pipemail.types import Address

MAX_ID_LENGTH = 995
"""Longest Message-ID kept (RFC 5322's line limit less the header name)."""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CRLF = re.compile(r"[\r\n]+")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _fix_8bit(value: str, *charsets: str | None) -> str:
    """Undo compat32's ``surrogateescape`` on 8-bit header bytes: UTF-8, else the first
    usable of ``charsets`` (declared by the part or message), else cp1252."""
    if not _SURROGATE.search(value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return clean_text(value)
    return decode_header_bytes(data, *charsets)


def _unfold(value: str) -> str:
    if "\n" not in value and "\r" not in value:
        return value
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


def decode_header_value(value: str | None, charset: str | None = None) -> str:
    """A raw header value as readable text: 8-bit fixed, unfolded, RFC 2047 decoded.

    Adjacent encoded-words of one charset are joined as bytes before decoding, because
    senders split UTF-8 / Shift_JIS characters across words. ``charset`` is the one
    the message declares for its text, tried on raw 8-bit bytes that are not UTF-8.
    """
    if not value:
        return ""
    value = _unfold(_fix_8bit(str(value), charset))
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


# An RFC 5322 dot-atom address and the characters a plain display name may not hold:
# ``getaddresses``' specials, a backslash, whitespace other than space and tab.
_DOT_ATOM = r'[^()<>@,:;".\[\]\s\\]+(?:\.[^()<>@,:;".\[\]\s\\]+)*'
_PLAIN_ADDR = re.compile(f"{_DOT_ATOM}@{_DOT_ATOM}")
_NOT_PLAIN_NAME = re.compile(r'[()<>@,:;"\[\]\\]|[^\S \t]')
# One entry of a list holding quotes: ``"Quoted Name" <addr>`` (no backslash in the
# quotes), ``Plain Name <addr>`` or ``addr``, and the comma after it.
_QUOTED_ENTRY = re.compile(
    rf'[ \t]*(?:"([^"\\\r\n]*)"[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>'
    rf'|((?:[^()<>@,:;"\[\]\\\s]|[ \t])*)<({_DOT_ATOM}@{_DOT_ATOM})>'
    rf"|({_DOT_ATOM}@{_DOT_ATOM}))[ \t]*(?:,|\Z)"
)


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """``getaddresses(values)`` for the everyday shapes, else ``None``.

    Handles comma-separated ``addr@host``, ``<addr@host>``, ``Plain Name <addr@host>``
    and ``"Quoted Name" <addr@host>`` (no escapes, comments, groups or empty entries),
    which is what nearly every mail carries, and gives exactly what ``getaddresses``
    gives for them (plain name words joined by one space, a quoted name as it is).
    Anything else is left to ``getaddresses``.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        if '"' in value:
            pos, end = 0, len(value.rstrip(" \t"))
            if value[end - 1 : end] == ",":
                return None
            while pos < end:
                match = _QUOTED_ENTRY.match(value, pos)
                if match is None:
                    return None
                quoted, addr, plain, plain_addr, bare = match.groups()
                if addr is not None:
                    pairs.append((quoted, addr))
                elif plain_addr is not None:
                    pairs.append((" ".join(plain.split()), plain_addr))
                else:
                    pairs.append(("", bare))
                pos = match.end()
            continue
        for item in value.split(","):
            item = item.strip(" \t")
            if item.endswith(">"):
                lt = item.rfind("<")
                if lt < 0:
                    return None
                addr, name = item[lt + 1 : -1], item[:lt]
                if name and _NOT_PLAIN_NAME.search(name):
                    return None
                name = " ".join(name.split())
            else:
                addr, name = item, ""
            if not _PLAIN_ADDR.fullmatch(addr):
                return None
            pairs.append((name, addr))
    return pairs


_GETADDRESSES_STRICT = "strict" in inspect.signature(email.utils.getaddresses).parameters


def getaddresses(values: list[str]) -> list[tuple[str, str]]:
    """``email.utils.getaddresses`` with the per-entry behaviour of every Python.

    Pythons with the CVE-2023-27043 fix (3.13, and security releases of 3.11/3.12
    such as Debian 12's 3.11.2+deb12u6) default to ``strict=True``, which answers
    ``[("", "")]`` for a whole header as soon as one entry is malformed: the good
    addresses beside it would be lost. Each entry is judged by the caller instead.
    """
    if _GETADDRESSES_STRICT:
        return email.utils.getaddresses(values, strict=False)
    return email.utils.getaddresses(values)


_ADDRESS_SPECIAL = re.compile(r'["\\()<>,:;@]')
_COMMENT_SPECIAL = re.compile(r'["\\()]')
_COMMENT = r"\((?:[^()\\]|\\.)*\)"
_CFWS = re.compile(rf"(?:[ \t\r\n]+|\((?:[^()\\]|\\.|{_COMMENT})*\))*")
"""Blanks and comments, comments nested two deep at most."""


def _skip_cfws(value: str, pos: int) -> int:
    """Where the blanks and comments at ``pos`` end (``_CFWS`` also matches nothing)."""
    match = _CFWS.match(value, pos)
    return match.end() if match else pos


# Without groups or comments, an entry needs :func:`_tidy_address_list` only when an
# "@" or ">" outside quotes is followed, before the next comma, by an angle address
# (or a ">" by an "@"). A scan from a mark outside quotes reads the quotes right, and
# reaching another mark first hands over to a scan from there.
_QUOTED_OR_PLAIN = r'(?:[^,"<@>]|"(?:[^"\\]|\\.)*")*'
_MARK_THEN_ADDRESS = re.compile(f"[@>]{_QUOTED_OR_PLAIN}<|>{_QUOTED_OR_PLAIN}@")
_MAX_COMMENT_DEPTH = 50
"""Comment nesting handed to the stdlib's address parser, which recurses once per level."""


def _tidy_address_list(value: str) -> str:
    """``value`` rewritten where ``getaddresses`` would misread it; else ``value`` itself.

    One pass over the special characters, skipping quoted strings and comments (a
    backslash quotes the next character only there, as RFC 5322 and the stdlib say):

    * an entry with an address in its display name (``alice@example.com <bob@...>``,
      ``<alice@...> <bob@...>``) is read by the stdlib as two addresses: a spoofed
      sender, phantom recipients. The text before the entry's last angle address is
      quoted, so that angle address is the entry's only one (text after it holding
      another address is dropped);
    * a group's name (``Team:`` in ``Team: a@x, b@y;``) is dropped, making the group a
      plain list: the name is no address, and the stdlib reads nested groups
      recursively (too deep: ``RecursionError``) and long groups in quadratic time.
      Comments leading a member are dropped too, as the stdlib does inside a group.
    """
    out: list[str] = []
    copied = 0  # value[:copied] is settled (in ``out``, or dropped)
    item = 0  # start of the current entry
    mark = -1  # its first "@", "<" or ">" outside quotes, comments and angle brackets
    last_lt = last_gt = -1  # its last complete angle address
    late = False  # an "@" after that angle address
    angle = -1  # the open "<", while inside one
    depth = 0  # comment nesting
    quoted = False
    groups = 0  # groups open
    pos = 0
    search = _ADDRESS_SPECIAL.search
    while True:
        match = search(value, pos)
        if match is None:  # the end closes the last entry, whatever is left open
            i, c, quoted, depth, angle = len(value), ",", False, 0, -1
        else:
            i = match.start()
            c = value[i]
        pos = i + 1
        if c == "\\":  # a quoted pair, inside quotes or a comment only (as the stdlib)
            if quoted or depth:
                pos = i + 2
            continue
        if quoted:
            quoted = c != '"'
            continue
        if depth:
            depth += c == "("
            depth -= c == ")"
            continue
        if c == '"':
            quoted = True
        elif c == "(":
            depth = 1
        elif angle >= 0:
            if c == ">":
                last_lt, last_gt, angle, late = angle, i, -1, False
        elif c in "@<>":
            if mark < 0:
                mark = i
            if c == "<":
                angle = i
            elif c == "@" and last_gt >= 0:
                late = True
        elif c == ":" and mark < 0:
            out.append(value[copied:item])
            copied = item = pos = _skip_cfws(value, pos)
            groups += 1
        elif c in ",;":
            if last_lt >= 0 and (mark < last_lt or late):
                name = value[item:last_lt].replace("\\", "").replace('"', "").strip(" \t")
                tail = value[last_lt : last_gt + 1] if late else value[last_lt:i]
                out.append(value[copied:item])
                out.append(f' "{name}" {tail}' if name else f" {tail}")
                copied = i
            if not match:
                break
            if c == ";":
                groups = max(groups - 1, 0)
            elif groups:  # the stdlib drops the comments that lead a group member
                skip = _skip_cfws(value, pos)
                if skip > pos:
                    out.append(value[copied:pos])
                    copied = pos = skip
            item, mark, last_lt, last_gt, late = pos, -1, -1, -1, False
    if not out:
        return value
    out.append(value[copied:])
    return "".join(out)


def _without_comments(value: str) -> tuple[str, int]:
    """``value`` with each comment replaced by a space, and the deepest comment nesting."""
    out: list[str] = []
    copied = pos = depth = deepest = start = 0
    quoted = False
    search = _COMMENT_SPECIAL.search
    while match := search(value, pos):
        i = match.start()
        c = value[i]
        pos = i + 1
        if c == "\\":
            pos = i + 2 if quoted or depth else pos
        elif quoted:
            quoted = c != '"'
        elif c == "(":
            if not depth:
                start = i
            depth += 1
            deepest = max(deepest, depth)
        elif not depth:
            quoted = c == '"'
        elif c == ")":
            depth -= 1
            if not depth:
                out.append(value[copied:start] + " ")
                copied = pos
    if depth:  # a comment never closed runs to the end, as the stdlib reads it
        out.append(value[copied:start] + " ")
        copied = len(value)
    out.append(value[copied:])
    return "".join(out), deepest


def _readable_address_list(value: str, problems: list[str]) -> str:
    """``value`` made safe for ``getaddresses`` (see :func:`_tidy_address_list`, run
    only when a group, a comment or an address before an angle address calls for it).

    Comments nested deeper than ``_MAX_COMMENT_DEPTH`` are dropped first (a comment
    holds no address, but a name may come from one): a problem is reported.
    """
    if value.count("(") > _MAX_COMMENT_DEPTH:
        stripped, deepest = _without_comments(value)
        if deepest > _MAX_COMMENT_DEPTH:
            problems.append(
                f"has comments nested {deepest} deep; its addresses were read without them"
            )
            value = stripped
    if ":" in value or "(" in value or _MARK_THEN_ADDRESS.search(value):
        return _tidy_address_list(value)
    return value


_NAME_ADDRESS = re.compile(
    r"""[<(\["']*(?:mailto:)?[^\s<>()\[\],;:"']+@[^\s<>()\[\],;:"']+[>)\]"']*""", re.IGNORECASE
)


def _display_name(name: str, mail: str) -> str:
    """The decoded display name of ``mail``, without any other address it shows.

    A name such as ``alice@example.com`` on ``bob@example.com`` is the classic spoof:
    shown, or parsed again from ``str(address)``, it passes for Alice. Words around
    such an address stay (``Alice Smith (alice@example.com) via Deals`` becomes
    ``Alice Smith via Deals``); a name that is only the mailbox itself is dropped.
    """
    display = collapse_whitespace(decode_header_value(name))
    if "@" not in display:
        return display

    def foreign(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if normalize_address(token.strip("<>()[]\"'")) == mail else " "

    cleaned = _NAME_ADDRESS.sub(foreign, display)
    if cleaned != display:
        display = collapse_whitespace(cleaned).strip(" ,;:")
        if display.startswith("(") and display.endswith(")"):  # the comment left alone
            display = display[1:-1].strip()
    return "" if display.lower() == mail else display


def parse_addresses(
    values: Iterable[str], charset: str | None = None, problems: list[str] | None = None
) -> list[Address]:
    """Addresses from raw header values; garbage entries are skipped, never fatal.

    ``charset`` as for :func:`decode_header_value` (raw 8-bit display names). One
    entry gives at most one address: the angle address when there is one, whatever its
    display name looks like. What could not be read right is described, in plain words
    after the header's name, in ``problems`` when given.
    """
    if problems is None:
        problems = []
    joined = [_unfold(_fix_8bit(v, charset)) for v in values if v]
    if not joined:
        return []
    pairs = _simple_addresses(joined)
    if pairs is None:
        try:
            pairs = getaddresses([_readable_address_list(v, problems) for v in joined])
        except Exception as exc:  # noqa: BLE001 - a parser bug on one header must not lose the mail
            problems.append(f"could not be read ({_describe(exc)})")
            pairs = []
    result: list[Address] = []
    seen: set[str] = set()
    for name, addr in pairs:
        mail = normalize_address(addr)
        if not mail or mail in seen:
            continue
        seen.add(mail)
        result.append(Address(email=mail, name=_display_name(name, mail) if name else ""))
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


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The RFC 5322 date nearly every mail carries ("Sun, 01 Nov 2026 08:48:00 +0100",
# perhaps followed by a comment such as "(UTC)").
_PLAIN_DATE = re.compile(
    r"\s*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?(\d{1,2})\s+(" + "|".join(_MONTHS) + r")\s+"
    r"([1-9]\d{3})\s+(\d\d):(\d\d):(\d\d)\s+([+-])(\d\d)(\d\d)(?:\s+\([^()]*\))?\s*"
)


def _parsedate_tz(
    value: str,
) -> tuple[int, int, int, int, int, int, int, int, int, int | None] | None:
    """``email.utils.parsedate_tz``, with the usual shape read by one regex."""
    match = _PLAIN_DATE.fullmatch(value)
    if match is None:
        return email.utils.parsedate_tz(value)
    day, month, year, hour, minute, second, sign, tzh, tzm = match.groups()
    offset = int(tzh) * 3600 + int(tzm) * 60
    return (
        int(year),
        _MONTHS.index(month) + 1,
        int(day),
        int(hour),
        int(minute),
        int(second),
        0,
        1,
        -1,
        -offset if sign == "-" else offset,
    )


def _parse_date(value: str | None, fallback: datetime | None) -> datetime | None:
    if value:
        try:
            parts = _parsedate_tz(_unfold(_fix_8bit(value)))
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


# --------------------------------------------------------------------- typed by a person

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


class RecipientError(ValueError):
    """What a person typed in To/Cc/Bcc is not a list of addresses.

    ``address`` is the offending entry, empty when the problem is a line break or a
    control character anywhere in the field.
    """

    def __init__(self, address: str = "") -> None:
        self.address = address
        super().__init__(
            f"“{address}” is not a valid email address."
            if address
            else "An address field contains a line break or a control character; remove it."
        )


def parse_recipients(text: str | None, *, strict: bool = True) -> list[Address]:
    """``[Address]`` from what a person typed in To/Cc/Bcc (commas, semicolons, names),
    without duplicates (compared case-insensitively), the domain lower-cased.

    ``strict`` raises :class:`RecipientError` on anything that is not an address;
    otherwise (prefilling from stored headers) such entries are skipped.
    """
    if strict and _CONTROL.search(text or ""):
        raise RecipientError()
    found: list[Address] = []
    seen: set[str] = set()
    for name, addr in getaddresses([(text or "").replace(";", ",")]):
        addr = (addr or "").strip()
        if not addr:
            continue
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain or " " in addr:
            if not strict:
                continue
            raise RecipientError(addr)
        if addr.lower() in seen:
            continue
        seen.add(addr.lower())
        found.append(Address(email=f"{local}@{domain.lower()}", name=(name or "").strip()))
    return found


def format_address(addr: str | None, name: str | None = "") -> str:
    """``Name <email>`` written the way :class:`~pipemail.types.Address` prints itself."""
    return str(Address(email=(addr or "").strip(), name=name or ""))


def join_addresses(addresses: Iterable[Address]) -> str:
    """An address field's value: each address as it prints, comma-separated."""
    return ", ".join(str(a) for a in addresses)
