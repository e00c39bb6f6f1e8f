"""One parser for every incoming message; it never raises.

Why stdlib ``email`` with ``policy.compat32`` and our own header decoding, rather than
``policy.default``: measured on the corpus, ``policy.default`` spends ~0.5 s on the
210 KB header of ``flanker/long-header.eml`` and ~9x longer than compat32 to parse
``flanker/enclosed-endless.eml`` (it builds structured header objects while parsing);
it also turns raw UTF-8 addresses into lone surrogates and raises on some broken
headers. compat32 keeps header values raw (8-bit bytes as ``surrogateescape``), so the
message is parsed once, cheaply, and we decode exactly the headers we need:

* 8-bit header bytes: UTF-8 (RFC 6532), else the charset the part or message declares
  for its text, else cp1252, else latin-1 (``text.decode_header_bytes``);
* RFC 2047 encoded-words, tolerating the usual breakage (bad padding, spaces inside,
  unknown charsets, a multibyte character split across two words);
* addresses: ``email.utils.getaddresses`` on the raw value, display names decoded
  afterwards, garbage skipped.

**Address normalization**: the whole address is lower-cased; the domain is stored as
ASCII (IDNA A-labels, ``xn--``) when it converts, else lower-case Unicode as given; the
local part stays Unicode (RFC 6532). Lower-casing the local part is not strictly RFC
correct but is what every CRM match needs.

Anything the parser cannot understand ends in ``parse_error`` (plain words) with
``raw`` kept, so the caller stores the message anyway.
"""

from __future__ import annotations

import email
import email.errors
import email.feedparser
import email.parser
import email.policy
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Callable
from datetime import datetime
from email.message import Message
from typing import cast

from pipemail.headers import (
    _SURROGATE,
    _clean_id,
    _describe,
    _fix_8bit,
    _message_ids,
    _parse_date,
    decode_header_value,
    normalize_address,
    parse_addresses,
)
from pipemail.text import (
    clean_text,
    collapse_whitespace,
    decode_bytes,
    detect_direction,
    html_to_text,
    make_snippet,
    normalize_subject,
    resolve_charset,
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
SYNTH_DOMAIN = "pipemail.invalid"

_POLICY = email.policy.compat32
_MISSING = object()

# --------------------------------------------------------------------- public API


def parse_message(
    raw: bytes,
    *,
    internaldate: datetime | None = None,
    keep_attachment_content: bool = True,
) -> ParsedMessage:
    """Normalize one raw RFC 5322 message. Never raises.

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
    endless.eml``: 0.1 s to parse, 0.4 s more to serialize back) and its recursion is
    the main deep-nesting risk. The parser asks ``get_content_maintype()`` /
    ``get_content_type()`` to decide; everything in this module reads the real type
    through :func:`_ctype`.
    """

    _payload: object  # the stdlib's private payload slot (not in typeshed), trimmed as it does

    def get_content_type(self) -> str:
        ctype = Message.get_content_type(self)
        return "application/octet-stream" if ctype.startswith("message/") else ctype

    def _get_params_preserve(self, failobj: object, header: str) -> object:
        """The stdlib's parameter list, parsed once per header value.

        ``get_param`` / ``get_filename`` / ``get_boundary`` each re-parse the whole
        header; a part is asked for its boundary, file name, name and charset. The
        list depends only on the header's value, so it is kept per value (a replaced
        header is simply a new key); values the stdlib hands out as ``Header`` objects
        (8-bit bytes) are not cached.
        """
        value = self.get(header, _MISSING)
        if value is _MISSING:
            return failobj
        if not isinstance(value, str):
            return Message._get_params_preserve(self, failobj, header)  # type: ignore[attr-defined]  # private stdlib method, not in typeshed
        cache: dict[str, object] | None = self.__dict__.get("_pm_params")
        if cache is None:
            cache = self.__dict__["_pm_params"] = {}
        params = cache.get(value)
        if params is None:
            params = cache[value] = Message._get_params_preserve(self, failobj, header)  # type: ignore[attr-defined]  # private, as above
        return params


def _ctype(part: Message) -> str:
    """The part's real content type (``message/*`` included)."""
    return Message.get_content_type(part)


# --------------------------------------------------------------------- structure

# The stdlib feed parser's own patterns, so our splitter reads lines exactly as it does.
# (Private names of the stdlib module: typeshed does not list them.)
_HEADER_LINE: re.Pattern[str] = email.feedparser.headerRE  # type: ignore[attr-defined]
_EOL: re.Pattern[str] = email.feedparser.NLCRE_eol  # type: ignore[attr-defined]
_BOL: re.Pattern[str] = email.feedparser.NLCRE_bol  # type: ignore[attr-defined]
# A run of lines the feed parser takes as header lines (its ``headerRE`` on each), and
# one field of such a run as ``Compat32.header_source_parse`` splits it: the name, and
# the value with leading blanks and the final line break removed.
_HEADER_BLOCK = re.compile(r"(?:(?:From |[\041-\071\073-\176]*:|[\t ])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
_HEADER_FIELD = re.compile(
    r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*)(?:\r\n|\r|\n)?"
)
# A field name followed by blanks before its colon (RFC 5322 obsolete syntax,
# ``Subject  : hi``): the feed parser takes it for no header, or ``From  :`` for an
# mbox ``From`` line, and ends the header block there.
_OBS_FIELD = re.compile(r"([\041-\071\073-\176]+)[ \t]+:")
# Fields that start a line in nearly every header block: only a line of text followed
# by one of them is taken for a continuation line that lost its indent.
_COMMON_FIELD = re.compile(
    r"(?:x-[!-9;-~]+|content-[!-9;-~]+|list-[!-9;-~]+|resent-[!-9;-~]+|arc-[!-9;-~]+"
    r"|from|to|cc|bcc|subject|date|message-id|mime-version|reply-to|sender|references"
    r"|in-reply-to|received|return-path|delivered-to|dkim-signature|authentication-results"
    r"|thread-topic|thread-index|importance|priority|precedence|auto-submitted|user-agent"
    r"|organization|disposition-notification-to|errors-to)[ \t]*:",
    re.IGNORECASE,
)
_PARAMETER_LINE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*=")
"""A MIME parameter (``boundary="b"``) alone on a line."""
_MAX_LOST_INDENT_LINES = 20
_STRUCTURE_MAX_DEPTH = 40
"""Multipart nesting the fast splitter handles; deeper messages go to the stdlib parser."""


_ADDRESS_FIELDS = frozenset(
    ("from", "sender", "to", "cc", "bcc", "reply-to", "references", "in-reply-to")
)


def _unfinished(lines: list[str], run: list[str]) -> bool:
    """Whether the header field ending ``lines`` plainly goes on in ``run``.

    It does when it ends in ``;`` and ``run`` holds MIME parameters (``boundary=...``),
    or when an address field ends in ``,`` and every line of ``run`` holds an address.
    (A message ID cut by a line break, ``<invalid.`` / ``something@bar.net>``, is not
    joined: whether it was one ID is unknowable, and the block is flagged.)
    """
    first = len(lines) - 1
    while first > 0 and lines[first][0] in " \t":
        first -= 1
    name, _, value = "".join(lines[first:]).partition(":")
    value = value.rstrip(" \t\r\n")
    if value.endswith(";"):
        return all(map(_PARAMETER_LINE.match, run))
    return (
        value.endswith(",")
        and name.strip().lower() in _ADDRESS_FIELDS
        and all("@" in line for line in run)
    )


class _Fallback(Exception):
    """The fast splitter met a shape it does not reproduce: use the stdlib parser."""


def _parse_structure(raw: bytes) -> Message:
    """``email.message_from_bytes(raw, _class=_ShallowMessage, policy=compat32)``, faster.

    The stdlib feed parser reads line by line through a stack of generators and
    compiles a regular expression for every multipart boundary it meets; as every
    message has its own boundary, ``re``'s cache never helps and the compile alone
    costs more than the rest of our parse. :class:`_Splitter` builds the same tree
    (same headers, payloads, preamble, epilogue, default types; of the parse defects
    only the one read below is recorded) with ``str.find`` over the whole text. For
    the rare shapes it does not reproduce -- a ``From`` line ending a header block,
    nesting deeper than ``_STRUCTURE_MAX_DEPTH``, any unexpected error -- it hands
    the message to the stdlib parser, so the result never differs, except where the
    splitter reads right what the stdlib misreads: a header line that lost its indent,
    blanks before a field's colon, a nested multipart reusing its parent's boundary
    (see :meth:`_Splitter._lost_indent` and :meth:`_Splitter._multipart`). A header
    block ended by a line of text is noted as the stdlib notes it, a
    ``MissingHeaderBodySeparatorDefect`` on the part.
    """
    text = raw.decode("ascii", "surrogateescape")
    try:
        return _Splitter(text).run()
    except Exception:  # noqa: BLE001 - _Fallback, or anything else: the stdlib decides
        return email.message_from_bytes(raw, _class=_ShallowMessage, policy=_POLICY)


class _Splitter:
    """A port of ``email.feedparser.FeedParser._parsegen`` for :class:`_ShallowMessage`.

    ``pos`` is the start of the next unread line. A line ends after ``\\r\\n``, ``\\n``
    or a lone ``\\r`` (the feed parser's universal newlines). ``seps`` is the stack of
    enclosing boundaries: a line matching one of them is a false end of file for
    everything inside, as in ``BufferedSubFile.readline``.
    """

    __slots__ = ("found", "n", "pos", "seps", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.seps: list[str] = []
        # sep -> (searched_from, first boundary line at or after it, or n)
        self.found: dict[str, tuple[int, int]] = {}

    def run(self) -> Message:
        root = _ShallowMessage(policy=_POLICY)
        self._part(root, 0)
        return root

    # ------------------------------------------------------------- lines
    def _line_end(self, start: int) -> int:
        text = self.text
        nl = text.find("\n", start)
        if nl < 0:
            nl = self.n
        cr = text.find("\r", start, nl)
        if cr < 0:
            return nl + 1 if nl < self.n else nl
        return nl + 1 if cr + 1 == nl < self.n else cr + 1

    def _boundary(self, start: int, end: int, sep: str) -> int:
        """0: not a boundary line; 1: ``--sep``; 2: the closing ``--sep--``.

        Same as the feed parser's ``(?P<sep>SEP)(?P<end>--)?(?P<ws>[ \\t]*)
        (?P<linesep>\\r\\n|\\r|\\n)?$`` matched against the line.
        """
        text = self.text
        if not text.startswith(sep, start, end):
            return 0
        rest = text[start + len(sep) : end]
        closing = rest.startswith("--")
        if closing:
            rest = rest[2:]
        rest = rest.lstrip(" \t")
        if rest and rest not in ("\r\n", "\n", "\r"):
            return 0
        return 2 if closing else 1

    def _at_eof(self, start: int, end: int) -> bool:
        for sep in self.seps:
            if self._boundary(start, end, sep):
                return True
        return False

    def _next_eof(self, start: int) -> int:
        """Start of the first line at or after ``start`` that ends the current part."""
        stop = self.n
        text = self.text
        for sep in self.seps:
            cached = self.found.get(sep)
            if cached is not None and cached[0] <= start <= cached[1]:
                stop = min(stop, cached[1])
                continue
            where = start
            hit = self.n
            while True:
                k = text.find(sep, where, stop)
                if k < 0:
                    break
                if (k == 0 or text[k - 1] in "\r\n") and self._boundary(k, self._line_end(k), sep):
                    hit = k
                    break
                where = k + 1
            if hit < stop:
                stop = hit
                self.found[sep] = (start, hit)
        return stop

    # ------------------------------------------------------------- parts
    def _headers(self, msg: Message) -> None:
        """Read a header block; the common shape in one pass of two regexes."""
        text = self.text
        start = self.pos
        block = _HEADER_BLOCK.match(text, start)
        stop = block.end() if block else start
        if self.seps and stop > start:
            lines = text[start:stop]
            if lines.startswith("--") or "\n--" in lines or "\r--" in lines:
                self._headers_by_line(msg)  # a boundary line may end the block early
                return
        fields: list[tuple[str, str]] = []
        expected = start
        for match in _HEADER_FIELD.finditer(text, start, stop):
            if match.start() != expected:
                break
            fields.append((match.group(1), match.group(2)))
            expected = match.end()
        if expected != stop or (stop < self.n and text[stop] not in "\r\n"):
            # From lines, continuations first, empty names, a line that is no header...
            self._headers_by_line(msg)
            return
        for name, value in fields:
            msg.set_raw(name, value)
        if stop < self.n and text[stop] in "\r\n":
            stop = self._line_end(stop)  # the blank line between header and body
        self.pos = stop

    def _headers_by_line(self, msg: Message) -> None:
        text, n = self.text, self.n
        pos = self.pos
        lines: list[str] = []
        while pos < n:
            end = self._line_end(pos)
            if self.seps and self._at_eof(pos, end):
                break
            line = text[pos:end]
            obsolete = _OBS_FIELD.match(line)
            if obsolete:
                line = obsolete.group(1) + line[obsolete.end() - 1 :]
            if not _HEADER_LINE.match(line):
                if line[0] in "\r\n":
                    pos = end  # the blank line between header and body
                    break
                lost = self._lost_indent(pos, lines)
                if lost is None:
                    if lines:  # the rest of the header block is read as body text
                        msg.defects.append(email.errors.MissingHeaderBodySeparatorDefect())
                    break
                pos, continued = lost
                lines.extend(continued)
                continue
            lines.append(line)
            pos = end
        self.pos = pos
        if lines:
            self._set_headers(msg, lines)

    def _lost_indent(self, pos: int, lines: list[str]) -> tuple[int, list[str]] | None:
        """The lines of text from ``pos`` as continuation lines, if that is what they are.

        A folded header whose continuation lost its indent (``Subject: Quarterly
        report for`` / ``the northern region``) would end the header block: the fields
        after it, the MIME structure with them, would become body text. Such lines are
        read as continuations when a common field follows them, or, before the blank
        line, when they finish what the field left open (see :func:`_unfinished`). Anything
        else (``Subject: Lunch on`` / ``Friday?`` / blank line: a continuation or the
        body's first line?) is left to end the block, as the feed parser does.
        """
        if not lines:
            return None
        text, n = self.text, self.n
        run: list[str] = []
        while pos < n and len(run) <= _MAX_LOST_INDENT_LINES:
            end = self._line_end(pos)
            if self.seps and self._at_eof(pos, end):
                return None
            line = text[pos:end]
            if line[0] in "\r\n":
                return (pos, [" " + line for line in run]) if _unfinished(lines, run) else None
            if run and line[0] in " \t":  # an indented line goes on whatever came before
                run.append(line)
                pos = end
                continue
            if _HEADER_LINE.match(line) or _OBS_FIELD.match(line):
                return (pos, [" " + line for line in run]) if _COMMON_FIELD.match(line) else None
            run.append(line)
            pos = end
        return None

    @staticmethod
    def _set_headers(msg: Message, lines: list[str]) -> None:
        """``FeedParser._parse_headers`` without the defects."""
        source = _POLICY.header_source_parse
        current: list[str] = []
        last = len(lines) - 1
        for lineno, line in enumerate(lines):
            if line[0] in " \t":
                if current:
                    current.append(line)
                continue
            if current:
                msg.set_raw(*source(current))
                current = []
            if line.startswith("From "):
                if lineno == 0:
                    match = _EOL.search(line)
                    msg.set_unixfrom(line[: -len(match.group(0))] if match else line)
                    continue
                if lineno == last:
                    raise _Fallback("From line at the end of a header block")
                continue
            if line.find(":") <= 0:
                continue
            current = [line]
        if current:
            msg.set_raw(*source(current))

    def _part(self, msg: Message, depth: int) -> str:
        """Read one part (headers and body); its ``get_content_type()``."""
        if depth > _STRUCTURE_MAX_DEPTH:
            raise _Fallback("nested too deeply")
        self._headers(msg)
        ctype = msg.get_content_type()
        boundary = msg.get_boundary() if ctype.startswith("multipart/") else None
        if boundary is None:
            end = self._next_eof(self.pos) if self.seps else self.n
            msg.set_payload(self.text[self.pos : end])
            self.pos = end
        else:
            self._multipart(msg, ctype == "multipart/digest", "--" + boundary, depth)
        return ctype

    def _multipart(self, msg: Message, digest: bool, sep: str, depth: int) -> None:
        """Read the parts of ``msg``, delimited by ``sep``.

        A multipart reusing an enclosing one's boundary (RFC 2046 forbids it; some
        mailers do it) gets its own delimiter lines: the feed parser would end it at
        its first line, leaving it empty, and after the inner closing delimiter the
        outer one's remaining parts would land in its epilogue, unread.
        """
        outer = self.seps  # what ends this multipart's preamble and epilogue
        if sep in outer:
            self.seps = [s for s in outer if s != sep]
        text, n = self.text, self.n
        preamble_start = preamble_stop = self.pos
        capturing = True  # no boundary seen yet: lines read are the preamble
        closed = False
        closed_with_eol = False
        while self.pos < n:
            pos = self.pos
            end = self._line_end(pos)
            if self.seps and self._at_eof(pos, end):
                break
            kind = self._boundary(pos, end, sep)
            if kind == 2:
                closed = True
                closed_with_eol = text[end - 1] in "\r\n"
                self.pos = end
                break
            if kind == 0:
                if not capturing:
                    raise _Fallback("text between parts")  # the stdlib asserts it cannot be
                self.pos = preamble_stop = end
                continue
            if capturing:
                capturing = False
                if pos > preamble_start:
                    preamble = text[preamble_start:pos]
                    match = _EOL.search(preamble)
                    msg.preamble = preamble[: -len(match.group(0))] if match else preamble
            # A boundary, and any boundary lines right after it (no empty parts).
            pos = end
            while pos < n:
                end = self._line_end(pos)
                if (self.seps and self._at_eof(pos, end)) or not self._boundary(pos, end, sep):
                    break
                pos = end
            self.pos = pos
            child = _ShallowMessage(policy=_POLICY)
            if digest and msg:
                child.set_default_type("message/rfc822")
            msg.attach(child)
            self.seps.append(sep)
            child_type = self._part(child, depth + 1)
            self.seps.pop()
            # RFC 2046: the line break before a boundary belongs to the boundary.
            if child_type.startswith("multipart/"):
                epilogue = child.epilogue
                if epilogue == "":
                    child.epilogue = None
                elif epilogue is not None:
                    match = _EOL.search(epilogue)
                    if match:
                        child.epilogue = epilogue[: -len(match.group(0))]
            else:
                payload = child._payload  # what the feed parser trims too
                if isinstance(payload, str):
                    match = _EOL.search(payload)
                    if match:
                        child._payload = payload[: -len(match.group(0))]
        self.seps = outer  # (an exception abandons the splitter: no need to restore)
        if capturing:
            # Never saw a boundary: the lines read are the payload, the rest is dropped.
            msg.set_payload(text[preamble_start:preamble_stop])
            self.pos = self._next_eof(self.pos) if self.seps else n
            msg.epilogue = ""
            return
        if not closed:
            return
        end = self._next_eof(self.pos) if self.seps else n
        rest = text[self.pos : end]
        self.pos = end
        if not closed_with_eol:
            match = _BOL.match(rest)
            if match:
                rest = rest[len(match.group(0)) :]
        msg.epilogue = rest


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
        self.root: Message | None = None
        self.header_charset: str | None = None
        self._message_cs: str | None = None
        self._message_cs_known = False

    # ------------------------------------------------------------- driver
    def run(self) -> ParsedMessage:
        msg = _parse_structure(_without_bom(self.raw))
        self._read_headers(msg)
        parsed = self._headers_to_parsed()
        try:
            self._walk(msg)
        except RecursionError:
            self.errors.append("The message is nested too deeply to read every part")
        self._finish(parsed)
        return parsed

    def _read_headers(self, msg: Message) -> None:
        self.root = msg
        eight_bit = False
        for name, value in msg.raw_items():
            self.headers.setdefault(name.strip().lower(), []).append(value)
            if not value.isascii():
                eight_bit = True
        if eight_bit:  # only then is the charset the message declares worth looking up
            self.header_charset = self._message_charset()

    def _message_charset(self) -> str | None:
        if not self._message_cs_known:
            self._message_cs_known = True
            self._message_cs = _declared_charset(self.root) if self.root is not None else None
        return self._message_cs

    def _h(self, name: str) -> str:
        values = self.headers.get(name)
        return values[0] if values else ""

    def _text(self, name: str) -> str:
        return collapse_whitespace(decode_header_value(self._h(name), self.header_charset))

    def _addresses(self, name: str) -> list[Address]:
        problems: list[str] = []
        result = parse_addresses(self.headers.get(name, ()), self.header_charset, problems)
        if problems:
            title = "-".join(word.capitalize() for word in name.split("-"))
            self.errors.extend(f"The {title} header {problem}" for problem in problems)
        return result

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

        senders = self._addresses("from") or self._addresses("sender")
        return ParsedMessage(
            message_id=message_id,
            content_hash=self.content_hash,
            raw_size=len(self.raw),
            message_id_synthesized=synthesized,
            in_reply_to=in_reply_to,
            references=refs,
            subject=self._text("subject"),
            sender=senders[0] if senders else None,
            to=self._addresses("to"),
            cc=self._addresses("cc"),
            bcc=self._addresses("bcc"),
            reply_to=self._addresses("reply-to"),
            date=_parse_date(self._h("date"), self.internaldate),
            list_id=self._text("list-id")[:500],
            list_unsubscribe=self._text("list-unsubscribe")[:2000],
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
            if part.defects:
                self._note_defects(part)
            try:
                ctype = _ctype(part)
                payload = part.get_payload()
                if ctype in _REPORT_TYPES:
                    self.is_report = True
                if isinstance(payload, list) and ctype.startswith("multipart/"):
                    if _parts_in_epilogue(part):
                        self.errors.append(
                            "Parts after a closing MIME boundary are kept only in the original"
                        )
                    if depth >= MAX_DEPTH:
                        self.errors.append(
                            f"Parts nested deeper than {MAX_DEPTH} levels are kept only in "
                            "the original"
                        )
                        continue
                    stack.extend(
                        (sub, depth + 1) for sub in reversed(cast("list[Message]", payload))
                    )
                    continue
                self._leaf(part, ctype, payload)
            except RecursionError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad part must not lose the rest
                self.errors.append(f"One part could not be read ({_describe(exc)})")

    def _note_defects(self, part: Message) -> None:
        """Record what the structure parser could only read one way among several."""
        for defect in part.defects:
            if isinstance(defect, email.errors.MissingHeaderBodySeparatorDefect):
                self.errors.append(
                    "A header block ends in a line that is no header field (a folded line "
                    "that lost its indent, or a missing blank line): the lines after it "
                    "are read as body text"
                )
                return

    def _leaf(self, part: Message, ctype: str, payload: object) -> None:
        _fix_part_headers(part, self._message_charset)
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
            if name is None:  # neither filename= nor name=: nothing to retry
                return ""
        except Exception:  # noqa: BLE001 - RFC 2231 decoding bugs: try the raw param
            name = None
        if not name:
            try:
                param = part.get_param("name")
                if isinstance(param, tuple):
                    name = email.utils.collapse_rfc2231_value(param)
                else:
                    name = param
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


def _parts_in_epilogue(part: Message) -> bool:
    """Whether the text after ``part``'s closing delimiter holds another delimiter line."""
    epilogue = part.epilogue
    if not epilogue or "--" not in epilogue:
        return False
    boundary = part.get_boundary()
    if not boundary:
        return False
    delimiter = re.compile(rf"^--{re.escape(boundary)}[ \t]*$", re.MULTILINE)
    return delimiter.search(epilogue.replace("\r", "\n")) is not None


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
    """``<enclosed subject>.eml``, reading only the enclosed message's header block.

    Slashes and backslashes of the subject become ``_`` (as mail clients save it).
    """
    subject = ""
    try:
        data = _without_bom(data)
        end = min((i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0), default=-1)
        head = data[: end if end >= 0 else 65536][:65536]
        sub = email.parser.BytesHeaderParser(policy=_POLICY).parsebytes(head)
        values = [v for k, v in sub.raw_items() if k.lower() == "subject"]
        if values:
            subject = collapse_whitespace(decode_header_value(values[0], _charset(sub)))
    except Exception:  # noqa: BLE001 - a name is a nicety
        subject = ""
    # A subject is not a path: "Invoice 3/2024" must not lose "Invoice 3" to the
    # path stripping that protects real file names.
    subject = subject.replace("/", "_").replace("\\", "_")
    base = sanitize_filename(subject)[:120].rstrip(". ") if subject else ""
    return f"{base or 'message'}.eml"


def _fix_part_headers(part: Message, message_charset: Callable[[], str | None]) -> None:
    """Give the MIME headers of a part real text where they carry 8-bit bytes.

    compat32 hands surrogate-escaped values to ``get_param``/``get_filename`` as
    ``Header`` objects whose ``str`` is U+FFFD, so a raw file name would be lost. Bytes
    that are not UTF-8 are read in the part's declared charset, else the message's
    (``message_charset``, called only then), else cp1252.
    """
    charsets: tuple[str | None, ...] | None = None
    for name, value in part.raw_items():
        if name.lower() in ("content-type", "content-disposition") and _SURROGATE.search(value):
            if charsets is None:
                charsets = (_charset(part), message_charset())
            part.replace_header(name, _fix_8bit(value, *charsets))


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


def _declared_charset(root: Message) -> str | None:
    """The charset a message declares for its text: the root's, else its first text part's.

    The best guess at the sender's locale for raw 8-bit header bytes that are not UTF-8
    (a mailer that writes them raw uses its own charset for the body too). Iterative and
    bounded like the walk; labels no codec answers to are passed over.
    """
    stack = [root]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        payload = part.get_payload()
        if part is root or (not isinstance(payload, list) and _ctype(part).startswith("text/")):
            label = _charset(part)
            if resolve_charset(label):
                return label
        if isinstance(payload, list):
            stack.extend(reversed(cast("list[Message]", payload)))  # a multipart's parts
    return None


def _charset(part: Message) -> str | None:
    try:
        value = part.get_param("charset")
    except Exception:  # noqa: BLE001 - a broken parameter list means "unknown"
        return None
    if isinstance(value, tuple):  # RFC 2231 form: (charset, language, value)
        value = value[2]
    return str(value) if value else None


_BOM = b"\xef\xbb\xbf"


def _without_bom(raw: bytes) -> bytes:
    """``raw`` without a leading UTF-8 byte order mark.

    Some mailers and "save as .eml" tools write one; the parser would read the first
    header name as ``\ufeffFrom`` (not a header), end the header block there and
    make the whole message its body. The mark says nothing about the message, and
    ``content_hash`` / ``raw`` still cover the bytes as received.
    """
    return raw[3:] if raw.startswith(_BOM) else raw


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
        data = _without_bom(raw)
        split = len(data)
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = data.find(sep)
            if 0 <= idx < split:
                split = idx + len(sep)
        head, body = data[:split], data[split:]
        parser = _Parser(raw, content_hash, internaldate, False)
        msg = email.message_from_bytes(head, policy=_POLICY)
        parser._read_headers(msg)
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
