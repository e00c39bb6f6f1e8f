"""The composer's body as three parts: the person's new text, then signature and quote.

AI compose rewrites the first part only; the signature
(``div.o_pipemail_signature``) and the quoted history (``div.o_pipemail_quote``) that
the composer put below it are kept byte for byte.
"""

import lxml.html
from markupsafe import Markup, escape

KEEP_CLASSES = ("o_pipemail_signature", "o_pipemail_quote")
_KEEP_XPATH = " or ".join(
    f"contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')" for cls in KEEP_CLASSES
)


def _kept(node):
    if not isinstance(node, lxml.html.HtmlElement):
        return False
    return bool(node.xpath(f"self::*[{_KEEP_XPATH}] | .//*[{_KEEP_XPATH}]"))


def _empty(node):
    if isinstance(node, str):
        return not node.strip()
    return (
        node.tag in ("p", "div", "br")
        and not node.text_content().strip()
        and not len(node.xpath(".//img"))
    )


def _html(node):
    if isinstance(node, str):
        return str(escape(node))
    return lxml.html.tostring(node, encoding="unicode")


def split_body(html):
    """``(text_html, rest_html)``: what the person wrote, and what follows it untouched."""
    html = str(html or "")
    if not html.strip():
        return "", ""
    nodes = lxml.html.fragments_fromstring(html)
    cut = next((i for i, node in enumerate(nodes) if _kept(node)), len(nodes))
    text, rest = list(nodes[:cut]), list(nodes[cut:])
    while text and _empty(text[-1]):
        rest.insert(0, text.pop())
    return "".join(_html(n) for n in text), "".join(_html(n) for n in rest)


def paragraphs_html(paragraphs):
    """The AI draft's paragraphs as escaped HTML, each in its own direction."""
    parts = []
    for paragraph in paragraphs:
        lines = paragraph.text.split("\n")
        parts.append(
            Markup('<p dir="%s">%s</p>')
            % (
                "rtl" if paragraph.direction == "rtl" else "ltr",
                Markup("<br>").join(escape(line) for line in lines),
            )
        )
    return Markup("").join(parts)


def join_body(text_html, rest_html):
    spacer = "" if rest_html.startswith("<p><br></p>") or not rest_html else "<p><br></p>"
    return Markup(str(text_html) + spacer + rest_html)
