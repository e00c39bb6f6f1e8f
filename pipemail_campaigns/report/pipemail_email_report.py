"""Email performance: one row per email that left through pipemail (1:1, group,
automation, follow-up), with its outcome as 0/1 figures the pivot sums.

A SQL view, not a materialised table: the figures are always those of now (an open
counts the second it is logged, a reply the second it is synced) and there is nothing
to refresh or to get out of step. Its cost is the per-email look-up of events and
replies, served by the partial indexes created in ``init`` (events by email, human
only; incoming messages by conversation). If the pivot over millions of emails is too
slow, the same SELECT becomes a materialised view refreshed by a cron; the model does
not change.

Untracked emails have NULL, not 0, for opens and clicks: they count for sent,
delivered, replies and bounces, and show as "not tracked" rather than as unopened.

No content is in the view (no subject, no body, no address but the recipient's
domain): rows are filtered by record rules (a salesperson their own, a sales manager
their teams'), and the drill-down lists these rows, not the emails.
"""

from odoo import api, fields, models, tools
from odoo.tools import SQL

KINDS = [
    ("direct", "1:1"),
    ("group", "Group Email"),
    ("automation", "Automation"),
    ("followup", "Follow-up"),
]


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
    open_status = fields.Selection(
        [("opened", "Opened"), ("not_opened", "Not opened"), ("not_tracked", "Not tracked")],
        string="Opened?",
        readonly=True,
    )

    def _bounced_sql(self):
        """Hook: when an email counts as bounced. Today: a recipient the server refused
        for good at sending time; the bounce parser (issue 11) extends this with the
        bounce reports received later."""
        return SQL("(o.rcpt_refused IS NOT NULL AND o.rcpt_refused <> '')")

    def _kind_sql(self):
        """Hook: group email (issue 11) adds its own case before 'direct'."""
        return SQL(
            "CASE WHEN f.id IS NOT NULL THEN 'followup'"
            " WHEN o.pipemail_action_id IS NOT NULL THEN 'automation' ELSE 'direct' END"
        )

    def _query(self):
        bounced = self._bounced_sql()
        return SQL(
            """
            SELECT o.id AS id, o.id AS outbox_id, o.sent_date AS date, o.user_id,
                   COALESCE(l.team_id, tm.crm_team_id) AS team_id,
                   o.account_id, o.company_id, a.pipemail_template_id AS template_id,
                   a.base_automation_id AS rule_id, %(kind)s AS kind,
                   lower(substring(o.email_to from '@([^>,\\s]+)')) AS recipient_domain,
                   o.lead_id,
                   CASE WHEN COALESCE(o.tracking, false) THEN 'tracked'
                        ELSE 'not_tracked' END AS tracked,
                   1 AS sent,
                   CASE WHEN %(bounced)s THEN 0 ELSE 1 END AS delivered,
                   CASE WHEN %(bounced)s THEN 1 ELSE 0 END AS bounced,
                   CASE WHEN COALESCE(o.tracking, false) AND NOT %(bounced)s THEN 1 ELSE 0 END
                       AS tracked_delivered,
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
            """,
            kind=self._kind_sql(),
            bounced=bounced,
        )

    def init(self):
        cr = self.env.cr
        cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_tracking_event_human_idx"
            " ON pipemail_tracking_event (outbox_id, kind) WHERE NOT COALESCE(is_machine, false)"
        )
        cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_message_in_thread_date_idx"
            " ON pipemail_message (thread_id, date) WHERE direction = 'in'"
        )
        tools.drop_view_if_exists(cr, self._table)
        cr.execute(
            SQL("CREATE OR REPLACE VIEW %s AS (%s)", SQL.identifier(self._table), self._query())
        )

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
