"""What a send attempt's outcome means for the email: sent, try again later, not sent,
or maybe sent. A pure function of the attempt and what the SMTP layer said, so the rule
is tested without a database, and every caller (the Odoo outbox, group emails,
automations) applies the same one.

The rules:

* The server took the message for every recipient → ``sent``.
* The connection dropped after the whole message was handed over (``ambiguous``) →
  ``uncertain``: never sent again by itself.
* A "later" answer (4xx, a connection that dropped or never opened) → ``retry`` for
  the recipients still owed, after :data:`BACKOFF` [attempt - 1]; after
  :data:`MAX_ATTEMPTS` attempts it gives up (``failed``, ``gave_up``).
* A refusal (5xx) or anything a person must fix first (password, certificate, size)
  → ``failed``.
* ``failed`` while some recipients already took the message is ``sent`` with a note
  (``partial``): the email exists, only the owed copies are missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pipemail.errors import ConnectFailed, ConnectionLost, PipemailError, SendFailed
from pipemail.smtp import RecipientsRefused, SendResult

BACKOFF: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
)
"""Wait before attempt N + 1 after a temporary failure of attempt N."""
MAX_ATTEMPTS = len(BACKOFF) + 1

State = Literal["sent", "retry", "failed", "uncertain"]


@dataclass(frozen=True)
class SendOutcome:
    state: State
    pending: tuple[str, ...] = ()
    """Recipients still owed (tried again on ``retry``)."""
    wait: timedelta | None = None
    """How long before the next attempt (``retry`` only)."""
    gave_up: bool = False
    """``failed`` because the attempts ran out."""
    partial: bool = False
    """``sent`` although this attempt failed: earlier attempts reached some recipients."""


def _retry_or_give_up(attempts: int, pending: Sequence[str], delivered_before: bool) -> SendOutcome:
    if attempts >= MAX_ATTEMPTS:
        return _failed(delivered_before, pending, gave_up=True)
    wait = BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]
    return SendOutcome("retry", pending=tuple(pending), wait=wait)


def _failed(
    delivered_before: bool, pending: Sequence[str] | None, *, gave_up: bool = False
) -> SendOutcome:
    return SendOutcome(
        "sent" if delivered_before else "failed",
        pending=tuple(pending or ()),
        gave_up=gave_up,
        partial=delivered_before,
    )


def temporary_refusals(refused: Iterable[tuple[str, bool]]) -> list[str]:
    """The recipients of ``(address, temporary)`` pairs worth trying again."""
    return [address for address, temporary in refused if temporary]


def after_error(
    exc: BaseException, *, attempts: int, pending: Sequence[str], delivered_before: bool
) -> SendOutcome:
    """The outcome of attempt number ``attempts`` that raised ``exc``.

    ``pending``: the recipients this attempt was for; ``delivered_before``: earlier
    attempts had some recipients accept the message.
    """
    if isinstance(exc, RecipientsRefused):
        owed = temporary_refusals((a, r.temporary) for a, r in exc.refused.items())
        if owed:
            return _retry_or_give_up(attempts, owed, delivered_before)
        # every recipient refused for good; those of earlier attempts have it
        return SendOutcome("sent" if delivered_before else "failed")
    if isinstance(exc, (SendFailed, ConnectFailed, ConnectionLost)):
        if getattr(exc, "temporary", True):
            return _retry_or_give_up(attempts, pending, delivered_before)
        return _failed(delivered_before, None)
    if isinstance(exc, PipemailError):
        return _failed(delivered_before, None)
    raise exc


def after_result(result: SendResult, *, attempts: int, delivered_before: bool) -> SendOutcome:
    """The outcome of attempt number ``attempts`` that the server answered."""
    owed = temporary_refusals((a, r.temporary) for a, r in result.refused.items())
    if result.ambiguous:
        return SendOutcome("uncertain", pending=tuple(owed))
    if owed:
        return _retry_or_give_up(attempts, owed, delivered_before or bool(result.accepted))
    return SendOutcome("sent")
