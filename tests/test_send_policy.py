"""The send outcome policy (pipemail.send_policy), without a database or a server: what
each SMTP answer means for the email. The Odoo outbox applies exactly these outcomes
(pipemail_sync/tests/test_outbound_send.py checks them end to end at an SMTP sink)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipemail import send_policy as policy
from pipemail.errors import AuthFailed, ConnectFailed, ConnectionLost, SendFailed
from pipemail.smtp import RecipientRefusal, RecipientsRefused, SendResult


def refused(**codes: int) -> dict[str, RecipientRefusal]:
    return {f"{k}@x.example": RecipientRefusal(f"{k}@x.example", c, "no") for k, c in codes.items()}


def test_server_took_it() -> None:
    result = SendResult(accepted=["a@x.example"], code=250)
    assert policy.after_result(result, attempts=1, delivered_before=False).state == "sent"


def test_dropped_after_the_data_is_maybe_sent_never_resent() -> None:
    result = SendResult(accepted=["a@x.example"], ambiguous=True)
    outcome = policy.after_result(result, attempts=1, delivered_before=False)
    assert outcome.state == "uncertain" and outcome.wait is None


def test_some_recipients_later_are_retried_with_growing_waits() -> None:
    result = SendResult(accepted=["a@x.example"], refused=refused(b=451, c=550), code=250)
    waits = []
    for attempt in range(1, policy.MAX_ATTEMPTS):
        outcome = policy.after_result(result, attempts=attempt, delivered_before=True)
        assert outcome.state == "retry" and outcome.pending == ("b@x.example",)
        waits.append(outcome.wait)
    assert waits == list(policy.BACKOFF) and waits == sorted(waits)
    last = policy.after_result(result, attempts=policy.MAX_ATTEMPTS, delivered_before=True)
    assert (last.state, last.gave_up, last.partial) == ("sent", True, True)


@pytest.mark.parametrize(
    "exc",
    [
        SendFailed("later", temporary=True, smtp_code=421),
        ConnectFailed("unreachable"),
        ConnectionLost("dropped"),
    ],
)
def test_a_later_answer_retries_the_owed_recipients(exc: Exception) -> None:
    outcome = policy.after_error(exc, attempts=2, pending=["a@x.example"], delivered_before=False)
    assert outcome == policy.SendOutcome("retry", ("a@x.example",), timedelta(minutes=5))


def test_gives_up_after_the_last_attempt() -> None:
    exc = SendFailed("later", temporary=True, smtp_code=421)
    outcome = policy.after_error(
        exc, attempts=policy.MAX_ATTEMPTS, pending=["a@x.example"], delivered_before=False
    )
    assert (outcome.state, outcome.gave_up, outcome.pending) == ("failed", True, ("a@x.example",))


@pytest.mark.parametrize(
    "exc",
    [SendFailed("no such user", temporary=False, smtp_code=550), AuthFailed("bad password")],
)
def test_a_refusal_or_a_setting_to_fix_fails_at_once(exc: Exception) -> None:
    outcome = policy.after_error(exc, attempts=1, pending=["a@x.example"], delivered_before=False)
    assert outcome.state == "failed" and not outcome.gave_up
    partial = policy.after_error(exc, attempts=3, pending=["a@x.example"], delivered_before=True)
    assert (partial.state, partial.partial) == ("sent", True)


def test_every_recipient_refused() -> None:
    for_good = RecipientsRefused("refused", refused=refused(a=550))
    outcome = policy.after_error(for_good, attempts=1, pending=[], delivered_before=False)
    assert outcome.state == "failed"
    # the recipients of earlier attempts have it: sent, nothing owed, no note
    outcome = policy.after_error(for_good, attempts=2, pending=[], delivered_before=True)
    assert outcome == policy.SendOutcome("sent")
    later = RecipientsRefused("refused", refused=refused(a=550, b=452))
    outcome = policy.after_error(later, attempts=1, pending=[], delivered_before=False)
    assert (outcome.state, outcome.pending) == ("retry", ("b@x.example",))


def test_an_unknown_exception_is_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        policy.after_error(ZeroDivisionError(), attempts=1, pending=[], delivered_before=False)
