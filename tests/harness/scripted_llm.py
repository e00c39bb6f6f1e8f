"""ScriptedLLM: a scripted OpenAI-compatible HTTP server. A script, not a model.

The real model for end-to-end tests is the llama.cpp server (``harness/llama_server.py``).
Where a test needs an exact answer or a fault that a real server cannot be told to
produce, this server plays one from a script: each chat request takes the next
:class:`Step` (malformed JSON, prose around fenced JSON, a 429 with Retry-After then a
success, a 500, a hang past the client's timeout, a dropped connection, a slow stream).
With the script empty it answers a fixed, schema-shaped answer, recognized from the
request's schema (summary, replies, draft), so it also serves as a predictable endpoint.

It speaks what the ``openai`` package uses: ``GET /v1/models`` and
``POST /v1/chat/completions``, plain JSON or server-sent events (``stream: true``, with
a usage chunk when ``stream_options.include_usage`` is asked for). Options imitate
servers seen in the wild: ``accept_json_schema=False`` answers 500 to a
``json_schema`` response format like llama-cpp-python's server, ``api_key`` checks the
bearer key.

Recording: every request (method, path, headers, raw body, parsed JSON) is kept in
``requests``, so a test can assert what left the engine. Proxy mode
(``upstream="http://127.0.0.1:PORT/v1"``) forwards every request to a real server,
streams its answer back unchanged and records both directions: a recording proxy in
front of the real model, e.g. to assert that no canary string was ever sent.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ._common import LOOPBACK

SCRIPTED_MODEL = "scripted-model"

DEFAULT_SUMMARY = {
    "points": [
        {"kind": "request", "text": "Scripted point citing the first message.", "messages": ["M1"]}
    ]
}
DEFAULT_REPLIES = {
    "replies": ["Scripted reply one.", "Scripted reply two.", "Scripted reply three."]
}
DEFAULT_DRAFT = {"text": "Scripted draft."}


@dataclass
class Step:
    """One scripted answer to one chat request. Build with the helpers below."""

    kind: str  # "answer" | "error" | "hang" | "drop" | "raw"
    content: str = ""
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the answer starts
    chunk_delay: float = 0.0  # seconds between streamed pieces
    chunk_chars: int = 4  # characters per streamed piece
    usage: bool = True  # report token usage
    model: str = ""
    finish_reason: str = "stop"
    refusal: str = ""
    stream: bool | None = None  # None: as the request asks


def answer(content: str | dict[str, Any] | list[Any], **options: Any) -> Step:
    """A 200 answer whose message content is ``content`` (dicts/lists are sent as JSON)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return Step("answer", content=text, **options)


def error(
    status: int,
    code: str = "",
    message: str = "",
    *,
    headers: dict[str, str] | None = None,
    error_type: str = "",
    body: Any = None,
) -> Step:
    """An HTTP error with an OpenAI-style ``{"error": {...}}`` body (or ``body`` as given)."""
    if body is None:
        body = {
            "error": {
                "message": message or f"scripted error {status}",
                "type": error_type or ("rate_limit_error" if status == 429 else "server_error"),
                "code": code or None,
                "param": None,
            }
        }
    return Step("error", status=status, body=body, headers=dict(headers or {}))


def hang(seconds: float) -> Step:
    """Read the request, say nothing for ``seconds``, then close: a client timeout."""
    return Step("hang", delay=seconds)


def drop() -> Step:
    """Read the request and close the connection without a word."""
    return Step("drop")


def slow_stream(content: str, chunk_delay: float, chunk_chars: int = 2, **options: Any) -> Step:
    """Stream ``content`` a few characters at a time with a pause between pieces."""
    return Step(
        "answer",
        content=content,
        chunk_delay=chunk_delay,
        chunk_chars=chunk_chars,
        stream=True,
        **options,
    )


@dataclass
class RecordedRequest:
    """A request as the server received it, and (proxy mode) what was answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0
    response: bytes = b""

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class ScriptedLLM:
    """The scripted server on a free loopback port (see the module docstring)."""

    def __init__(
        self,
        *,
        model: str = SCRIPTED_MODEL,
        models: list[str] | None = None,
        api_key: str | None = None,
        accept_json_schema: bool = True,
        upstream: str | None = None,
        start: bool = True,
    ) -> None:
        self.model = model
        self.models = models if models is not None else [model]
        self.api_key = api_key
        self.accept_json_schema = accept_json_schema
        self.upstream = upstream.rstrip("/") if upstream else None
        self.requests: list[RecordedRequest] = []
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.host = LOOPBACK
        self.port = 0
        if start:
            self.start()

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, *steps: Step) -> ScriptedLLM:
        """Queue answers for the next chat requests, in order."""
        with self._lock:
            self._script.extend(steps)
        return self

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def sent_text(self) -> str:
        """Every request body received so far, decoded, for "was X ever sent" checks."""
        with self._lock:
            return "\n".join(r.body.decode("utf-8", "replace") for r in self.requests)

    def received_text(self) -> str:
        """Every answer passed back (proxy mode): raw bodies, then streamed answers re-joined.

        A streamed answer arrives a few characters per event, so a string the model wrote
        is searched for in the joined ``delta.content`` text as well as in the raw bytes.
        """
        with self._lock:
            raw = [r.response.decode("utf-8", "replace") for r in self.requests]
        return "\n".join(raw + [_joined_stream(text) for text in raw])

    def start(self) -> ScriptedLLM:
        owner = self

        class Handler(_Handler):
            llm = owner

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_step(self, body: Any) -> Step:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return answer(_default_answer(body))

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; True when it is."""
        return self._closing.wait(seconds)


def _schema_of(body: Any) -> tuple[str, dict[str, Any]]:
    fmt = body.get("response_format") if isinstance(body, dict) else None
    if not isinstance(fmt, dict):
        return "", {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        return str(spec.get("name") or ""), spec.get("schema") or {}
    return "", fmt.get("schema") or {}


def _default_answer(body: Any) -> dict[str, Any] | str:
    name, schema = _schema_of(body)
    props = set((schema.get("properties") or {}).keys())
    text = json.dumps(body.get("messages", "")) if isinstance(body, dict) else ""
    if name == "pipemail_summary" or "points" in props or '\\"points\\"' in text:
        return DEFAULT_SUMMARY
    if name == "pipemail_replies" or "replies" in props or '\\"replies\\"' in text:
        return DEFAULT_REPLIES
    if name == "pipemail_draft" or "text" in props or '\\"text\\"' in text:
        return DEFAULT_DRAFT
    return "OK"


def _words(body: Any) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return 0
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


class _Handler(BaseHTTPRequestHandler):
    llm: ScriptedLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    # ------------------------------------------------------------------ entry points

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = RecordedRequest(
            method=method,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=raw,
            at=time.time(),
        )
        self.llm._record(record)
        if self.llm.upstream:
            self._proxy(method, raw, record)
            return
        if self.llm.api_key is not None:
            if self.headers.get("Authorization", "") != f"Bearer {self.llm.api_key}":
                self._json(
                    401,
                    {
                        "error": {
                            "message": "Incorrect API key provided",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    },
                    record,
                )
                return
        path = urlsplit(self.path).path.rstrip("/")
        if method == "GET" and path.endswith("/models"):
            data = [{"id": m, "object": "model", "owned_by": "scripted"} for m in self.llm.models]
            self._json(200, {"object": "list", "data": data}, record)
        elif method == "POST" and path.endswith("/chat/completions"):
            self._chat(record)
        else:
            self._json(404, {"error": {"message": f"no route {path}", "code": None}}, record)

    # ------------------------------------------------------------------ chat

    def _chat(self, record: RecordedRequest) -> None:
        body = record.json if isinstance(record.json, dict) else {}
        fmt = body.get("response_format")
        if (
            not self.llm.accept_json_schema
            and isinstance(fmt, dict)
            and fmt.get("type") not in ("text", "json_object")
        ):
            # what llama-cpp-python's server answers to a json_schema response format
            detail = (
                "1 validation error: {'type': 'literal_error', 'loc': ('body', "
                "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}"
            )
            self._json(500, {"error": {"message": detail, "type": "internal_server_error"}}, record)
            return
        model = str(body.get("model") or self.llm.model)
        if model not in self.llm.models:
            self._json(
                404,
                {
                    "error": {
                        "message": f"The model `{model}` does not exist",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
                record,
            )
            return
        step = self.llm._next_step(body)
        if step.kind == "hang":
            self.llm._sleep(step.delay)
            self.close_connection = True
            return
        if step.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if step.delay and self.llm._sleep(step.delay):
            return
        if step.kind == "error":
            self._json(step.status, step.body, record, headers=step.headers)
            return
        stream = bool(body.get("stream")) if step.stream is None else step.stream
        model = step.model or model
        if stream:
            options = body.get("stream_options") or {}
            self._stream(step, model, record, bool(options.get("include_usage")), _words(body))
        else:
            self._complete(step, model, record, _words(body))

    def _complete(self, step: Step, model: str, record: RecordedRequest, words: int) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": step.content or None}
        if step.refusal:
            message["refusal"] = step.refusal
        data: dict[str, Any] = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": step.finish_reason}],
        }
        if step.usage:
            pieces = len(_pieces(step.content, step.chunk_chars))
            data["usage"] = {
                "prompt_tokens": words,
                "completion_tokens": pieces,
                "total_tokens": words + pieces,
            }
        self._json(200, data, record, headers=step.headers)

    def _stream(
        self, step: Step, model: str, record: RecordedRequest, include_usage: bool, words: int
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        for key, value in step.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.close_connection = True
        record.status = 200
        pieces = _pieces(step.content, step.chunk_chars)
        base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": model}
        try:
            self._event(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
                    ],
                }
            )
            for piece in pieces:
                if step.chunk_delay and self.llm._sleep(step.chunk_delay):
                    return
                self._event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                )
            if step.refusal:
                self._event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"refusal": step.refusal}, "finish_reason": None}
                        ],
                    }
                )
            self._event(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": step.finish_reason}],
                }
            )
            if include_usage and step.usage:
                usage = {
                    "prompt_tokens": words,
                    "completion_tokens": len(pieces),
                    "total_tokens": words + len(pieces),
                }
                self._event({**base, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (cancelled, timed out): that is the point of some tests

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    # ------------------------------------------------------------------ plumbing

    def _json(
        self,
        status: int,
        data: Any,
        record: RecordedRequest,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = data if isinstance(data, bytes) else json.dumps(data).encode()
        record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _proxy(self, method: str, raw: bytes, record: RecordedRequest) -> None:
        assert self.llm.upstream is not None
        target = urlsplit(self.llm.upstream)
        prefix = target.path.rstrip("/")
        path = self.path[3:] if self.path.startswith("/v1") else self.path
        conn = http.client.HTTPConnection(
            target.hostname or LOOPBACK, target.port or 80, timeout=600
        )
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
        }
        try:
            conn.request(method, prefix + path, body=raw or None, headers=headers)
            upstream = conn.getresponse()
        except OSError as exc:
            self._json(502, {"error": {"message": f"upstream unreachable: {exc}"}}, record)
            return
        self.send_response(upstream.status)
        for key, value in upstream.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        record.status = upstream.status
        received = bytearray()
        try:
            while True:
                chunk = upstream.read1(65536)
                if not chunk:
                    break
                received += chunk
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            record.response = bytes(received)
            conn.close()


def _joined_stream(text: str) -> str:
    """The message content of a server-sent-events chat answer, pieces joined."""
    parts = []
    for line in text.splitlines():
        if not line.startswith("data: {"):
            continue
        try:
            event = json.loads(line[6:])
        except ValueError:
            continue
        for choice in event.get("choices") or ():
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                parts.append(piece)
    return "".join(parts)


def _pieces(content: str, size: int) -> list[str]:
    size = max(1, size)
    return [content[i : i + size] for i in range(0, len(content), size)] or [""]
