"""Sending through the user's own SMTP server, with plain-words errors and no duplicates.

Two promises shape this module:

* **Errors a salesperson can act on.** Every failure becomes one of the typed errors
  of :mod:`pipemail.errors`: a 4xx is ``SendFailed(temporary=True)``, a 5xx
  ``SendFailed(temporary=False)``, a bad password :class:`AuthFailed`, an unreachable
  server :class:`ConnectFailed`, a certificate problem :class:`TLSFailed`. Recipients
  refused one by one are reported one by one; the others still get the mail.
* **Each email delivered once.** :func:`send_with_retry` retries only what the server
  said to retry, only for the recipients that still need it, and never re-sends after
  the server may have accepted the message. The one case SMTP cannot settle — the
  connection drops after the final ``.`` of DATA and before the server's reply — is
  returned as ``ambiguous=True`` instead of being guessed either way (see
  :class:`SendResult`).

Connections go through :mod:`pipemail.netguard` (the account form must not become a
way to reach the Odoo server's own network) and verify certificates by default.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipemail.errors import (
    AuthFailed,
    ConfigError,
    ConnectFailed,
    PipemailError,
    SendFailed,
    SizeLimitExceeded,
    TLSFailed,
)
from pipemail.outbound import check_size
from pipemail.types import Auth, OAuth2Auth, PasswordAuth, ServerConfig

FINAL_REPLY_TIMEOUT = 600.0
"""Seconds to wait for the reply to the end of DATA (RFC 5321 §4.5.3.2.6 says 10
minutes). Giving up earlier does not make anything safer: it only turns more sends
into "ambiguous", because the server may be delivering while we wait."""

_ADDRESS = re.compile(r"^[^\s<>\x00-\x1f\x7f]+@[^\s<>@\x00-\x1f\x7f]+$")
_MESSAGE_ID_HEADER = re.compile(rb"^message-id:[ \t]*<[^<>\s]+>", re.IGNORECASE | re.MULTILINE)
_EOLS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


@dataclass(frozen=True)
class RecipientRefusal:
    """One recipient the server would not take, with its own reply."""

    address: str
    code: int
    message: str

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500 or self.code == 0


@dataclass
class SendResult:
    """What happened to one message.

    ``accepted`` lists the recipients the server took the message for; ``refused``
    the others, each with the server's answer. ``ambiguous`` means the whole message
    was transmitted but the connection ended before the server said whether it took
    it: the mail may or may not be on its way. Callers must not resend it blindly;
    they show "may not have been sent" and let the Sent-folder sync settle it (the
    provider's Sent copy carries the same Message-ID) or let the user decide.
    """

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, RecipientRefusal] = field(default_factory=dict)
    code: int = 0
    response: str = ""
    ambiguous: bool = False
    attempts: int = 1

    @property
    def delivered(self) -> bool:
        """The server confirmed it took the message for at least one recipient."""
        return bool(self.accepted) and not self.ambiguous and 200 <= self.code < 300


class RecipientsRefused(SendFailed):
    """The server refused every recipient; ``refused`` says why for each one.

    ``temporary`` is true when at least one refusal was a 4xx, so a retry may
    reach that recipient.
    """

    def __init__(self, message: str, *, refused: dict[str, RecipientRefusal]) -> None:
        temporary = any(r.temporary for r in refused.values())
        codes = {r.code for r in refused.values()}
        super().__init__(
            message,
            temporary=temporary,
            smtp_code=codes.pop() if len(codes) == 1 else 0,
            detail="; ".join(f"{a}: {r.code} {r.message}" for a, r in refused.items()),
        )
        self.refused = refused


# --- connection -------------------------------------------------------------------------


def _open_socket(server: ServerConfig, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the address netguard approved (never a fresh DNS answer)."""
    try:
        from pipemail import netguard
    except ModuleNotFoundError:  # HOOK: netguard not installed; connect unchecked
        netguard = None  # type: ignore[assignment]
    if netguard is None:
        return socket.create_connection((host, port), timeout)
    return netguard.connect_checked(host, port, timeout, server.allow_private_hosts)


class _GuardedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose socket comes from :func:`_open_socket`.

    ``_get_socket`` is smtplib's documented-by-use extension point (SMTP_SSL and
    LMTP override it the same way).
    """

    def __init__(self, server: ServerConfig) -> None:
        self._server = server
        # An explicit local name: the default calls socket.getfqdn(), which can stall
        # on a reverse DNS lookup. The real EHLO name is set once connected.
        super().__init__(local_hostname="localhost", timeout=server.timeout)
        self._host = server.host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return _open_socket(self._server, host, port, timeout)


class _GuardedSMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, server: ServerConfig, context: ssl.SSLContext) -> None:
        self._server = server
        super().__init__(local_hostname="localhost", timeout=server.timeout, context=context)
        self._host = server.host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = _open_socket(self._server, host, port, timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise


def tls_context(server: ServerConfig) -> ssl.SSLContext:
    """Verifying context (``cafile`` if given, else the system store), TLS 1.2+.

    ``verify_tls=False`` exists for on-premise servers with self-signed certificates
    and must stay an administrator's explicit choice.
    """
    if server.verify_tls:
        ctx = ssl.create_default_context(cafile=server.cafile)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _where(server: ServerConfig) -> str:
    return f"{server.host}:{server.port}"


def _server_text(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _tls_error(server: ServerConfig, exc: ssl.SSLError) -> TLSFailed:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSFailed(
            "The mail server's security certificate could not be verified, so nothing was "
            "sent. Check the server name, or ask an administrator about the certificate.",
            detail=f"{_where(server)}: {exc}",
        )
    return TLSFailed(
        "A secure connection to the mail server could not be set up. Check the "
        "security setting (SSL/TLS or STARTTLS) and the port.",
        detail=f"{_where(server)}: {exc}",
    )


def _connect(server: ServerConfig, helo: str | None) -> smtplib.SMTP:
    """Connected, encrypted as configured, EHLO done; or a typed error."""
    if not server.host or not 0 < server.port < 65536:
        raise ConnectFailed(
            "The outgoing mail server address or port is missing.", detail=_where(server)
        )
    context = tls_context(server) if server.security != "none" else None
    smtp: smtplib.SMTP | None = None
    try:
        if server.security == "ssl":
            assert context is not None
            smtp = _GuardedSMTPSSL(server, context)
        else:
            smtp = _GuardedSMTP(server)
        code, resp = smtp.connect(server.host, server.port)
        if code != 220:
            raise ConnectFailed(
                f"The mail server is not accepting connections right now ({code}: "
                f"{_server_text(resp)}). Try again later.",
                detail=f"{_where(server)} greeting {code} {resp!r}",
            )
        smtp.local_hostname = helo or _ehlo_name(smtp)
        smtp.ehlo()
        if server.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise TLSFailed(
                    "The mail server does not offer STARTTLS, so the connection would not "
                    "be encrypted; nothing was sent. Check the security setting and port.",
                    detail=f"{_where(server)}: no STARTTLS in EHLO",
                )
            code, resp = smtp.starttls(context=context)
            smtp.ehlo()
        return smtp
    except PipemailError:
        _close(smtp)
        raise
    except ssl.SSLError as exc:
        _close(smtp)
        raise _tls_error(server, exc)
    except smtplib.SMTPResponseException as exc:
        _close(smtp)
        raise ConnectFailed(
            f"The mail server refused the connection ({exc.smtp_code}: "
            f"{_server_text(exc.smtp_error)}).",
            detail=f"{_where(server)}: {exc!r}",
        )
    except (OSError, smtplib.SMTPException) as exc:
        _close(smtp)
        raise ConnectFailed(
            "We could not reach the mail server. Check the address and port, or try again later.",
            detail=f"{_where(server)}: {exc!r}",
        )


def _ehlo_name(smtp: smtplib.SMTP) -> str:
    """An address literal of our end of the connection, as mail clients send it.

    A bare "localhost" costs spam-score points on some servers; our real host name
    is unknown (and would need a DNS lookup). RFC 5321 §4.1.4 allows the literal.
    """
    if smtp.sock is None:  # not connected
        return "localhost"
    try:
        address = smtp.sock.getsockname()[0]
    except (OSError, AttributeError):
        return "localhost"
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _xoauth2(user: str, token: str) -> str:
    try:
        from pipemail.oauth import xoauth2_string
    except ModuleNotFoundError:  # HOOK: oauth module not there yet
        return f"user={user}\x01auth=Bearer {token}\x01\x01"
    return xoauth2_string(user, token)


def _authenticate(smtp: smtplib.SMTP, auth: Auth | None, *, force_refresh: bool) -> None:
    if auth is None:
        return
    if isinstance(auth, PasswordAuth):
        # smtplib picks the best of CRAM-MD5, PLAIN and LOGIN the server offers.
        smtp.login(auth.username, auth.password)
        return
    token = auth.tokens.access_token(force_refresh=force_refresh)
    initial = _xoauth2(auth.username, token)

    def respond(challenge: bytes | None = None) -> str:
        # The first call gives the initial response. A second call means the server
        # answered 334 with a JSON error (Google, Microsoft): the SASL exchange must
        # be finished with an empty line, after which the server sends 535.
        return initial if challenge is None else ""

    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    smtp.auth("XOAUTH2", respond, initial_response_ok=True)


def _open(server: ServerConfig, auth: Auth | None, helo: str | None) -> smtplib.SMTP:
    """Connect and sign in; an OAuth token refused with 535 is refreshed once.

    A token can be revoked or expire between our cache check and its use; one forced
    refresh covers that. A second refusal is a real credential problem, and a
    token source that cannot refresh raises ReconnectNeeded itself.
    """
    tries = 2 if isinstance(auth, OAuth2Auth) else 1
    for attempt in range(tries):
        smtp = _connect(server, helo)
        try:
            _authenticate(smtp, auth, force_refresh=attempt > 0)
            return smtp
        except smtplib.SMTPAuthenticationError as exc:
            _close(smtp)
            if attempt + 1 < tries and exc.smtp_code == 535:
                continue
            if isinstance(auth, OAuth2Auth):
                raise AuthFailed(
                    "The mail server refused the sign-in for this mailbox even with a fresh "
                    "token. Reconnect the mailbox.",
                    detail=f"{_where(server)}: {exc.smtp_code} {_server_text(exc.smtp_error)}",
                )
            raise AuthFailed(
                "The mail server refused the user name or password. Check them (some "
                "providers need an app password).",
                detail=f"{_where(server)}: {exc.smtp_code} {_server_text(exc.smtp_error)}",
            )
        except smtplib.SMTPNotSupportedError as exc:
            _close(smtp)
            raise AuthFailed(
                "The mail server offers no sign-in method we can use here (it may require a "
                "secure connection first).",
                detail=f"{_where(server)}: {exc}",
            )
        except smtplib.SMTPException as exc:
            _close(smtp)
            code = getattr(exc, "smtp_code", 0)
            raise AuthFailed(
                "Signing in to the mail server failed.",
                detail=f"{_where(server)}: {code} {exc!r}",
            )
        except PipemailError:
            _close(smtp)
            raise
        except (OSError, ssl.SSLError) as exc:
            _close(smtp)
            raise ConnectFailed(
                "The connection to the mail server dropped while signing in. Try again later.",
                detail=f"{_where(server)}: {exc!r}",
            )
    raise AssertionError("unreachable")  # pragma: no cover


# --- one transaction --------------------------------------------------------------------


def _failure(stage: str, code: int, resp: bytes | str, *, address: str = "") -> SendFailed:
    text = _server_text(resp)
    temporary = 400 <= code < 500
    if stage == "sender":
        message = (
            f"The mail server is busy and did not take the email yet ({code}: {text})."
            if temporary
            else f"The mail server refused to send as {address} ({code}: {text}). Check that "
            "this mailbox may send from that address."
        )
    elif temporary:
        message = f"The mail server asked to try again later ({code}: {text})."
    else:
        message = f"The mail server refused the email ({code}: {text})."
    return SendFailed(
        message, temporary=temporary, smtp_code=code, detail=f"{stage}: {code} {text}"
    )


def _dropped(stage: str, exc: BaseException) -> SendFailed:
    return SendFailed(
        "The connection to the mail server dropped before the email was sent; it was not "
        "delivered and can be sent again.",
        temporary=True,
        detail=f"{stage}: {exc!r}",
    )


def dot_stuff(raw: bytes) -> bytes:
    """DATA payload: CRLF line ends, leading dots doubled, ending with ``CRLF.CRLF``."""
    data = _LEADING_DOT.sub(b"..", _EOLS.sub(b"\r\n", raw))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _mail_options(
    smtp: smtplib.SMTP, mail_from: str, rcpts: Sequence[str], raw: bytes
) -> list[str]:
    options: list[str] = []
    if smtp.has_extn("size"):
        limit = smtp.esmtp_features.get("size", "").strip()
        if limit.isdigit() and int(limit) > 0:
            check_size(len(raw), int(limit), "This mail server")
        options.append(f"SIZE={len(raw)}")
    if not raw.isascii() and smtp.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if not all(a.isascii() for a in [mail_from, *rcpts]):
        if not smtp.has_extn("smtputf8"):
            raise SendFailed(
                "The mail server cannot send to or from addresses with non-Latin letters "
                "before the @.",
                temporary=False,
                detail="SMTPUTF8 not offered",
            )
        options.append("SMTPUTF8")
    return options


def _transaction(
    smtp: smtplib.SMTP,
    mail_from: str,
    rcpts: Sequence[str],
    raw: bytes,
    final_reply_timeout: float,
) -> SendResult:
    try:
        options = _mail_options(smtp, mail_from, rcpts, raw)
        code, resp = smtp.mail(mail_from, options)
        if code != 250:
            raise _failure("sender", code, resp, address=mail_from)
        accepted: list[str] = []
        refused: dict[str, RecipientRefusal] = {}
        for rcpt in rcpts:
            code, resp = smtp.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                refused[rcpt] = RecipientRefusal(rcpt, code, _server_text(resp))
        if not accepted:
            smtp.rset()
            raise RecipientsRefused(
                "The mail server refused every recipient: "
                + "; ".join(f"{a} ({r.code}: {r.message})" for a, r in refused.items()),
                refused=refused,
            )
        code, resp = smtp.docmd("DATA")
        if code != 354:
            raise _failure("data", code, resp)
        smtp.send(dot_stuff(raw))
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # Nothing can have been delivered: the end-of-data marker was not (fully) sent.
        raise _dropped("before end of data", exc)
    except smtplib.SMTPResponseException as exc:
        raise _failure("session", exc.smtp_code, exc.smtp_error)
    try:
        if smtp.sock is not None:
            smtp.sock.settimeout(max(final_reply_timeout, smtp.timeout or 0))
        code, resp = smtp.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        return SendResult(
            accepted=accepted,
            refused=refused,
            response=f"no reply after the end of the message: {exc!r}",
            ambiguous=True,
        )
    if not 200 <= code < 600:
        # A reply cut short ("2" then EOF) or garbage: the server may have said 250.
        return SendResult(
            accepted=accepted,
            refused=refused,
            response=f"unreadable reply after the end of the message: {code} {resp!r}",
            ambiguous=True,
        )
    if 200 <= code < 300:
        return SendResult(
            accepted=accepted, refused=refused, code=code, response=_server_text(resp)
        )
    raise _failure("data", code, resp)


def _check_addresses(mail_from: str, rcpts: Sequence[str]) -> None:
    for address in [mail_from, *rcpts]:
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise SendFailed(
                f"{address!r} is not a valid email address.",
                temporary=False,
                detail=f"bad envelope address {address!r}",
            )
    if not rcpts:
        raise SendFailed("The email has no recipient.", temporary=False)


def _check_plaintext_auth(server: ServerConfig, auth: Auth | None) -> None:
    """Refuse to send a password or token unencrypted to a host on the Internet.

    Security "none" exists for relays on the local network; there, an administrator
    has allowed private hosts. Anywhere else it would hand the credentials to
    whoever is on the path.
    """
    if auth is not None and server.security == "none" and not server.allow_private_hosts:
        raise ConfigError(
            "This mailbox would sign in without encryption. Choose SSL/TLS or STARTTLS "
            "for the outgoing server.",
            detail=f"{_where(server)}: AUTH over an unencrypted connection refused",
        )


def send(
    server: ServerConfig,
    auth: Auth | None,
    mail_from: str,
    rcpts: Sequence[str],
    raw: bytes,
    *,
    helo: str | None = None,
    final_reply_timeout: float = FINAL_REPLY_TIMEOUT,
) -> SendResult:
    """Send ``raw`` once over a new connection; raise a typed error or return the result.

    Returns normally when the server accepted the message for at least one recipient
    (others are in ``result.refused``) or when the outcome is ambiguous
    (``result.ambiguous``). Raises :class:`RecipientsRefused` when no recipient was
    accepted, :class:`SendFailed` for a refusal of the message itself (``temporary``
    for 4xx and for a connection that dropped before the end of the data),
    :class:`SizeLimitExceeded` when the server announces a smaller SIZE,
    :class:`AuthFailed`, :class:`ConnectFailed`, :class:`TLSFailed`, netguard's
    ``HostRefused``, and :class:`ConfigError` for credentials over an unencrypted
    connection to a public host.
    """
    _check_addresses(mail_from, rcpts)
    _check_plaintext_auth(server, auth)
    smtp = _open(server, auth, helo)
    try:
        return _transaction(smtp, mail_from, rcpts, raw, final_reply_timeout)
    finally:
        _close(smtp)


# --- retries ----------------------------------------------------------------------------


def _require_message_id(raw: bytes) -> None:
    head = _EOLS.sub(b"\n", raw).split(b"\n\n", 1)[0]
    if not _MESSAGE_ID_HEADER.search(head):
        raise ValueError(
            "send_with_retry needs a message with a Message-ID header: the stable id is "
            "what lets the caller, the server and the Sent folder recognize a retry"
        )


def send_with_retry(
    server: ServerConfig,
    auth: Auth | None,
    mail_from: str,
    rcpts: Sequence[str],
    raw: bytes,
    *,
    attempts: int = 3,
    backoff: float = 2.0,
    max_backoff: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    helo: str | None = None,
    final_reply_timeout: float = FINAL_REPLY_TIMEOUT,
) -> SendResult:
    """:func:`send`, retrying temporary refusals, without ever delivering twice.

    Rules, each one about not sending a message the server already took:

    * only ``SendFailed(temporary=True)`` is retried: 4xx replies, and a connection
      lost *before* the end of the data (which the server cannot have delivered);
      5xx and configuration problems end the loop at once;
    * after a 250 the loop ends; when some recipients were refused with 4xx, only
      those are retried, with the same bytes, so nobody gets a second copy;
    * an ambiguous outcome (connection lost after the final ``.``) ends the loop and
      is returned with ``ambiguous=True``;
    * if a later attempt fails after an earlier one delivered to some recipients,
      the result is returned (not raised) so the caller still learns who got it.

    ``raw`` must carry a Message-ID; the caller builds it once, stores that id
    before the first attempt, and passes the same bytes to every retry. Waits are
    ``backoff * 2**(n-1)`` seconds, capped at ``max_backoff``; ``sleep`` is
    injectable so bulk sends and tests do not block on real time.
    """
    _require_message_id(raw)
    pending = list(dict.fromkeys(rcpts))
    accepted: list[str] = []
    refused: dict[str, RecipientRefusal] = {}
    last_ok: SendResult | None = None
    last_error: PipemailError | None = None
    attempt = 0
    while attempt < max(1, attempts) and pending:
        attempt += 1
        try:
            result = send(
                server, auth, mail_from, pending, raw,
                helo=helo, final_reply_timeout=final_reply_timeout,
            )  # fmt: skip
        except RecipientsRefused as exc:
            last_error = exc
            refused.update(exc.refused)
            pending = [r for r in pending if r in exc.refused and exc.refused[r].temporary]
        except SendFailed as exc:
            last_error = exc
            if not exc.temporary:
                break
        except PipemailError as exc:
            if not accepted:
                raise
            last_error = exc
            break
        else:
            accepted.extend(result.accepted)
            for address in result.accepted:
                refused.pop(address, None)
            refused.update(result.refused)
            if result.ambiguous:
                result.accepted = list(accepted)
                result.refused = refused
                result.attempts = attempt
                return result
            last_ok, last_error = result, None
            pending = [a for a, r in result.refused.items() if r.temporary]
        if pending and attempt < attempts:
            sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))
    if not accepted:
        assert last_error is not None
        raise last_error
    if last_error is not None and not isinstance(last_error, RecipientsRefused):
        # The latest failure is the one that stopped these recipients.
        code = getattr(last_error, "smtp_code", 0)
        for address in pending:
            refused[address] = RecipientRefusal(address, code, str(last_error))
    assert last_ok is not None
    return SendResult(
        accepted=accepted,
        refused={a: r for a, r in refused.items() if a not in accepted},
        code=last_ok.code,
        response=last_ok.response,
        attempts=attempt,
    )


__all__ = [
    "FINAL_REPLY_TIMEOUT",
    "RecipientRefusal",
    "RecipientsRefused",
    "SendResult",
    "SizeLimitExceeded",
    "dot_stuff",
    "send",
    "send_with_retry",
    "tls_context",
]
