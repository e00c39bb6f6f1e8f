"""Email performance report: the pivot "salesperson x month" over many emails.

    python tests/bench/bench_report.py --template DB                 # 1,000,000 / 5,000,000
    python tests/bench/bench_report.py --template DB --emails 100000 --events 500000

``DB`` is a database of the dev cluster where the pipemail addons are installed (nobody
connected to it): it is copied (``createdb -T``) to ``DB_bench``, which is filled in SQL
and dropped at the end. In that copy, in this process:

- baseline: the same grouping read straight from the outbox (``_read_group`` on
  pipemail.outbox by user x month, a count), the cheapest query that answers "how many
  emails per person per month";
- the report: ``_read_group`` on pipemail.email.report by user x month with every
  measure of the pivot (sent, delivered, opens, clicks, replies, bounces);

each the median of 3 warm runs after one cold run; prints both, the ratio, and the
target (report <= 1 s). Emails are spread over 20 salespeople and 24 months, 80 % tracked,
2 % refused; events over the tracked ones, 70 % opens, 20 % of them machine hits.
Replies are not generated (no conversations): the reply look-up is then an index probe
on an empty range, so the figure is a lower bound for it. A script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ODOO = Path("/opt/odoo18")
PG = ["-h", "127.0.0.1", "-p", "55432", "-U", "odoo"]


def timed(fn, runs=3):
    fn()  # cold
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fill(env, emails, events):
    cr = env.cr
    env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
    users = env["res.users"]
    for index in range(20):
        users |= env["res.users"].create(
            {
                "name": f"Bench {index}",
                "login": f"bench{index}@ourco.example",
                "groups_id": [(6, 0, [env.ref("sales_team.group_sale_salesman").id])],
            }
        )
    accounts = env["pipemail.account"].create(
        [
            {
                "name": u.login,
                "email": u.login,
                "user_id": u.id,
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
            }
            for u in users
        ]
    )
    env.flush_all()
    started = time.perf_counter()
    cr.execute(
        """
        INSERT INTO pipemail_outbox (account_id, user_id, company_id, state, mode, subject,
                                     email_to, tracking, sent_date, rcpt_refused,
                                     create_date, write_date, create_uid, write_uid)
        SELECT a.ids[1 + g %% 20], u.ids[1 + g %% 20], %s, 'sent', 'new', 'Bench',
               'x' || g || '@d' || (g %% 500) || '.example', (g %% 5) <> 0,
               now() - ((g %% 730) || ' days')::interval,
               CASE WHEN g %% 50 = 0 THEN 'refused' END, now(), now(), 1, 1
          FROM generate_series(1, %s) g,
               (SELECT %s::int[] AS ids) a, (SELECT %s::int[] AS ids) u
        """,
        (env.company.id, emails, accounts.ids, users.ids),
    )
    cr.execute("SELECT min(id), max(id) FROM pipemail_outbox WHERE subject = 'Bench'")
    low, high = cr.fetchone()
    cr.execute(
        """
        INSERT INTO pipemail_tracking_event (outbox_id, kind, ts, is_machine)
        SELECT o, CASE WHEN g %% 10 < 7 THEN 'open' ELSE 'click' END, now(), g %% 5 = 0
          FROM (SELECT g, %s + (g * 7919) %% (%s - %s + 1) AS o
                  FROM generate_series(1, %s) g) s
         WHERE (o - %s) %% 5 <> 0
        """,
        (low, high, low, events, low),
    )
    cr.execute("ANALYZE pipemail_outbox; ANALYZE pipemail_tracking_event")
    cr.commit()
    print(f"filled {emails:,} emails, {events:,} events in {time.perf_counter() - started:.0f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--template", required=True)
    parser.add_argument("--emails", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    args = parser.parse_args()
    db = f"{args.template}_bench"
    subprocess.run(["dropdb", *PG, "--if-exists", db], check=True)
    subprocess.run(["createdb", *PG, "-T", args.template, db], check=True)
    try:
        sys.path[:0] = [str(ODOO), str(ROOT)]
        import odoo  # noqa: PLC0415 - Odoo is outside the project's environment

        odoo.tools.config.parse_config(
            [
                "--addons-path",
                f"{ODOO}/odoo/addons,{ROOT}",
                "--db_host",
                "127.0.0.1",
                "--db_port",
                "55432",
                "--db_user",
                "odoo",
                "--data-dir",
                "/tmp/odev-data",
            ]
        )
        registry = odoo.modules.registry.Registry(db)
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            fill(env, args.emails, args.events)
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            Outbox, Report = env["pipemail.outbox"], env["pipemail.email.report"]
            base = timed(
                lambda: Outbox._read_group([], ["user_id", "sent_date:month"], ["__count"])
            )
            measures = [
                "sent:sum",
                "delivered:sum",
                "opened:sum",
                "clicked:sum",
                "replied:sum",
                "bounced:sum",
            ]
            report = timed(lambda: Report._read_group([], ["user_id", "date:month"], measures))
            rows = Report._read_group([], ["user_id", "date:month"], measures)
        print(f"baseline (outbox count, user x month): {base * 1000:8.0f} ms")
        print(
            f"report pivot (user x month, 6 measures): {report * 1000:6.0f} ms"
            f"  {len(rows)} cells  target <= 1000 ms  {'PASS' if report <= 1 else 'MISS'}"
        )
        print(f"ratio report / baseline: {report / base:.1f}x")
    finally:
        subprocess.run(["dropdb", *PG, "--if-exists", "--force", db], check=False)


if __name__ == "__main__":
    main()
