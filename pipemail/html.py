"""Small lxml helpers for the HTML we *send*: parsing, plain-text rendering, direction.

Outgoing bodies come from the Odoo composer (already sanitized by ``html_sanitize``)
and are then touched twice by the engine: right-to-left marking here and tracking
instrumentation in :mod:`pipemail.tracking`. Both need the same "always a full
document with a body" view of the markup, so parsing lives in one place.

Nothing here sanitizes untrusted HTML for display; that is Odoo's ``html_sanitize``
on the way in. These helpers only keep well-formed markup well-formed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import lxml.html
from lxml import etree

Direction = Literal["rtl", "ltr", ""]

#: Elements that start their own paragraph: direction is decided per block, as a
#: reader perceives it, and the plain-text rendering breaks lines around them.
BLOCK_TAGS: frozenset[str] = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "html", "li", "main",
        "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "ul",
    }
)  # fmt: skip

_SKIP_TEXT_TAGS = frozenset({"head", "script", "style", "title", "noscript", "template"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl"}
)
_CELL_TAGS = frozenset({"td", "th"})  # cells of one row stay on one line
_CLOSING_BODY = re.compile(r"</\s*(?:body|html)\s*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def parse_document(html: str) -> lxml.html.HtmlElement:
    """Parse a fragment or a document into an ``<html>`` root that has a ``<body>``.

    The composer sends fragments (``<p>Hello</p>``); a few templates send whole
    documents. Normalising both to one shape lets callers append a pixel at the end
    of the body or set ``dir`` on the root without special cases.
    """
    if not html or not html.strip():
        root = lxml.html.document_fromstring("<html><body></body></html>")
    else:
        try:
            # libxml2 drops whatever follows </html>; browsers move it into the body
            # (HTML5 "after body" rules). A signature appended to a full document by
            # string concatenation must not vanish, so the closing tags go.
            root = lxml.html.document_fromstring(_CLOSING_BODY.sub("", html))
        except etree.ParserError:
            # Only comments or whitespace-like content: libxml2 found no element.
            root = lxml.html.document_fromstring("<html><body></body></html>")
    if root.find("body") is None:
        # A frameset or a head-only document: give it a body so callers can append.
        etree.SubElement(root, "body")
    return root


def body_of(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    body = root.find("body")
    assert body is not None, "parse_document always creates a body"
    return body


def to_html(root: lxml.html.HtmlElement) -> str:
    """Serialize a document from :func:`parse_document` as HTML5 text."""
    text: str = lxml.html.tostring(
        root, encoding="unicode", method="html", doctype="<!DOCTYPE html>"
    )
    return text


# --- right-to-left detection --------------------------------------------------------


def text_direction(text: str) -> Direction:
    """``"rtl"`` when most strongly directional letters are right-to-left.

    Uses the Unicode bidi class, so Arabic script (Arabic, Persian, Urdu, Pashto...),
    Hebrew, Syriac and Thaana count as right-to-left (classes ``R``/``AL``) and Latin,
    Cyrillic, CJK... as left-to-right (``L``). Digits, punctuation and spaces are
    neutral and do not vote: "Order 1234 ✓" says nothing about direction. Returns
    ``""`` when there is no strong letter at all, so callers keep the inherited
    direction instead of guessing.

    A majority, not "any RTL letter", because a Hebrew signature under an English
    message must not flip the whole message.
    """
    rtl = ltr = 0
    for char in text:
        bidi = unicodedata.bidirectional(char)
        if bidi in ("R", "AL"):
            rtl += 1
        elif bidi == "L":
            ltr += 1
    if rtl == 0 and ltr == 0:
        return ""
    return "rtl" if rtl > ltr else "ltr"


def _own_text(el: lxml.html.HtmlElement) -> str:
    """Text of ``el`` and its inline descendants, not of nested blocks.

    A ``<div>`` holding an English ``<p>`` and an Arabic ``<p>`` has no text of its
    own; each paragraph decides for itself.
    """
    parts: list[str] = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str) and child.tag.lower() not in BLOCK_TAGS:
            if child.tag.lower() not in _SKIP_TEXT_TAGS:
                parts.append(_own_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _mark(el: lxml.html.HtmlElement, inherited: Direction) -> None:
    current = inherited
    explicit = (el.get("dir") or "").strip().lower()
    tag = el.tag.lower() if isinstance(el.tag, str) else ""
    if explicit in ("rtl", "ltr"):
        current = explicit  # type: ignore[assignment]  # the author's choice wins
    elif tag in BLOCK_TAGS and tag not in ("html", "body"):
        own = text_direction(_own_text(el))
        if own and own != inherited:
            el.set("dir", own)
            current = own
    for child in el:
        if isinstance(child.tag, str) and child.tag.lower() not in _SKIP_TEXT_TAGS:
            _mark(child, current)


def mark_direction_tree(root: lxml.html.HtmlElement) -> Direction:
    """Set ``dir`` on the root and on each paragraph whose direction differs from it.

    The document's direction is the majority over all its text; it goes on ``<html>``
    and ``<body>`` only when it is right-to-left (left-to-right is every client's
    default, so marking it would only add noise). Then each block gets ``dir`` when
    its own text leans the other way: an Arabic reply above a quoted English message
    becomes an RTL document with ``dir="ltr"`` on the quoted paragraphs. Existing
    ``dir`` attributes are kept. Returns the document direction.
    """
    body = body_of(root)
    doc_dir = text_direction(body.text_content()) or "ltr"
    if doc_dir == "rtl":
        for el in (root, body):
            if not el.get("dir"):
                el.set("dir", "rtl")
    explicit = (body.get("dir") or root.get("dir") or "").strip().lower()
    base: Direction = explicit if explicit in ("rtl", "ltr") else doc_dir  # type: ignore[assignment]
    for child in body:
        if isinstance(child.tag, str) and child.tag.lower() not in _SKIP_TEXT_TAGS:
            _mark(child, base)
    return doc_dir


def mark_direction(html: str) -> str:
    """:func:`mark_direction_tree` on markup; returns a full document."""
    root = parse_document(html)
    mark_direction_tree(root)
    return to_html(root)


def mark_fragment(html: str) -> tuple[str, Direction]:
    """``(html, direction)``: right-to-left paragraphs of a fragment marked with ``dir``.

    Stored bodies are fragments (the sanitizer drops ``<html>``/``<body>``), so a
    right-to-left document keeps its direction on a wrapping ``<div dir="rtl">``.
    """
    root = parse_document(html or "")
    direction = mark_direction_tree(root) or "ltr"
    body = body_of(root)
    body.tag = "div"
    out = lxml.html.tostring(body, encoding="unicode", method="html")
    if not body.attrib and out.startswith("<div>") and out.endswith("</div>"):
        out = out[len("<div>") : -len("</div>")]
    return out, direction


# --- plain-text rendering -------------------------------------------------------------


class _TextBuilder:
    """Accumulates text with "at least N line breaks here" requests.

    Block boundaries ask for breaks instead of writing them, so nested blocks
    (``<div><p>...``) never produce runs of empty lines.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending_breaks = 0

    def write(self, text: str) -> None:
        if not text:
            return
        if self.parts and self.pending_breaks:
            self.parts.append("\n" * self.pending_breaks)
        self.pending_breaks = 0
        if self.parts and self.parts[-1].endswith(("\n", " ")) and text.startswith(" "):
            text = text.lstrip(" ")
            if not text:
                return
        if not self.parts:
            text = text.lstrip(" ")
        self.parts.append(text)

    def breaks(self, n: int) -> None:
        self.pending_breaks = max(self.pending_breaks, n)

    def result(self) -> str:
        text = "".join(self.parts)
        lines = [line.rstrip() for line in text.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _render(el: lxml.html.HtmlElement, out: _TextBuilder, pre: bool) -> None:
    tag = el.tag.lower() if isinstance(el.tag, str) else ""
    if tag in _SKIP_TEXT_TAGS or not tag:
        return
    if tag == "br":
        out.write("\n")
        return
    if tag == "hr":
        out.breaks(1)
        out.write("---")
        out.breaks(1)
        return
    if tag == "img":
        alt = (el.get("alt") or "").strip()
        if alt:
            out.write(f"[{alt}]")
        return
    if tag == "blockquote":
        inner = _TextBuilder()
        _render_children(el, inner, pre)
        quoted = "\n".join(("> " + line).rstrip() for line in inner.result().split("\n"))
        out.breaks(2)
        out.write(quoted)
        out.breaks(2)
        return
    is_pre = pre or tag == "pre"
    if tag in _PARAGRAPH_TAGS:
        out.breaks(2)
    elif tag in BLOCK_TAGS and tag not in _CELL_TAGS:
        out.breaks(1)
    if tag == "li":
        parent = el.getparent()
        if parent is not None and parent.tag == "ol":
            out.write(f"{[c for c in parent if c.tag == 'li'].index(el) + 1}. ")
        else:
            out.write("- ")
    _render_children(el, out, is_pre)
    if tag == "a":
        href = (el.get("href") or "").strip()
        label = el.text_content().strip()
        if href.lower().startswith(("http://", "https://")) and href != label:
            out.write(f" ({href})")
    elif tag in ("td", "th"):
        out.write(" ")
    if tag in _PARAGRAPH_TAGS:
        out.breaks(2)
    elif tag in BLOCK_TAGS and tag not in _CELL_TAGS:
        out.breaks(1)


def _render_children(el: lxml.html.HtmlElement, out: _TextBuilder, pre: bool) -> None:
    def text(s: str | None) -> None:
        if s:
            out.write(s if pre else _SPACES.sub(" ", s))

    text(el.text)
    for child in el:
        if isinstance(child.tag, str):
            _render(child, out, pre)
        text(child.tail)


def html_to_text(html: str) -> str:
    """A readable text/plain alternative for an HTML body.

    Clients that show only text (and spam filters, which compare both parts) should
    see the same words: paragraphs as blank-line separated blocks, list bullets,
    quoted blocks with ``>``, and link targets in brackets after their label, since
    a bare label is useless without the URL.
    """
    out = _TextBuilder()
    _render_children(body_of(parse_document(html)), out, False)
    return out.result()
