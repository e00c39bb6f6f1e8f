"""A seeded set of sent emails with their figures written down by hand, for the email
performance report's tests (model and RPC)."""

from datetime import datetime

from odoo import Command
from odoo.tests import new_test_user

from ..report.pipemail_email_stat import MEASURES

# Each email's figures, decided by reading the seed below, not by running any code:
# (name, user, month, recipient domain, tracked, kind,
#  sent, delivered, bounced, tracked_delivered, opened, clicked, replied, unsubscribed)
# opened/clicked None = not tracked (not zero).
BY_HAND = [
    # two human opens + a human click, a reply, recipient unsubscribed later
    ("e1", "sam", "2027-03", "acme.example", True, "direct", 1, 1, 0, 1, 1, 1, 1, 1),
    # machine hits only (image proxy): not opened, not clicked
    ("e2", "sam", "2027-03", "acme.example", True, "direct", 1, 1, 0, 1, 0, 0, 0, 0),
    # not tracked (a stray hit is ignored), replied
    ("e3", "sam", "2027-03", "beta.example", False, "direct", 1, 1, 0, 0, None, None, 1, 0),
    # refused by the server at sending time
    ("e4", "sam", "2027-03", "acme.example", True, "direct", 1, 0, 1, 0, 0, 0, 0, 0),
    # Olga (team B): one human open
    ("e5", "olga", "2027-04", "gamma.example", True, "direct", 1, 1, 0, 1, 1, 0, 0, 0),
    # a hard bounce report received after it left (an open before it does not count
    # as delivered: the report reads "bounced")
    ("e6", "sam", "2027-04", "beta.example", True, "direct", 1, 0, 1, 0, 0, 0, 0, 0),
    # a follow-up of e3, untracked, soft bounce (delayed): still delivered
    ("e7", "sam", "2027-04", "acme.example", False, "followup", 1, 1, 0, 0, None, None, 0, 0),
]


class ReportSeed:
    """Mixed into a test case: ``seed_report(env)`` in ``setUpClass``."""

    @classmethod
    def seed_report(cls):
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
        company = cls.env.company

        def user(login, groups="sales_team.group_sale_salesman"):
            return new_test_user(
                cls.env,
                login,
                password=f"{login}-pw-2027",
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
        cls.users = {"sam": cls.sam, "olga": cls.olga}
        Team = cls.env["crm.team"]
        cls.team_a = Team.create(
            {
                "name": "Team A",
                "user_id": cls.mia.id,
                "member_ids": [Command.set((cls.sam | cls.sally).ids)],
            }
        )
        cls.team_b = Team.create({"name": "Team B", "member_ids": [Command.set(cls.olga.ids)]})
        cls.teams = {"sam": cls.team_a, "olga": cls.team_b}
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
        march, april = datetime(2027, 3, 10, 9, 0), datetime(2027, 4, 2, 9, 0)
        cls.e1 = cls.email(cls.box_sam, "a@acme.example", True, march)
        cls.e2 = cls.email(cls.box_sam, "b@acme.example", True, march, visibility="private")
        cls.e3 = cls.email(cls.box_sam, "Carl <c@beta.example>", False, march)
        cls.e4 = cls.email(cls.box_sam, "d@acme.example", True, march, refused="d@acme.example: no")
        cls.e5 = cls.email(cls.box_olga, "e@gamma.example", True, april)
        cls.e6 = cls.email(cls.box_sam, "f@beta.example", True, datetime(2027, 4, 5, 9, 0))
        cls.e7 = cls.email(cls.box_sam, "g@acme.example", False, datetime(2027, 4, 6, 9, 0))
        cls.queued = cls.email(cls.box_sam, "queued@acme.example", True, None)  # never left
        cls.emails = {f"e{i}": getattr(cls, f"e{i}") for i in range(1, 8)}
        # e1's conversation is linked to Sam's opportunity (which his manager can read)
        cls.lead = cls.env["crm.lead"].create(
            {"name": "Forty chairs", "user_id": cls.sam.id, "team_id": cls.team_a.id}
        )
        cls.e1.write({"lead_id": cls.lead.id})
        cls.e1.thread_id.write({"lead_id": cls.lead.id})
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
            (cls.e6, "open", False),
        ]:
            Event.create({"outbox_id": outbox.id, "kind": kind, "ts": ts, "is_machine": machine})
        cls.reply(cls.e1)
        cls.reply(cls.e3)
        cls.env["mail.blacklist"].sudo()._add("a@acme.example")
        cls.e6._pipemail_mark_undelivered("hard", "5.1.1 no such user")
        cls.e7._pipemail_mark_undelivered("soft", "4.2.2 mailbox full")
        followup = (
            cls.env["pipemail.followup"]
            .sudo()
            .create({"user_id": cls.sam.id, "outbox_id": cls.e3.id, "days": 3})
        )
        followup.write({"state": "sent", "sent_outbox_id": cls.e7.id})

    @classmethod
    def email(cls, account, to, tracking, sent, refused=False, visibility="shared"):
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
            .create(
                {
                    "account_id": account.id,
                    "owner_id": account.user_id.id,
                    "thread_key": f"k{outbox.id}",
                    "subject": "s",
                    "visibility": visibility,
                }
            )
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
        if sent:
            # the sent copy in the conversation, as the send path records it
            message = (
                cls.env["pipemail.message"]
                .sudo()
                .create(
                    {
                        "thread_id": thread.id,
                        "account_id": account.id,
                        "key": f"s{outbox.id}",
                        "direction": "out",
                        "date": sent,
                        "email_from": account.email,
                        "pipemail_outbox_id": outbox.id,
                    }
                )
            )
            outbox.write({"sent_message_id": message.id})
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

    # ------------------------------------------------------------------ the hand table

    def expected(self, key, names=None):
        """The hand table summed per ``key`` (a function of a BY_HAND row), over the
        emails ``names`` (all by default): ``{group: {measure: total or None}}``."""
        groups = {}
        for row in BY_HAND:
            name, user, month, domain, tracked, kind, *figures = row
            if names is not None and name not in names:
                continue
            group = key(
                {
                    "name": name,
                    "user": user,
                    "month": month,
                    "domain": domain,
                    "tracked": tracked,
                    "kind": kind,
                }
            )
            totals = groups.setdefault(group, dict.fromkeys(MEASURES))
            for measure, value in zip(MEASURES, figures, strict=True):
                if value is not None:
                    totals[measure] = (totals[measure] or 0) + value
        for totals in groups.values():
            base = totals["tracked_delivered"] or 0
            totals["open_rate"] = 100.0 * (totals["opened"] or 0) / base if base else None
            totals["click_rate"] = 100.0 * (totals["clicked"] or 0) / base if base else None
            delivered = totals["delivered"] or 0
            totals["reply_rate"] = 100.0 * totals["replied"] / delivered if delivered else None
        return groups
