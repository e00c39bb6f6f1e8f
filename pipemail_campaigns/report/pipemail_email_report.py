"""Email performance: one row per email that left through pipemail (1:1, group,
automation, follow-up), with its outcome as 0/1 figures the pivot sums.

A view over ``pipemail.email.stat``, the table the server keeps current email by
email (why, and how: that file's docstring), plus the sales team read live (the
lead's team, else the salesperson's first team).

Rates (documented in ``readme/USAGE.md``): open rate = unique human opens / tracked
delivered emails, click rate = unique clicks / tracked delivered emails, reply rate =
replies / delivered emails. Untracked emails have NULL, not 0, for opens and clicks:
they count for sent, delivered, replies and bounces, show as "not tracked" rather than
as unopened, and are not in the open and click rates' denominators. The rate columns
are per-email values (100 or 0, NULL where the email is not in the denominator)
averaged by the pivot, which gives each cell its exact ratio.

No content is in the view (no subject, no body, no address but the recipient's
domain): rows are filtered by record rules (a salesperson their own, a sales manager
their teams'). :meth:`PipemailEmailReport.action_open_emails` is the drill-down to the
emails behind rows, read as the reader (what they may not open stays out).
"""

from odoo import _, api, fields, models, tools
from odoo.tools import SQL

from .pipemail_email_stat import KINDS


def _rate(string, help_text):
    """A rate column: per email 100, 0, or NULL when the email is not in the rate's
    denominator; the pivot's average of a cell is then the cell's exact rate."""
    return fields.Float(
        string=string, readonly=True, aggregator="avg", digits=(5, 1), help=help_text
    )


class PipemailEmailReport(models.Model):
    _name = "pipemail.email.report"
    _description = "Email Performance"
    _auto = False
    _order = "date desc, id desc"
    _rec_name = "date"

    outbox_id = fields.Many2one("pipemail.outbox", string="Email", readonly=True)
    date = fields.Datetime(string="Sent On", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    team_id = fields.Many2one("crm.team", string="Sales Team", readonly=True)
    account_id = fields.Many2one("pipemail.account", string="Mailbox", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    template_id = fields.Many2one("mail.template", string="Template", readonly=True)
    rule_id = fields.Many2one("base.automation", string="Automation Rule", readonly=True)
    group_email_id = fields.Many2one("pipemail.group.email", string="Group Email", readonly=True)
    kind = fields.Selection(KINDS, readonly=True)
    recipient_domain = fields.Char(string="Recipient Domain", readonly=True)
    lead_id = fields.Many2one("crm.lead", string="Lead / Opportunity", readonly=True)
    tracked = fields.Selection(
        [("tracked", "Tracked"), ("not_tracked", "Not tracked")],
        string="Tracking",
        readonly=True,
    )
    sent = fields.Integer(readonly=True, aggregator="sum")
    delivered = fields.Integer(readonly=True, aggregator="sum")
    bounced = fields.Integer(string="Bounces", readonly=True, aggregator="sum")
    tracked_delivered = fields.Integer(
        string="Delivered (tracked)",
        readonly=True,
        aggregator="sum",
        help="The base of open and click rates: untracked emails cannot be opened as far "
        "as we know.",
    )
    opened = fields.Integer(
        string="Unique Opens",
        readonly=True,
        aggregator="sum",
        help="Human opens only; empty for untracked emails.",
    )
    clicked = fields.Integer(
        string="Unique Clicks", readonly=True, aggregator="sum", help="Empty for untracked emails."
    )
    replied = fields.Integer(string="Replies", readonly=True, aggregator="sum")
    unsubscribed = fields.Integer(string="Unsubscribes", readonly=True, aggregator="sum")
    open_rate = _rate("Open Rate (%)", "Unique human opens / tracked delivered emails.")
    click_rate = _rate("Click Rate (%)", "Unique clicks / tracked delivered emails.")
    reply_rate = _rate("Reply Rate (%)", "Replies / delivered emails, tracked or not.")
    open_status = fields.Selection(
        [("opened", "Opened"), ("not_opened", "Not opened"), ("not_tracked", "Not tracked")],
        string="Opened?",
        readonly=True,
    )

    def _query(self):
        return SQL(
            """
            SELECT s.id, s.outbox_id, s.date, s.user_id,
                   COALESCE(l.team_id, tm.crm_team_id) AS team_id,
                   s.account_id, s.company_id, s.template_id, s.rule_id, s.group_email_id,
                   s.kind, s.recipient_domain, s.lead_id,
                   CASE WHEN s.tracked THEN 'tracked' ELSE 'not_tracked' END AS tracked,
                   s.sent, s.delivered, s.bounced, s.tracked_delivered, s.opened, s.clicked,
                   s.replied, s.unsubscribed,
                   CASE WHEN s.tracked_delivered = 1
                        THEN (100 * s.opened)::float8 END AS open_rate,
                   CASE WHEN s.tracked_delivered = 1
                        THEN (100 * s.clicked)::float8 END AS click_rate,
                   CASE WHEN s.delivered = 1 THEN (100 * s.replied)::float8 END AS reply_rate,
                   CASE WHEN NOT s.tracked THEN 'not_tracked'
                        WHEN s.opened = 1 THEN 'opened' ELSE 'not_opened' END AS open_status
              FROM pipemail_email_stat s
              LEFT JOIN crm_lead l ON l.id = s.lead_id
              LEFT JOIN (SELECT DISTINCT ON (user_id) user_id, crm_team_id
                           FROM crm_team_member WHERE active
                          ORDER BY user_id, create_date, id) tm ON tm.user_id = s.user_id
            """
        )

    def init(self):
        cr = self.env.cr
        tools.drop_view_if_exists(cr, self._table)
        cr.execute(
            SQL("CREATE OR REPLACE VIEW %s AS (%s)", SQL.identifier(self._table), self._query())
        )

    # ------------------------------------------------------------------ drill-down

    def action_open_emails(self):
        """The emails these rows count, as a list of conversation messages the reader
        may open (the report's rows are checked as theirs first; the emails are then
        searched as the reader, so what they may not read stays out and is counted)."""
        self.check_access("read")
        return self._action_open_emails()

    @api.model
    def action_open_cell(self, domain):
        """Drill-down from a pivot or graph cell: ``domain`` is the cell's."""
        return self.search(domain or [])._action_open_emails()

    def _action_open_emails(self):
        outbox_ids = [row.outbox_id.id for row in self]
        messages = self.env["pipemail.message"].search([("pipemail_outbox_id", "in", outbox_ids)])
        hidden = len(set(outbox_ids) - set(messages.pipemail_outbox_id.ids))
        if hidden:
            name = _(
                "Emails (%(shown)s; %(hidden)s you cannot open)",
                shown=len(messages),
                hidden=hidden,
            )
        else:
            name = _("Emails (%(shown)s)", shown=len(messages))
        return {
            "type": "ir.actions.act_window",
            "name": name,
            "res_model": "pipemail.message",
            "view_mode": "list,form",
            "views": [(False, "list"), (False, "form")],
            "domain": [("id", "in", messages.ids)],
            "context": {"create": False},
        }

    @api.model
    def _pipemail_headline(self, domain=None):
        """Headline figures over the rows the caller may see: counts and the three rates
        (opens and clicks over tracked delivered emails, replies over delivered)."""
        rows = self._read_group(
            domain or [],
            [],
            [
                "sent:sum",
                "delivered:sum",
                "bounced:sum",
                "tracked_delivered:sum",
                "opened:sum",
                "clicked:sum",
                "replied:sum",
                "unsubscribed:sum",
            ],
        )
        sent, delivered, bounced, tracked, opened, clicked, replied, unsub = (
            v or 0 for v in rows[0]
        )

        def rate(part, whole):
            return round(100.0 * part / whole, 1) if whole else 0.0

        return {
            "sent": sent,
            "delivered": delivered,
            "bounced": bounced,
            "tracked_delivered": tracked,
            "opened": opened,
            "clicked": clicked,
            "replied": replied,
            "unsubscribed": unsub,
            "open_rate": rate(opened, tracked),
            "click_rate": rate(clicked, tracked),
            "reply_rate": rate(replied, delivered),
        }
