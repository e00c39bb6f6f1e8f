"""Pacing arithmetic (pipemail.pacing): the windows, the ETA, the slow-down."""

from datetime import datetime, timedelta

import pytest

from pipemail import pacing

T0 = datetime(2026, 3, 2, 9, 0, 0)
M365 = pacing.PROVIDER_QUOTAS["microsoft"]


def test_empty_history_sends_now():
    assert pacing.next_slot(T0, [], M365) == T0


def test_per_minute_window_waits_for_the_oldest_send_to_age_out():
    history = [(T0 + timedelta(seconds=i), 1) for i in range(30)]
    now = T0 + timedelta(seconds=30)
    assert pacing.next_slot(now, history, M365) == T0 + timedelta(minutes=1)


def test_per_day_counts_recipients_including_one_to_one_mail():
    quota = pacing.Quota(per_minute=None, per_day=500)
    # 480 recipients of group copies, plus a 1:1 email to 20 people
    history = [(T0 + timedelta(seconds=i), 1) for i in range(480)]
    history.append((T0 + timedelta(hours=1), 20))
    now = T0 + timedelta(hours=2)
    assert pacing.next_slot(now, history, quota) == T0 + timedelta(days=1)
    assert pacing.next_slot(now, history[:-1], quota) == now


def test_blocked_until_is_respected():
    later = T0 + timedelta(minutes=4)
    assert pacing.next_slot(T0, [], M365, blocked_until=later) == later


def test_eta_of_a_list_beyond_the_day_quota():
    gmail = pacing.PROVIDER_QUOTAS["gmail"]
    history = [(T0 - timedelta(hours=1), 1)] * 450
    end = pacing.eta(T0, history, gmail, 100)
    # 50 fit today, the other 50 once yesterday's sends have aged out
    assert end >= T0 - timedelta(hours=1) + timedelta(days=1)
    assert end < T0 + timedelta(days=1)


def test_eta_and_plan_of_a_thirty_a_minute_account():
    end = pacing.eta(T0, [], M365, 100)
    assert timedelta(minutes=3) <= end - T0 < timedelta(minutes=4)
    assert pacing.plan(T0, [], M365, 100, timedelta(0)) == 30
    assert pacing.plan(T0, [], M365, 10, timedelta(0)) == 10


def test_simulated_hour_never_above_the_limit_and_uses_the_quota():
    """A worker waking every 10 s, sending what plan() allows, for an hour."""
    sent: list[tuple[datetime, int]] = []
    now = T0
    while now < T0 + timedelta(hours=1):
        for _i in range(pacing.plan(now, sent, M365, 10_000, timedelta(0))):
            sent.append((now, 1))
        now += timedelta(seconds=10)
    for start in range(0, 3600, 10):
        window_start = T0 + timedelta(seconds=start)
        in_window = [w for w, _c in sent if window_start <= w < window_start + timedelta(minutes=1)]
        assert len(in_window) <= M365.per_minute
    assert len(sent) >= 0.95 * 30 * 60


@pytest.mark.parametrize(
    ("code", "text", "limited"),
    [
        (421, "4.7.0 Try again later, closing connection.", True),
        (450, "4.2.1 The user you are trying to contact is receiving mail at a rate", True),
        (432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", True),
        (554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", True),
        (451, "The mail server asked to try again later (451: 4.3.0 injected failure).", False),
        (452, "4.2.2 Mailbox full", False),
        (550, "5.1.1 User unknown", False),
    ],
)
def test_rate_limit_answers(code, text, limited):
    assert pacing.is_rate_limited(code, text) is limited


def test_slowdown_grows_and_is_capped():
    assert [pacing.slowdown(n).total_seconds() / 60 for n in (1, 2, 3)] == [1, 2, 4]
    assert pacing.slowdown(20) == pacing.MAX_SLOWDOWN


def test_quota_refuses_zero():
    with pytest.raises(ValueError):
        pacing.Quota(per_minute=0, per_day=10)
