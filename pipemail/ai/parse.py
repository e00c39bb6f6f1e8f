"""Reading model answers, including from servers and models that ignore the schema.

A server that honours ``response_format`` returns exactly the JSON asked for; many do not
(or the model runs out of tokens mid-answer). The reader tries, in order: the whole
answer as JSON, fenced code blocks, the first balanced JSON value inside prose, then a
truncated answer closed at its last complete value. When no JSON is found at all, the
helper-specific fallbacks read numbered or bulleted lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•]|\(\d{1,2}\))\s+(.*\S)\s*$")
_LABEL = re.compile(r"\bM(\d{1,4})\b")
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is)\b"
    r"[^\n]{0,120}[:!.]\s*\n",
    re.IGNORECASE,
)
_CLOSERS = {"{": "}", "[": "]"}


def _loads(text: str) -> Any | None:
    try:
        return json.loads(text)
    except ValueError:
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", text)
    if fixed != text:
        try:
            return json.loads(fixed)
        except ValueError:
            return None
    return None


def _scan(text: str, start: int) -> tuple[int, list[tuple[int, str]]]:
    """Walk one JSON value from ``start``.

    Returns the end index of the value (-1 if the text ends first) and the places where
    a value inside a container was complete, each with the closers needed there.
    """
    stack: list[str] = []
    complete: list[tuple[int, str]] = []
    in_string = escaped = False
    expect_value = False  # inside an object, after ':'
    is_key = False
    i = start
    while i < len(text):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if not is_key and stack:
                    complete.append((i + 1, "".join(_CLOSERS[c] for c in reversed(stack))))
        elif ch == '"':
            in_string = True
            is_key = bool(stack) and stack[-1] == "{" and not expect_value
            expect_value = False
        elif ch in "{[":
            stack.append(ch)
            expect_value = False
        elif ch in "}]":
            if not stack:
                return -1, complete
            stack.pop()
            if not stack:
                return i + 1, complete
            complete.append((i + 1, "".join(_CLOSERS[c] for c in reversed(stack))))
        elif ch == ":":
            expect_value = True
        elif ch == ",":
            expect_value = False
        i += 1
    return -1, complete


def _candidates(content: str) -> Iterator[str]:
    text = content.strip()
    yield text
    for match in _FENCE.finditer(text):
        yield match.group(1).strip()
    for opener in ("{", "["):
        start = text.find(opener)
        if start >= 0:
            end, _ = _scan(text, start)
            if end > 0:
                yield text[start:end]


def extract_json(content: str) -> Any | None:
    """The JSON value in a model answer, or ``None`` when there is none to be found."""
    for candidate in _candidates(content):
        if candidate:
            value = _loads(candidate)
            if value is not None:
                return value
    return repair_truncated(content)


def repair_truncated(content: str) -> Any | None:
    """An answer cut off mid-JSON (out of tokens), closed at its last complete value.

    When no value inside was complete (a single long string cut short, as in a draft),
    the open string and containers are closed where the text stops.
    """
    text = content.strip()
    fence = _FENCE.search(text)
    if fence:
        text = fence.group(1).strip()
    start = text.find("{")
    if start < 0:
        return None
    end, complete = _scan(text, start)
    if end > 0:
        return None  # balanced but not JSON: nothing to repair
    for cut, closers in reversed(complete):
        value = _loads(text[start:cut].rstrip().rstrip(",") + closers)
        if value is not None:
            return value
    return _close_in_place(text[start:])


def _close_in_place(text: str) -> Any | None:
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    body = text[:-1] if escaped else text
    if in_string:
        body += '"'
    body = body.rstrip().rstrip(",")
    return _loads(body + "".join(_CLOSERS[c] for c in reversed(stack)))


def list_items(content: str) -> list[str]:
    """Items of a numbered or bulleted list in prose (the no-JSON fallback)."""
    items = []
    for line in content.splitlines():
        match = _LIST_ITEM.match(line)
        if match:
            items.append(match.group(1).strip())
    return items


def strip_preamble(content: str) -> str:
    """A free-text answer without fences and without a "Sure, here is..." first line."""
    text = content.strip()
    fence = _FENCE.search(text)
    if fence and fence.group(1).strip():
        text = fence.group(1).strip()
    return _PREAMBLE.sub("", text, count=1).strip()


def cited_labels(value: Any) -> list[str]:
    """Message labels (``M3``) cited by a point, whatever shape the model gave them in."""
    if isinstance(value, (list, tuple)):
        found: list[str] = []
        for item in value:
            found.extend(cited_labels(item))
        return found
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [f"M{value}"]
    if isinstance(value, str):
        labels = [f"M{int(n)}" for n in _LABEL.findall(value)]
        if not labels and value.strip().isdigit():
            labels = [f"M{int(value.strip())}"]
        return labels
    return []


def strip_labels(text: str) -> tuple[str, list[str]]:
    """Text of a list item without its ``[M2, M3]`` / ``(M2)`` citations, and the labels."""
    labels = [f"M{int(n)}" for n in _LABEL.findall(text)]
    cleaned = re.sub(r"[\[(]\s*M\d{1,4}(?:\s*[,;&]\s*(?:and\s+)?M\d{1,4})*\s*[\])]", "", text)
    return re.sub(r"\s{2,}", " ", cleaned).strip(), labels
