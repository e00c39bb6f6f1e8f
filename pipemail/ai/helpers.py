"""The AI helpers: thread summary, compose, suggested replies, and the endpoint probe.

Each helper builds its prompt (:mod:`.prompts`), calls the endpoint (:mod:`.client`),
reads the answer whatever shape it came in (:mod:`.parse`) and returns plain text
(:mod:`.sanitize`) in a result dataclass that says which model wrote it and what it cost.
None of them ever acts on what the model wrote: the result is text for a person.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from .. import errors
from . import client as ai_client
from .client import CancelHook, Completion, ProgressHook, complete
from .parse import cited_labels, extract_json, list_items, strip_labels, strip_preamble
from .prompts import Prompt, compose_prompt, replies_prompt, summary_prompt
from .sanitize import direction_of, paragraphs, to_plain_text
from .types import (
    POINT_KINDS,
    CallStats,
    ComposeRequest,
    DraftResult,
    Endpoint,
    PointKind,
    ProbeResult,
    RepliesResult,
    SuggestedReply,
    SummaryPoint,
    SummaryResult,
    ThreadMessage,
)

_logger = logging.getLogger("pipemail.ai")

#: longest suggested reply kept (characters); "short" replies, a runaway model is cut
MAX_REPLY_CHARS = 600
_KIND_ALIASES: dict[str, PointKind] = {
    "request": "request",
    "requests": "request",
    "ask": "request",
    "want": "request",
    "wants": "request",
    "decision": "decision",
    "decisions": "decision",
    "agreed": "decision",
    "question": "question",
    "questions": "question",
    "open_question": "question",
    "open question": "question",
    "open_questions": "question",
    "next_step": "next_step",
    "next step": "next_step",
    "next_steps": "next_step",
    "next-step": "next_step",
    "action": "next_step",
    "todo": "next_step",
}


_PLACEHOLDER = re.compile(r"^(?:<[^<>]{0,40}>|\W*)$")


def _placeholder(text: str) -> bool:
    """Shape text copied back ("<reply 1>", "...") or nothing readable at all."""
    return bool(_PLACEHOLDER.match(text.strip()))


def _stats(completion: Completion) -> CallStats:
    return CallStats(
        model=completion.model,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        latency_s=completion.latency_s,
        attempts=completion.attempts,
        usage_estimated=completion.usage_estimated,
        schema_mode=completion.schema_mode,
        finish_reason=completion.finish_reason,
    )


def _log(helper: str, completion: Completion, **extra: Any) -> None:
    # counts only: never the prompt, the answer or the key
    _logger.info(
        "AI %s: model=%s tokens_in=%d tokens_out=%d%s latency=%.2fs attempts=%d mode=%s%s",
        helper,
        completion.model,
        completion.tokens_in,
        completion.tokens_out,
        " (estimated)" if completion.usage_estimated else "",
        completion.latency_s,
        completion.attempts,
        completion.schema_mode,
        "".join(f" {key}={value}" for key, value in extra.items()),
    )


def _bad_answer(detail: str) -> errors.AIBadAnswer:
    return errors.AIBadAnswer(
        "The AI answer could not be read: try again; a bigger AI model gives steadier answers.",
        detail=detail,
    )


def omission_notice(omitted: int, kept: int) -> str:
    """The plain sentence a summary carries when older messages were left out."""
    if not omitted:
        return ""
    older = "older message was" if omitted == 1 else "older messages were"
    return (
        f"{omitted} {older} left out to fit the AI model's limit: this summary reads "
        f"the first message and the {kept - 1 if kept > 1 else kept} newest."
    )


# --------------------------------------------------------------------------- summary


def _kind(value: Any) -> PointKind:
    text = str(value or "").strip().lower()
    if text in POINT_KINDS:
        return text
    return _KIND_ALIASES.get(text, "request")


def _guess_kind(text: str) -> PointKind:
    lowered = text.lower()
    if text.rstrip().endswith("?"):
        return "question"
    if any(word in lowered for word in ("agreed", "decided", "confirmed", "accepted")):
        return "decision"
    if any(word in lowered for word in ("next step", "will ", "by ", "follow up")):
        return "next_step"
    return "request"


def _raw_points(content: str) -> list[dict[str, Any]]:
    data = extract_json(content)
    if isinstance(data, dict):
        for key in ("points", "summary", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if isinstance(data, list):
        points = []
        for item in data:
            if isinstance(item, dict):
                points.append(item)
            elif isinstance(item, str):
                text, labels = strip_labels(item)
                points.append({"kind": _guess_kind(text), "text": text, "messages": labels})
        return points
    # no JSON: a bulleted or numbered list with [M2]-style citations
    points = []
    for line in list_items(content):
        text, labels = strip_labels(line)
        points.append({"kind": _guess_kind(text), "text": text, "messages": labels})
    return points


def read_summary(content: str, prompt: Prompt) -> tuple[list[SummaryPoint], int]:
    """Points from a model answer, citations checked against the messages it was shown.

    Returns the points and the number of citations dropped because they named a message
    the model was not given (or none at all).
    """
    labels = prompt.labels
    points: list[SummaryPoint] = []
    dropped = 0
    seen: set[str] = set()
    for raw in _raw_points(content):
        text = to_plain_text(str(raw.get("text") or raw.get("point") or ""), prompt.allowed_urls)
        text = " ".join(text.split())
        if _placeholder(text) or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        ids: list[str] = []
        for cited in cited_labels(raw.get("messages", raw.get("citations", ()))):
            message_id = labels.get(cited)
            if message_id is None:
                dropped += 1
            elif message_id not in ids:
                ids.append(message_id)
        points.append(SummaryPoint(_kind(raw.get("kind")), text, tuple(ids), direction_of(text)))
    return points, dropped


def summarize_thread(
    messages: Sequence[ThreadMessage],
    endpoint: Endpoint,
    *,
    language: str = "",
    should_cancel: CancelHook | None = None,
    on_progress: ProgressHook | None = None,
) -> SummaryResult:
    """A short summary of a thread (oldest message first), each point citing its messages.

    Long threads are cut to the model's context keeping the first and newest messages;
    the result then lists the omitted ids and carries a ``notice`` saying so.
    """
    prompt = summary_prompt(messages, endpoint, language=language)
    completion = complete(endpoint, prompt, should_cancel=should_cancel, on_progress=on_progress)
    points, dropped = read_summary(completion.content, prompt)
    if not points:
        raise _bad_answer(f"no summary point in {len(completion.content)} characters")
    assert prompt.cut is not None
    _log("summary", completion, points=len(points), omitted=len(prompt.cut.omitted))
    return SummaryResult(
        points=tuple(points),
        stats=_stats(completion),
        included_message_ids=tuple(item.message.id for item in prompt.cut.kept),
        omitted_message_ids=prompt.cut.omitted_ids,
        notice=omission_notice(len(prompt.cut.omitted), len(prompt.cut.kept)),
        dropped_citations=dropped,
    )


# --------------------------------------------------------------------------- replies


def read_replies(content: str, prompt: Prompt) -> list[str]:
    data = extract_json(content)
    raw: list[Any] = []
    if isinstance(data, dict):
        for key in ("replies", "suggestions", "answers"):
            if isinstance(data.get(key), list):
                raw = data[key]
                break
        else:
            raw = [value for value in data.values() if isinstance(value, str)]
    elif isinstance(data, list):
        raw = data
    else:
        raw = list_items(content)
    replies: list[str] = []
    seen: set[str] = set()
    for item in raw:
        if isinstance(item, dict):
            item = item.get("text") or item.get("reply") or ""
        text = to_plain_text(str(item), prompt.allowed_urls).strip().strip('"').strip()
        if len(text) > MAX_REPLY_CHARS:
            text = text[: MAX_REPLY_CHARS - 1].rsplit(" ", 1)[0] + "…"
        key = " ".join(text.casefold().split())
        if not _placeholder(text) and key not in seen:
            seen.add(key)
            replies.append(text)
    return replies[:3]


def suggest_replies(
    messages: Sequence[ThreadMessage],
    endpoint: Endpoint,
    *,
    sender_name: str = "",
    language: str = "",
    should_cancel: CancelHook | None = None,
    on_progress: ProgressHook | None = None,
) -> RepliesResult:
    """Three short, different replies to the newest message (fewer if the model repeated)."""
    prompt = replies_prompt(messages, endpoint, sender_name=sender_name, language=language)
    completion = complete(endpoint, prompt, should_cancel=should_cancel, on_progress=on_progress)
    replies = read_replies(completion.content, prompt)
    if not replies:
        raise _bad_answer(f"no reply in {len(completion.content)} characters")
    _log("replies", completion, replies=len(replies))
    assert prompt.cut is not None
    return RepliesResult(
        replies=tuple(SuggestedReply(text, direction_of(text)) for text in replies),
        stats=_stats(completion),
        omitted_message_ids=prompt.cut.omitted_ids,
    )


# --------------------------------------------------------------------------- compose


def read_draft(content: str, prompt: Prompt) -> str:
    data = extract_json(content)
    text: Any = None
    if isinstance(data, dict):
        text = data.get("text") or data.get("body") or data.get("email") or data.get("draft")
        if text is None:
            strings = [value for value in data.values() if isinstance(value, str)]
            text = max(strings, key=len) if strings else None
    elif isinstance(data, str):
        text = data
    if not isinstance(text, str):
        text = strip_preamble(content)
    return to_plain_text(text, prompt.allowed_urls)


def compose(
    request: ComposeRequest,
    endpoint: Endpoint,
    *,
    should_cancel: CancelHook | None = None,
    on_progress: ProgressHook | None = None,
) -> DraftResult:
    """A draft for the composer: new text only (the caller keeps signature and quote)."""
    prompt = compose_prompt(request, endpoint)
    completion = complete(endpoint, prompt, should_cancel=should_cancel, on_progress=on_progress)
    text = read_draft(completion.content, prompt)
    if _placeholder(text):
        raise _bad_answer(f"no draft text in {len(completion.content)} characters")
    _log(f"compose/{request.action}", completion)
    return DraftResult(
        text=text,
        direction=direction_of(text),
        paragraphs=paragraphs(text),
        stats=_stats(completion),
        omitted_message_ids=prompt.cut.omitted_ids if prompt.cut else (),
    )


# --------------------------------------------------------------------------- probe


def probe_endpoint(endpoint: Endpoint) -> ProbeResult:
    """The settings' Test button: list the endpoint's models and ask the model for one token.

    Raises the same :class:`~pipemail.errors.AIError` subclasses as the helpers, so the
    button shows the same plain sentence a user would get.
    """
    base_url, model = ai_client.resolve(endpoint, need_model=False)
    started = time.monotonic()
    timeout = max(1.0, min(endpoint.timeout, 20.0))
    quick = Endpoint(
        base_url=base_url,
        model=model or "-",
        api_key=endpoint.api_key,
        timeout=timeout,
        deadline=timeout * 2,
        max_retries=0,
        stream=False,
        schema_mode="none",
    )
    client = ai_client._client(quick, base_url)
    models: tuple[str, ...] = ()
    warning = ""
    try:
        listing = client.models.list(timeout=timeout)
        models = tuple(sorted(str(item.id) for item in listing))
    except Exception as exc:  # noqa: BLE001 - mapped to plain words below
        error = ai_client._Call(quick, _PROBE_PROMPT, None, None).map_error(exc)
        if not isinstance(error, (errors.AIModelMissing, errors.AIRequestRejected)):
            raise error from None
        warning = "The endpoint does not list its models; the model was tried directly."
    if not model:
        return ProbeResult(
            base_url=base_url,
            model="",
            models=models,
            model_listed=False,
            answered=False,
            latency_s=time.monotonic() - started,
            warning="No model is chosen yet: choose one of the models listed.",
        )
    complete(quick, _PROBE_PROMPT)
    listed = model in models
    if models and not listed:
        warning = (
            f'The endpoint answered for "{model}" but does not list it; check the spelling '
            "against the models listed."
        )
    return ProbeResult(
        base_url=base_url,
        model=model,
        models=models,
        model_listed=listed,
        answered=True,
        latency_s=time.monotonic() - started,
        warning=warning,
    )


_PROBE_PROMPT = Prompt(
    messages=[{"role": "user", "content": "Reply with the word OK."}],
    schema_name="pipemail_probe",
    schema={},
    max_output_tokens=2,
)
