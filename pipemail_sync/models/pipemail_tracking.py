"""Open and click tracking of the emails sent from the CRM.

The token format, the HTML rewriting, the redirect checks and the machine/person
labelling are the engine's (:mod:`pipemail.tracking`); this file keeps what needs the
database: the signing secret (derived from ``database.secret`` with
``odoo.tools.misc.hmac``, so it never sits in a table of its own and a restored copy
of another database cannot forge tokens for this one), the stored link targets, and
the append-only event log the counts are read from.

The public routes (``controllers/tracking.py``) call one method,
:meth:`PipemailTrackingEvent._pipemail_track`, which answers the same way for every
token it cannot use: the caller learns nothing from a miss, and no row moves.
"""

import hashlib
import hmac as std_hmac
import logging
from datetime import datetime, timedelta

from markupsafe import Markup

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError
from odoo.tools import SQL, misc

from ..engine import join_addresses
from ..engine import tracking as pm_tracking
from ..routes import CLICK_PATH, PIXEL_PATH

_logger = logging.getLogger(__name__)

TOKEN_SCOPE = "pipemail.tracking"

RECENT_WINDOW = timedelta(seconds=10)
"""How far back earlier hits are read to spot bursts (the engine's windows are
2 and 5 seconds; a little margin for clock steps between workers)."""
KINDS = [(pm_tracking.KIND_OPEN, "Opened"), (pm_tracking.KIND_CLICK, "Clicked")]


def _truncate(value, size):
    value = value or ""
    return value if len(value) <= size else value[: size - 1] + "…"


class PipemailTrackingLink(models.Model):
    """The target of one rewritten link of one sent email, stored at send time.

    The click endpoint redirects only to these rows (looked up by the signed
    message and link index), never to a URL taken from the request.
    """

    _name = "pipemail.tracking.link"
    _description = "Tracked Link of a Sent Email"
    _order = "outbox_id, link_index"
    _log_access = False

    outbox_id = fields.Many2one("pipemail.outbox", required=True, ondelete="cascade", index=True)
    link_index = fields.Integer(required=True)
    url = fields.Char(required=True)
    click_count = fields.Integer(compute="_compute_click_count")

    _sql_constraints = [
        ("link_uniq", "UNIQUE(outbox_id, link_index)", "One target per link of an email."),
    ]

    def _compute_click_count(self):
        rows = (
            self.env["pipemail.tracking.event"]
            .sudo()
            ._read_group(
                [
                    ("outbox_id", "in", self.outbox_id.ids),
                    ("kind", "=", pm_tracking.KIND_CLICK),
                    ("is_machine", "=", False),
                ],
                ["outbox_id", "link_index"],
                ["__count"],
            )
        )
        counts = {(outbox.id, index): count for outbox, index, count in rows}
        for link in self:
            link.click_count = counts.get((link.outbox_id.id, link.link_index), 0)


class PipemailTrackingEvent(models.Model):
    """One hit on a pixel or a tracked link. Append-only: never changed, never merged.

    Machine hits (image proxies, scanners, instant or burst hits, the sender's own
    session) are kept and labelled with the reason; counts leave them out.
    """

    _name = "pipemail.tracking.event"
    _description = "Email Open or Click"
    _order = "ts desc, id desc"
    _log_access = False

    outbox_id = fields.Many2one(
        "pipemail.outbox", required=True, ondelete="cascade", index=True, readonly=True
    )
    kind = fields.Selection(KINDS, required=True, readonly=True)
    link_index = fields.Integer(readonly=True)
    url = fields.Char(readonly=True, help="The link that was followed (clicks).")
    ts = fields.Datetime(string="When", required=True, readonly=True, index=True)
    user_agent = fields.Char(readonly=True)
    ip_hash = fields.Char(
        string="Address Fingerprint",
        readonly=True,
        help="A keyed hash of the visitor's IP address: tells repeat visits apart "
        "without keeping the address.",
    )
    is_machine = fields.Boolean(string="Machine", readonly=True)
    machine_reason = fields.Char(string="Why Machine", readonly=True)

    def init(self):
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_tracking_event_outbox_ts_idx"
            " ON pipemail_tracking_event (outbox_id, ts)"
        )

    # ------------------------------------------------------------------ append-only

    # append-only log: no super on purpose
    def write(self, vals):  # pylint: disable=method-required-super
        raise AccessError(_("Email opens and clicks are a log: they cannot be changed."))

    def unlink(self):
        if not self.env.su:
            raise AccessError(_("Email opens and clicks are a log: they cannot be deleted."))
        return super().unlink()

    # ------------------------------------------------------------------ tokens

    @api.model
    @tools.ormcache()
    def _pipemail_secret(self):
        """Signing key of tracking tokens: HMAC of a fixed label under database.secret.

        Cached per registry (every hit needs it twice); changing a system parameter,
        database.secret included, clears the cache.
        """
        return misc.hmac(self.env(su=True), TOKEN_SCOPE, "token-key-v1").encode()

    @api.model
    def _pipemail_sign(self, kind, ref):
        return pm_tracking.sign(self._pipemail_secret(), kind, ref.ident)

    @api.model
    def _pipemail_verify(self, kind, token):
        """The :class:`~pipemail.tracking.TrackingRef` in ``token``, or ``None``.

        The one token check of the public routes: HMAC-SHA256 compared in constant
        time (``hmac.compare_digest``, which ``odoo.tools.consteq`` is), kind-separated
        so that a pixel token is no click token.
        """
        ident = pm_tracking.verify(self._pipemail_secret(), kind, token)
        return pm_tracking.TrackingRef.parse(ident) if ident else None

    @api.model
    def _pipemail_base_url(self):
        return self.env["ir.config_parameter"].sudo().get_param("web.base.url", "").rstrip("/")

    @api.model
    def _pipemail_pixel_url(self, outbox_id):
        ref = pm_tracking.TrackingRef(message=outbox_id)
        token = self._pipemail_sign(pm_tracking.KIND_OPEN, ref)
        return f"{self._pipemail_base_url()}{PIXEL_PATH}{token}.gif"

    @api.model
    def _pipemail_click_url(self, outbox_id, index):
        ref = pm_tracking.TrackingRef(message=outbox_id, link=index)
        token = self._pipemail_sign(pm_tracking.KIND_CLICK, ref)
        return f"{self._pipemail_base_url()}{CLICK_PATH}{token}"

    @api.model
    def _pipemail_ip_hash(self, ip):
        if not ip:
            return False
        digest = std_hmac.new(self._pipemail_secret(), ip.encode(), hashlib.sha256).hexdigest()
        return digest[:16]

    # ------------------------------------------------------------------ the public entry point

    @api.model
    def _pipemail_track(self, kind, token, *, method, user_agent, ip, session_uid):
        """Record one hit; return the redirect target for a usable click, else ``None``.

        Everything a caller can influence is checked before any row is read: the
        token's signature, its kind, then the email it names. A HEAD request is
        answered like a GET but records nothing (scanners probe with HEAD; nothing
        about a HEAD may change what the sender sees).
        """
        ref = self._pipemail_verify(kind, token)
        if ref is None or (kind == pm_tracking.KIND_CLICK) != (ref.link is not None):
            return None
        now = fields.Datetime.now()
        # One round trip for everything a hit needs, read only for the email the signed
        # token names: the email's four columns (not the row, which holds the whole
        # body), the stored target of the link, and the last few hits of this email
        # for the burst rules. A hit costs this SELECT and one INSERT, like Odoo's
        # own open pixel costs a SELECT and a read.
        rows = self.env.execute_query(
            SQL(
                """
                SELECT o.sent_date, o.user_id, o.first_open_notified,
                       (SELECT url FROM pipemail_tracking_link
                         WHERE outbox_id = o.id AND link_index = %(link)s),
                       (SELECT json_agg(json_build_array(e.ts, e.kind, e.link_index))
                          FROM (SELECT ts, kind, link_index FROM pipemail_tracking_event
                                 WHERE outbox_id = o.id AND ts >= %(since)s
                              ORDER BY ts DESC LIMIT 20) e)
                  FROM pipemail_outbox o
                 WHERE o.id = %(outbox)s AND o.tracking AND o.sent_date IS NOT NULL
                """,
                link=ref.link,
                since=now - RECENT_WINDOW,
                outbox=ref.message,
            )
        )
        if not rows:
            return None
        sent_date, user_id, notified, url, recent = rows[0]
        target = None
        if kind == pm_tracking.KIND_CLICK:
            target = pm_tracking.safe_redirect_target(url) if url else None
            if not target:
                return None
        if (method or "GET").upper() != "HEAD":
            earlier = [
                pm_tracking.TrackingEvent(at=datetime.fromisoformat(at), kind=was, link=index)
                for at, was, index in recent or ()
            ]
            # narrow sudo: the visitor is anonymous, the token was checked above
            self.sudo()._pipemail_record(
                ref.message,
                kind,
                now=now,
                earlier=earlier,
                sent_date=sent_date,
                sender_id=user_id,
                notified=bool(notified),
                link=ref.link,
                url=target,
                method=method,
                user_agent=user_agent,
                ip=ip,
                session_uid=session_uid,
            )
        return target or True

    def _pipemail_record(
        self,
        outbox_id,
        kind,
        *,
        now,
        earlier,
        sent_date,
        sender_id,
        notified,
        link,
        url,
        method,
        user_agent,
        ip,
        session_uid,
    ):
        """Insert the event, labelled; tell the sender about the first human open.

        ``earlier`` are this email's hits of the last seconds (the burst rules). A hit
        carrying a CRM user's session is the sender, or a colleague looking at a
        reply that quotes the email (the reader shows same-site images): never the
        recipient opening it.
        """
        sender_session = bool(session_uid) and session_uid == sender_id
        colleague = (
            bool(session_uid)
            and not sender_session
            and not self.env["res.users"].browse(session_uid).exists().share
        )
        classify = (
            pm_tracking.classify_open
            if kind == pm_tracking.KIND_OPEN
            else pm_tracking.classify_click
        )
        extra = {"link": link} if kind == pm_tracking.KIND_CLICK else {}
        is_machine, reason = classify(
            user_agent or "",
            ip or "",
            sent_date,
            now,
            method or "GET",
            sender_session,
            earlier,
            **extra,
        )
        if colleague and not is_machine:
            is_machine, reason = (
                True,
                _(
                    "Someone signed in to the CRM loaded it (a quoted copy in a conversation), "
                    "not a recipient."
                ),
            )
        # A plain INSERT: the log is append-only, has no computed columns and nothing
        # in this transaction read it before; the ORM's create() would cost more than
        # the rest of the hit (the caches that could hold the log are dropped below).
        # Committed without waiting for the disk (synchronous_commit off for this
        # transaction only): a database crash may lose the last fraction of a second
        # of hits (with their first-open flag and notice, together), never corrupt
        # anything, and a busy pixel does not wait on a WAL flush that Odoo's own
        # pixel, which writes only on a first open, rarely pays.
        self.env.cr.execute(
            SQL(
                """
                SET LOCAL synchronous_commit TO OFF;
                INSERT INTO pipemail_tracking_event
                       (outbox_id, kind, link_index, url, ts, user_agent, ip_hash,
                        is_machine, machine_reason)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                outbox_id,
                kind,
                link,
                url or None,
                now,
                _truncate(user_agent, 300) or None,
                self._pipemail_ip_hash(ip) or None,
                is_machine,
                reason or None,
            )
        )
        self.env["pipemail.outbox"].invalidate_model(["event_ids"])
        if kind == pm_tracking.KIND_OPEN and not is_machine and not notified:
            self.env["pipemail.outbox"].browse(outbox_id)._pipemail_first_open(now)


class PipemailOutbox(models.Model):
    """The tracking side of an outgoing email: its links and hits, the figures shown on
    it, and the notice of its first human open."""

    _inherit = "pipemail.outbox"

    first_open_notified = fields.Datetime(readonly=True, copy=False)
    first_open_notice_pending = fields.Boolean(
        readonly=True, copy=False, help="The inbox notice of the first open is not posted yet."
    )
    link_ids = fields.One2many("pipemail.tracking.link", "outbox_id", string="Tracked Links")
    event_ids = fields.One2many("pipemail.tracking.event", "outbox_id", string="Opens and Clicks")
    open_count = fields.Integer(string="Opens", compute="_compute_tracking_stats")
    click_count = fields.Integer(string="Clicks", compute="_compute_tracking_stats")
    machine_count = fields.Integer(string="Machine Hits", compute="_compute_tracking_stats")
    first_open = fields.Datetime(string="First Opened", compute="_compute_tracking_stats")
    last_open = fields.Datetime(string="Last Opened", compute="_compute_tracking_stats")

    def init(self):
        # the first-open cron looks for a handful of rows among every email ever sent
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS pipemail_outbox_first_open_pending_idx"
            " ON pipemail_outbox (id) WHERE first_open_notice_pending"
        )

    # ------------------------------------------------------------------ tracking figures

    def _pipemail_tracking_stats(self):
        """``{outbox id: {opens, clicks, machine, first_open, last_open}}`` from the log."""
        if not self.ids:
            return {}
        rows = (
            self.env["pipemail.tracking.event"]
            .sudo()
            ._read_group(
                [("outbox_id", "in", self.ids)],
                ["outbox_id", "kind", "is_machine"],
                ["__count", "ts:min", "ts:max"],
            )
        )
        stats = {}
        for outbox, kind, is_machine, count, first, last in rows:
            row = stats.setdefault(outbox.id, {"opens": 0, "clicks": 0, "machine": 0})
            if is_machine:
                row["machine"] += count
            elif kind == pm_tracking.KIND_OPEN:
                row.update(opens=count, first_open=first, last_open=last)
            else:
                row["clicks"] = count
        return stats

    def _compute_tracking_stats(self):
        stats = self._pipemail_tracking_stats()
        for outbox in self:
            row = stats.get(outbox.id, {})
            outbox.open_count = row.get("opens", 0)
            outbox.click_count = row.get("clicks", 0)
            outbox.machine_count = row.get("machine", 0)
            outbox.first_open = row.get("first_open", False)
            outbox.last_open = row.get("last_open", False)

    # ------------------------------------------------------------------ first open

    def _pipemail_first_open(self, when):
        """The first human open (at ``when``): a live notice now, the inbox one soon.

        Called from the pixel route, which must stay cheap: the claim below and the
        bus notice cost two small writes; the inbox notification (a mail.message and
        its notifications, tens of milliseconds) is left to the first-open cron,
        triggered here, which a cron worker runs within seconds.

        Once, whatever the concurrency: the UPDATE ... WHERE first_open_notified IS
        NULL is the lock; of two workers recording two opens at once, one gets the
        row, the other nothing.
        """
        self.ensure_one()
        self.env.cr.execute(
            SQL(
                "UPDATE pipemail_outbox SET first_open_notified = %s,"
                " first_open_notice_pending = TRUE"
                " WHERE id = %s AND first_open_notified IS NULL RETURNING id",
                when,
                self.id,
            )
        )
        if not self.env.cr.fetchone():
            return False
        self.invalidate_recordset(["first_open_notified", "first_open_notice_pending"])
        outbox = self.sudo()
        outbox.user_id._bus_send(
            "simple_notification",
            {
                "title": _("Email opened"),
                "message": outbox._pipemail_opened_text(),
                "type": "info",
                "sticky": False,
            },
        )
        self.env.ref("pipemail_sync.ir_cron_pipemail_first_open").sudo()._trigger()
        return True

    @api.model
    def _cron_first_open_notices(self, limit=200):
        """Post the inbox notification of each first open recorded by the pixel route."""
        pending = self.sudo().search(
            [("first_open_notice_pending", "=", True)], order="first_open_notified, id"
        )
        root = self.env.ref("base.partner_root").id
        for outbox in pending[:limit]:
            try:
                with self.env.cr.savepoint():
                    outbox.with_context(mail_notify_force_send=False).message_notify(
                        partner_ids=outbox.user_id.partner_id.ids,
                        author_id=root,
                        subject=_(
                            "Opened: %(subject)s", subject=outbox.subject or _("(no subject)")
                        ),
                        body=outbox._pipemail_first_open_body(),
                    )
            except Exception:  # noqa: BLE001 - one bad row must not block the others forever
                _logger.exception("first-open notice of outbox %s could not be posted", outbox.id)
            outbox.first_open_notice_pending = False
        if len(pending) > limit:
            self.env.ref("pipemail_sync.ir_cron_pipemail_first_open").sudo()._trigger()

    def _pipemail_opened_text(self):
        """Who opened, as far as the pixel can tell: the one recipient of an email
        addressed to one person (each copy of an individual send is), else one of
        all of them."""
        subject = self.subject or _("(no subject)")
        to, cc, bcc = self._pipemail_recipients()
        everyone = [*to, *cc, *bcc]
        if len(everyone) == 1:
            return _(
                "%(who)s opened your email “%(subject)s”.",
                who=join_addresses(everyone),
                subject=subject,
            )
        return _(
            "One of %(who)s opened your email “%(subject)s”.",
            who=join_addresses(everyone),
            subject=subject,
        )

    def _pipemail_first_open_body(self):
        """The inbox notification's text; every value escaped by Markup's ``%``."""
        return Markup("<p>%s</p><p class='text-muted small'>%s</p>") % (
            self._pipemail_opened_text(),
            _(
                "First opened %(when)s (UTC).",
                when=fields.Datetime.to_string(self.first_open_notified),
            ),
        )


class PipemailMessage(models.Model):
    """Tracking figures of a sent email, read from the event log (human hits only)."""

    _inherit = "pipemail.message"

    pipemail_tracked = fields.Boolean(
        string="Tracked", related="pipemail_outbox_id.tracking", readonly=True
    )
    pipemail_open_count = fields.Integer(
        string="Opens", compute="_compute_pipemail_tracking", search="_search_pipemail_open_count"
    )
    pipemail_click_count = fields.Integer(
        string="Clicks",
        compute="_compute_pipemail_tracking",
        search="_search_pipemail_click_count",
    )
    pipemail_machine_count = fields.Integer(
        string="Machine Hits",
        compute="_compute_pipemail_tracking",
        help="Opens and clicks by image proxies, security scanners and the like; not "
        "counted as opened or clicked.",
    )
    pipemail_first_open = fields.Datetime(
        string="First Opened", compute="_compute_pipemail_tracking"
    )
    pipemail_last_open = fields.Datetime(string="Last Opened", compute="_compute_pipemail_tracking")
    pipemail_tracking_summary = fields.Char(string="Tracking", compute="_compute_pipemail_tracking")

    @api.depends("pipemail_outbox_id")
    def _compute_pipemail_tracking(self):
        stats = self.pipemail_outbox_id._pipemail_tracking_stats()
        for message in self:
            row = stats.get(message.pipemail_outbox_id.id, {})
            message.pipemail_open_count = row.get("opens", 0)
            message.pipemail_click_count = row.get("clicks", 0)
            message.pipemail_machine_count = row.get("machine", 0)
            message.pipemail_first_open = row.get("first_open", False)
            message.pipemail_last_open = row.get("last_open", False)
            message.pipemail_tracking_summary = self._pipemail_summary(
                message.pipemail_outbox_id.tracking, row
            )

    @api.model
    def _pipemail_summary(self, tracked, row):
        if not tracked:
            return False
        if not row.get("opens"):
            return _("Not opened yet")
        last = fields.Datetime.to_string(row["last_open"]) if row.get("last_open") else ""
        return _(
            "Opened %(opens)s× (last %(last)s), %(clicks)s click(s)",
            opens=row["opens"],
            last=last,
            clicks=row.get("clicks", 0),
        )

    def _search_pipemail_count(self, kind, operator, value):
        if operator not in (">", ">=", "=", "!=") or not isinstance(value, int):
            raise NotImplementedError(_("Only 'more than' or 'none' searches are supported."))
        Outbox = self.env["pipemail.outbox"].sudo()
        with_hits = Outbox._search(
            [("event_ids", "any", [("kind", "=", kind), ("is_machine", "=", False)])]
        )
        positive = (
            (operator == ">" and value >= 0)
            or (operator == ">=" and value >= 1)
            or (operator == "!=" and value == 0)
        )
        if positive:
            return [("pipemail_outbox_id", "in", with_hits)]
        if operator == "=" and value == 0:
            return [("pipemail_outbox_id", "not in", with_hits)]
        raise NotImplementedError(_("Only 'more than' or 'none' searches are supported."))

    def _search_pipemail_open_count(self, operator, value):
        return self._search_pipemail_count(pm_tracking.KIND_OPEN, operator, value)

    def _search_pipemail_click_count(self, operator, value):
        return self._search_pipemail_count(pm_tracking.KIND_CLICK, operator, value)


class PipemailThread(models.Model):
    """The conversation's figures: its sent emails' human opens and clicks."""

    _inherit = "pipemail.thread"

    pipemail_tracked = fields.Boolean(string="Tracked", compute="_compute_pipemail_tracking")
    pipemail_open_count = fields.Integer(
        string="Opens", compute="_compute_pipemail_tracking", search="_search_pipemail_open_count"
    )
    pipemail_click_count = fields.Integer(
        string="Clicks",
        compute="_compute_pipemail_tracking",
        search="_search_pipemail_click_count",
    )
    pipemail_last_open = fields.Datetime(string="Last Opened", compute="_compute_pipemail_tracking")
    pipemail_first_open = fields.Datetime(
        string="First Opened", compute="_compute_pipemail_tracking"
    )

    def _compute_pipemail_tracking(self):
        Outbox = self.env["pipemail.outbox"].sudo()
        outboxes = Outbox.search([("thread_id", "in", self.ids), ("sent_date", "!=", False)])
        stats = outboxes._pipemail_tracking_stats()
        by_thread = {}
        for outbox in outboxes:
            by_thread.setdefault(outbox.thread_id.id, []).append(outbox)
        for thread in self:
            rows = [(o, stats.get(o.id, {})) for o in by_thread.get(thread.id, [])]
            firsts = [r["first_open"] for _o, r in rows if r.get("first_open")]
            lasts = [r["last_open"] for _o, r in rows if r.get("last_open")]
            thread.pipemail_tracked = any(o.tracking for o, _r in rows)
            thread.pipemail_open_count = sum(r.get("opens", 0) for _o, r in rows)
            thread.pipemail_click_count = sum(r.get("clicks", 0) for _o, r in rows)
            thread.pipemail_first_open = min(firsts) if firsts else False
            thread.pipemail_last_open = max(lasts) if lasts else False

    def _search_pipemail_open_count(self, operator, value):
        domain = self.env["pipemail.message"]._search_pipemail_open_count(operator, value)
        return [("message_ids", "any", domain)]

    def _search_pipemail_click_count(self, operator, value):
        domain = self.env["pipemail.message"]._search_pipemail_click_count(operator, value)
        return [("message_ids", "any", domain)]
