import hashlib
from datetime import timedelta

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from .. import access
from ..engine import linking
from .pipemail_account import VISIBILITY


def _domain_of(email):
    return (email or "").rpartition("@")[2].strip().lower()


LINK_MODES = [
    ("none", "Not Linked"),
    ("auto", "Linked Automatically"),
    ("manual", "Set by Hand"),
    ("suggested", "Suggestions"),
]
RETROACTIVE_DAYS = 90
"""How far back a new lead picks up its contact's unlinked conversations."""
USER_FIELDS = frozenset({"visibility", "label_ids"})
"""What a holder changes by hand; links, archive and read state go through the
``action_*`` methods (they also tell the mail server)."""
NOTICE_FIELDS = frozenset({"active", "label_ids", "visibility", "lead_id", "project_id"})
"""Fields whose change shows in a holder's Sales Inbox: the folder (archived, deleted),
the labels, who holds it, what it is linked to. A write of one of them sends the
holders the inbox notice (``pipemail_thread_folders``)."""


class PipemailThread(models.Model):
    _name = "pipemail.thread"
    _description = "Email Conversation"
    _order = "last_date desc, id desc"
    _rec_name = "subject"

    account_id = fields.Many2one(
        "pipemail.account", required=True, ondelete="cascade", index=True, readonly=True
    )
    owner_id = fields.Many2one(
        related="account_id.user_id", store=True, index=True, string="Mailbox Owner"
    )
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    subject = fields.Char(readonly=True)
    normalized_subject = fields.Char(readonly=True, index=True)
    snippet = fields.Char(readonly=True)
    last_date = fields.Datetime(readonly=True, index=True)
    first_date = fields.Datetime(readonly=True)
    thread_key = fields.Char(required=True, readonly=True, copy=False)
    participant_emails = fields.Char(readonly=True, index="trigram")
    partner_ids = fields.Many2many(
        "res.partner",
        "pipemail_thread_partner_rel",
        "thread_id",
        "partner_id",
        string="Participant Contacts",
        readonly=True,
    )
    message_ids = fields.One2many("pipemail.message", "thread_id", string="Messages")
    message_count = fields.Integer(compute="_compute_message_stats", store=True)
    is_unread = fields.Boolean(compute="_compute_message_stats", store=True, index=True)
    has_attachments = fields.Boolean(compute="_compute_message_stats", store=True)
    label_ids = fields.Many2many(
        "pipemail.label", "pipemail_thread_label_rel", "thread_id", "label_id", string="Labels"
    )
    visibility = fields.Selection(VISIBILITY, required=True, default="shared")
    lead_id = fields.Many2one(
        "crm.lead", string="Lead / Opportunity", index=True, ondelete="set null"
    )
    project_id = fields.Many2one("project.project", index=True, ondelete="set null")
    link_mode = fields.Selection(LINK_MODES, required=True, default="none", readonly=True)
    link_reason = fields.Char(readonly=True)
    link_signature = fields.Char(
        readonly=True, copy=False, help="Outside participants the automatic link was decided on."
    )
    suggestion_ids = fields.One2many("pipemail.link.suggestion", "thread_id", readonly=True)
    is_automated = fields.Boolean(
        readonly=True, help="Newsletter or machine-sent mail: never linked automatically."
    )
    active = fields.Boolean(default=True)

    _sql_constraints = [
        (
            "thread_key_uniq",
            "UNIQUE(account_id, thread_key)",
            "A conversation key is unique within a mailbox.",
        ),
    ]

    @api.depends("message_ids.is_read", "message_ids.has_attachments", "message_ids.removed")
    def _compute_message_stats(self):
        for thread in self:
            messages = thread.message_ids
            thread.message_count = len(messages)
            thread.is_unread = any(not m.is_read for m in messages if not m.removed)
            thread.has_attachments = any(m.has_attachments for m in messages)

    @api.depends("subject")
    def _compute_display_name(self):
        for thread in self:
            thread.display_name = thread.subject or _("(no subject)")

    def _refresh_from_messages(self):
        """Recompute the conversation summary after its messages changed (sync only)."""
        Partner = self.env["res.partner"]
        for thread in self.sudo().with_context(active_test=False):
            messages = thread.message_ids.sorted(lambda m: (m.date or fields.Datetime.now(), m.id))
            if not messages:
                continue
            emails = []
            for message in messages:
                for email in (message.participant_emails or "").split(","):
                    if email and email not in emails:
                        emails.append(email)
            partners = messages.author_partner_id | messages.partner_ids
            if emails:
                partners |= Partner.search(
                    [
                        ("email_normalized", "in", emails),
                        ("company_id", "in", [False, thread.company_id.id]),
                    ]
                )
            latest = messages[-1]
            vals = {
                "subject": messages[0].subject or thread.subject or latest.subject or False,
                "snippet": latest.snippet or False,
                "last_date": latest.date,
                "first_date": messages[0].date,
                "participant_emails": ",".join(emails)[:2000] or False,
                "partner_ids": [(6, 0, partners.ids)],
                "is_automated": all(m.is_automated for m in messages),
            }
            labels = messages.label_ids
            if labels - thread.label_ids:
                vals["label_ids"] = [(4, label.id) for label in labels - thread.label_ids]
            thread.write(vals)

    def write(self, vals):
        access.check_values(self, vals, USER_FIELDS)
        if vals.get("visibility") == "team" and any(
            thread.account_id.kind != "team" for thread in self.sudo()
        ):
            raise UserError(
                _("Team only is for conversations of team mailboxes: choose Private instead.")
            )
        res = super().write(vals)
        if NOTICE_FIELDS.intersection(vals):
            # archived, labelled, linked...: by a holder's button or the sync, the
            # other holders' open inboxes show it
            self._pipemail_notify_inbox()
        return res

    def unlink(self):
        self.env["pipemail.message"].sudo().search(
            [("thread_id", "in", self.ids)]
        )._unlink_attachments()
        return super().unlink()

    def action_archive(self):
        """The list's Archive archives in the mailbox too, like the conversation's button."""
        return self.action_archive_remote()

    # ------------------------------------------------------------------ access helpers

    def _check_can_change(self):
        """RPC entry points re-check that the caller may change these conversations."""
        self.check_access("write")

    # ------------------------------------------------------------------ link / unlink

    def action_link(self, record):
        """Link the whole conversation to ``record`` (a crm.lead or project.project).

        ``record`` may be a recordset or, over RPC, ``{"res_model": ..., "res_id": ...}``.
        """
        self.ensure_one()
        self._check_can_change()
        if isinstance(record, dict):
            model = record.get("res_model")
            if model not in ("crm.lead", "project.project"):
                raise UserError(_("Conversations link to leads, opportunities and projects."))
            record = self.env[model].browse(int(record.get("res_id") or 0)).exists()
        if not record or record._name not in ("crm.lead", "project.project"):
            raise UserError(_("Conversations link to leads, opportunities and projects."))
        record.check_access("read")
        return self._action_link(record)

    def _action_link(self, record, mode="manual", reason=None):
        if reason is None:
            reason = _("Linked by %(user)s", user=self.env.user.name)
        vals = {"link_mode": mode, "link_reason": reason}
        if record._name == "crm.lead":
            vals["lead_id"] = record.id
        else:
            vals["project_id"] = record.id
        threads_sudo = self.sudo()
        threads_sudo.write(vals)
        threads_sudo.suggestion_ids.unlink()
        return True

    def action_unlink(self):
        self._check_can_change()
        return self._action_unlink()

    def _action_unlink(self):
        # "manual" with no record: the user said this conversation belongs nowhere,
        # and automatic linking must not undo it
        threads_sudo = self.sudo()
        threads_sudo.write(
            {
                "lead_id": False,
                "project_id": False,
                "link_mode": "manual",
                "link_reason": _("Unlinked by %(user)s", user=self.env.user.name),
            }
        )
        threads_sudo.suggestion_ids.unlink()
        return True

    # ------------------------------------------------------------------ read / unread

    def action_mark_read(self):
        self._check_can_change()
        self.mapped("message_ids")._set_read(True)
        return True

    def action_mark_unread(self):
        self._check_can_change()
        # unread means "look again at the latest": only the newest message flips
        for thread in self:
            latest = thread.message_ids.sorted(lambda m: (m.date or fields.Datetime.now(), m.id))
            if latest:
                latest[-1:]._set_read(False)
        return True

    # ------------------------------------------------------------------ archive / delete

    def action_archive_remote(self):
        self._check_can_change()
        return self._action_archive_remote()

    def _action_archive_remote(self):
        threads_sudo = self.sudo()
        threads_sudo.message_ids._queue_writeback("archive")
        threads_sudo.write({"active": False})
        self.env["pipemail.writeback"]._trigger_processing()
        return True

    def action_delete_remote(self):
        self._check_can_change()
        return self._action_delete_remote()

    def _action_delete_remote(self):
        threads_sudo = self.sudo()
        threads_sudo.message_ids._queue_writeback("delete")
        threads_sudo.write({"active": False})
        self.env["pipemail.writeback"]._trigger_processing()
        return True

    def action_unarchive(self):
        self._check_can_change()
        self.sudo().write({"active": True})
        return True

    # ------------------------------------------------------------------ create lead

    def action_create_lead(self):
        self.ensure_one()
        self._check_can_change()
        self.env["crm.lead"].check_access("create")
        lead = self._action_create_lead()
        return {
            "type": "ir.actions.act_window",
            "res_model": "crm.lead",
            "res_id": lead.id,
            "view_mode": "form",
            "target": "current",
        }

    def _action_create_lead(self):
        """Create a lead for the conversation's main outside contact and link them."""
        external = self._external_partners()
        partner = external[:1]
        first = self.message_ids.sorted(lambda m: (m.date or fields.Datetime.now(), m.id))[:1]
        email_from = partner.email or (first.email_from if first.direction == "in" else False)
        body = first.body_text or self.snippet or ""
        description = Markup("<p>%s</p>") % body[:2000] if body else False
        lead = self.env["crm.lead"].create(
            {
                "name": self.subject or _("Email from %(who)s", who=partner.name or email_from),
                "partner_id": partner.id or False,
                "email_from": email_from or False,
                "user_id": self.env.user.id,
                "company_id": self.company_id.id,
                "description": description,
            }
        )
        self._action_link(lead, mode="manual", reason=_("Lead created from this conversation"))
        return lead

    # ------------------------------------------------------------------ participants

    def _own_addresses(self):
        """Our side of the conversation: the mailbox and every internal user."""
        self.ensure_one()
        addresses = {(self.account_id.email or "").lower()}
        addresses.update(self._internal_user_emails())
        return addresses

    @api.model
    def _internal_user_emails(self):
        known = self.env.context.get("pipemail_internal_emails")
        if known is not None:
            return known
        users = self.env["res.users"].sudo().search([("share", "=", False)])
        return frozenset(e.lower() for e in users.mapped("email") if e)

    def _external_emails(self):
        self.ensure_one()
        own = self._own_addresses()
        emails = [e for e in (self.participant_emails or "").split(",") if e]
        return [e for e in emails if e not in own]

    def _external_partners(self):
        self.ensure_one()
        emails = self._external_emails()
        if not emails:
            return self.env["res.partner"]
        partners = self.partner_ids.filtered(lambda p: p.email_normalized in emails)
        return partners.sorted(lambda p: emails.index(p.email_normalized))

    # ------------------------------------------------------------------ automatic linking

    def _autolink(self):
        """Link conversations by their outside participants; suggest when unsure.

        Never touches a conversation set by hand, nor automated mail. The engine
        ranks and decides; reasons are stored so the user sees why.
        """
        todo = self.sudo().filtered(
            lambda t: t.link_mode in ("none", "suggested") and not t.is_automated and t.active
        )
        if not todo:
            return
        todo = todo.with_context(pipemail_internal_emails=self._internal_user_emails())
        now = fields.Datetime.now()
        for thread in todo:
            # the candidates follow the outside participants: unchanged people, same
            # answer (new records reach old conversations through _link_retroactive)
            signature = hashlib.sha256(
                ",".join(sorted(thread._external_emails())).encode()
            ).hexdigest()[:16]
            if thread.link_signature == signature:
                continue
            thread.link_signature = signature
            candidates = thread._link_candidates()
            if not candidates and thread.link_mode == "none":
                continue
            text = " ".join(filter(None, [thread.subject, thread.snippet]))
            scored = linking.rank_candidates(thread._external_emails(), text, candidates, now)
            thread._apply_link_decision(linking.decide(scored))

    def _apply_link_decision(self, decision):
        self.ensure_one()
        self.suggestion_ids.unlink()
        if decision.link is not None:
            record = self.env[decision.link.model].browse(decision.link.id)
            self._action_link(record, mode="auto", reason=decision.reason)
            return
        if decision.suggestions:
            self.env["pipemail.link.suggestion"].create(
                [
                    {
                        "thread_id": self.id,
                        "res_model": s.candidate.model,
                        "res_id": s.candidate.id,
                        "score": s.score,
                        "reason": "; ".join(s.reasons)[:250],
                    }
                    for s in decision.suggestions
                ]
            )
            self.write({"link_mode": "suggested", "link_reason": decision.reason})
        elif self.link_mode == "suggested":
            self.write({"link_mode": "none", "link_reason": False})

    def _link_candidates(self):
        """Open leads/opportunities and projects of the outside participants and of
        their companies (matched by address, then by company domain), as the engine's
        :class:`pipemail.linking.Candidate`."""
        self.ensure_one()
        emails = self._external_emails()
        if not emails:
            return []
        company = self.company_id
        Partner = self.env["res.partner"]
        partners = Partner.search(
            [("email_normalized", "in", emails), ("company_id", "in", [False, company.id])]
        )
        commercial = partners.commercial_partner_id
        domains = sorted({e.rpartition("@")[2] for e in emails} - linking.FREEMAIL_DOMAINS)
        if domains:
            clauses = [[("email_normalized", "=ilike", f"%@{d}")] for d in domains]
            domain = ["|"] * (len(clauses) - 1) + [leaf for c in clauses for leaf in c]
            commercial |= Partner.search(
                [("is_company", "=", True), ("company_id", "in", [False, company.id])] + domain
            )
        candidates = []
        leads = self.env["crm.lead"].search(
            [
                ("active", "=", True),
                ("company_id", "in", [False, company.id]),
                "|",
                ("stage_id", "=", False),
                ("stage_id.is_won", "=", False),
                "|",
                ("email_normalized", "in", emails),
                ("partner_id", "child_of", commercial.ids or [0]),
            ],
            limit=50,
        )
        for lead in leads:
            # the record's own people; colleagues count through the company domain
            lead_emails = {
                e for e in (lead.partner_id.email_normalized, lead.email_normalized) if e
            }
            candidates.append(
                linking.Candidate(
                    model="crm.lead",
                    id=lead.id,
                    name=lead.name or "",
                    partner_emails=lead_emails,
                    company_domain=_domain_of(lead.partner_id.commercial_partner_id.email),
                    stage_sequence=lead.stage_id.sequence or 0,
                    probability=lead.probability or 0.0,
                    is_won=bool(lead.stage_id.is_won),
                    is_lost=not lead.active,
                    active=lead.active,
                    last_activity=lead.write_date,
                    words=lead.name or "",
                )
            )
        if commercial:
            projects = self.env["project.project"].search(
                [
                    ("active", "=", True),
                    ("company_id", "in", [False, company.id]),
                    ("partner_id", "child_of", commercial.ids),
                ],
                limit=50,
            )
            for project in projects:
                candidates.append(
                    linking.Candidate(
                        model="project.project",
                        id=project.id,
                        name=project.name or "",
                        partner_emails={project.partner_id.email_normalized} - {False},
                        company_domain=_domain_of(project.partner_id.commercial_partner_id.email),
                        probability=50.0,
                        last_activity=project.write_date,
                        words=project.name or "",
                    )
                )
        return candidates

    @api.model
    def _link_retroactive(self, leads):
        """A lead was created or got a contact: link that contact's recent unlinked
        conversations to it."""
        since = fields.Datetime.now() - timedelta(days=RETROACTIVE_DAYS)
        for lead in leads.sudo():
            if not lead.active or lead.stage_id.is_won:
                continue
            emails = set()
            if lead.partner_id.email_normalized:
                emails.add(lead.partner_id.email_normalized)
            if lead.email_normalized:
                emails.add(lead.email_normalized)
            if not emails and not lead.partner_id:
                continue
            domain = [
                ("link_mode", "in", ("none", "suggested")),
                ("is_automated", "=", False),
                ("last_date", ">=", since),
                ("company_id", "=", lead.company_id.id or self.env.company.id),
            ]
            who = []
            if lead.partner_id:
                who.append([("partner_ids", "in", lead.partner_id.ids)])
            for email in sorted(emails):
                who.append([("participant_emails", "ilike", email)])
            domain += ["|"] * (len(who) - 1) + [leaf for clause in who for leaf in clause]
            threads = self.sudo().search(domain)
            threads = threads.filtered(
                lambda t, emails=emails, lead=lead: (
                    lead.partner_id in t.partner_ids
                    or emails & set((t.participant_emails or "").split(","))
                )
            )
            if threads:
                threads._action_link(
                    lead,
                    mode="auto",
                    reason=_(
                        "%(contact)s's conversation, linked when the lead was created",
                        contact=lead.partner_id.name or lead.email_from,
                    ),
                )

    @api.model
    def _action_for_records(self, domain, context, record=None):
        """The conversations of a lead, project or contact, opened from its smart button:
        the Sales Inbox's list with its reading pane and keyboard, without its folders; a
        new email written there ("c") is about ``record``."""
        list_view = self.env.ref("pipemail_sync.pipemail_thread_view_list_record_inbox")
        if record:
            context = dict(
                context, pipemail_record_model=record._name, pipemail_record_id=record.id
            )
        return {
            "type": "ir.actions.act_window",
            "name": _("Emails"),
            "res_model": "pipemail.thread",
            "view_mode": "list,form",
            "views": [(list_view.id, "list"), (False, "form")],
            "domain": domain,
            "context": dict(context, create=False, pipemail_record_emails=True),
        }
