"""Group email figures (issue 11), measured in one run.

    python tests/bench/bench_campaigns.py --db grp_bench     # an existing database
                                                             # with pipemail_campaigns

1. Pacing accuracy (pure engine, no database): a Microsoft 365 mailbox (30 messages a
   minute) with 1,000 copies queued, simulated for an hour; the sending cron wakes at
   the time pipemail.pacing.next_slot gives (as the addon triggers it) and takes what
   pipemail.pacing.plan allows. Prints the highest count in any sliding 60 s window
   (target: never above 30) and the share of the quota used while work was queued
   (target >= 95 %).
2. Server time, in ``odoo-bin shell`` on --db, inside a transaction rolled back at the
   end: the Send group email wizard creating and queueing a group email to 100
   contacts (recipient check, per-recipient rendering, rows; target <= 2 s), and the
   preview of one recipient (target <= 100 ms); the baseline, measured in the same
   run, is Odoo's own mail.template rendering the same text for the same 100
   contacts, so the ratio says what group email adds on top of Odoo's renderer.

A script, not a test: timings on a shared machine are figures to read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from pipemail import pacing  # noqa: E402

ODOO = Path("/opt/odoo18")

SHELL = r"""
import json, time
from odoo import Command
env = env(context=dict(env.context, no_reset_password=True, tracking_disable=True))
env["ir.config_parameter"].set_param("pipemail_campaigns.max_recipients", 100)
env["ir.config_parameter"].set_param("pipemail.allow_private_hosts", "1")
user = env["res.users"].create({
    "name": "Bench Group", "login": "bench_group_%(stamp)s", "email": "bench@ourco.example",
    "groups_id": [Command.set([env.ref("sales_team.group_sale_salesman_all_leads").id])],
})
env["pipemail.account"].create({
    "name": "bench", "email": "bench@ourco.example", "imap_host": "127.0.0.1",
    "smtp_host": "127.0.0.1", "user_id": user.id,
})
partners = env["res.partner"].create([
    {"name": f"Bench {i}", "email": f"bench{i}@clients.example"} for i in range(100)
])
subject = "News for {{ object.name }}"
body = "<p>Dear <t t-out='object.name'/>, our offer for <t t-out='object.email'/>.</p>"
template = env["mail.template"].create({
    "name": "bench", "model_id": env.ref("base.model_res_partner").id,
    "subject": subject, "body_html": body,
})
env.flush_all()
out = {}
t = time.perf_counter()
template._render_field("subject", partners.ids)
template._render_field("body_html", partners.ids)
out["baseline"] = time.perf_counter() - t
Wizard = env["pipemail.group.email.wizard"].with_user(user).with_context(
    active_model="res.partner", active_ids=partners.ids)
t = time.perf_counter()
wizard = Wizard.create({"subject": subject, "body": body})
group = wizard._action_send()
env.flush_all()
out["queue"] = time.perf_counter() - t
out["rows"] = len(group.recipient_ids)
times = []
for index in range(20):
    wizard.invalidate_recordset()
    wizard.preview_index = index
    t = time.perf_counter()
    wizard.preview_body
    times.append(time.perf_counter() - t)
out["preview"] = sorted(times)[len(times) // 2]
print("BENCH " + json.dumps(out))
env.cr.rollback()
"""


def simulate_pacing(quota: pacing.Quota, queued: int, hours: float = 1.0) -> dict:
    start = datetime(2026, 3, 2, 9, 0, 0)
    end = start + timedelta(hours=hours)
    sent: list[tuple[datetime, int]] = []
    now = start
    left = queued
    wakeups = 0
    while now < end and left:
        wakeups += 1
        batch = pacing.plan(now, sent, quota, left, timedelta(0))
        sent.extend((now, 1) for _ in range(batch))
        left -= batch
        now = max(now + timedelta(seconds=1), pacing.next_slot(now, sent, quota))
    times = [w for w, _c in sent]
    worst = 0
    for i, first in enumerate(times):
        window = sum(1 for w in times[i:] if w < first + pacing.MINUTE)
        worst = max(worst, window)
    # minutes with work queued: until the last copy left (its minute included)
    busy = hours * 60 if left else (times[-1] - start).total_seconds() / 60 + 1
    capacity = (quota.per_minute or 0) * busy
    return {
        "sent": len(sent),
        "wakeups": wakeups,
        "worst_minute": worst,
        "used": len(sent) / capacity if capacity else 1.0,
    }


def server_times(db: str) -> dict | None:
    cmd = [
        str(ODOO / "venv/bin/python"),
        str(ODOO / "odoo-bin"),
        "shell",
        f"--addons-path={ODOO}/odoo/addons,{_REPO}",
        "--db_host=127.0.0.1",
        "--db_port=55432",
        "--db_user=odoo",
        "-d",
        db,
        "--no-http",
    ]
    code = SHELL % {"stamp": datetime.now().strftime("%H%M%S%f")}
    env = {"PYTHONPATH": str(_REPO), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(cmd, input=code, capture_output=True, text=True, env=env)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    print(result.stdout[-2000:], result.stderr[-3000:], file=sys.stderr)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="an Odoo 18 database with pipemail_campaigns")
    args = parser.parse_args()
    quota = pacing.PROVIDER_QUOTAS["microsoft"]
    figures = simulate_pacing(quota, 1000)
    ok = figures["worst_minute"] <= quota.per_minute and figures["used"] >= 0.95
    print(
        f"pacing, 30/min account, 1,000 queued, 1 simulated hour: {figures['sent']} sent in "
        f"{figures['wakeups']} cron runs; worst 60 s window {figures['worst_minute']} "
        f"(limit {quota.per_minute}); quota used {figures['used']:.1%} (target >= 95%) "
        f"{'PASS' if ok else 'MISS'}"
    )
    if args.db:
        times = server_times(args.db)
        if times is None:
            return 1
        queue_ok = times["queue"] <= 2.0
        preview_ok = times["preview"] <= 0.1
        print(
            f"create + queue a group email to {times['rows']} contacts: "
            f"{times['queue'] * 1000:.0f} ms (target <= 2000 ms) "
            f"{'PASS' if queue_ok else 'MISS'}; Odoo's mail.template rendering the same "
            f"100: {times['baseline'] * 1000:.0f} ms; "
            f"ratio {times['queue'] / times['baseline']:.1f}x"
        )
        print(
            f"preview of one recipient (median of 20): {times['preview'] * 1000:.1f} ms "
            f"(target <= 100 ms) {'PASS' if preview_ok else 'MISS'}"
        )
        ok = ok and queue_ok and preview_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
