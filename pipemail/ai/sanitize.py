"""Model output made safe to show: plain text, no markup, no links the user did not write.

The addon renders AI output as escaped text, so markup could not run anyway; this goes
further so that what a person sees and edits is what they would write themselves:
HTML and Markdown are reduced to their text, images are removed (a remote image in a
draft is a tracking pixel or worse), and a URL survives only when the salesperson's own
text (their draft or instruction) contained it: the link of a mail that tells the model
to plant it, or one the model made up, becomes "[link removed]". Bidi override
characters, which can make text read differently from how it is stored, are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..html import text_direction
from ..text import clean_text, html_to_text
from .types import Direction, Paragraph

LINK_REMOVED = "[link removed]"

_HTML_HINT = re.compile(
    r"<\s*/?\s*(?:a|p|br|div|span|img|script|style|iframe|b|i|u|em|strong|ul|ol|li|h[1-6]"
    r"|table|tr|td|html|body|head|meta|link|form|input|svg|object|embed|font|center)\b[^>]*>"
    r"|<!--",
    re.IGNORECASE,
)
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_MD_REF_DEF = re.compile(r"(?m)^\s{0,3}\[[^\]\n]+\]:\s*\S+.*$")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>", re.IGNORECASE)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+")
_FENCE_LINE = re.compile(r"(?m)^[ \t]*```[^\n]*\n?")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_URL = re.compile(r"""(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>"'\]\[)(]+""")
_BAD_SCHEME = re.compile(r"(?i)\b(?:javascript|vbscript|data|file|blob):[^\s<>\"']*")
# bidi embeddings/overrides/isolates and BOM/zero-width space; ZWJ/ZWNJ stay (Persian
# and emoji need them)
_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200b\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MANY_BLANKS = re.compile(r"\n{3,}")
# the prompt's data markers echoed back by a model: noise, and never part of a draft
_MARKERS = re.compile(r"<<<[^<>\n]{0,80}>>>")
_TRAILING = re.compile(r"[ \t]+\n")
_PUNCT_TAIL = ".,;:!?"


def _keep_url(url: str, allowed: frozenset[str]) -> str:
    bare = url.rstrip(_PUNCT_TAIL)
    tail = url[len(bare) :]
    if bare in allowed:
        return url
    return LINK_REMOVED + tail


def to_plain_text(text: str, allowed_urls: Iterable[str] = ()) -> str:
    """``text`` from a model as plain text a person can edit and send.

    ``allowed_urls``: the URLs the salesperson's own text contained
    (:attr:`pipemail.ai.prompts.Prompt.allowed_urls`); every other URL becomes
    ``[link removed]``.
    """
    allowed = frozenset(allowed_urls)
    out = clean_text(text).replace("\r\n", "\n").replace("\r", "\n")
    out = _INVISIBLE.sub("", out)
    out = _MARKERS.sub("", out)
    out = _MD_IMAGE.sub("", out)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1).strip(), match.group(2)
        if url.rstrip(_PUNCT_TAIL) in allowed and url not in label:
            return f"{label} ({url})"
        return label

    out = _MD_LINK.sub(link, out)
    out = _MD_REF_DEF.sub("", out)
    out = _AUTOLINK.sub(r"\1", out)
    if _HTML_HINT.search(out):
        out = html_to_text(out.replace("\n", "<br>"))
    out = _CONTROL.sub("", out)
    out = _FENCE_LINE.sub("", out)
    out = _HEADING.sub("", out)
    out = _BOLD.sub(r"\2", out)
    out = _INLINE_CODE.sub(r"\1", out)
    out = _BAD_SCHEME.sub(LINK_REMOVED, out)
    out = _URL.sub(lambda m: _keep_url(m.group(0), allowed), out)
    out = _TRAILING.sub("\n", out)
    out = _MANY_BLANKS.sub("\n\n", out)
    return out.strip()


def direction_of(text: str, default: Direction = "ltr") -> Direction:
    """Right-to-left when most strong letters are (Arabic, Hebrew, Persian, Urdu...)."""
    found = text_direction(text)
    return found or default


def paragraphs(text: str) -> tuple[Paragraph, ...]:
    """``text`` split at blank lines, each paragraph with its own direction.

    A paragraph without letters (a date, a phone number) takes the direction of the
    whole text, so a figure line inside an Arabic draft stays right-to-left.
    """
    overall = direction_of(text)
    result = []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip("\n")
        if block.strip():
            result.append(Paragraph(block, direction_of(block, overall)))
    return tuple(result)
