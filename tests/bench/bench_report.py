"""Email performance report: the pivot "salesperson x month", old view vs maintained table.

    python tests/bench/bench_report.py --template DB                      # 100,000 / 500,000
    python tests/bench/bench_report.py --template DB --full               # 1,000,000 / 5,000,000
    python tests/bench/bench_report.py --template DB --emails N --events M

``DB`` is a database of the dev cluster where the pipemail addons are installed (nobody
connected to it): it is copied (``createdb -T``) to ``DB_bench``, which is filled in SQL
and dropped at the end. In that copy, in this process, on the same data:

- **old**: the first version's report, a plain SQL view doing every email's look-ups
  (human opens, clicks, a reply in its conversation, the blacklist) at read time: its
  SELECT as it was (``OLD_VIEW``), grouped by user x month in SQL (the ORM adds
  nothing to its cost). Timed once, after one warm-up run, unless ``--baseline-runs``
  says more;
- **new**: ``_read_group`` on ``pipemail.email.report`` (the view over the maintained
  table ``pipemail.email.stat``) by user x month in the reader's time zone (as the web
  client asks) with the pivot's measures and rates, as the superuser (also without
  the planner's hint on the date column), then as a sales manager (the team record
  rule) and a salesperson (own rows): median of ``--runs`` warm runs after one cold
  run;
- the cost of keeping the table current: the full rebuild (install/upgrade), and the
  per-email refresh that a tracking hit and a synced reply pay (median of 200).

Data: emails over 20 salespeople in two teams (a manager leads the first) and 24
months, 80 % tracked, 2 % refused by the server; events over the tracked ones, 70 %
opens, 20 % machine hits; one email in 5 has a conversation, half of those a reply.
Target: new <= 1 s server time at 1,000,000 emails / 5,000,000 events. A script, not a
test.
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
MEASURES = [
    "sent:sum",
    "delivered:sum",
    "opened:sum",
    "clicked:sum",
    "replied:sum",
    "bounced:sum",
    "open_rate:avg",
    "click_rate:avg",
    "reply_rate:avg",
]


def timed(fn, runs=3, warm=True):
    if warm:
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
    salesman = env.ref("sales_team.group_sale_salesman")
    users = env["res.users"]
    for index in range(20):
        users |= env["res.users"].create(
            {
                "name": f"Bench {index}",
                "login": f"bench{index}@ourco.example",
                "groups_id": [(6, 0, [salesman.id])],
            }
        )
    manager = env["res.users"].create(
        {
            "name": "Bench Manager",
            "login": "benchmanager@ourco.example",
            "groups_id": [(6, 0, [env.ref("sales_team.group_sale_manager").id])],
        }
    )
    env["crm.team"].create(
        [
            {"name": "Bench A", "user_id": manager.id, "member_ids": [(6, 0, users[:10].ids)]},
            {"name": "Bench B", "member_ids": [(6, 0, users[10:].ids)]},
        ]
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
               now() - ((g %% 730) || ' days')::interval - ((g %% 86400) || ' s')::interval,
               CASE WHEN g %% 50 = 0 THEN 'refused' END, now(), now(), 1, 1
          FROM generate_series(1, %s) g,
               (SELECT %s::int[] AS ids) a, (SELECT %s::int[] AS ids) u
        """,
        (env.company.id, emails, accounts.ids, users.ids),
    )
    cr.execute("SELECT min(id), max(id) FROM pipemail_outbox WHERE subject = 'Bench'")
    low, high = cr.fetchone()
    # one email in 5 has a conversation, half of those a reply the day after
    cr.execute(
        """
        INSERT INTO pipemail_thread (account_id, company_id, thread_key, subject, visibility,
                                     link_mode, active, create_date, write_date)
        SELECT account_id, company_id, 'bench' || id, 'Bench', 'shared', 'none', true,
               now(), now()
          FROM pipemail_outbox WHERE subject = 'Bench' AND id % 5 = 1
        """
    )
    cr.execute(
        """
        UPDATE pipemail_outbox o SET thread_id = t.id
          FROM pipemail_thread t
         WHERE t.thread_key = 'bench' || o.id AND o.subject = 'Bench'
        """
    )
    cr.execute(
        """
        INSERT INTO pipemail_message (thread_id, account_id, company_id, key, direction, date,
                                      email_from, create_date, write_date)
        SELECT o.thread_id, o.account_id, o.company_id, 'r' || o.id, 'in',
               o.sent_date + interval '1 day', 'customer@client.example', now(), now()
          FROM pipemail_outbox o
         WHERE o.subject = 'Bench' AND o.thread_id IS NOT NULL AND o.id % 10 = 1
        """
    )
    cr.execute(
        """
        INSERT INTO pipemail_tracking_event (outbox_id, kind, ts, is_machine)
        SELECT o, CASE WHEN g %% 10 < 7 THEN 'open' ELSE 'click' END, now(), g %% 5 = 0
          FROM (SELECT g, (%s + (g::bigint * 7919) %% (%s - %s + 1))::int AS o
                  FROM generate_series(1, %s) g) s
         WHERE (o - %s) %% 5 <> 0
        """,
        (low, high, low, events * 5 // 4, low),  # a fifth falls on untracked emails
    )
    cr.execute(
        "ANALYZE pipemail_outbox; ANALYZE pipemail_tracking_event;"
        " ANALYZE pipemail_thread; ANALYZE pipemail_message"
    )
    cr.commit()
    cr.execute("SELECT count(*) FROM pipemail_tracking_event")
    (count,) = cr.fetchone()
    print(
        f"filled {emails:,} emails, {count:,} events in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return users, manager


OLD_VIEW = """
            SELECT o.id AS id, o.id AS outbox_id, o.sent_date AS date, o.user_id,
                   COALESCE(l.team_id, tm.crm_team_id) AS team_id,
                   o.account_id, o.company_id, a.pipemail_template_id AS template_id,
                   a.base_automation_id AS rule_id,
                   CASE WHEN f.id IS NOT NULL THEN 'followup'
                        WHEN o.pipemail_action_id IS NOT NULL THEN 'automation'
                        ELSE 'direct' END AS kind,
                   lower(substring(o.email_to from '@([^>,\\s]+)')) AS recipient_domain,
                   o.lead_id,
                   CASE WHEN COALESCE(o.tracking, false) THEN 'tracked'
                        ELSE 'not_tracked' END AS tracked,
                   1 AS sent,
                   CASE WHEN (o.rcpt_refused IS NOT NULL AND o.rcpt_refused <> '')
                        THEN 0 ELSE 1 END AS delivered,
                   CASE WHEN (o.rcpt_refused IS NOT NULL AND o.rcpt_refused <> '')
                        THEN 1 ELSE 0 END AS bounced,
                   CASE WHEN COALESCE(o.tracking, false)
                         AND NOT (o.rcpt_refused IS NOT NULL AND o.rcpt_refused <> '')
                        THEN 1 ELSE 0 END AS tracked_delivered,
                   CASE WHEN NOT COALESCE(o.tracking, false) THEN NULL
                        WHEN EXISTS (SELECT 1 FROM pipemail_tracking_event e
                                     WHERE e.outbox_id = o.id AND e.kind = 'open'
                                       AND NOT COALESCE(e.is_machine, false))
                        THEN 1 ELSE 0 END AS opened,
                   CASE WHEN NOT COALESCE(o.tracking, false) THEN NULL
                        WHEN EXISTS (SELECT 1 FROM pipemail_tracking_event e
                                     WHERE e.outbox_id = o.id AND e.kind = 'click'
                                       AND NOT COALESCE(e.is_machine, false))
                        THEN 1 ELSE 0 END AS clicked,
                   CASE WHEN EXISTS (SELECT 1 FROM pipemail_message m
                                     WHERE m.thread_id = o.thread_id AND m.direction = 'in'
                                       AND m.date >= o.sent_date)
                        THEN 1 ELSE 0 END AS replied,
                   CASE WHEN EXISTS (SELECT 1 FROM mail_blacklist b
                                     WHERE b.active AND b.email = lower(
                                        substring(o.email_to from '([^<>,\\s]+@[^<>,\\s]+)')))
                        THEN 1 ELSE 0 END AS unsubscribed,
                   CASE WHEN NOT COALESCE(o.tracking, false) THEN 'not_tracked'
                        WHEN EXISTS (SELECT 1 FROM pipemail_tracking_event e
                                     WHERE e.outbox_id = o.id AND e.kind = 'open'
                                       AND NOT COALESCE(e.is_machine, false))
                        THEN 'opened' ELSE 'not_opened' END AS open_status
              FROM pipemail_outbox o
              LEFT JOIN crm_lead l ON l.id = o.lead_id
              LEFT JOIN ir_act_server a ON a.id = o.pipemail_action_id
              LEFT JOIN pipemail_followup f ON f.sent_outbox_id = o.id
              LEFT JOIN LATERAL (
                    SELECT crm_team_id FROM crm_team_member tm
                     WHERE tm.user_id = o.user_id AND tm.active
                     ORDER BY tm.create_date, tm.id LIMIT 1) tm ON true
             WHERE o.sent_date IS NOT NULL
"""
"""The SELECT of the first version's view (git: pipemail_campaigns/report/
pipemail_email_report.py before the maintained table), its hooks' SQL inlined."""


def old_view_pivot(env):
    """The first version's view, grouped by user x month: every look-up at read time."""
    env.cr.execute(
        "SELECT v.user_id, date_trunc('month', v.date), sum(v.sent), sum(v.delivered),"
        " sum(v.opened), sum(v.clicked), sum(v.replied), sum(v.bounced),"
        " sum(v.tracked_delivered) FROM (" + OLD_VIEW + ") v GROUP BY 1, 2"
    )
    return env.cr.fetchall()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--template", required=True)
    parser.add_argument("--emails", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 emails, 5,000,000 events")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep DB_bench to look into it")
    args = parser.parse_args()
    if args.full:
        args.emails, args.events = 1_000_000, 5_000_000
    db = f"{args.template}_bench"
    if args.keep:
        print(f"keeping {db}")
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
            users, manager = fill(env, args.emails, args.events)
            users, manager = users.ids, manager.id
            started = time.perf_counter()
            env["pipemail.email.stat"]._pipemail_rebuild()
            cr.commit()
            rebuild = time.perf_counter() - started
            print(f"rebuild of the table (install/upgrade): {rebuild:.1f} s", flush=True)
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            old = timed(lambda: old_view_pivot(env), runs=args.baseline_runs)
            old_cells = len(old_view_pivot(env)) if args.baseline_runs > 1 else None
            print(f"old view (user x month, SQL): {old * 1000:9.0f} ms", flush=True)
            # as the web client asks: in the reader's time zone
            Report = env["pipemail.email.report"].with_context(tz="Europe/Brussels")

            def pivot(model):
                return model._read_group([], ["user_id", "date:month"], MEASURES)

            new = timed(lambda: pivot(Report), runs=args.runs)
            rows = pivot(Report)
            # the same without the planner's hint on the date column (see the stat
            # model's init): a sort of every row instead of a hash of the groups
            cr.execute("ALTER TABLE pipemail_email_stat ALTER COLUMN date RESET (n_distinct)")
            cr.execute("ANALYZE pipemail_email_stat")
            unhinted = timed(lambda: pivot(Report), runs=args.runs)
            cr.execute("ALTER TABLE pipemail_email_stat ALTER COLUMN date SET (n_distinct = 1000)")
            cr.execute("ANALYZE pipemail_email_stat")
            as_manager = timed(lambda: pivot(Report.with_user(manager)), runs=args.runs)
            manager_rows = pivot(Report.with_user(manager))
            as_salesperson = timed(lambda: pivot(Report.with_user(users[0])), runs=args.runs)
            Stat = env["pipemail.email.stat"]
            step = max(1, args.emails // 200)
            cr.execute(
                "SELECT id FROM pipemail_outbox WHERE subject = 'Bench' AND id %% %s = 0 LIMIT 200",
                (step,),
            )
            sample = [row[0] for row in cr.fetchall()]
            hit = timed(lambda: [Stat._pipemail_refresh([i]) for i in sample], runs=1)
            cr.execute(
                "SELECT thread_id FROM pipemail_outbox WHERE subject = 'Bench'"
                " AND thread_id %% %s = 0 LIMIT 200",
                (step // 5 or 1,),
            )
            threads = [row[0] for row in cr.fetchall()]
            reply = timed(lambda: [Stat._pipemail_refresh_threads([t]) for t in threads], runs=1)
            cr.rollback()
        print(f"emails {args.emails:,}  events {args.events:,}  ({len(rows)} cells)")
        print(
            f"old: SQL view, look-ups at read time  {old * 1000:9.0f} ms"
            + (f"  ({old_cells} cells)" if old_cells else "")
        )
        print(
            f"new: report pivot, superuser           {new * 1000:9.0f} ms"
            f"  target <= 1000 ms  {'PASS' if new <= 1 else 'MISS'}"
        )
        print(f"new: superuser, without the date hint  {unhinted * 1000:9.0f} ms")
        print(
            f"new: as a sales manager (team rule)    {as_manager * 1000:9.0f} ms"
            f"  ({len(manager_rows)} cells)  {'PASS' if as_manager <= 1 else 'MISS'}"
        )
        print(f"new: as a salesperson (own rows)       {as_salesperson * 1000:9.0f} ms")
        print(f"ratio old / new (superuser): {old / new:.1f}x")
        print(
            f"upkeep: rebuild {rebuild:.1f} s; refresh of one email (a tracking hit) "
            f"{hit / len(sample) * 1000:.2f} ms; of one conversation (a synced reply) "
            f"{reply / len(threads) * 1000:.2f} ms"
        )
    finally:
        if not args.keep:
            subprocess.run(["dropdb", *PG, "--if-exists", "--force", db], check=False)


if __name__ == "__main__":
    main()
