"""The AI helpers against the real llama.cpp server and the bundled Gemma 3 270M.

Temperature 0 and a fixed seed; the model is tiny, so these tests check what the engine
guarantees whatever the model writes: the shape of the result, citations that name
messages of the thread, plain text, the model's name and costs, a long thread that fits
the real tokenizer's count, and that a mail telling the model what to do changes
nothing the helper does. A recording proxy in front of the model checks what was sent.
"""

from __future__ import annotations

import re

import pytest
from ai_threads import CANARY, canary_thread, injection_thread, sales_thread
from harness import ScriptedLLM

from pipemail import ai, errors

MAX_OUT = 160


@pytest.fixture(scope="module")
def recorded(llama_server):
    """A recording proxy in front of the real server, and an endpoint through it."""
    proxy = ScriptedLLM(upstream=llama_server.base_url)
    try:
        yield proxy, llama_server.endpoint(base_url=proxy.base_url, max_output_tokens=MAX_OUT)
    finally:
        proxy.stop()


HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9-]*(\s[^>]*)?/?>")


def assert_plain(text: str) -> None:
    """No markup: an address in angle brackets or a quoted "> " line is plain text (the
    small model sometimes echoes them), a tag is not."""
    assert not HTML_TAG.search(text), text
    assert not re.search(r"https?://(?!acme\.example)", text)


def test_summary_shape_citations_and_costs(recorded):
    proxy, endpoint = recorded
    thread = sales_thread(6)
    result = ai.summarize_thread(thread, endpoint)
    ids = {m.id for m in thread}
    assert 1 <= len(result.points) <= 8
    for point in result.points:
        assert point.kind in ai.POINT_KINDS and point.text
        assert set(point.message_ids) <= ids
        assert_plain(point.text)
    assert result.model == "gemma-3-270m"
    assert result.stats.tokens_in > 100 and result.stats.tokens_out > 0
    assert result.stats.latency_s > 0
    # llama-cpp-python refuses json_schema with a 500: the engine fell back once
    assert result.stats.schema_mode == "json_object"
    assert CANARY not in proxy.sent_text()


def test_injection_mail_leaves_the_task_and_shape_alone(recorded):
    proxy, endpoint = recorded
    proxy.reset()
    thread = injection_thread()
    # Whatever the tiny model makes of the injected orders, the helper gives either a
    # well-shaped answer or its one-sentence "could not be read" error; the model's
    # output differs with the CPU it runs on, so both outcomes are allowed here.
    try:
        result = ai.summarize_thread(thread, endpoint)
    except errors.AIBadAnswer as exc:
        assert str(exc).startswith("The AI answer could not be read")
    else:
        for point in result.points:
            assert point.kind in ai.POINT_KINDS
            assert "evil.example/" not in point.text  # its links never come through
            assert_plain(point.text)
            assert set(point.message_ids) <= {m.id for m in thread}
    try:
        replies = ai.suggest_replies(thread, endpoint)
    except errors.AIBadAnswer as exc:
        assert str(exc).startswith("The AI answer could not be read")
    else:
        assert 1 <= len(replies.replies) <= 3
        for reply in replies.replies:
            assert "evil.example/" not in reply.text
            assert_plain(reply.text)
    assert len(proxy.chat_requests) >= 2  # the model was asked both times
    # the canary of another user's thread was never sent nor answered
    assert CANARY not in proxy.sent_text() and CANARY not in proxy.received_text()
    assert any(CANARY in m.body for m in canary_thread())  # the canary is a real one


def test_compose_returns_editable_text(llama_server):
    endpoint = llama_server.endpoint(max_output_tokens=MAX_OUT)
    draft = ai.compose(
        ai.ComposeRequest(
            action="reply",
            thread=sales_thread(3),
            instruction="propose a call next Tuesday, friendly",
            sender_name="Bob Martin",
        ),
        endpoint,
    )
    assert draft.text.strip() and draft.model == "gemma-3-270m"
    assert draft.paragraphs and all(p.direction in ("ltr", "rtl") for p in draft.paragraphs)
    assert_plain(draft.text)


def test_long_thread_fits_the_real_context(llama_server):
    """40 messages into a 2,048-token budget: the server's own token count fits it."""
    endpoint = llama_server.endpoint(context_tokens=2048, max_output_tokens=MAX_OUT, stream=False)
    result = ai.summarize_thread(sales_thread(40), endpoint)
    assert result.omitted > 0 and "older messages were left out" in result.notice
    assert result.included_message_ids[0] == "msg-1"
    assert result.included_message_ids[-1] == "msg-40"
    assert not result.stats.usage_estimated
    assert result.stats.tokens_in <= 2048 - MAX_OUT


def test_probe_the_real_server(llama_server):
    result = ai.probe_endpoint(llama_server.endpoint())
    assert result.models == ("gemma-3-270m",) and result.model_listed and result.answered
