"""The figures of every email that left through pipemail, one row per email, kept
current as things happen to it: the table behind the email performance report.

Why a maintained table and not a view: the report's figures come from per-email
look-ups (its human opens and clicks in the event log, an incoming message in its
conversation, its recipient in the blacklist, a bounce report). Done for every email
at every read, as the SQL view of the first version did, the "salesperson x month"
pivot took 3.9 s at 50,000 emails; here a read sums small integers of one narrow
table (figures in ``tests/bench/README.md``).

Why refreshed per email by the code paths and not by a cron: an open counts the
second it is logged and a reply the second it is synced, as before. Every path that
changes a figure calls :meth:`PipemailEmailStat._pipemail_refresh` with the emails it
touched, in its own transaction: the outbox when an email leaves, is refused or is
linked (``pipemail.outbox.write``), the tracking hit (``_pipemail_record``), the sync
storing or moving an incoming message (``pipemail.message``), a bounce report, the
blacklist, a follow-up being sent. The refresh recomputes those emails' rows with one
SELECT (:meth:`_pipemail_select`), the only place that says what a figure means, and
upserts them: a path cannot get a figure wrong, only forget to call it, and
:meth:`_pipemail_rebuild` (run on install and upgrade, and by hand) recomputes every
row with the same SELECT.

What is not stored: the sales team. It is read live by the report's view (the lead's
team, else the salesperson's), so a team change needs no refresh, and the managers'
record rule follows the teams as they are now.
"""

from odoo import api, fields, models
from odoo.tools import SQL

KINDS = [
    ("direct", "1:1"),
    ("group", "Group Email"),
    ("automation", "Automation"),
    ("followup", "Follow-up"),
]

MEASURES = (
    "sent",
    "delivered",
    "bounced",
    "tracked_delivered",
    "opened",
    "clicked",
    "replied",
    "unsubscribed",
)
"""The figures the pivot sums, in the order of :meth:`PipemailEmailStat._pipemail_select`."""
COLUMNS = (
    "id",
    "outbox_id",
    "date",
    "user_id",
    "account_id",
    "company_id",
    "thread_id",
    "lead_id",
    "template_id",
    "rule_id",
    "group_email_id",
    "kind",
    "recipient_email",
    "recipient_domain",
    "tracked",
    *MEASURES,
)


class PipemailEmailStat(models.Model):
    _name = "pipemail.email.stat"
    _description = "Email Performance Figures (server table)"
    _log_access = False
    _order = "id desc"

    outbox_id = fields.Many2one("pipemail.outbox", required=True, ondelete="cascade")
    date = fields.Datetime(index=True)
    user_id = fields.Many2one("res.users")
    account_id = fields.Many2one("pipemail.account")
    company_id = fields.Many2one("res.company")
    thread_id = fields.Many2one("pipemail.thread", index="btree_not_null")
    lead_id = fields.Many2one("crm.lead", index="btree_not_null")
    template_id = fields.Many2one("mail.template")
    rule_id = fields.Many2one("base.automation")
    group_email_id = fields.Many2one("pipemail.group.email")
    kind = fields.Selection(KINDS)
    recipient_email = fields.Char(index="btree_not_null")
    recipient_domain = fields.Char()
    tracked = fields.Boolean()
    sent = fields.Integer()
    delivered = fields.Integer()
    bounced = fields.Integer()
    tracked_delivered = fields.Integer()
    opened = fields.Integer(help="NULL for an untracked email: not known, not zero.")
    clicked = fields.Integer(help="NULL for an untracked email: not known, not zero.")
    replied = fields.Integer()
    unsubscribed = fields.Integer()

    _sql_constraints = [
        ("outbox_uniq", "UNIQUE(outbox_id)", "One row of figures per email."),
    ]

    # ------------------------------------------------------------------ what a figure means

    def _bounced_sql(self):
        """When an email counts as bounced: a recipient the server refused for good at
        sending time, or a hard bounce report received later (the bounce parser
        marks the email, see ``pipemail.outbox._pipemail_mark_undelivered``). A soft
        bounce (4.x.x, "delayed") is not a failed delivery."""
        return SQL(
            "(COALESCE(o.rcpt_refused, '') <> ''"
            " OR COALESCE(o.pipemail_bounce_type, '') = 'hard'"
            " OR COALESCE(r.bounce_type, '') = 'hard')"
        )

    def _kind_sql(self):
        return SQL(
            "CASE WHEN f.id IS NOT NULL THEN 'followup'"
            " WHEN o.pipemail_group_recipient_id IS NOT NULL THEN 'group'"
            " WHEN o.pipemail_action_id IS NOT NULL THEN 'automation' ELSE 'direct' END"
        )

    def _pipemail_select(self, outbox_ids=None):
        """The figures of the sent emails ``outbox_ids`` (all of them for ``None``),
        as rows of this table. Untracked emails have NULL opens and clicks; opens and
        clicks count for delivered emails only (a bounced email's stray hit is not an
        open), so that they never exceed the rates' denominators."""
        bounced = self._bounced_sql()
        human = SQL("NOT COALESCE(e.is_machine, false)")
        where = SQL("o.sent_date IS NOT NULL")
        if outbox_ids is not None:
            where = SQL("%s AND o.id = ANY(%s)", where, list(outbox_ids))
        return SQL(
            """
            SELECT o.id, o.id, o.sent_date, o.user_id, o.account_id, o.company_id,
                   o.thread_id, o.lead_id, a.pipemail_template_id, a.base_automation_id,
                   r.group_id, %(kind)s,
                   lower(substring(o.email_to from '([^<>,\\s]+@[^<>,\\s]+)')),
                   lower(substring(o.email_to from '@([^>,\\s]+)')),
                   COALESCE(o.tracking, false),
                   1,
                   CASE WHEN %(bounced)s THEN 0 ELSE 1 END,
                   CASE WHEN %(bounced)s THEN 1 ELSE 0 END,
                   CASE WHEN COALESCE(o.tracking, false) AND NOT %(bounced)s THEN 1 ELSE 0 END,
                   CASE WHEN NOT COALESCE(o.tracking, false) THEN NULL
                        WHEN %(bounced)s THEN 0
                        WHEN EXISTS (SELECT 1 FROM pipemail_tracking_event e
                                     WHERE e.outbox_id = o.id AND e.kind = 'open' AND %(human)s)
                        THEN 1 ELSE 0 END,
                   CASE WHEN NOT COALESCE(o.tracking, false) THEN NULL
                        WHEN %(bounced)s THEN 0
                        WHEN EXISTS (SELECT 1 FROM pipemail_tracking_event e
                                     WHERE e.outbox_id = o.id AND e.kind = 'click' AND %(human)s)
                        THEN 1 ELSE 0 END,
                   CASE WHEN EXISTS (SELECT 1 FROM pipemail_message m
                                     WHERE m.thread_id = o.thread_id AND m.direction = 'in'
                                       AND m.date >= o.sent_date)
                        THEN 1 ELSE 0 END,
                   CASE WHEN EXISTS (SELECT 1 FROM mail_blacklist b
                                     WHERE b.active AND b.email = lower(
                                        substring(o.email_to from '([^<>,\\s]+@[^<>,\\s]+)')))
                        THEN 1 ELSE 0 END
              FROM pipemail_outbox o
              LEFT JOIN ir_act_server a ON a.id = o.pipemail_action_id
              LEFT JOIN pipemail_group_email_recipient r ON r.id = o.pipemail_group_recipient_id
              LEFT JOIN LATERAL (SELECT id FROM pipemail_followup f
                                  WHERE f.sent_outbox_id = o.id LIMIT 1) f ON true
             WHERE %(where)s
            """,
            kind=self._kind_sql(),
            bounced=bounced,
            human=human,
            where=where,
        )

    # ------------------------------------------------------------------ keeping it current

    def init(self):
        cr = self.env.cr
        # the look-ups of one email's figures: its human hits, the incoming messages of
        # its conversation, the follow-up that sent it
        cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_tracking_event_human_idx"
            " ON pipemail_tracking_event (outbox_id, kind) WHERE NOT COALESCE(is_machine, false)"
        )
        cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_message_in_thread_date_idx"
            " ON pipemail_message (thread_id, date) WHERE direction = 'in'"
        )
        cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_followup_sent_outbox_idx"
            " ON pipemail_followup (sent_outbox_id) WHERE sent_outbox_id IS NOT NULL"
        )
        # a salesperson's own rows (their record rule), by date
        cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_email_stat_user_date_idx"
            " ON pipemail_email_stat (user_id, date)"
        )
        # Send times are all different, so PostgreSQL expects "group by month" (or
        # week, or day, in the reader's time zone: an expression it has no statistics
        # for) to make about as many groups as there are emails, and sorts a million
        # rows instead of hashing a few hundred groups (+40 % at 1,000,000 emails,
        # tests/bench/README.md). The report only ever groups dates by day or coarser:
        # tell the planner the column has a few years of days.
        cr.execute("ALTER TABLE pipemail_email_stat ALTER COLUMN date SET (n_distinct = 1000)")
        self._pipemail_rebuild()

    @api.model
    def _pipemail_refresh(self, outbox_ids):
        """Recompute the rows of these emails (server code: no access check, the
        callers are the server's own paths). Emails not sent (yet) have no row."""
        ids = sorted({i for i in outbox_ids if i})
        if not ids:
            return
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(
            SQL(
                "DELETE FROM pipemail_email_stat s WHERE s.id = ANY(%s) AND NOT EXISTS"
                " (SELECT 1 FROM pipemail_outbox o WHERE o.id = s.id AND o.sent_date IS NOT NULL)",
                ids,
            )
        )
        cr.execute(self._pipemail_upsert(ids))
        self.invalidate_model()
        self.env["pipemail.email.report"].invalidate_model()

    @api.model
    def _pipemail_refresh_threads(self, thread_ids):
        """A reply arrived, moved or left: the sent emails of those conversations
        (found in this table: an email changing conversation refreshes its row)."""
        self._pipemail_refresh_where("thread_id", [i for i in thread_ids if i])

    @api.model
    def _pipemail_refresh_emails(self, emails):
        """The blacklist changed for these addresses."""
        self._pipemail_refresh_where("recipient_email", [e.lower() for e in emails if e])

    def _pipemail_refresh_where(self, column, values):
        if not values:
            return
        self.env.flush_all()
        rows = self.env.execute_query(
            SQL(
                "SELECT id FROM pipemail_email_stat WHERE %s = ANY(%s)",
                SQL.identifier(column),
                values,
            )
        )
        self._pipemail_refresh([row[0] for row in rows])

    def _pipemail_upsert(self, outbox_ids=None):
        names = SQL(", ").join(SQL.identifier(c) for c in COLUMNS)
        updates = SQL(", ").join(
            SQL("%s = EXCLUDED.%s", SQL.identifier(c), SQL.identifier(c)) for c in COLUMNS[1:]
        )
        return SQL(
            "INSERT INTO pipemail_email_stat (%s) %s ON CONFLICT (id) DO UPDATE SET %s",
            names,
            self._pipemail_select(outbox_ids),
            updates,
        )

    @api.model
    def _pipemail_rebuild(self):
        """Every row recomputed from the outbox, the event log and the messages."""
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("TRUNCATE pipemail_email_stat")
        cr.execute(self._pipemail_upsert())
        cr.execute("ANALYZE pipemail_email_stat")
        self.invalidate_model()
