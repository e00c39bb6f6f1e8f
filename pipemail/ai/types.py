"""What the AI helpers take and give back: plain dataclasses the Odoo addon fills and reads.

The addon reads a thread (only what the requesting user may read), closes its
transaction, calls a helper with these values, and stores or shows the result. Nothing
here holds a database object, so a helper can run without a cursor open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Direction = Literal["ltr", "rtl"]
Tone = Literal["formal", "friendly", "direct"]
ComposeAction = Literal["write", "reply", "improve", "shorten", "tone", "translate"]
PointKind = Literal["request", "decision", "question", "next_step"]
SchemaMode = Literal["auto", "json_schema", "json_object", "none"]

TONES: tuple[Tone, ...] = ("formal", "friendly", "direct")
COMPOSE_ACTIONS: tuple[ComposeAction, ...] = (
    "write",
    "reply",
    "improve",
    "shorten",
    "tone",
    "translate",
)
POINT_KINDS: tuple[PointKind, ...] = ("request", "decision", "question", "next_step")


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a conversation, as the requesting user may read it.

    ``id`` is the caller's own key (an Odoo record id as a string, say); summaries cite
    messages by it. ``body`` is the plain text of the message; quoted history below
    the new text is cut by the engine, so the caller may pass the whole text part.
    """

    id: str
    sender: str
    body: str
    date: datetime | None = None
    recipients: Sequence[str] = ()
    subject: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask a model: any OpenAI-compatible ``/v1`` API.

    An empty ``base_url`` means the embedded local llama.cpp server
    (:data:`pipemail.ai.local.DEFAULT_BASE_URL`), and an empty ``model`` there means its
    bundled model. ``context_tokens`` is the model's context window: threads are cut to
    fit it with ``max_output_tokens`` left for the answer.

    ``timeout`` bounds each wait for bytes from the server; ``deadline`` bounds the whole
    call, retries and streaming included. ``max_retries`` counts retries after 429, 5xx
    and dropped connections (Retry-After is honoured within the deadline).

    ``schema_mode``: how structured output is asked for. ``auto`` tries OpenAI's
    ``json_schema`` (OpenAI, vLLM, Ollama, llama.cpp's llama-server), then the
    ``json_object`` + ``schema`` form (llama-cpp-python's server), then no
    ``response_format`` at all, and remembers per process what the endpoint took.

    The key is left out of ``repr`` so that logging an endpoint never logs the key.
    """

    base_url: str = ""
    model: str = ""
    api_key: str = field(default="", repr=False)
    timeout: float = 60.0
    deadline: float = 180.0
    max_retries: int = 2
    context_tokens: int = 8192
    max_output_tokens: int = 700
    temperature: float = 0.2
    seed: int | None = None
    stream: bool = True
    schema_mode: SchemaMode = "auto"


@dataclass(frozen=True)
class CallStats:
    """What one helper call cost, for the addon's audit log and the result's footer.

    ``model`` is the model name the server reported (the configured one when it reported
    none). ``usage_estimated`` is true when the server did not report token counts (some
    servers do not in streamed answers) and the engine counted them itself.
    """

    model: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    attempts: int = 1
    usage_estimated: bool = False
    schema_mode: str = ""
    finish_reason: str = ""


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of model output with its own direction (``dir=`` when rendered)."""

    text: str
    direction: Direction


@dataclass(frozen=True)
class SummaryPoint:
    """One point of a thread summary and the messages (caller ids) it comes from."""

    kind: PointKind
    text: str
    message_ids: tuple[str, ...] = ()
    direction: Direction = "ltr"


@dataclass(frozen=True)
class SummaryResult:
    """A thread summary.

    ``omitted_message_ids`` are the older messages left out to fit the model's context
    (the first message and the newest ones are kept); ``notice`` then says so in plain
    words, and the caller shows it with the summary. ``dropped_citations`` counts cited
    labels that named no message the model was shown (removed from the points).
    """

    points: tuple[SummaryPoint, ...]
    stats: CallStats
    included_message_ids: tuple[str, ...]
    omitted_message_ids: tuple[str, ...] = ()
    notice: str = ""
    dropped_citations: int = 0

    @property
    def model(self) -> str:
        return self.stats.model

    @property
    def omitted(self) -> int:
        return len(self.omitted_message_ids)

    def as_text(self) -> str:
        """The summary as plain text (for a chatter note or a copy button)."""
        lines = [f"- {point.text}" for point in self.points]
        if self.notice:
            lines.append(self.notice)
        return "\n".join(lines)


@dataclass(frozen=True)
class ComposeRequest:
    """What the user asked the composer to do.

    - ``write``: a new email from ``instruction`` ("propose a call next Tuesday,
      friendly"); ``thread`` may give context.
    - ``reply``: a reply to ``thread`` (required), following ``instruction`` if any.
    - ``improve`` (tone and grammar), ``shorten``, ``tone`` (to ``tone``), ``translate``
      (into ``language``, required): rework ``text``, the user's draft.

    ``text`` is the new text only: the caller keeps the signature and the quoted
    history out of it and puts them back around the result. ``language`` for the other
    actions is the language to write in ("" = the language of the thread or draft).
    ``sender_name`` is the user, so that the model writes as them.
    """

    action: ComposeAction
    instruction: str = ""
    text: str = ""
    thread: Sequence[ThreadMessage] = ()
    tone: Tone | None = None
    language: str = ""
    sender_name: str = ""


@dataclass(frozen=True)
class DraftResult:
    """Editable draft text (plain, no markup) and its paragraphs with their direction."""

    text: str
    direction: Direction
    paragraphs: tuple[Paragraph, ...]
    stats: CallStats
    omitted_message_ids: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        return self.stats.model


@dataclass(frozen=True)
class SuggestedReply:
    text: str
    direction: Direction


@dataclass(frozen=True)
class RepliesResult:
    """Up to three short, different replies (fewer only when the model repeated itself)."""

    replies: tuple[SuggestedReply, ...]
    stats: CallStats
    omitted_message_ids: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        return self.stats.model


@dataclass(frozen=True)
class ProbeResult:
    """What the settings' Test button shows: the endpoint answered, and what it serves.

    ``models`` is what ``GET /models`` listed (empty when the endpoint does not list);
    ``model_listed`` whether the configured model is among them; ``answered`` whether a
    one-token chat request to the configured model succeeded; ``warning`` a plain
    sentence when something is off but the endpoint works.
    """

    base_url: str
    model: str
    models: tuple[str, ...]
    model_listed: bool
    answered: bool
    latency_s: float
    warning: str = ""
