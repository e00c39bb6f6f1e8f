"""Text helpers shared by MIME parsing, threading and composing.

Everything here takes whatever the wire gave us and returns valid UTF-8 ``str``: the
store is PostgreSQL (no NUL bytes, no lone surrogates) and the UI renders the result,
so a helper that can be handed bytes in an unknown charset never raises on them.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from functools import lru_cache

__all__ = [
    "clean_text",
    "collapse_whitespace",
    "decode_bytes",
    "decode_header_bytes",
    "detect_direction",
    "html_to_text",
    "make_snippet",
    "normalize_subject",
    "resolve_charset",
]

# Labels seen in the wild that Python either does not know or knows as a narrower
# charset than the one senders actually use (WHATWG maps these the same way).
_CHARSET_ALIASES: dict[str, tuple[str, ...]] = {
    "us-ascii": ("ascii",),
    "ascii": ("ascii",),
    "iso-8859-1": ("cp1252",),
    "iso8859-1": ("cp1252",),
    "latin1": ("cp1252",),
    "latin-1": ("cp1252",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601": ("cp949",),
    "euc-kr": ("cp949",),
    "x-windows-949": ("cp949",),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932", "shift_jis_2004"),
    "windows-31j": ("cp932",),
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2"),
    "euc-jp": ("euc_jp", "euc_jis_2004"),
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "x-gbk": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "tis-620": ("cp874",),
    "iso-8859-11": ("cp874",),
    "unicode-1-1-utf-7": ("utf-7",),
    "utf8": ("utf-8",),
    "iso-8859-8-i": ("iso8859_8",),
    "iso-8859-6-i": ("iso8859_6",),
}

# Labels that say "we do not know": skip straight to the fallback chain.
_UNKNOWN_CHARSETS = frozenset(
    {"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "charset"}
)

# Codecs Python knows that are not charsets a mail part can honestly be written in:
# decoding with them would interpret backslashes or punycode instead of text.
_REFUSED_CODECS = frozenset(
    {
        "unicode_escape",
        "raw_unicode_escape",
        "idna",
        "punycode",
        "undefined",
        "mbcs",
        "oem",
        "charmap",
        "palmos",
    }
)

# Encodings whose strict failure should not send us down to cp1252: a Japanese or
# Korean message with one bad byte is better shown with one U+FFFD than as mojibake.
_SINGLE_BYTE_OR_UTF8 = frozenset({"ascii", "utf-8", "cp1252", "latin-1", "iso8859-1"})

_SURROGATES_OR_NUL = re.compile("[\x00\ud800-\udfff]")


@lru_cache(maxsize=512)
def resolve_charset(label: str | None) -> tuple[str, ...]:
    """Python codec names to try, strictest first, for a declared charset label.

    Returns ``()`` for labels that mean nothing (unknown, bogus, or non-text codecs) so
    the caller goes straight to the UTF-8 / cp1252 / latin-1 fallback chain.
    """
    if not label:
        return ()
    name = label.strip().strip("\"'").strip().lower()
    # ``charset=3Diso-8859-1``: a quoted-printable soft "=" that leaked into the header.
    if name.startswith("3d") and len(name) > 2:
        name = name[2:]
    if name in _UNKNOWN_CHARSETS or len(name) > 40:
        return ()
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return ()
    if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
        return ()
    if info.name == "latin-1" or info.name == "iso8859-1":
        return ("cp1252",)
    return (info.name,)


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode bytes from a mail part to valid text whatever the label says.

    Order: the declared charset, then UTF-8 (the usual truth behind a wrong label),
    then -- for a declared multibyte charset -- the declared one with U+FFFD for the
    bad bytes, else cp1252 and finally latin-1, which cannot fail.
    """
    if not data:
        return ""
    declared = resolve_charset(charset)
    tried: set[str] = set()
    for codec in (*declared, "utf-8"):
        if codec in tried:
            continue
        tried.add(codec)
        try:
            return clean_text(data.decode(codec))
        except (UnicodeDecodeError, LookupError):
            continue
        except Exception:  # noqa: BLE001, S112 - a codec bug must not lose the message
            continue
    if declared and declared[0] not in _SINGLE_BYTE_OR_UTF8:
        try:
            return clean_text(data.decode(declared[0], errors="replace"))
        except Exception:  # noqa: BLE001, S110 - fall through to the byte-per-char codecs
            pass
    # Mostly UTF-8 with a few broken bytes (a truncated name, one stray byte): keep the
    # UTF-8 reading with U+FFFD rather than turning every character into mojibake.
    lenient = data.decode("utf-8", errors="replace")
    if len(data) - len(lenient) > 2 * lenient.count("\ufffd"):
        return clean_text(lenient)
    try:
        return clean_text(data.decode("cp1252"))
    except UnicodeDecodeError:
        return clean_text(data.decode("latin-1"))


# Codecs that cannot hold a byte above 0x7f: a label naming one tells nothing about
# raw 8-bit bytes (decoding with it would only turn them into U+FFFD).
_SEVEN_BIT_CODECS = frozenset(
    {
        "ascii",
        "utf-7",
        "hz",
        "iso2022_jp",
        "iso2022_jp_1",
        "iso2022_jp_2",
        "iso2022_jp_2004",
        "iso2022_jp_3",
        "iso2022_jp_ext",
        "iso2022_kr",
    }
)


def decode_header_bytes(data: bytes, *charsets: str | None) -> str:
    """Decode raw 8-bit bytes found in a header (no RFC 2047 / 2231 label on them).

    Order: UTF-8 first (RFC 6532, and what most mailers send today whatever the body
    says), then the first of ``charsets`` -- those the part and the message declare for
    their text, the best guess at the sender's locale -- that names a real codec able
    to hold 8-bit bytes (``us-ascii`` or ``iso-2022-jp`` say nothing about them), then
    :func:`decode_bytes`' fallbacks (mostly-UTF-8 with U+FFFD, cp1252, latin-1).
    """
    try:
        return clean_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    for label in charsets:
        declared = resolve_charset(label)
        if declared and declared[0] not in _SEVEN_BIT_CODECS:
            return decode_bytes(data, label)
    return decode_bytes(data)


def clean_text(text: str) -> str:
    """Drop what PostgreSQL and UTF-8 refuse: NUL characters and lone surrogates.

    Lone surrogates come from UTF-7 / UTF-16 payloads and from ``surrogateescape``;
    they are replaced by U+FFFD so the rest of the text survives.
    """
    if not _SURROGATES_OR_NUL.search(text):
        return text
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATES_OR_NUL.sub("\ufffd", text)
    return text


_WS = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace (including NBSP and newlines) becomes one space."""
    return _WS.sub(" ", text).strip()


# --------------------------------------------------------------------- HTML → text

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "tr",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "hr",
        "center",
        "form",
        "fieldset",
    }
)
_DROP_TAGS = ("script", "style", "head", "title", "template", "noscript", "object", "iframe")
_TAG_RE = re.compile(r"<[^>]*>")
_HSPACE = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_MANY_NL = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (scripts and styles dropped).

    Used when a message has only HTML, so that snippets, search and the AI prompt have
    text to work on. Falls back to a crude tag strip when lxml gives up (empty or
    pathological documents), because some text beats none.
    """
    if not html or not html.strip():
        return ""
    try:
        text = _html_to_text_lxml(html)
    except Exception:  # noqa: BLE001 - lxml raises several types on junk input
        import html as html_mod

        text = html_mod.unescape(_TAG_RE.sub(" ", html))
    return _tidy_lines(clean_text(text))


def _html_to_text_lxml(html: str) -> str:
    from lxml import etree

    parser = etree.HTMLParser(
        remove_comments=True,
        remove_pis=True,
        no_network=True,
        recover=True,
        encoding="utf-8",
        huge_tree=True,
    )
    root = etree.fromstring(html.encode("utf-8", "replace"), parser)
    if root is None:
        return ""
    for el in list(root.iter(*_DROP_TAGS)):
        el.clear(keep_tail=True)
    for el in root.iter():
        tag = el.tag
        if not isinstance(tag, str):
            continue
        tag = tag.lower()
        if tag == "br":
            el.tail = "\n" + (el.tail or "")
        elif tag == "li":
            el.text = "- " + (el.text or "")
            el.tail = "\n" + (el.tail or "")
        elif tag in ("td", "th"):
            el.tail = " " + (el.tail or "")
        elif tag in _BLOCK_TAGS:
            el.text = "\n" + (el.text or "")
            el.tail = "\n" + (el.tail or "")
        elif tag == "img":
            alt = el.get("alt")
            if alt:
                el.tail = f" {alt} " + (el.tail or "")
    return "".join(root.itertext())


def _tidy_lines(text: str) -> str:
    lines = [_HSPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NL.sub("\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------- snippets

# Lines that open the quoted part of a reply in the clients salespeople actually use.
_REPLY_HEADER = re.compile(
    r"^(?:"
    r"on\b.{0,200}\bwrote:?"  # Gmail, Apple Mail, Thunderbird (en)
    r"|le\b.{0,200}\ba écrit\s*:?"  # fr
    r"|am\b.{0,200}\bschrieb.{0,80}:?"  # de
    r"|el\b.{0,200}\bescribió:?"  # es
    r"|il\b.{0,200}\bha scritto:?"  # it
    r"|op\b.{0,200}\bschreef.{0,80}:?"  # nl
    r"|-{2,}\s*original message\s*-{2,}"  # Outlook
    r"|-{2,}\s*ursprüngliche nachricht\s*-{2,}"
    r"|-{2,}\s*message d'origine\s*-{2,}"
    r"|_{10,}"  # Outlook's rule before "From: ... Sent: ..."
    r"|-{5,}\s*forwarded message\s*-{5,}"
    r")\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^(?:from|von|de|da|van):\s", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(r"^(?:sent|gesendet|envoyé|enviado|inviato|verzonden):\s", re.I)


def strip_quoted(text: str) -> str:
    """The new part of a reply: stops at the quote header, drops ``>`` lines.

    Deliberately simple: a snippet that shows a little of the quote is harmless, one
    that shows only the quote is useless, so we cut at the first clear marker.
    """
    kept: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">"):
            continue
        if stripped == "--" and line.rstrip("\r") in ("-- ", "--"):
            break  # signature separator
        if _REPLY_HEADER.match(stripped):
            break
        # Gmail wraps "On <date>, <name> <addr> wrote:" over two lines.
        if i + 1 < len(lines) and stripped[:3].lower() == "on " and len(stripped) < 200:
            if _REPLY_HEADER.match(stripped + " " + lines[i + 1].strip()):
                break
        if (
            _OUTLOOK_FROM.match(stripped)
            and kept
            and i + 1 < len(lines)
            and any(_OUTLOOK_SENT.match(x.strip()) for x in lines[i + 1 : i + 3])
        ):
            break
        kept.append(line)
    return "\n".join(kept)


def make_snippet(text: str, limit: int = 200) -> str:
    """First ``limit`` characters of the new text of a message, on one line."""
    if not text:
        return ""
    # Snippets are short: look at the head only, so a 5 MB body costs nothing extra.
    head = text[: limit * 40]
    snippet = collapse_whitespace(strip_quoted(head))
    if not snippet:
        snippet = collapse_whitespace(head)
    if len(snippet) <= limit:
        return snippet
    cut = snippet[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"


# --------------------------------------------------------------------- subjects

_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:"
    r"(?:re|fwd|fw|aw|wg|sv|vs|tr|antw|réf|ref|rv|enc|res|回复|答复|回覆|转发|轉寄)"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]"
    r"|\[[^\]]{0,80}\]"
    r")\s*",
    re.IGNORECASE,
)
_SUBJECT_SUFFIX = re.compile(r"\s*\((?:fwd|fw)\)\s*$", re.IGNORECASE)


def normalize_subject(subject: str) -> str:
    """Subject reduced to what stays the same along a conversation.

    Strips any number of reply/forward prefixes in the languages our users' clients
    write (Re, Fwd, AW, WG, SV, VS, TR, Réf, 回复...) and ``[list]`` tags, casefolds and
    collapses whitespace, so "RE: [sales] Fwd:  Offer" and "offer" compare equal.
    """
    if not subject:
        return ""
    text = collapse_whitespace(subject).casefold()
    for _ in range(50):  # bounded: each round removes at least one character
        new = _SUBJECT_PREFIX.sub("", text, count=1)
        if new == text:
            break
        text = new
    text = _SUBJECT_SUFFIX.sub("", text)
    return collapse_whitespace(text)


# --------------------------------------------------------------------- direction


def detect_direction(text: str) -> str:
    """``"rtl"`` when right-to-left letters (Arabic, Hebrew, Persian, Urdu...) are
    the majority of strongly-directional characters, else ``"ltr"``.

    Digits, punctuation and spaces are neutral and do not vote, so "٣ items" and a
    Hebrew sentence with an English product name both come out right.
    """
    rtl = ltr = 0
    for ch in text[:10000]:
        if ch.isascii():
            if ch.isalpha():
                ltr += 1
            continue
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            rtl += 1
        elif kind == "L":
            ltr += 1
    return "rtl" if rtl > ltr else "ltr"
