"""AI for email: thread summaries, compose, suggested replies, on any OpenAI-compatible API.

The public API (everything the Odoo addon needs) is re-exported here::

    from pipemail import ai

    thread = [ai.ThreadMessage(id="41", sender="Anna <anna@acme.example>", body="...",
                               date=..., recipients=[...], subject="...")]
    endpoint = ai.Endpoint(base_url="", model="", api_key="")   # "": the local server
    summary = ai.summarize_thread(thread, endpoint, should_cancel=hook)
    summary.points[0].text, summary.points[0].message_ids, summary.notice, summary.model
    draft = ai.compose(ai.ComposeRequest(action="reply", thread=thread,
                                         instruction="propose a call next Tuesday"), endpoint)
    replies = ai.suggest_replies(thread, endpoint, sender_name="Bob")
    ai.probe_endpoint(endpoint)          # the settings' Test button

Every failure is a :class:`pipemail.errors.AIError` subclass whose ``str()`` is one plain
sentence saying what to do. Results are plain text: show them escaped, with each
paragraph's ``direction``. The call blocks and holds nothing: call it outside any
database transaction (see :mod:`pipemail.ai.client`).
"""

from .budget import ThreadCut, estimate_tokens, fit_thread
from .client import (
    CancelHook,
    Completion,
    ProgressHook,
    complete,
    forget_endpoint_modes,
)
from .helpers import (
    compose,
    omission_notice,
    probe_endpoint,
    read_draft,
    read_replies,
    read_summary,
    suggest_replies,
    summarize_thread,
)
from .local import DEFAULT_BASE_URL, DEFAULT_CONTEXT, DEFAULT_MODEL
from .prompts import Prompt, compose_prompt, replies_prompt, summary_prompt
from .sanitize import LINK_REMOVED, direction_of, paragraphs, to_plain_text
from .types import (
    COMPOSE_ACTIONS,
    POINT_KINDS,
    TONES,
    CallStats,
    ComposeAction,
    ComposeRequest,
    Direction,
    DraftResult,
    Endpoint,
    Paragraph,
    PointKind,
    ProbeResult,
    RepliesResult,
    SuggestedReply,
    SummaryPoint,
    SummaryResult,
    ThreadMessage,
    Tone,
)

__all__ = [
    "COMPOSE_ACTIONS",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONTEXT",
    "DEFAULT_MODEL",
    "LINK_REMOVED",
    "POINT_KINDS",
    "TONES",
    "CallStats",
    "CancelHook",
    "Completion",
    "ComposeAction",
    "ComposeRequest",
    "Direction",
    "DraftResult",
    "Endpoint",
    "Paragraph",
    "PointKind",
    "ProbeResult",
    "ProgressHook",
    "Prompt",
    "RepliesResult",
    "SuggestedReply",
    "SummaryPoint",
    "SummaryResult",
    "ThreadCut",
    "ThreadMessage",
    "Tone",
    "complete",
    "compose",
    "compose_prompt",
    "direction_of",
    "estimate_tokens",
    "fit_thread",
    "forget_endpoint_modes",
    "omission_notice",
    "paragraphs",
    "probe_endpoint",
    "read_draft",
    "read_replies",
    "read_summary",
    "replies_prompt",
    "suggest_replies",
    "summarize_thread",
    "summary_prompt",
    "to_plain_text",
]
