"""Token budgeting: make a thread fit the model's context, keeping the first and newest.

The engine has no tokenizer for whatever model an endpoint serves, so it estimates, on
the safe side: about 3.2 ASCII characters per token (English runs at ~4 with common
BPE vocabularies) and one token per non-ASCII character (Arabic, Cyrillic and CJK run
below that). Overestimating only cuts a little more; underestimating would make the
server refuse the request. Each result reports the server's own count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..text import strip_quoted
from .types import ThreadMessage

#: tokens a chat message costs beyond its text (role markers, separators)
MESSAGE_OVERHEAD = 8
#: a message body longer than this share of the thread budget is shortened
_LONGEST_SHARE = 0.5
_SHORTENED = " [… rest of this message shortened]"
_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def estimate_tokens(text: str) -> int:
    """An upper-side estimate of the tokens ``text`` costs with a typical BPE vocabulary."""
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    return (ascii_chars * 10 + 31) // 32 + (len(text) - ascii_chars)


def label(index: int) -> str:
    """The short label a message gets in prompts: ``M1`` for the first of the thread.

    Labels, not the caller's ids, go to the model: they are short, cannot collide with
    numbers in the text, and a summary's citations are mapped back to ids afterwards.
    """
    return f"M{index + 1}"


def message_body(body: str) -> str:
    """The new text of a message: quoted history cut, blank runs collapsed."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    new = strip_quoted(text).strip()
    text = new or text.strip()  # a message that is only a quote keeps its text
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text)


def shorten_to(text: str, tokens: int) -> str:
    """``text`` cut (at a word boundary when one is near) to about ``tokens`` tokens."""
    if estimate_tokens(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:  # longest prefix within the budget
        mid = (low + high + 1) // 2
        if estimate_tokens(text[:mid]) + estimate_tokens(_SHORTENED) <= tokens:
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    space = cut.rfind(" ")
    if space > low * 0.8:
        cut = cut[:space]
    return cut.rstrip() + _SHORTENED


@dataclass(frozen=True)
class PromptMessage:
    """A thread message ready for a prompt: its label and the text the model sees."""

    index: int
    message: ThreadMessage
    text: str
    tokens: int

    @property
    def label(self) -> str:
        return label(self.index)


@dataclass(frozen=True)
class ThreadCut:
    """The messages that fit, oldest first, and the ones left out (between first and kept)."""

    kept: tuple[PromptMessage, ...]
    omitted: tuple[ThreadMessage, ...]
    tokens: int

    @property
    def omitted_ids(self) -> tuple[str, ...]:
        return tuple(message.id for message in self.omitted)


def render_message(index: int, message: ThreadMessage, body: str) -> str:
    """How one message reads in a prompt: a label line, a few headers, the body."""
    lines = [f"[{label(index)}]", f"From: {message.sender}"]
    if message.recipients:
        lines.append("To: " + ", ".join(message.recipients))
    if message.date is not None:
        lines.append("Date: " + message.date.strftime("%a %d %b %Y %H:%M"))
    if message.subject:
        lines.append(f"Subject: {message.subject}")
    lines.append("")
    lines.append(body)
    return "\n".join(lines)


def fit_thread(messages: Sequence[ThreadMessage], budget: int) -> ThreadCut:
    """Keep what fits in ``budget`` tokens: the newest message, the first, then newer ones.

    ``messages`` are oldest first. A body longer than half the budget is shortened so one
    huge message cannot crowd out the rest. What is left out is always a run of older
    messages between the first and the oldest kept one, so a summary can say "older
    messages were left out" and be right.
    """
    if not messages:
        return ThreadCut(kept=(), omitted=(), tokens=0)
    longest = max(64, int(budget * _LONGEST_SHARE))
    prepared: list[PromptMessage] = []
    for index, message in enumerate(messages):
        body = shorten_to(message_body(message.body), longest)
        text = render_message(index, message, body)
        prepared.append(PromptMessage(index, message, text, estimate_tokens(text) + 2))

    newest = prepared[-1]
    chosen = {newest.index}
    used = newest.tokens
    if len(prepared) > 1 and used + prepared[0].tokens <= budget:
        chosen.add(0)
        used += prepared[0].tokens
    for item in reversed(prepared[1:-1]):
        if used + item.tokens > budget:
            break
        chosen.add(item.index)
        used += item.tokens
    kept = tuple(item for item in prepared if item.index in chosen)
    omitted = tuple(item.message for item in prepared if item.index not in chosen)
    return ThreadCut(kept=kept, omitted=omitted, tokens=used)
