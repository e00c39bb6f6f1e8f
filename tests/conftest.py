"""Shared pytest fixtures: real servers on loopback (see tests/harness/README.md).

Servers are session-scoped because starting Dovecot costs ~0.2 s and every test gets its own
fresh user (``imap_user``) anyway, which isolates mail state without a restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# `from harness import Dovecot` must work whatever the rootdir/import mode.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from harness import (  # noqa: E402
    AITierUnavailable,
    Dovecot,
    LlamaServer,
    OAuthServer,
    ScriptedLLM,
    SmtpSink,
    TCPProxy,
    User,
)
from loud_skip import loud_skip, write_banners  # noqa: E402

_AI_HINT = (
    "The AI tests against the real llama.cpp server did not run. See "
    "tests/harness/README.md, 'LlamaServer'."
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: long-running end-to-end or soak test (deselect with -m 'not slow')"
    )


def pytest_report_header(config: pytest.Config) -> str:
    try:
        proc = subprocess.run(["dovecot", "--version"], capture_output=True, text=True, timeout=10)
        version = proc.stdout.strip() or proc.stderr.strip()
    except (OSError, subprocess.SubprocessError):
        version = "not installed (apt-get install dovecot-imapd)"
    return f"pipemail harness: Dovecot {version}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    # Outermost wrapper: the banners of loud skips (tests/loud_skip.py) come after
    # pytest's short test summary, right above the final "N passed, N skipped" line,
    # where nobody scrolls past them.
    yield
    write_banners(terminalreporter)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One private Dovecot for the whole run (password logins, IMAP/STARTTLS/IMAPS)."""
    server = Dovecot()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    """Factory for a private Dovecot (``dovecot_factory(oauth=None, ...)``), closed after the test.

    For tests that restart, stop or reconfigure the server and must not disturb the shared
    session instance.
    """
    made: list[Dovecot] = []

    def make(**kwargs: Any) -> Dovecot:
        server = Dovecot(**kwargs)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.fixture
def imap_user(dovecot: Dovecot) -> User:
    """A fresh account on the session ``dovecot`` with the six standard folders."""
    return dovecot.add_user()


@pytest.fixture(scope="session")
def _oauth_server_session() -> Iterator[OAuthServer]:
    server = OAuthServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oauth_server(_oauth_server_session: OAuthServer) -> Iterator[OAuthServer]:
    """The OAuth token/introspection server behind ``dovecot_oauth``.

    Shared for speed, but counters, injected faults, delay and the rotation/lifetime
    settings are reset around each test, so a test may change them freely.
    """
    _oauth_server_session.reset()
    yield _oauth_server_session
    _oauth_server_session.reset()


@pytest.fixture(scope="session")
def dovecot_oauth(_oauth_server_session: OAuthServer) -> Iterator[Dovecot]:
    """A second Dovecot that also accepts XOAUTH2/OAUTHBEARER checked by ``oauth_server``."""
    server = Dovecot(oauth=_oauth_server_session)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[..., TCPProxy]]:
    """Factory: ``tcp_proxy(host, port)`` or ``tcp_proxy(server)`` (uses ``.host``/``.port``).

    Every proxy made in the test is stopped afterwards.
    """
    made: list[TCPProxy] = []

    def make(target: Any, port: int | None = None) -> TCPProxy:
        if port is None:
            host, port = target.host, target.port
        else:
            host = target
        proxy = TCPProxy(host, port)
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP sink (no TLS, no AUTH) recording every accepted message."""
    sink = SmtpSink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_sink_factory() -> Iterator[Callable[..., SmtpSink]]:
    """Factory for sinks with options: ``smtp_sink_factory(starttls=True, auth=(u, p))``."""
    made: list[SmtpSink] = []

    def make(**kwargs: Any) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        made.append(sink)
        return sink

    try:
        yield make
    finally:
        for sink in made:
            sink.stop()


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A scripted OpenAI-compatible server (``harness/scripted_llm.py``), a script, not a model."""
    server = ScriptedLLM()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scripted_llm_factory() -> Iterator[Callable[..., ScriptedLLM]]:
    """Factory: ``scripted_llm_factory(accept_json_schema=False, api_key=..., upstream=...)``."""
    made: list[ScriptedLLM] = []

    def make(**kwargs: Any) -> ScriptedLLM:
        server = ScriptedLLM(**kwargs)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """The real llama.cpp server with the bundled Gemma 3 270M (temperature 0, seed 0).

    Skipped, with ``AI TIER SKIPPED`` above the closing line, when llama-cpp-python or the
    model package is not installed.
    """
    if os.environ.get("PIPEMAIL_AI_TIER") == "0":
        loud_skip("AI TIER SKIPPED", "PIPEMAIL_AI_TIER=0", _AI_HINT)
    try:
        server = LlamaServer()
    except AITierUnavailable as exc:
        loud_skip("AI TIER SKIPPED", str(exc), _AI_HINT)
    try:
        yield server
    finally:
        server.close()
