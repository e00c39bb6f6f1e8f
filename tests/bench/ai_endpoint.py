"""The endpoint the AI scripts measure: the configured one, else a local llama.cpp server.

    PIPEMAIL_AI_BASE_URL   e.g. http://127.0.0.1:11434/v1 (Ollama), https://api.openai.com/v1
    PIPEMAIL_AI_MODEL      model name (required with a base URL)
    PIPEMAIL_AI_KEY        API key (optional)
    PIPEMAIL_AI_CONTEXT    the model's context window in tokens (default 8192)

Without PIPEMAIL_AI_BASE_URL a private llama.cpp server with the bundled Gemma 3 270M is
started on a free port (tests/harness/llama_server.py), temperature 0, seed 0.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _path in (_REPO, _REPO / "tests", _REPO / "tests" / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pipemail.ai import Endpoint  # noqa: E402


@contextlib.contextmanager
def configured_endpoint(**overrides: object) -> Iterator[tuple[Endpoint, str]]:
    """(endpoint, description); a local server started here is stopped on exit."""
    base_url = os.environ.get("PIPEMAIL_AI_BASE_URL", "")
    context = int(os.environ.get("PIPEMAIL_AI_CONTEXT", "8192"))
    if base_url:
        endpoint = Endpoint(
            base_url=base_url,
            model=os.environ.get("PIPEMAIL_AI_MODEL", ""),
            api_key=os.environ.get("PIPEMAIL_AI_KEY", ""),
            context_tokens=context,
            temperature=0.0,
            seed=0,
            timeout=300.0,
            deadline=600.0,
        )
        yield _with(endpoint, overrides), f"{base_url} model {endpoint.model}"
        return
    from harness import LlamaServer

    server = LlamaServer(context=context)
    try:
        yield _with(server.endpoint(), overrides), f"local llama.cpp ({server.model_path.name})"
    finally:
        server.close()


def _with(endpoint: Endpoint, overrides: dict[str, object]) -> Endpoint:
    import dataclasses

    return dataclasses.replace(endpoint, **overrides) if overrides else endpoint  # type: ignore[arg-type]
