"""Typed errors under one base class, each carrying a message a salesperson can read.

The Odoo side shows ``str(error)`` on the account's health panel, so every message
is plain words; technical detail goes to ``detail`` for logs.
"""

from __future__ import annotations


class PipemailError(Exception):
    """Base of every error the engine raises on purpose."""

    #: short machine code the UI and the tests use to tell errors apart
    code = "error"

    def __init__(self, message: str, *, detail: str = "", oauth_error: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        #: the OAuth provider's own ``error`` code (RFC 6749 5.2: ``invalid_grant``,
        #: ``invalid_client``, ``unauthorized_client``...) when a token endpoint answered
        #: one; "" otherwise. ``code`` says what to do, this says what the provider said.
        self.oauth_error = oauth_error

    def __str__(self) -> str:
        return self.message


class ConfigError(PipemailError):
    """The account settings are unusable as given (bad port, empty host...)."""

    code = "config"


class HostRefused(PipemailError):
    """The host resolves to an address we do not connect to (loopback, private...)."""

    code = "host_refused"


class ConnectFailed(PipemailError):
    """The server could not be reached (DNS, refused, timeout)."""

    code = "unreachable"


class TLSFailed(PipemailError):
    """TLS could not be established or the certificate did not verify."""

    code = "tls"


class AuthFailed(PipemailError):
    """The server rejected the credentials (wrong password, expired token)."""

    code = "auth"


class ReconnectNeeded(AuthFailed):
    """Only the user can fix this: the grant was revoked or expired (invalid_grant).

    Callers must stop retrying the account until the user reconnects it.
    """

    code = "reconnect"


class CapabilityMissing(PipemailError):
    """The server lacks something we cannot work without (e.g. UIDPLUS for write-back)."""

    code = "capability"


class ProtocolError(PipemailError):
    """The server answered something we could not understand or a command failed."""

    code = "protocol"


class ConnectionLost(PipemailError):
    """The connection dropped mid-command; the operation may be retried."""

    code = "connection_lost"


class StaleLocation(PipemailError):
    """A write-back targeted a (folder, UIDVALIDITY, UID) that no longer holds the message."""

    code = "stale"


class SizeLimitExceeded(PipemailError):
    """An outgoing message is larger than the provider accepts."""

    code = "size_limit"


class SendFailed(PipemailError):
    """SMTP refused the message; ``temporary`` tells whether a retry may succeed."""

    code = "send"

    def __init__(
        self, message: str, *, temporary: bool, smtp_code: int = 0, detail: str = ""
    ) -> None:
        super().__init__(message, detail=detail)
        self.temporary = temporary
        self.smtp_code = smtp_code
