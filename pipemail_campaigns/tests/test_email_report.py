"""The email performance report on a seeded dataset, figures computed by hand, per group;
its table kept current by the code paths; access; the drill-down."""

from odoo.exceptions import AccessError
from odoo.tests import HttpCase, TransactionCase, tagged

from ..report.pipemail_email_stat import MEASURES
from .report_common import BY_HAND, ReportSeed

RATES = ("open_rate", "click_rate", "reply_rate")


@tagged("post_install", "-at_install")
class TestEmailReport(ReportSeed, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.seed_report()

    def figures(self, user, **domain):
        Report = self.env["pipemail.email.report"].with_user(user)
        return Report._pipemail_headline([(k, "=", v) for k, v in domain.items()])

    def seeded(self):
        """Only the seeded emails: the database may hold others (an upgraded one)."""
        return [("outbox_id", "in", [e.id for e in self.emails.values()])]

    def report_groups(self, Report, groupby):
        """``{group: {measure: value}}`` from the pivot's read, rates rounded."""
        aggregates = [f"{m}:sum" for m in MEASURES] + [f"{r}:avg" for r in RATES]
        result = {}
        for group, *values in Report._read_group(self.seeded(), [groupby], aggregates):
            figures = dict(zip([*MEASURES, *RATES], values, strict=True))
            for name in MEASURES:
                figures[name] = None if figures[name] is False else figures[name]
            for name in RATES:
                value = figures[name]
                figures[name] = None if value is None or value is False else round(value, 6)
            result[group] = figures
        return result

    def by_hand(self, key, names=None):
        groups = self.expected(key, names)
        for totals in groups.values():
            for name in RATES:
                if totals[name] is not None:
                    totals[name] = round(totals[name], 6)
        return groups

    def test_hand_figures_per_group(self):
        Report = self.env["pipemail.email.report"].sudo()
        self.assertEqual(len(Report.search(self.seeded())), len(BY_HAND))
        self.assertFalse(Report.search([("outbox_id", "=", self.queued.id)]), "never left: no row")
        cases = {
            "user_id": lambda r: self.users[r["user"]],
            "team_id": lambda r: self.teams[r["user"]],
            "recipient_domain": lambda r: r["domain"],
            "tracked": lambda r: "tracked" if r["tracked"] else "not_tracked",
            "kind": lambda r: r["kind"],
            "date:month": lambda r: r["month"],
        }
        for groupby, key in cases.items():
            with self.subTest(groupby=groupby):
                got = self.report_groups(Report, groupby)
                if groupby == "date:month":
                    got = {d.strftime("%Y-%m"): v for d, v in got.items()}
                self.assertEqual(got, self.by_hand(key))

    def test_hand_figures_per_user_and_month_as_the_manager(self):
        """The manager's pivot: team A only (Sam), cell by cell."""
        Report = self.env["pipemail.email.report"].with_user(self.mia)
        aggregates = [f"{m}:sum" for m in MEASURES]
        got = {
            (user, month.strftime("%Y-%m")): dict(
                zip(MEASURES, [None if v is False else v for v in values], strict=True)
            )
            for user, month, *values in Report._read_group(
                [], ["user_id", "date:month"], aggregates
            )
        }
        expected = {
            group: {m: totals[m] for m in MEASURES}
            for group, totals in self.expected(
                lambda r: (self.users[r["user"]], r["month"]),
                names=[row[0] for row in BY_HAND if row[1] == "sam"],
            ).items()
        }
        self.assertEqual(got, expected)

    def test_headline_and_rates(self):
        sam = self.figures(self.sam)
        self.assertEqual(
            {k: sam[k] for k in MEASURES},
            {
                "sent": 6,
                "delivered": 4,
                "bounced": 2,
                "tracked_delivered": 2,
                "opened": 1,
                "clicked": 1,
                "replied": 2,
                "unsubscribed": 1,
            },
        )
        self.assertEqual(
            (sam["open_rate"], sam["click_rate"], sam["reply_rate"]), (50.0, 50.0, 50.0)
        )
        olga = self.figures(self.olga)
        self.assertEqual((olga["sent"], olga["opened"], olga["open_rate"]), (1, 1, 100.0))

    def test_dashboard_opens_the_readers_figures(self):
        """The Dashboard menu opens a saved dashboard of the reader's own figures."""
        action = self.env.ref("pipemail_campaigns.pipemail_email_dashboard_action_open")
        result = action.with_user(self.sam).run()
        dashboard = (
            self.env["pipemail.email.dashboard"].with_user(self.sam).browse(result["res_id"])
        )
        dashboard.period = "all"
        sam = self.figures(self.sam)
        self.assertEqual(
            (dashboard.sent, dashboard.delivered, dashboard.opened, dashboard.open_rate),
            (sam["sent"], sam["delivered"], sam["opened"], sam["open_rate"]),
        )
        self.assertEqual(dashboard.display_name, "Email Performance")
        report = dashboard.action_open_report()
        self.assertEqual(report["res_model"], "pipemail.email.report")

    def test_stat_table_and_dashboard_are_not_for_everyone(self):
        """The per-email table behind the report is server machinery: no salesperson or
        portal user reads or writes it; a portal user gets no dashboard either."""
        Stat = self.env["pipemail.email.stat"]
        for user in (self.sam, self.olga, self.mia, self.portal):
            with self.assertRaises(AccessError, msg=user.login):
                Stat.with_user(user).search([])
            with self.assertRaises(AccessError, msg=user.login):
                Stat.with_user(user).create({})
        with self.assertRaises(AccessError):
            self.env["pipemail.email.dashboard"].with_user(self.portal).create({})
        with self.assertRaises(AccessError):
            self.env["pipemail.email.report"].with_user(self.portal).search([])

    def test_untracked_is_not_tracked_not_zero(self):
        Report = self.env["pipemail.email.report"].with_user(self.sam)
        groups = {
            tracked: (sent, opened, replied, rate)
            for tracked, sent, opened, replied, rate in Report._read_group(
                [], ["tracked"], ["sent:sum", "opened:sum", "replied:sum", "open_rate:avg"]
            )
        }
        self.assertEqual(groups["tracked"], (4, 1, 1, 50.0))
        sent, opened, replied, rate = groups["not_tracked"]
        self.assertEqual((sent, replied), (2, 1))
        self.assertIs(opened, False, "opens unknown (NULL, an empty cell), not zero")
        self.assertIs(rate, False, "no open rate for untracked emails, not 0 %")
        row = Report.search([("outbox_id", "=", self.e3.id)])
        self.assertEqual(row.open_status, "not_tracked")
        self.assertEqual(row.recipient_domain, "beta.example")

    def test_paths_agree_with_a_rebuild(self):
        """Every figure was set by the code path that changed it (send, hit, reply,
        blacklist, bounce, follow-up); a rebuild from scratch finds the same rows."""
        Stat = self.env["pipemail.email.stat"].sudo()
        fields = ["outbox_id", "kind", "recipient_email", *MEASURES]

        def rows():
            return sorted(Stat.search(self.seeded()).read(fields), key=lambda r: r["id"])

        before = rows()
        self.assertEqual(len(before), len(BY_HAND))
        Stat._pipemail_rebuild()
        self.assertEqual(before, rows())
        # a later hit and a later unsubscribe reach the row at once
        self.env["pipemail.tracking.event"].sudo()._pipemail_record(
            self.e2.id,
            "open",
            now=self.e2.sent_date.replace(hour=12),
            earlier=[],
            sent_date=self.e2.sent_date,
            sender_id=self.sam.id,
            notified=True,
            link=None,
            url=None,
            method="GET",
            user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
            ip="203.0.113.9",
            session_uid=None,
        )
        self.env["mail.blacklist"].sudo()._add("b@acme.example")
        [row] = Stat.search([("outbox_id", "=", self.e2.id)])
        self.assertEqual((row.opened, row.unsubscribed), (1, 1))
        self.env["mail.blacklist"].sudo()._remove("b@acme.example")
        self.assertEqual(row.unsubscribed, 0)

    def test_grouping_and_access(self):
        as_mia = self.env["pipemail.email.report"].with_user(self.mia)
        by_user = dict(as_mia._read_group([], ["user_id"], ["sent:sum"]))
        self.assertEqual(by_user, {self.sam: 6}, "the manager sees their team, not team B")
        by_team = dict(as_mia._read_group([], ["team_id"], ["sent:sum"]))
        self.assertEqual(by_team, {self.team_a: 6})
        self.assertFalse(self.env["pipemail.email.report"].with_user(self.sally).search([]))
        self.assertEqual(
            self.env["pipemail.email.report"].with_user(self.olga).search([]).outbox_id, self.e5
        )
        with self.assertRaises(AccessError):
            self.env["pipemail.email.report"].with_user(self.portal).search([])
        with self.assertRaises(AccessError):
            self.env["pipemail.email.stat"].with_user(self.mia).search([])
        # the rows carry no content, and the email behind stays the author's
        row = as_mia.search([("outbox_id", "=", self.e1.id)])
        self.assertNotIn("subject", row._fields)
        with self.assertRaises(AccessError):
            row.outbox_id.with_user(self.mia).read(["subject"])
        [values] = row.read(["outbox_id"])
        self.assertEqual(
            values["outbox_id"],
            (self.e1.id, "Outgoing email"),
            "the email's subject is not shown to a reader who cannot open it",
        )

    def test_drill_down_from_a_cell(self):
        """The March cell of Sam's row: the emails behind it, as each reader may open
        them."""
        Report = self.env["pipemail.email.report"]
        march = [e.id for e in (self.e1, self.e2, self.e3, self.e4)]
        [domain] = [
            group["__domain"]
            for group in Report.with_user(self.mia).read_group(
                [], ["sent:sum"], ["user_id", "date:month"], lazy=False
            )
            if group["user_id"][0] == self.sam.id and group["sent"] == len(march)
        ]
        action = Report.with_user(self.sam).action_open_cell(domain)
        messages = self.env["pipemail.message"].sudo().search(action["domain"])
        self.assertEqual(sorted(messages.pipemail_outbox_id.ids), sorted(march))
        self.assertEqual(action["res_model"], "pipemail.message")
        # the manager counts all four but opens only e1, shared through Sam's lead (e2 is
        # private, e3 and e4 linked to nothing the manager reads)
        action = Report.with_user(self.mia).action_open_cell(domain)
        messages = self.env["pipemail.message"].sudo().search(action["domain"])
        self.assertEqual(messages.pipemail_outbox_id, self.e1)
        self.assertIn("3 you cannot open", action["name"])
        # Olga's cell is not hers to open at all: nothing, not Sam's emails
        action = Report.with_user(self.olga).action_open_cell(domain)
        self.assertEqual(action["domain"], [("id", "in", [])])
        # rows picked in the list: checked as the reader's
        rows = Report.sudo().search([("outbox_id", "=", self.e1.id)])
        with self.assertRaises(AccessError):
            rows.with_user(self.olga).action_open_emails()
        action = rows.with_user(self.sam).action_open_emails()
        self.assertEqual(
            self.env["pipemail.message"].sudo().search(action["domain"]).pipemail_outbox_id,
            self.e1,
        )


@tagged("post_install", "-at_install")
class TestEmailReportRpc(ReportSeed, HttpCase):
    """The report as the web client reads it: over RPC, as users of two teams."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.seed_report()

    def call(self, user, method, *args, **kwargs):
        password = f"{user.login}-pw-2027"
        uid = self.xmlrpc_common.authenticate(self.env.cr.dbname, user.login, password, {})
        self.assertTrue(uid, user.login)
        return self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, uid, password, "pipemail.email.report", method, args, kwargs
        )

    def test_read_group_and_search_read_per_team(self):
        fields = ["sent:sum", "delivered:sum", "opened:sum", "replied:sum"]
        # Sam (team A): his own emails only
        groups = self.call(self.sam, "read_group", [], fields, ["user_id"], lazy=False)
        self.assertEqual([(g["user_id"][0], g["sent"]) for g in groups], [(self.sam.id, 6)])
        # Olga (team B): hers only, none of team A's
        groups = self.call(self.olga, "read_group", [], fields, ["team_id"], lazy=False)
        self.assertEqual(
            [(g["team_id"][0], g["sent"], g["opened"]) for g in groups], [(self.team_b.id, 1, 1)]
        )
        rows = self.call(self.olga, "search_read", [], ["outbox_id", "user_id"])
        self.assertEqual([r["outbox_id"][0] for r in rows], [self.e5.id])
        # Mia manages team A: Sam's figures by month, not Olga's
        groups = self.call(self.mia, "read_group", [], fields, ["date:month"], lazy=False)
        self.assertEqual(
            [(g["sent"], g["delivered"], g["replied"]) for g in groups], [(4, 3, 2), (2, 1, 0)]
        )
        rows = self.call(self.mia, "search_read", [], ["user_id", "team_id"])
        self.assertEqual({r["user_id"][0] for r in rows}, {self.sam.id})
        self.assertEqual(len(rows), 6)
        # asking for Olga's rows by id gives nothing either
        rows = self.call(self.mia, "search_read", [("outbox_id", "=", self.e5.id)], ["sent"])
        self.assertEqual(rows, [])
        # the server table behind is not readable over RPC
        password = "rp_mia-pw-2027"
        uid = self.xmlrpc_common.authenticate(self.env.cr.dbname, "rp_mia", password, {})
        with self.assertRaises(Exception):  # noqa: B017 - an xmlrpc Fault for an AccessError
            self.xmlrpc_object.execute_kw(
                self.env.cr.dbname, uid, password, "pipemail.email.stat", "search_read", [[]], {}
            )
