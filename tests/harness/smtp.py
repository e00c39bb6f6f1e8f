"""An SMTP sink on aiosmtpd that records what it receives and fails on request.

Bulk sending must retry 4xx, report 5xx and deliver every mail exactly once. The sink makes
those replies happen on cue (next N messages, a seeded random rate, a given recipient) and
keeps every accepted message so a test can count duplicates at the receiving end.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING, Any

from ._common import LOOPBACK, HarnessError, free_port, tls_material

if TYPE_CHECKING:
    from .oauth_server import OAuthServer


@dataclass
class ReceivedMessage:
    """One accepted message as it arrived (``data`` is the raw DATA payload)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any
    auth_user: str | None
    tls: bool
    received_at: float = field(default_factory=time.time)

    @property
    def message_id(self) -> str | None:
        value = BytesHeaderParser().parsebytes(self.data).get("Message-ID")
        return " ".join(str(value).split()) if value else None


@dataclass
class Rejection:
    """A reply the sink gave instead of accepting (injected or auth related)."""

    stage: str  # "mail", "rcpt" or "data"
    code: int
    mail_from: str
    rcpt_tos: list[str]
    message_id: str | None
    at: float = field(default_factory=time.time)


def _reply(code: int, text: str | None = None) -> str:
    if text:
        return f"{code} {text}"
    enhanced = "4.3.0" if 400 <= code < 500 else "5.7.1" if code in (550, 554) else "5.0.0"
    kind = "temporary" if 400 <= code < 500 else "permanent"
    return f"{code} {enhanced} injected {kind} failure"


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        code = self.sink._stage_failure("mail")
        if code is not None:
            self.sink._reject("mail", code, envelope, [], None)
            return _reply(code, self.sink.reply_text.get(code))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        code = self.sink._recipient_failure(address)
        if code is not None:
            self.sink._reject("rcpt", code, envelope, [address], None)
            return _reply(code, self.sink.reply_text.get(code))
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        mid_value = BytesHeaderParser().parsebytes(data).get("Message-ID")
        message_id = " ".join(str(mid_value).split()) if mid_value else None
        code = self.sink._data_failure()
        if code is not None:
            self.sink._reject("data", code, envelope, list(envelope.rcpt_tos), message_id)
            return _reply(code, self.sink.reply_text.get(code))
        auth = session.auth_data
        auth_user = None
        if auth is not None:
            login = getattr(auth, "login", auth)
            auth_user = login.decode() if isinstance(login, bytes) else str(login)
        self.sink._accept(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                peer=session.peer,
                auth_user=auth_user,
                tls=session.ssl is not None,
            )
        )
        return "250 2.0.0 Message accepted for delivery"

    async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd finds auth_<MECH>
        """XOAUTH2 (Google/Microsoft SMTP): the bearer token is checked on the OAuthServer."""
        from aiosmtpd.smtp import MISSING, AuthResult

        oauth = self.sink.oauth
        if oauth is None:
            return AuthResult(success=False, handled=False)
        if len(args) > 1:  # args = [mechanism, initial response]
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False)
        else:
            challenge = await server.challenge_auth("")
            if challenge is MISSING:
                return AuthResult(success=False, handled=False)
            blob = challenge
        match = re.match(rb"user=([^\x01]*)\x01auth=Bearer ([^\x01]*)\x01\x01$", blob)
        user = oauth.active_user(match.group(2).decode()) if match else None
        if match is None or user != match.group(1).decode():
            # Google's dance: a 334 with a JSON error, the client answers empty, then 535.
            error = json.dumps({"status": "401", "schemes": "Bearer", "scope": "mail"})
            await server.challenge_auth(error)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user)


class SmtpSink:
    """aiosmtpd on a free loopback port that records every accepted message.

    ``starttls=True`` offers STARTTLS with the harness certificate (trust ``cafile``).
    ``auth=(user, password)`` offers AUTH PLAIN/LOGIN (and XOAUTH2 when ``oauth`` is given)
    and, with ``require_auth=True``, refuses mail from unauthenticated sessions.
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        auth: tuple[str, str] | None = None,
        oauth: OAuthServer | None = None,
        require_auth: bool = False,
        require_tls_for_auth: bool = False,
        start: bool = True,
    ) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.starttls = starttls
        self.auth = auth
        self.oauth = oauth
        self.require_auth = require_auth
        self.require_tls_for_auth = require_tls_for_auth
        self.cafile = str(tls_material().cafile)
        self.messages: list[ReceivedMessage] = []
        self.rejections: list[Rejection] = []
        self.attempts = 0  # DATA attempts, accepted or not
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._fail_queue: list[int] = []
        self._mail_fail_queue: list[int] = []
        self._rate: tuple[float, float, random.Random] | None = None
        self._rcpt_fail: dict[str, int] = {}
        self.reply_text: dict[int, str] = {}
        """Text of injected refusals by code (e.g. a provider's rate-limit wording)."""
        self._controller: Any = None
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SmtpSink:
        try:
            from aiosmtpd.controller import Controller
            from aiosmtpd.smtp import AuthResult, LoginPassword
        except ImportError as exc:
            raise HarnessError("aiosmtpd is missing: pip install aiosmtpd") from exc
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {}
        if self.starttls:
            kwargs["tls_context"] = tls_material().server_context()
            kwargs["require_starttls"] = False
        if self.auth is not None or self.oauth is not None:
            expected = self.auth

            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (
                    expected is not None
                    and isinstance(auth_data, LoginPassword)
                    and auth_data.login.decode() == expected[0]
                    and auth_data.password.decode() == expected[1]
                )
                return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

            kwargs["authenticator"] = authenticator
            kwargs["auth_required"] = self.require_auth
            kwargs["auth_require_tls"] = self.require_tls_for_auth
        handler = _Handler(self)
        if self.oauth is None:
            # aiosmtpd advertises every auth_* method it finds on the handler.
            kwargs["auth_exclude_mechanism"] = ["XOAUTH2"]
        last_error: Exception | None = None
        for _ in range(3):
            port = free_port()
            controller = Controller(
                handler,
                hostname=self.host,
                port=port,
                server_hostname="localhost",
                ready_timeout=10,
                **kwargs,
            )
            try:
                controller.start()
            except Exception as exc:  # noqa: BLE001 - port race: retry, then report
                last_error = exc
                continue
            self._controller = controller
            self.port = port
            return self
        raise HarnessError(f"aiosmtpd did not start: {last_error!r}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    close = stop

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def fail_next(self, code: int, n: int = 1, stage: str = "data") -> None:
        """Answer the next ``n`` messages with ``code`` (e.g. 451, 550).

        ``stage="data"`` (default) fails after the message was sent, the case where a
        client must not know whether to resend; ``stage="mail"`` fails at MAIL FROM.
        """
        if stage not in ("data", "mail"):
            raise ValueError("stage must be 'data' or 'mail'")
        with self._lock:
            queue = self._fail_queue if stage == "data" else self._mail_fail_queue
            queue.extend([code] * n)

    def fail_rate(self, p4xx: float = 0.01, p5xx: float = 0.005, seed: int = 0) -> None:
        """Fail DATA at random but reproducibly: the n-th message always draws the same."""
        with self._lock:
            self._rate = (p4xx, p5xx, random.Random(seed))

    def fail_recipient(self, address: str, code: int = 550) -> None:
        """Refuse ``address`` at RCPT TO with ``code`` until :meth:`clear_faults`."""
        with self._lock:
            self._rcpt_fail[address.lower()] = code

    def clear_faults(self) -> None:
        with self._lock:
            self._fail_queue.clear()
            self._mail_fail_queue.clear()
            self._rate = None
            self._rcpt_fail.clear()
            self.reply_text.clear()

    def clear(self) -> None:
        """Forget received messages, rejections and counters (faults stay armed)."""
        with self._lock:
            self.messages.clear()
            self.rejections.clear()
            self.attempts = 0

    def _stage_failure(self, stage: str) -> int | None:
        with self._lock:
            if stage == "mail" and self._mail_fail_queue:
                return self._mail_fail_queue.pop(0)
            return None

    def _recipient_failure(self, address: str) -> int | None:
        with self._lock:
            return self._rcpt_fail.get(address.lower())

    def _data_failure(self) -> int | None:
        with self._lock:
            self.attempts += 1
            if self._fail_queue:
                return self._fail_queue.pop(0)
            if self._rate is not None:
                p4, p5, rng = self._rate
                draw = rng.random()
                if draw < p5:
                    return 550
                if draw < p5 + p4:
                    return 451
            return None

    def _reject(self, stage: str, code: int, envelope: Any, rcpts: list[str], mid: Any) -> None:
        with self._lock:
            self.rejections.append(Rejection(stage, code, envelope.mail_from, rcpts, mid))

    def _accept(self, message: ReceivedMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    # ------------------------------------------------------------------ reading

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages were accepted; raise on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise HarnessError(
                    f"SMTP sink got {len(self.messages)} messages, expected {count} "
                    f"within {timeout}s"
                )
            return list(self.messages)

    def message_ids(self) -> Counter[str | None]:
        """How often each Message-ID arrived (values > 1 are duplicates)."""
        with self._lock:
            return Counter(m.message_id for m in self.messages)

    def duplicates(self) -> dict[str | None, int]:
        return {mid: n for mid, n in self.message_ids().items() if n > 1}
