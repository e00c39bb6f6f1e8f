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


class AIError(PipemailError):
    """An AI helper gave no answer. The message is one sentence saying what to do.

    ``temporary`` tells the caller whether trying the same request again later may help
    (a busy or unreachable service) or whether a person must change something first
    (the key, the model, the quota).
    """

    code = "ai"
    temporary = False

    def __init__(self, message: str, *, detail: str = "", temporary: bool | None = None) -> None:
        super().__init__(message, detail=detail)
        if temporary is not None:
            self.temporary = temporary


class AIUnreachable(AIError):
    """The AI endpoint could not be reached (refused, DNS, connection dropped)."""

    code = "ai_unreachable"
    temporary = True


class AITimeout(AIError):
    """The AI endpoint did not answer within the time allowed."""

    code = "ai_timeout"
    temporary = True


class AIBusy(AIError):
    """The AI endpoint kept answering 429 (rate limited) until the retries ran out."""

    code = "ai_busy"
    temporary = True

    def __init__(self, message: str, *, detail: str = "", retry_after: float = 0.0) -> None:
        super().__init__(message, detail=detail)
        #: seconds the server asked us to wait (0 when it did not say)
        self.retry_after = retry_after


class AIQuotaExceeded(AIError):
    """The AI account has no quota or credit left (429 ``insufficient_quota``)."""

    code = "ai_quota"


class AIAuthFailed(AIError):
    """The AI endpoint refused the API key (401/403)."""

    code = "ai_auth"


class AIModelMissing(AIError):
    """The AI endpoint does not serve the configured model (404)."""

    code = "ai_model"


class AIInputTooLong(AIError):
    """The prompt did not fit the model's context (the configured size is too large)."""

    code = "ai_too_long"


class AIRefused(AIError):
    """The AI service refused the content (content filter, refusal)."""

    code = "ai_refused"


class AIRequestRejected(AIError):
    """The AI endpoint rejected the request for another reason (400, 422...)."""

    code = "ai_rejected"


class AIServerError(AIError):
    """The AI endpoint kept failing with 5xx until the retries ran out."""

    code = "ai_server"
    temporary = True


class AIBadAnswer(AIError):
    """The model answered something the engine could not read as the expected result."""

    code = "ai_bad_answer"
    temporary = True


class AICancelled(AIError):
    """The caller's cancel hook asked to stop; nothing was returned."""

    code = "ai_cancelled"
