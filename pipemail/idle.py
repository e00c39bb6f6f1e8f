"""IMAP IDLE as a doorbell: wake the sync early when a folder changes, never replace it.

IDLE is only a hint (RFC 2177; RELIABILITY "IDLE is a wake-up hint"): a notification
can be lost when the connection drops, servers coalesce or delay them, and some
proxies silently kill long-lived connections. So the watcher does exactly one thing,
calling ``on_change`` soon after the server reports EXISTS / EXPUNGE / FETCH /
VANISHED, and after every reconnect (a change may have happened while it was away).
The sync it wakes decides what changed; the periodic sync keeps running regardless.

What it guards against:

* Servers drop IDLE connections after ~30 min (RFC 2177 says clients should re-issue
  IDLE at least every 29 min), so IDLE is ended and re-issued every ``reidle_interval``
  (25 min by default). The DONE round trip also proves a silent connection is alive.
* Connections drop (server restart, ``doveadm kick``, NAT timeouts): the watcher
  reconnects with exponential back-off and jitter, capped, so a fleet of watchers does
  not reconnect in lock-step after a server restart. It never gives up on transient
  errors; it stops on errors only a person can fix (revoked grant, wrong password,
  refused host), reporting them through ``on_state``.
* Bursts (a 500-message move) would otherwise trigger 500 syncs: notifications are
  debounced, ``on_change`` runs at most once per ``debounce`` window (and no later
  than ``max_delay`` after the first change of a burst).
* A server without IDLE is watched by NOOP polling every ``poll_interval``.

Connecting and authenticating (netguard, TLS, XOAUTH2 with one refresh) is reused from
:class:`pipemail.imap.ImapSession`; the folder is opened read-only (EXAMINE), so the
watcher never changes \\Recent or flags.
"""

from __future__ import annotations

import imaplib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from pipemail.errors import (
    AuthFailed,
    CapabilityMissing,
    ConfigError,
    ConnectionLost,
    HostRefused,
    PipemailError,
    ProtocolError,
)
from pipemail.types import AccountConfig

_logger = logging.getLogger(__name__)

WatcherStateName = Literal[
    "starting", "connecting", "idle", "polling", "backoff", "failed", "stopped"
]

CHANGE_RESPONSES = frozenset({b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED"})
"""Untagged responses that mean the folder changed (RECENT always comes with EXISTS)."""

FATAL_ERRORS: tuple[type[PipemailError], ...] = (
    AuthFailed,  # includes ReconnectNeeded
    ConfigError,
    HostRefused,
    CapabilityMissing,
)
"""Errors a retry cannot fix: the watcher stops and reports instead of hammering."""


@dataclass(frozen=True)
class Wakeup:
    """Why ``on_change`` was called."""

    folder: str
    reason: Literal["changed", "reconnected"]
    responses: int = 0
    """How many change responses the debounce window coalesced."""
    at: float = 0.0


@dataclass(frozen=True)
class WatcherState:
    """What the health panel shows; passed to ``on_state`` on every transition."""

    state: WatcherStateName
    folder: str
    error: PipemailError | None = None
    connects: int = 0
    """Successful connections so far (1 + reconnects)."""
    reidles: int = 0
    retry_in: float = 0.0
    since: float = 0.0


class _IdleClient(Protocol):
    """The part of imapclient's IMAPClient the watcher drives."""

    def idle(self) -> Any: ...

    def idle_check(self, timeout: float | None = None) -> list[Any]: ...

    def idle_done(self) -> tuple[Any, list[Any]]: ...

    def noop(self) -> tuple[Any, list[Any]]: ...

    def has_capability(self, capability: str) -> bool: ...


class _Session(Protocol):
    def select(self, folder: str, *, readonly: bool = False) -> Any: ...

    def close(self) -> None: ...


Connector = Callable[[AccountConfig], _Session]


def _default_connect(config: AccountConfig) -> _Session:
    from pipemail.imap import ImapSession

    return ImapSession.open(config)


def _raw_client(session: _Session) -> _IdleClient:
    # HOOK(imap): ImapSession has no public accessor for its IMAPClient yet; IDLE needs
    # the raw client because idle()/idle_check() have no session-level equivalent.
    client = getattr(session, "client", None) or getattr(session, "_client", None)
    if client is None:
        raise ConnectionLost("The connection to the mail server is closed.")
    return client  # type: ignore[no-any-return]


class _Dropped(Exception):
    """The server ended the connection (BYE, EOF) while we were idling."""


class IdleWatcher:
    """Watch one folder of one account in a background thread.

    ``on_change`` and ``on_state`` run in the watcher's thread: keep them short (set an
    event, enqueue a job). ``stop_event`` may be shared by many watchers to stop them
    all; :meth:`stop` sets it too.
    """

    def __init__(
        self,
        config: AccountConfig,
        folder: str = "INBOX",
        on_change: Callable[[Wakeup], None] | None = None,
        stop_event: threading.Event | None = None,
        *,
        on_state: Callable[[WatcherState], None] | None = None,
        reidle_interval: float = 25 * 60.0,
        debounce: float = 0.3,
        max_delay: float = 2.0,
        poll_interval: float = 60.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        wake_on_reconnect: bool = True,
        healthy_after: float = 30.0,
        connect: Connector | None = None,
        check_interval: float = 0.5,
    ) -> None:
        if reidle_interval <= 0 or reidle_interval > 29 * 60:
            raise ConfigError(
                "The IDLE renewal interval must be between 0 and 29 minutes.",
                detail=f"reidle_interval={reidle_interval}",
            )
        self.config = config
        self.folder = folder
        self.on_change = on_change or (lambda wakeup: None)
        self.on_state = on_state
        self.stop_event = stop_event or threading.Event()
        self.reidle_interval = reidle_interval
        self.debounce = debounce
        self.max_delay = max(max_delay, debounce)
        self.poll_interval = poll_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.wake_on_reconnect = wake_on_reconnect
        self.healthy_after = healthy_after
        self.check_interval = check_interval
        self._connect = connect or _default_connect
        self._state = WatcherState("starting", folder, since=time.time())
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None
        self.wakeups = 0

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> WatcherState:
        return self._state

    def start(self) -> IdleWatcher:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.run, name=f"pipemail-idle-{self.config.key}-{self.folder}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to end (within ``check_interval``) and wait for it."""
        self.stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> IdleWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """The thread body: connect, watch, and reconnect until stopped or fatally refused."""
        failures = 0
        try:
            while not self.stop_event.is_set():
                self._set_state("connecting")
                try:
                    self._session = self._connect(self.config)
                    self._session.select(self.folder, readonly=True)
                    client = _raw_client(self._session)
                except FATAL_ERRORS as exc:
                    self._close()
                    self._set_state("failed", error=exc)
                    _logger.warning("idle watcher for %s stopped: %s", self.config.key, exc.detail)
                    return
                except Exception as exc:  # noqa: BLE001 - every transient error means retry
                    self._close()
                    failures += 1
                    self._backoff(failures, _typed(exc))
                    continue
                connected_at = time.monotonic()
                reconnect = self._state.connects > 0
                self._state = replace(self._state, connects=self._state.connects + 1)
                if reconnect and self.wake_on_reconnect:
                    self._fire(Wakeup(self.folder, "reconnected", 0, time.time()))
                try:
                    if client.has_capability("IDLE"):
                        self._idle_loop(client)
                    else:
                        self._poll_loop(client)
                except Exception as exc:  # noqa: BLE001 - a dropped connection is routine
                    self._close()
                    if self.stop_event.is_set():
                        break
                    if time.monotonic() - connected_at >= self.healthy_after:
                        failures = 0  # it worked for a while: this drop is news, not a loop
                    failures += 1
                    self._backoff(failures, _typed(exc))
                    continue
                self._close()
        finally:
            self._close()
            if self._state.state != "failed":
                self._set_state("stopped")

    def _idle_loop(self, client: _IdleClient) -> None:
        client.idle()
        started = time.monotonic()
        self._set_state("idle")
        first_change: float | None = None
        last_change = 0.0
        count = 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            deadline = started + self.reidle_interval
            if first_change is not None:
                deadline = min(deadline, last_change + self.debounce, first_change + self.max_delay)
            wait = max(0.0, min(self.check_interval, deadline - now))
            before = time.monotonic()
            responses = client.idle_check(timeout=wait)
            elapsed = time.monotonic() - before
            changes = _count_changes(responses)
            if not responses and wait > 0.05 and elapsed < wait * 0.5:
                # imapclient swallows EOF: a readable socket with no line means the peer
                # closed. Ending IDLE raises on a dead connection and is harmless otherwise.
                _, tail = client.idle_done()
                changes += _count_changes(tail)
                client.idle()
                started = time.monotonic()
            if changes:
                count += changes
                last_change = time.monotonic()
                if first_change is None:
                    first_change = last_change
            now = time.monotonic()
            if first_change is not None and (
                now >= last_change + self.debounce or now >= first_change + self.max_delay
            ):
                self._fire(Wakeup(self.folder, "changed", count, time.time()))
                first_change, count = None, 0
            if now - started >= self.reidle_interval:
                _, tail = client.idle_done()
                # A NOOP between the two IDLEs makes the server report changes it had
                # queued for the IDLE we just ended (Dovecot batches them for ~0.5 s and
                # drops the batch on DONE); otherwise they wait for the next renewal.
                _, noop = client.noop()
                pending = _count_changes(tail) + _count_changes(noop)
                if pending:
                    self._fire(Wakeup(self.folder, "changed", count + pending, time.time()))
                    first_change, count = None, 0
                client.idle()
                started = time.monotonic()
                self._set_state("idle", reidles=self._state.reidles + 1)
        try:
            client.idle_done()
        except Exception as exc:  # noqa: BLE001 - stopping; the connection may be gone
            _logger.debug("idle_done while stopping: %s", exc)
        if count:
            self._fire(Wakeup(self.folder, "changed", count, time.time()))

    def _poll_loop(self, client: _IdleClient) -> None:
        self._set_state("polling")
        while not self.stop_event.wait(self.poll_interval):
            _, responses = client.noop()
            changes = _count_changes(responses)
            if changes:
                self._fire(Wakeup(self.folder, "changed", changes, time.time()))

    # ------------------------------------------------------------------ helpers

    def _backoff(self, failures: int, error: PipemailError) -> None:
        """Wait before reconnecting: exponential, capped, with jitter in [delay/2, delay].

        ``failures`` counts attempts since the last connection that stayed up for
        ``healthy_after`` seconds, so a server that accepts and immediately drops us
        backs off like one that refuses us.
        """
        exponent = max(0, failures - 1)
        delay = min(self.backoff_max, self.backoff_initial * (2**exponent))
        delay = random.uniform(delay / 2, delay)
        self._set_state("backoff", error=error, retry_in=delay)
        _logger.info(
            "idle watcher for %s: %s; retrying in %.1f s",
            self.config.key,
            error.detail or error,
            delay,
        )
        self.stop_event.wait(delay)

    def _fire(self, wakeup: Wakeup) -> None:
        self.wakeups += 1
        try:
            self.on_change(wakeup)
        except Exception:  # noqa: BLE001 - a broken callback must not kill the watcher
            _logger.exception("on_change callback failed for %s", self.config.key)

    def _set_state(self, name: WatcherStateName, **changes: Any) -> None:
        changes.setdefault("error", None)
        changes.setdefault("retry_in", 0.0)
        self._state = replace(self._state, state=name, since=time.time(), **changes)
        if self.on_state is not None:
            try:
                self.on_state(self._state)
            except Exception:  # noqa: BLE001 - reporting must not kill the watcher
                _logger.exception("on_state callback failed for %s", self.config.key)

    def _close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.close()
        except Exception as exc:  # noqa: BLE001 - closing a dead connection is not an error
            _logger.debug("closing idle session: %s", exc)


def _count_changes(responses: list[Any]) -> int:
    """Change responses among untagged IDLE responses; raises _Dropped on BYE."""
    n = 0
    for item in responses or ():
        if not isinstance(item, tuple) or not item:
            continue
        if item[0] == b"BYE":
            raise _Dropped(_text(item[1] if len(item) > 1 else b"BYE"))
        if len(item) > 1 and isinstance(item[1], bytes) and item[1].upper() in CHANGE_RESPONSES:
            n += 1
        elif isinstance(item[0], bytes) and item[0].upper() == b"VANISHED":
            n += 1
    return n


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _typed(exc: BaseException) -> PipemailError:
    if isinstance(exc, PipemailError):
        return exc
    if isinstance(exc, _Dropped):
        return ConnectionLost(
            "The mail server closed the push connection. Reconnecting.", detail=f"BYE {exc}"
        )
    if isinstance(exc, imaplib.IMAP4.abort | OSError | EOFError | socket.timeout):
        return ConnectionLost(
            "The push connection to the mail server was lost. Reconnecting.",
            detail=f"{type(exc).__name__}: {exc}",
        )
    return ProtocolError(
        "The mail server sent an unexpected answer to IDLE. Reconnecting.",
        detail=f"{type(exc).__name__}: {exc}",
    )
