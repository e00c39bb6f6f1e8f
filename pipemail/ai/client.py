"""Calling an OpenAI-compatible endpoint through the ``openai`` package, and what can go wrong.

Retries are ours, not the SDK's (the client is built with ``max_retries=0``): a 429
whose code is ``insufficient_quota`` must not be retried, Retry-After must be weighed
against the caller's deadline, and a cancel request must be heard while waiting. Every
failure becomes one :class:`~pipemail.errors.AIError` subclass whose message is one
plain sentence saying what to do; the technical part goes to ``detail``.

Answers are streamed by default, so the caller's cancel hook is polled while the model
writes and a progress hook can show tokens arriving. Nothing here logs a prompt, an
answer or the API key: INFO lines carry the model, token counts and latency only.

The call blocks the calling thread and holds nothing else: the Odoo side must read what
it needs, end its transaction, call, then write the result in a new transaction, so a
slow model holds one worker and no database lock.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from .budget import estimate_tokens
from .local import DEFAULT_BASE_URL, DEFAULT_MODEL
from .prompts import Prompt
from .types import Endpoint

_logger = logging.getLogger(__name__)

CancelHook = Callable[[], bool]
ProgressHook = Callable[[int], None]

#: how often the cancel hook is polled at most (it may query a database)
CANCEL_POLL_SECONDS = 0.5
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_MODES_AUTO = ("json_schema", "json_object", "none")
_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_QUOTA_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded", "billing_not_active"}
)
_CONTEXT_HINTS = (
    "context_length_exceeded",
    "maximum context",
    "context length",
    "context window",
    "too many tokens",
    "exceed context",
)
_REFUSAL_HINTS = ("content_filter", "content_policy", "content management policy", "safety")

# What each endpoint accepted, per process: (base_url, model) -> schema mode, and the
# endpoints that refused ``stream_options``.
_modes: dict[tuple[str, str], str] = {}
_no_stream_options: set[tuple[str, str]] = set()
_clients: OrderedDict[tuple[int, str, str], Any] = OrderedDict()
_http: dict[str, Any] = {}
_MAX_CLIENTS = 8
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Completion:
    """One model answer (raw text) and what it cost."""

    content: str
    model: str
    tokens_in: int
    tokens_out: int
    usage_estimated: bool
    finish_reason: str
    latency_s: float
    attempts: int
    schema_mode: str


def resolve(endpoint: Endpoint, *, need_model: bool = True) -> tuple[str, str]:
    """The base URL and model to use: the embedded local server when none is configured."""
    base_url = endpoint.base_url.strip().rstrip("/")
    model = endpoint.model.strip()
    if not base_url:
        return DEFAULT_BASE_URL, model or DEFAULT_MODEL
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.ConfigError(
            "The AI endpoint must be an http:// or https:// address: an administrator "
            "must correct it in the AI settings.",
            detail=f"scheme={parts.scheme!r}",
        )
    if need_model and not model:
        raise errors.ConfigError(
            "No AI model is chosen: an administrator must choose one in the AI settings "
            "(the Test button lists the models the endpoint serves)."
        )
    return base_url, model


def where(base_url: str) -> str:
    """The endpoint's host for messages: no user info, no path."""
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


def _is_local_default(base_url: str) -> bool:
    return base_url == DEFAULT_BASE_URL


def _client(endpoint: Endpoint, base_url: str) -> Any:
    """An ``openai.OpenAI`` client for this endpoint, reused across calls.

    An HTTP client costs about half a second to build (TLS context, CA bundle), so one
    is shared by the process (a forked worker builds its own) and the SDK clients on it
    are kept per (URL, key); timeouts are given per request.
    """
    import openai

    pid = os.getpid()
    key = (pid, base_url, endpoint.api_key)
    with _cache_lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
        if _http.get("pid") != pid:
            # DefaultHttpxClient: openai >= 1.17; older releases build their own per client
            factory = getattr(openai, "DefaultHttpxClient", None)
            _http.clear()
            _http.update(pid=pid, client=factory() if factory else None)
        http_client = _http["client"]
    # An explicit key, even a dummy one: the SDK would otherwise read OPENAI_API_KEY
    # from the environment and send it to whatever endpoint is configured.
    options: dict[str, Any] = {"http_client": http_client} if http_client is not None else {}
    client = openai.OpenAI(
        base_url=base_url,
        api_key=endpoint.api_key or "no-key",
        timeout=endpoint.timeout,
        max_retries=0,
        **options,
    )
    with _cache_lock:
        _clients[key] = client
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)  # not closed: the HTTP client is shared
    return client


# ------------------------------------------------------------------ error mapping


def _error_info(exc: Any) -> tuple[int, str, str]:
    """(HTTP status or 0, provider error code or type, provider message) of an SDK error."""
    status = int(getattr(exc, "status_code", 0) or 0)
    body = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else None
    code = ""
    message = ""
    if isinstance(error, dict):
        code = str(error.get("code") or error.get("type") or "")
        message = str(error.get("message") or "")
    elif isinstance(error, str):
        message = error
    code = code or str(getattr(exc, "code", "") or "")
    message = message or str(getattr(exc, "message", "") or exc)
    return status, code, message


def _scrub(text: str, endpoint: Endpoint) -> str:
    if endpoint.api_key:
        text = text.replace(endpoint.api_key, "***")
    return text[:400]


def _retry_after(exc: Any) -> float:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), 0 if it did not."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return 0.0
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def _status_error(
    exc: Any, endpoint: Endpoint, base_url: str, model: str, deadline_s: float
) -> errors.AIError:
    status, code, message = _error_info(exc)
    detail = _scrub(f"HTTP {status} {code}: {message}", endpoint)
    lowered = f"{code} {message}".lower()
    if status == 429 and (code in _QUOTA_CODES or "quota" in lowered or "billing" in lowered):
        return errors.AIQuotaExceeded(
            "The AI account has no quota or credit left: an administrator must check the "
            "plan or billing with the AI provider.",
            detail=detail,
        )
    if status == 429:
        wait = _retry_after(exc)
        when = f"wait {int(wait + 0.999)} seconds" if 0 < wait < 600 else "wait a minute"
        return errors.AIBusy(
            f"The AI service is busy (too many requests): {when} and try again.",
            detail=detail,
            retry_after=wait,
        )
    if status in (401, 403):
        return errors.AIAuthFailed(
            "The AI service refused the API key: an administrator must check the key in "
            "the AI settings.",
            detail=detail,
        )
    if any(hint in lowered for hint in _CONTEXT_HINTS):
        return errors.AIInputTooLong(
            "The AI model's context is smaller than the AI settings say: an administrator "
            "must lower the context size there.",
            detail=detail,
        )
    if any(hint in lowered for hint in _REFUSAL_HINTS):
        return errors.AIRefused(
            "The AI service refused to work on this content: write this one yourself.",
            detail=detail,
        )
    if status == 404:
        return errors.AIModelMissing(
            f'The AI service at {where(base_url)} does not serve the model "{model}": an '
            "administrator must choose one it serves in the AI settings (the Test button "
            "lists them).",
            detail=detail,
        )
    if status == 408:
        return _timeout_error(deadline_s, detail)
    if status >= 500 or status == 0 or status == 409:
        label = f"error {status}" if status else "an error"
        return errors.AIServerError(
            f"The AI service failed ({label}): try again in a few minutes.", detail=detail
        )
    return errors.AIRequestRejected(
        f"The AI service rejected the request (error {status}): an administrator should "
        "check the AI endpoint and model in the AI settings.",
        detail=detail,
    )


def _timeout_error(seconds: float, detail: str = "") -> errors.AITimeout:
    return errors.AITimeout(
        f"The AI service did not answer within {int(seconds + 0.5)} seconds: try again, "
        "or ask an administrator for a faster model.",
        detail=detail,
    )


def _unreachable_error(base_url: str, detail: str) -> errors.AIUnreachable:
    if _is_local_default(base_url):
        return errors.AIUnreachable(
            "The local AI server is not running: ask an administrator to start it "
            "(python -m pipemail.ai.local) or to set an AI endpoint in the AI settings.",
            detail=detail,
        )
    return errors.AIUnreachable(
        f"The AI service at {where(base_url)} could not be reached: check the AI endpoint "
        "in the AI settings, or try again later.",
        detail=detail,
    )


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_timeout(exc: BaseException) -> bool:
    # the SDK's APITimeoutError, and the HTTP library's own timeouts raised mid-stream
    # (httpx, or httpx2 in newer openai releases: matched by name to serve both)
    return bool(_names(exc) & {"APITimeoutError", "TimeoutException", "TimeoutError"})


def _is_transport(exc: BaseException) -> bool:
    return bool(
        _names(exc)
        & {"APIConnectionError", "TransportError", "NetworkError", "RemoteProtocolError"}
    )


def _rejects_param(exc: Any, name: str) -> bool:
    """The server refused a request parameter it does not know (400/422, or 500 on some)."""
    status, code, message = _error_info(exc)
    if status not in (400, 422, 500):
        return False
    body = getattr(exc, "body", None)
    return name in f"{code} {message} {body}"


# ------------------------------------------------------------------ the call


class _Call:
    """One helper call: attempts, retries, schema-mode fallback, deadline and cancel."""

    def __init__(
        self,
        endpoint: Endpoint,
        prompt: Prompt,
        should_cancel: CancelHook | None,
        on_progress: ProgressHook | None,
    ) -> None:
        self.endpoint = endpoint
        self.prompt = prompt
        self.should_cancel = should_cancel
        self.on_progress = on_progress
        self.base_url, self.model = resolve(endpoint)
        self.key = (self.base_url, self.model)
        self.started = time.monotonic()
        self.deadline = self.started + max(1.0, endpoint.deadline)
        self._last_poll = 0.0

    # -- cancel / deadline

    def check_cancel(self, force: bool = False) -> None:
        if self.should_cancel is None:
            return
        now = time.monotonic()
        if not force and now - self._last_poll < CANCEL_POLL_SECONDS:
            return
        self._last_poll = now
        if self.should_cancel():
            raise errors.AICancelled("The AI request was cancelled.")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise _timeout_error(self.endpoint.deadline, "deadline reached")

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check_cancel(force=True)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    # -- the loop

    def run(self) -> Completion:
        with _cache_lock:
            known = _modes.get(self.key)
        modes: list[str]
        if self.endpoint.schema_mode != "auto":
            modes = [self.endpoint.schema_mode]
        elif known:
            modes = [known]
        else:
            modes = list(_MODES_AUTO)
        mode = modes.pop(0)
        with _cache_lock:
            stream_options = self.key not in _no_stream_options
        retries = 0
        attempts = 0
        client = _client(self.endpoint, self.base_url)
        while True:
            self.check_cancel(force=True)
            self.check_deadline()
            attempts += 1
            timeout = max(0.5, min(self.endpoint.timeout, self.remaining()))
            try:
                result = self.once(client, mode, stream_options, timeout, attempts)
            except errors.AIError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped below, never leaks
                status = int(getattr(exc, "status_code", 0) or 0)
                if modes and _rejects_param(exc, "response_format"):
                    _logger.debug("AI endpoint refused schema mode %s; trying %s", mode, modes[0])
                    mode = modes.pop(0)
                    continue
                if stream_options and _rejects_param(exc, "stream_options"):
                    stream_options = False
                    with _cache_lock:
                        _no_stream_options.add(self.key)
                    continue
                error = self.map_error(exc)
                retryable = isinstance(error, (errors.AIUnreachable, errors.AIServerError)) or (
                    status in _RETRY_STATUSES
                    and not isinstance(error, errors.AIQuotaExceeded)
                    and not isinstance(error, errors.AIInputTooLong)
                )
                if not retryable or retries >= self.endpoint.max_retries:
                    raise error from None
                wait = _retry_after(exc) or min(_BACKOFF_CAP, _BACKOFF_BASE * 2**retries) * (
                    1 + random.random() / 4
                )
                if wait >= self.remaining():
                    raise error from None
                retries += 1
                _logger.debug(
                    "AI call failed (%s, HTTP %s); retry %d in %.1f s",
                    error.code,
                    status or "-",
                    retries,
                    wait,
                )
                self.sleep(wait)
                continue
            with _cache_lock:
                _modes[self.key] = mode
            return result

    def map_error(self, exc: Exception) -> errors.AIError:
        if _is_timeout(exc):
            return _timeout_error(self.endpoint.timeout, _scrub(repr(exc), self.endpoint))
        if getattr(exc, "status_code", None) is not None or getattr(exc, "body", None):
            return _status_error(
                exc, self.endpoint, self.base_url, self.model, self.endpoint.deadline
            )
        if _is_transport(exc):
            return _unreachable_error(self.base_url, _scrub(repr(exc), self.endpoint))
        if "APIError" in _names(exc):
            return _status_error(
                exc, self.endpoint, self.base_url, self.model, self.endpoint.deadline
            )
        raise exc

    def request(self, mode: str, stream_options: bool) -> dict[str, Any]:
        prompt = self.prompt
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": prompt.messages,
            "temperature": self.endpoint.temperature,
            "max_tokens": prompt.max_output_tokens,
        }
        # passed as extra body: these keys exist in every server we target, and the SDK
        # versions that lack a typed parameter for them still send them
        extra: dict[str, Any] = {}
        if self.endpoint.seed is not None:
            extra["seed"] = self.endpoint.seed
        if mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": prompt.schema_name,
                    "schema": prompt.schema,
                    "strict": True,
                },
            }
        elif mode == "json_object":
            kwargs["response_format"] = {"type": "json_object", "schema": prompt.schema}
        if self.endpoint.stream:
            kwargs["stream"] = True
            if stream_options:
                extra["stream_options"] = {"include_usage": True}
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def once(
        self, client: Any, mode: str, stream_options: bool, timeout: float, attempts: int
    ) -> Completion:
        kwargs = self.request(mode, stream_options)
        response = client.chat.completions.create(timeout=timeout, **kwargs)
        if self.endpoint.stream:
            content, model, usage, finish, refusal, pieces = self.read_stream(response)
        else:
            choice = response.choices[0] if response.choices else None
            message = getattr(choice, "message", None)
            content = (getattr(message, "content", None) or "") if message else ""
            refusal = (getattr(message, "refusal", None) or "") if message else ""
            finish = (getattr(choice, "finish_reason", None) or "") if choice else ""
            model = getattr(response, "model", "") or ""
            usage = getattr(response, "usage", None)
            pieces = 0
        if refusal or finish == "content_filter":
            raise errors.AIRefused(
                "The AI service refused to work on this content: write this one yourself.",
                detail=_scrub(f"finish_reason={finish} refusal={refusal[:200]}", self.endpoint),
            )
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0
        estimated = usage is None
        if estimated:
            tokens_in = sum(estimate_tokens(m["content"]) + 4 for m in self.prompt.messages)
            tokens_out = pieces or estimate_tokens(content)
        latency = time.monotonic() - self.started
        completion = Completion(
            content=content,
            model=model or self.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            usage_estimated=estimated,
            finish_reason=finish,
            latency_s=latency,
            attempts=attempts,
            schema_mode=mode,
        )
        return completion

    def read_stream(self, stream: Any) -> tuple[str, str, Any, str, str, int]:
        parts: list[str] = []
        refusal: list[str] = []
        model = ""
        usage = None
        finish = ""
        pieces = 0
        last_progress = 0.0
        try:
            for chunk in stream:
                model = getattr(chunk, "model", "") or model
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in getattr(chunk, "choices", None) or ():
                    delta = getattr(choice, "delta", None)
                    text = getattr(delta, "content", None) if delta else None
                    if text:
                        parts.append(text)
                        pieces += 1
                    piece = getattr(delta, "refusal", None) if delta else None
                    if piece:
                        refusal.append(piece)
                    finish = getattr(choice, "finish_reason", None) or finish
                self.check_cancel()
                self.check_deadline()
                if self.on_progress is not None:
                    now = time.monotonic()
                    if now - last_progress >= 0.2:
                        last_progress = now
                        self.on_progress(pieces)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if self.on_progress is not None:
            self.on_progress(pieces)
        return "".join(parts), model, usage, finish, "".join(refusal), pieces


def complete(
    endpoint: Endpoint,
    prompt: Prompt,
    *,
    should_cancel: CancelHook | None = None,
    on_progress: ProgressHook | None = None,
) -> Completion:
    """Send ``prompt`` and return the model's raw answer, or raise an :class:`AIError`.

    ``should_cancel`` is polled (at most every half second) while waiting and while the
    answer streams in; when it returns true the call stops with :class:`AICancelled`.
    ``on_progress`` receives the number of answer pieces (about tokens) received so far.
    """
    return _Call(endpoint, prompt, should_cancel, on_progress).run()


def forget_endpoint_modes() -> None:
    """Forget which schema mode each endpoint accepted (after the settings change)."""
    with _cache_lock:
        _modes.clear()
        _no_stream_options.clear()
