"""IMAP wire parsing: what the server's answers mean, with no connection involved.

UID sets and ranges, flag and Gmail-label decoding, the typed shapes a FETCH or SELECT
answer becomes (:class:`FetchedMessage`, :class:`Mailbox`, :class:`FlagState`), a fast
FETCH parser for the common answer shapes (``imapclient``'s parser is the fallback), and
the COPYUID/APPENDUID response codes. :mod:`pipemail.imap` holds the session that sends
the commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imapclient.datetime_util import parse_to_datetime
from imapclient.imap_utf7 import decode as utf7_decode


@dataclass(frozen=True)
class Mailbox:
    """What SELECT told us about a folder."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None
    """``None`` when the server has no mod-sequences for this folder (NOMODSEQ, no
    CONDSTORE, or a server that advertises CONDSTORE and sends no HIGHESTMODSEQ)."""
    readonly: bool = False


@dataclass
class FetchedMessage:
    """One FETCH response item, typed. ``body`` is ``None`` when it was not returned."""

    uid: int
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None
    size: int = 0
    body: bytes | None = None
    modseq: int | None = None
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    labels: tuple[str, ...] | None = None
    truncated: bool = False
    """Only the header was fetched (the message is larger than the account's limit)."""


@dataclass(frozen=True)
class FlagState:
    flags: frozenset[str]
    modseq: int | None = None
    labels: tuple[str, ...] | None = None


@dataclass
class ServerInfo:
    capabilities: frozenset[str]
    greeting: str = ""
    tls: str = ""
    enabled: frozenset[str] = field(default_factory=frozenset)


# ----------------------------------------------------------------- small pure helpers


def uid_set(uids: Iterable[int]) -> str:
    """Compact IMAP sequence set ("1:3,7") so a command line stays short."""
    values = sorted(set(uids))
    if not values:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = values[0]
    for value in values[1:]:
        if value == prev + 1:
            prev = value
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = value
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_uid_set(text: str | bytes, *, limit: int | None = None) -> list[int]:
    """Expand a sequence set (COPYUID, VANISHED, ESEARCH ALL) in the server's order.

    ``limit`` guards against a server answering ``1:4294967295``: expansion stops
    with ValueError rather than building a list of four billion ints.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if ":" in part:
            a, b = (int(x) for x in part.split(":", 1))
            if limit is not None and abs(b - a) + 1 + len(out) > limit:
                raise ValueError(f"sequence set {text[:80]!r} is larger than {limit}")
            step = 1 if b >= a else -1
            out.extend(range(a, b + step, step))
        else:
            out.append(int(part))
    return out


def uid_ranges(text: str | bytes) -> list[tuple[int, int]]:
    """A sequence set as inclusive (low, high) ranges, without expanding it."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    out = []
    for part in text.strip().split(","):
        if not part:
            continue
        if ":" in part:
            a, b = (int(x) for x in part.split(":", 1))
            out.append((min(a, b), max(a, b)))
        else:
            out.append((int(part), int(part)))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def normalize_flags(flags: Iterable[Any]) -> frozenset[str]:
    """Flags as str; ``\\Recent`` dropped because it belongs to one session, not the message."""
    out = set()
    for flag in flags or ():
        text = _text(flag)
        if text.lower() == "\\recent":
            continue
        out.add(text)
    return frozenset(out)


def decode_labels(labels: Iterable[Any]) -> tuple[str, ...]:
    """Gmail X-GM-LABELS as display strings (modified UTF-7 decoded), sorted, unique."""
    out = set()
    for label in labels or ():
        if isinstance(label, int):
            out.add(str(label))
            continue
        raw = label if isinstance(label, bytes) else str(label).encode("utf-8")
        if raw.startswith(b"\\"):
            out.add(raw.decode("ascii", "replace"))
        else:
            try:
                out.add(utf7_decode(raw))
            except Exception:  # noqa: BLE001 - a label we cannot decode is kept as text
                out.add(raw.decode("utf-8", "replace"))
    return tuple(sorted(out))


def _modseq(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def fetched_from_response(uid: int, data: Mapping[bytes, Any]) -> FetchedMessage:
    """Turn one imapclient FETCH dict into a :class:`FetchedMessage`.

    Pure function so the Gmail item shapes (X-GM-MSGID, X-GM-THRID, X-GM-LABELS) can
    be tested without a Gmail server.
    """
    body = data.get(b"BODY[]")
    truncated = False
    if body is None and data.get(b"BODY[HEADER]") is not None:
        body = data.get(b"BODY[HEADER]")
        truncated = True
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    internaldate = data.get(b"INTERNALDATE")
    if not isinstance(internaldate, datetime):
        internaldate = None
    gm_msgid = data.get(b"X-GM-MSGID")
    gm_thrid = data.get(b"X-GM-THRID")
    labels = data.get(b"X-GM-LABELS")
    return FetchedMessage(
        uid=uid,
        flags=normalize_flags(data.get(b"FLAGS", ())),
        internaldate=internaldate,
        size=int(data.get(b"RFC822.SIZE") or 0),
        body=body,
        modseq=_modseq(data.get(b"MODSEQ")),
        gm_msgid=int(gm_msgid) if gm_msgid is not None else None,
        gm_thrid=int(gm_thrid) if gm_thrid is not None else None,
        labels=decode_labels(labels) if labels is not None else None,
        truncated=truncated,
    )


# ---------------------------------------------------------------- fast FETCH parsing

_TOKEN = re.compile(
    rb"""\s*(?:
        (?P<open>\()
      | (?P<close>\))
      | "(?P<quoted>(?:[^"\\]|\\.)*)"
      | (?P<atom>[^\s()"\[\]{}]+(?:\[[^\]]*\](?:<[\d.]+>)?)?)
    )""",
    re.X,
)
_LITERAL_TAIL = re.compile(rb"\{(\d+)\+?\}$")
_UNQUOTE = re.compile(rb"\\(.)")


class _Unparsable(Exception):
    pass


def _segments(data: Sequence[Any]) -> Iterator[list[bytes | tuple[bytes]]]:
    """Regroup imaplib's FETCH data into one list per response: text and literals.

    imaplib returns ``(text ending in {n}, literal)`` tuples followed by the text that
    continues the same response; a literal is wrapped in a 1-tuple to tell it apart.
    """
    current: list[bytes | tuple[bytes]] = []
    depth = 0
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            head, literal = item[0], item[1]
            match = _LITERAL_TAIL.search(head)
            if match is None or len(literal) != int(match.group(1)):
                raise _Unparsable("literal without a size marker")
            text = head[: match.start()]
            depth += text.count(b"(") - text.count(b")")
            current.append(text)
            current.append((literal,))
            continue
        current.append(item)
        depth += item.count(b"(") - item.count(b")")
        if depth <= 0:
            yield current
            current, depth = [], 0
    if current:
        raise _Unparsable("unterminated response")


def _tokens(parts: list[bytes | tuple[bytes]]) -> Iterator[Any]:
    for part in parts:
        if isinstance(part, tuple):
            yield part
            continue
        pos, end = 0, len(part)
        while pos < end:
            match = _TOKEN.match(part, pos)
            if match is None:
                if part[pos:].strip():
                    raise _Unparsable(f"unexpected {part[pos : pos + 20]!r}")
                break
            pos = match.end()
            kind = match.lastgroup
            if kind == "open":
                yield "("
            elif kind == "close":
                yield ")"
            elif kind == "quoted":
                yield (_UNQUOTE.sub(rb"\1", match.group("quoted")),)
            else:
                yield match.group("atom")


def _tree(tokens: Iterator[Any]) -> list[Any]:
    out: list[Any] = []
    stack: list[list[Any]] = [out]
    for tok in tokens:
        if tok == "(":
            child: list[Any] = []
            stack[-1].append(child)
            stack.append(child)
        elif tok == ")":
            if len(stack) == 1:
                raise _Unparsable("unbalanced parenthesis")
            stack.pop()
        elif isinstance(tok, tuple):
            stack[-1].append(tok[0])  # literal or quoted string: bytes as they are
        elif tok.isdigit():
            stack[-1].append(int(tok))
        elif tok.upper() == b"NIL":
            stack[-1].append(None)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise _Unparsable("unbalanced parenthesis")
    return out


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, list):
        return tuple(_as_tuple(v) if isinstance(v, list) else v for v in value)
    return (value,)


def fast_parse_fetch(data: Sequence[Any]) -> dict[int, dict[bytes, Any]]:
    """Parse FETCH responses for the items the engine asks for, keyed by UID.

    imapclient's general lexer walks every byte in Python and was the largest cost of
    the engine's own FETCH path; this handles the shapes servers send for UID, FLAGS,
    INTERNALDATE, RFC822.SIZE, BODY[...], MODSEQ and X-GM-*. Anything unexpected raises
    ``_Unparsable`` and the caller falls back to imapclient's parser.
    """
    out: dict[int, dict[bytes, Any]] = {}
    for parts in _segments(data):
        tree = _tree(_tokens(parts))
        if len(tree) != 2 or not isinstance(tree[0], int) or not isinstance(tree[1], list):
            raise _Unparsable("not a FETCH response")
        items = tree[1]
        if len(items) % 2:
            raise _Unparsable("odd number of items")
        msg: dict[bytes, Any] = {b"SEQ": tree[0]}
        for i in range(0, len(items), 2):
            name, value = items[i], items[i + 1]
            if not isinstance(name, bytes):
                raise _Unparsable("item name is not an atom")
            name = name.upper()
            if name == b"INTERNALDATE":
                if not isinstance(value, bytes):
                    raise _Unparsable("INTERNALDATE")
                msg[name] = parse_to_datetime(value, normalise=False)  # imapclient spells it so
            elif isinstance(value, list):
                msg[name] = _as_tuple(value)
            else:
                msg[name] = value
        uid = msg.get(b"UID")
        if isinstance(uid, int):
            out.setdefault(uid, {}).update(msg)
    return out


_RESP_CODE = re.compile(rb"\[(APPENDUID|COPYUID)\s+([^\]]+)\]", re.I)


def parse_copyuid(text: bytes | str | None) -> tuple[int, dict[int, int]] | None:
    """``COPYUID <uidvalidity> <src set> <dst set>`` -> (dest UIDVALIDITY, {src: dst})."""
    if text is None:
        return None
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    match = re.search(rb"(?:COPYUID\s+)?(\d+)\s+([\d:,]+)\s+([\d:,]+)", text)
    if not match:
        return None
    uidvalidity = int(match.group(1))
    src = parse_uid_set(match.group(2), limit=1_000_000)
    dst = parse_uid_set(match.group(3), limit=1_000_000)
    if len(src) != len(dst):
        return None
    # RFC 4315: the two sets pair up in the order the server lists them.
    return uidvalidity, dict(zip(src, dst, strict=True))


def parse_appenduid(text: bytes | str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    match = re.search(rb"APPENDUID\s+(\d+)\s+(\d+)", text, re.I)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))
