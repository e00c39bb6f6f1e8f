"""The email performance report on a seeded dataset, figures computed by hand."""

from datetime import datetime

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestEmailReport(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
        company = cls.env.company

        def user(login, groups="sales_team.group_sale_salesman"):
            return new_test_user(
                cls.env,
                login,
                email=f"{login}@ourco.example",
                groups=groups,
                company_id=company.id,
                company_ids=[Command.set(company.ids)],
            )

        cls.sam = user("rp_sam")
        cls.sally = user("rp_sally")
        cls.olga = user("rp_olga")
        cls.mia = user("rp_mia", "sales_team.group_sale_manager")
        cls.portal = new_test_user(cls.env, "rp_portal", groups="base.group_portal")
        Team = cls.env["crm.team"]
        cls.team_a = Team.create(
            {
                "name": "Team A",
                "user_id": cls.mia.id,
                "member_ids": [Command.set((cls.sam | cls.sally).ids)],
            }
        )
        cls.team_b = Team.create({"name": "Team B", "member_ids": [Command.set(cls.olga.ids)]})
        Account = cls.env["pipemail.account"]
        cls.box_sam = Account.create(
            {
                "name": "sam",
                "email": "rp_sam@ourco.example",
                "user_id": cls.sam.id,
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
            }
        )
        cls.box_olga = Account.create(
            {
                "name": "olga",
                "email": "rp_olga@ourco.example",
                "user_id": cls.olga.id,
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
            }
        )
        when = datetime(2027, 3, 10, 9, 0)
        cls.e1 = cls.email(cls.box_sam, "a@acme.example", True, when)
        cls.e2 = cls.email(cls.box_sam, "b@acme.example", True, when)
        cls.e3 = cls.email(cls.box_sam, "Carl <c@beta.example>", False, when)
        cls.e4 = cls.email(cls.box_sam, "d@acme.example", True, when, refused="d@acme.example: no")
        cls.e5 = cls.email(cls.box_olga, "e@gamma.example", True, datetime(2027, 4, 2, 9, 0))
        cls.email(cls.box_sam, "queued@acme.example", True, None)  # never left: not counted
        Event = cls.env["pipemail.tracking.event"].sudo()
        ts = datetime(2027, 3, 10, 10, 0)
        for outbox, kind, machine in [
            (cls.e1, "open", False),
            (cls.e1, "open", False),
            (cls.e1, "click", False),
            (cls.e2, "open", True),
            (cls.e2, "click", True),
            (cls.e3, "open", False),  # a stray hit on an untracked email: ignored
            (cls.e5, "open", False),
        ]:
            Event.create({"outbox_id": outbox.id, "kind": kind, "ts": ts, "is_machine": machine})
        cls.reply(cls.e1)
        cls.reply(cls.e3)

    @classmethod
    def email(cls, account, to, tracking, sent, refused=False):
        outbox = (
            cls.env["pipemail.outbox"]
            .sudo()
            .create(
                {
                    "account_id": account.id,
                    "user_id": account.user_id.id,
                    "email_to": to,
                    "subject": "secret subject",
                    "body_html": "<p>secret body</p>",
                }
            )
        )
        thread = (
            cls.env["pipemail.thread"]
            .sudo()
            .create({"account_id": account.id, "thread_key": f"k{outbox.id}", "subject": "s"})
        )
        outbox.write(
            {
                "tracking": tracking,
                "sent_date": sent,
                "thread_id": thread.id,
                "state": "sent" if sent else "queued",
                "rcpt_refused": refused,
            }
        )
        return outbox

    @classmethod
    def reply(cls, outbox):
        cls.env["pipemail.message"].sudo().create(
            {
                "thread_id": outbox.thread_id.id,
                "account_id": outbox.account_id.id,
                "key": f"r{outbox.id}",
                "direction": "in",
                "date": datetime(2027, 3, 11),
                "email_from": "customer@acme.example",
            }
        )

    def figures(self, user, **domain):
        Report = self.env["pipemail.email.report"].with_user(user)
        return Report._pipemail_headline([(k, "=", v) for k, v in domain.items()])

    def test_figures_per_user_by_hand(self):
        sam = self.figures(self.sam)
        self.assertEqual(
            {
                k: sam[k]
                for k in (
                    "sent",
                    "delivered",
                    "bounced",
                    "tracked_delivered",
                    "opened",
                    "clicked",
                    "replied",
                )
            },
            {
                "sent": 4,
                "delivered": 3,
                "bounced": 1,
                "tracked_delivered": 2,
                "opened": 1,
                "clicked": 1,
                "replied": 2,
            },
        )
        self.assertEqual(
            (sam["open_rate"], sam["click_rate"], sam["reply_rate"]), (50.0, 50.0, 66.7)
        )
        olga = self.figures(self.olga)
        self.assertEqual((olga["sent"], olga["opened"], olga["open_rate"]), (1, 1, 100.0))

    def test_untracked_is_not_tracked_not_zero(self):
        Report = self.env["pipemail.email.report"].with_user(self.sam)
        groups = {
            tracked: (sent, opened, replied)
            for tracked, sent, opened, replied in Report._read_group(
                [], ["tracked"], ["sent:sum", "opened:sum", "replied:sum"]
            )
        }
        self.assertEqual(groups["tracked"], (3, 1, 1))
        sent, opened, replied = groups["not_tracked"]
        self.assertEqual((sent, replied), (1, 1))
        self.assertIs(opened, False, "opens unknown (NULL, an empty cell), not zero")
        row = Report.search([("outbox_id", "=", self.e3.id)])
        self.assertEqual(row.open_status, "not_tracked")
        self.assertEqual(row.recipient_domain, "beta.example")

    def test_grouping_and_access(self):
        as_mia = self.env["pipemail.email.report"].with_user(self.mia)
        by_user = dict(as_mia._read_group([], ["user_id"], ["sent:sum"]))
        self.assertEqual(by_user, {self.sam: 4}, "the manager sees their team, not team B")
        by_team = dict(as_mia._read_group([], ["team_id"], ["sent:sum"]))
        self.assertEqual(by_team, {self.team_a: 4})
        by_month = as_mia._read_group([], ["date:month"], ["sent:sum"])
        self.assertEqual(len(by_month), 1)
        self.assertFalse(self.env["pipemail.email.report"].with_user(self.sally).search([]))
        self.assertEqual(
            self.env["pipemail.email.report"].with_user(self.olga).search([]).outbox_id, self.e5
        )
        with self.assertRaises(AccessError):
            self.env["pipemail.email.report"].with_user(self.portal).search([])
        # the drill-down rows carry no content, and the email behind stays the author's
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
