"""Who may see which conversation, enforced on every way the ORM hands data out.

The rules (see readme/USAGE.md, "Visibility"):

- The *holders* of a conversation see it whole and in their Sales Inbox: the owner of
  the mailbox and, for a team mailbox, its members (not for a Private conversation).
- A Shared conversation is visible, whole, to whoever can read a record it is linked
  to: its lead or opportunity, its project, or one of its outside participants
  (contacts and companies). It never enters another user's Sales Inbox: the inbox
  action filters on ``in_my_inbox``.
- Metadata only: the same people see that the conversation happened (date,
  participants, links), never its subject, snippet, labels, messages or attachments.
- Private: the owner only. Team only: the owner and the team members.
- Sales managers and email administrators get nothing more: they see Shared
  conversations through the records they can read, like everybody, and never a
  Private or Team only conversation they do not hold. Only superuser code (crons,
  ``sudo()``) bypasses these rules.

Record rules (``security/pipemail_rules.xml``) hold the part a domain can say. Rules
are evaluated as superuser, so "can read the linked lead" cannot be one of them: like
``mail.message`` delegating to its document, ``_search`` and ``_check_access`` add that
part here, evaluated as the user, so that search, counts, read_group, name_search,
one2many reads and ``fetch`` all agree. Metadata-only rows are then redacted at the
exits: ``_read_format`` (read, search_read, web_read), ``_export_rows`` (export),
``display_name``; and a domain, order or grouping that touches a hidden field never
sees a metadata-only row's hidden value. Messages follow their conversation's
content; attachments of messages follow their message (ir.attachment below), which
covers ``/web/content``.
"""

import itertools

from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.osv import expression
from odoo.tools import SQL, Query

from .. import access

THREAD_SEARCHABLE = frozenset(
    {
        "id",
        "account_id",
        "owner_id",
        "company_id",
        "last_date",
        "first_date",
        "participant_emails",
        "partner_ids",
        "message_count",
        "visibility",
        "lead_id",
        "project_id",
        "active",
        "create_date",
        "create_uid",
        "write_date",
        "write_uid",
        "in_my_inbox",
    }
)
"""Thread fields that a metadata-only reader may filter, sort and group on."""

THREAD_READABLE = THREAD_SEARCHABLE | {
    "display_name",
    "content_hidden",
    "participants_display",
    "pipemail_redacted",
}
"""Thread fields that a metadata-only reader may read; every other value is blanked."""

BODY_INDEX_LIMIT = 10_000
"""Body search (Sales Inbox): up to this many matching messages, the trigram index finds
them all and their conversations are collected once. A term in more messages (a phrase
of a signature, a word of every quote) walks the listed conversations in their order
instead, and stops at the page and at the list's count limit: collecting every match of
such a term costs seconds (bench_inbox.py)."""


def _split_body_term(domain):
    """``(rest, value)`` when ``domain`` is an AND of terms one of which is a plain
    ``("message_body", "ilike", value)`` (the Sales Inbox's Body search), else
    ``(domain, None)``. Values with LIKE wildcards or escapes keep the ILIKE path."""
    if "message_body" not in _domain_fields(domain):
        return domain, None
    terms = expression.normalize_domain(domain)
    # an AND of terms in prefix notation: '&' operators, then leaves, no '|' or '!'
    if any(item in ("|", "!") for item in terms):
        return domain, None
    leaves = [item for item in terms if item != "&"]
    for index, leaf in enumerate(leaves):
        if (
            isinstance(leaf, list | tuple)
            and len(leaf) == 3
            and leaf[0] == "message_body"
            and leaf[1] == "ilike"
            and isinstance(leaf[2], str)
            and leaf[2].strip()
            and not any(char in leaf[2] for char in "%_\\")
        ):
            rest = leaves[:index] + leaves[index + 1 :]
            return expression.AND([[leaf] for leaf in rest]) if rest else [], leaf[2]
    return domain, None


def _domain_fields(domain):
    """The first path component of every leaf of ``domain``."""
    for leaf in domain or ():
        if isinstance(leaf, list | tuple) and len(leaf) == 3 and isinstance(leaf[0], str):
            yield leaf[0].split(".", 1)[0]


def _spec_field(spec):
    """``field:agg`` / ``field:granularity`` / ``field.prop`` -> ``field``."""
    return spec.split(":", 1)[0].split(".", 1)[0]


def _read_as_searched(records, operation, result):
    """``result`` of Odoo 18's ``_check_access`` for ``records``, plus for reading
    every record their model's ``_search`` would not return to this user: one rule
    for both, so a value already in the cache is never readable when searching hides
    its record."""
    if operation != "read" or not records or records.env.su:
        return result
    remaining = records - result[0] if result else records
    # new records (onchange) are checked through their origin when it is fetched
    remaining = remaining.browse(id_ for id_ in remaining._ids if isinstance(id_, int))
    if not remaining:
        return result
    visible = records.with_context(active_test=False).search([("id", "in", remaining.ids)])
    forbidden = remaining - visible
    if not forbidden:
        return result
    if result:
        forbidden += result[0]
    return forbidden, lambda: records.env["ir.rule"]._make_access_error(operation, forbidden)


class PipemailThread(models.Model):
    _inherit = "pipemail.thread"

    in_my_inbox = fields.Boolean(
        compute="_compute_in_my_inbox",
        search="_search_in_my_inbox",
        help="The conversation is in one of my mailboxes (mine or a team mailbox I am in).",
    )
    content_hidden = fields.Boolean(
        compute="_compute_content_hidden",
        help="Metadata only: you see that this conversation happened, not what it says.",
    )
    message_body = fields.Char(
        string="Message Body",
        compute="_compute_message_body",
        search="_search_message_body",
        help="Search in the text of the messages.",
    )
    participants_display = fields.Char(
        string="Participants",
        compute="_compute_participants_display",
        help="The other people in the conversation: contacts by name, others by address.",
    )
    pipemail_redacted = fields.Char(
        string="Hidden", compute="_compute_pipemail_redacted", help="Stands for a hidden value."
    )

    # ------------------------------------------------------------------ domains

    @api.model
    def _pipemail_team_account_query(self):
        """Team mailboxes the current user is a member of (a membership fact, no content)."""
        return (
            self.env["pipemail.account"]
            .sudo()
            .with_context(active_test=False)
            ._search([("kind", "=", "team"), ("member_ids", "in", self.env.uid)])
        )

    @api.model
    def _pipemail_holder_domain(self):
        """Conversations the current user holds: own mailbox, or team mailbox member."""
        return [
            "|",
            ("owner_id", "=", self.env.uid),
            "&",
            ("visibility", "!=", "private"),
            ("account_id", "in", self._pipemail_team_account_query()),
        ]

    @api.model
    def _pipemail_linked_domain(self):
        """Conversations linked to a record the current user can read (as that user)."""
        links = []
        for model, fname, domain in (
            ("crm.lead", "lead_id", []),
            ("project.project", "project_id", []),
            # a colleague's own partner is no "linked record": every employee reads it
            ("res.partner", "partner_ids", [("partner_share", "=", True)]),
        ):
            Model = self.env[model].with_context(active_test=False)
            if Model.has_access("read"):
                links.append([(fname, "in", Model._search(domain))])
        return expression.OR(links) if links else expression.FALSE_DOMAIN

    @api.model
    def _pipemail_read_domain(self):
        """Rows the current user may see at all (on top of the record rules)."""
        return expression.OR(
            [
                self._pipemail_holder_domain(),
                expression.AND(
                    [
                        [("visibility", "in", ("shared", "metadata"))],
                        self._pipemail_linked_domain(),
                    ]
                ),
            ]
        )

    @api.model
    def _pipemail_content_domain(self):
        """Among visible rows, those whose content the current user may see."""
        return expression.OR([self._pipemail_holder_domain(), [("visibility", "!=", "metadata")]])

    def _pipemail_content_sql(self, alias):
        """``_pipemail_content_domain`` as SQL on ``alias``, for ORDER BY expressions."""
        return SQL(
            "(%(owner)s = %(uid)s OR %(vis)s IS DISTINCT FROM 'metadata' OR %(account)s IN ("
            "SELECT rel.account_id FROM pipemail_account_member_rel rel"
            " JOIN pipemail_account acc ON acc.id = rel.account_id"
            " WHERE acc.kind = 'team' AND rel.user_id = %(uid)s))",
            owner=SQL.identifier(alias, "owner_id"),
            vis=SQL.identifier(alias, "visibility"),
            account=SQL.identifier(alias, "account_id"),
            uid=self.env.uid,
        )

    def _pipemail_facts(self, uid):
        """``{id: (visibility, held)}`` for the stored records of ``self``, as seen by
        ``uid``. Read in SQL, so that no content is prefetched into the cache as a side
        effect (a cached value is handed out without an access check)."""
        ids = [id_ for id_ in self._ids if isinstance(id_, int)]
        if not ids:
            return {}
        self.flush_model(["owner_id", "visibility", "account_id"])
        self.env["pipemail.account"].flush_model(["kind", "member_ids"])
        rows = self.env.execute_query(
            SQL(
                """
                SELECT t.id, t.visibility,
                       t.owner_id = %(uid)s OR (
                           t.visibility != 'private' AND t.account_id IN (
                               SELECT rel.account_id FROM pipemail_account_member_rel rel
                                 JOIN pipemail_account acc ON acc.id = rel.account_id
                                WHERE acc.kind = 'team' AND rel.user_id = %(uid)s))
                  FROM pipemail_thread t
                 WHERE t.id = ANY(%(ids)s)
                """,
                uid=uid,
                ids=ids,
            )
        )
        held_all = uid == SUPERUSER_ID
        return {id_: (visibility, bool(held) or held_all) for id_, visibility, held in rows}

    def _pipemail_holder_ids(self, uid):
        """Ids in ``self`` that ``uid`` holds (owner, or member of the team mailbox)."""
        return {id_ for id_, (_vis, held) in self._pipemail_facts(uid).items() if held}

    def _pipemail_content_hidden(self):
        """The subset of ``self`` the current user sees as metadata only."""
        if self.env.su or not self:
            return self.browse()
        facts = self._pipemail_facts(self.env.uid)
        return self.browse(
            id_ for id_, (vis, held) in facts.items() if vis == "metadata" and not held
        )

    def _pipemail_content_allowed(self):
        """The subset of ``self`` whose full content the current user may see.

        For server-side code that reads conversation content on a user's behalf (AI
        prompts, reply quoting): attribute reads are not redacted, so filter first.
        """
        if self.env.su:
            return self
        visible = self.with_context(active_test=False).search([("id", "in", self.ids)])
        return visible - visible._pipemail_content_hidden()

    # ------------------------------------------------------------------ computes

    @api.depends_context("uid")
    def _compute_in_my_inbox(self):
        held = self._pipemail_holder_ids(self.env.uid)
        for thread in self:
            thread.in_my_inbox = thread.id in held

    def _search_in_my_inbox(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise NotImplementedError(_("Unsupported search on 'In my inbox'."))
        domain = self._pipemail_holder_domain()
        if (operator == "=") == value:
            return domain
        return ["!", *expression.normalize_domain(domain)]

    @api.depends_context("uid")
    def _compute_content_hidden(self):
        hidden = self._pipemail_content_hidden()
        for thread in self:
            thread.content_hidden = thread in hidden

    def _compute_message_body(self):
        self.message_body = False

    def _search_message_body(self, operator, value):
        # goes through pipemail.message's own access: hidden bodies never match
        single_query = [("message_ids", "any", [("body_text", operator, value)])]
        if operator != "ilike" or not isinstance(value, str) or not value.strip():
            return single_query
        found = self._pipemail_body_threads(value)
        # a common term outside a plain AND (see _search) is found the slow way
        return single_query if found is None else [("id", "in", found)]

    @api.model
    def _pipemail_body_threads(self, value):
        """The conversations with a message whose text contains ``value`` (ILIKE) the
        user may read, found through the trigram index; None when more than
        BODY_INDEX_LIMIT messages match. Shared by the page and the count of one list
        load (web_search_read)."""
        shared = self.env.context.get("pipemail_body_search")
        key = (self.env.uid, self.env.su, tuple(self.env.companies.ids), value)
        if isinstance(shared, dict) and key in shared:
            return shared[key]
        query = self.env["pipemail.message"]._search(
            [("body_text", "ilike", value)], limit=BODY_INDEX_LIMIT + 1
        )
        query.order = None
        rows = self.env.execute_query(query.select(SQL.identifier(query.table, "thread_id")))
        found = sorted({thread_id for (thread_id,) in rows})
        if len(rows) > BODY_INDEX_LIMIT:
            found = None
        if isinstance(shared, dict):
            shared[key] = found
        return found

    @api.model
    def _pipemail_body_walk(self, query, value, offset, limit):
        """``query`` (the conversations of the rest of the domain, in their order) walked
        row by row, keeping those with a message containing ``value``, up to ``limit``.

        Both subqueries are kept apart from the outer query (OFFSET 0) so that the
        planner cannot turn the check into a join over every matching message: it is
        made per conversation, in order, and stops when the page (or the count limit)
        is full. Messages follow their conversation's content and company (the content
        domain and the company rule are in ``query``): checking them again per message
        would make each step scan the company index.
        """
        Message = self.env["pipemail.message"]
        message_field = Message._fields
        unaccent = self.env.registry.unaccent
        rows = SQL("(%s OFFSET 0)", query.select(SQL("%s.*", SQL.identifier(query.table))))
        walk = Query(self.env, self._table, rows)
        walk.add_where(
            SQL(
                """EXISTS (SELECT 1 FROM pipemail_message AS m
                    WHERE %s = %s AND strpos(lower(%s), lower(%s)) > 0 OFFSET 0)""",
                SQL.identifier("m", "thread_id", to_flush=message_field["thread_id"]),
                SQL.identifier(self._table, "id"),
                unaccent(SQL.identifier("m", "body_text", to_flush=message_field["body_text"])),
                unaccent(SQL("%s", value)),
            )
        )
        walk.offset = offset
        walk.limit = limit
        return walk

    @api.model
    def web_search_read(
        self, domain, specification, offset=0, limit=None, order=None, count_limit=None
    ):
        # one body search for the page and its count (see _search_message_body)
        return super(PipemailThread, self.with_context(pipemail_body_search={})).web_search_read(
            domain, specification, offset=offset, limit=limit, order=order, count_limit=count_limit
        )

    @api.depends("partner_ids", "participant_emails", "account_id")
    def _compute_participants_display(self):
        for thread in self:
            own = (thread.sudo().account_id.email or "").strip().lower()
            names, seen = [], {own}
            for partner in thread.partner_ids:
                email = (partner.email_normalized or "").lower()
                if email in seen:
                    continue
                seen.add(email)
                names.append(partner.name or email)
            for email in (thread.participant_emails or "").split(","):
                email = email.strip().lower()
                if email and email not in seen:
                    seen.add(email)
                    names.append(email)
            thread.participants_display = ", ".join(names)

    def _compute_pipemail_redacted(self):
        self.pipemail_redacted = False

    @api.depends("visibility", "owner_id", "account_id")
    @api.depends_context("uid")
    def _compute_display_name(self):
        """The subject only for someone who may read it, even when computed in sudo (the
        ORM reads many2one display names as superuser)."""
        super()._compute_display_name()
        uid = self.env.uid
        if uid == SUPERUSER_ID:
            return
        facts = self._pipemail_facts(uid)
        others = {id_: vis for id_, (vis, held) in facts.items() if not held}
        if not others:
            return
        shared = [id_ for id_, vis in others.items() if vis == "shared"]
        if shared and self.env.su:
            # as the real user: can they reach the conversation through a record?
            readable = set(
                self.with_user(uid)
                .with_context(active_test=False)
                .search([("id", "in", shared)])
                .ids
            )
        else:
            # not in sudo: fetching the subject already checked the access
            readable = set(shared)
        for thread in self:
            vis = others.get(thread.id)
            if vis is None or thread.id in readable:
                continue
            if vis == "metadata":
                thread.display_name = _("Email conversation (details hidden)")
            else:
                thread.display_name = _("Private conversation")

    # ------------------------------------------------------------------ actions

    def action_open_link_wizard(self):
        self.ensure_one()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": _("Link Conversation"),
            "res_model": "pipemail.link.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_thread_id": self.id},
        }

    # ------------------------------------------------------------------ row access

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        if self.env.su:
            return super()._search(domain, offset, limit, order)
        extra = self._pipemail_read_domain()
        if any(fname not in THREAD_SEARCHABLE for fname in _domain_fields(domain)):
            # a metadata-only row must not match (or fail to match) on its hidden values
            extra = expression.AND([extra, self._pipemail_content_domain()])
        rest, value = _split_body_term(domain)
        if value is not None:
            if not isinstance(self.env.context.get("pipemail_body_search"), dict):
                self = self.with_context(pipemail_body_search={})
            if self._pipemail_body_threads(value) is None:
                # a common term: walk the rest of the search in order (BODY_INDEX_LIMIT)
                query = super()._search(expression.AND([rest, extra]), order=order)
                return self._pipemail_body_walk(query, value, offset, limit)
        return super()._search(expression.AND([domain, extra]), offset, limit, order)

    def _check_access(self, operation):
        return _read_as_searched(self, operation, super()._check_access(operation))

    # ------------------------------------------------------------------ field redaction

    def _order_field_to_sql(self, alias, field_name, direction, nulls, query):
        fname = field_name.split(".", 1)[0]
        if self.env.su or fname in THREAD_SEARCHABLE:
            return super()._order_field_to_sql(alias, field_name, direction, nulls, query)
        field = self._fields.get(fname)
        if not field or not field.store or not field.column_type or field.type == "many2one":
            # no safe way to sort metadata-only rows on it: do not sort on it
            return SQL()
        return SQL(
            "CASE WHEN %s THEN %s END %s %s",
            self._pipemail_content_sql(alias),
            self._field_to_sql(alias, fname, query),
            direction,
            nulls,
        )

    @api.model
    def _read_group(
        self, domain, groupby=(), aggregates=(), having=(), offset=0, limit=None, order=None
    ):
        if not self.env.su:
            used = {_spec_field(spec) for spec in itertools.chain(groupby, aggregates)}
            used.update(_spec_field(f) for f in _domain_fields(having))
            used.discard("__count")
            if any(fname not in THREAD_SEARCHABLE for fname in used):
                domain = expression.AND([domain or [], self._pipemail_content_domain()])
        return super()._read_group(
            domain,
            groupby=groupby,
            aggregates=aggregates,
            having=having,
            offset=offset,
            limit=limit,
            order=order,
        )

    def _read_format(self, fnames, load="_classic_read"):
        result = super()._read_format(fnames, load=load)
        hidden = set(self._pipemail_content_hidden().ids)
        if not hidden:
            return result
        for vals in result:
            if vals.get("id") not in hidden:
                continue
            for fname in vals:
                if fname in THREAD_READABLE:
                    continue
                field = self._fields.get(fname)
                vals[fname] = [] if field and field.type in ("one2many", "many2many") else False
        return result

    def _export_rows(self, fields, *, _is_toplevel_call=True):
        if not self.env.su:
            # export reads through the cache; values cached by earlier sudo code would
            # otherwise go out without any access check
            self.check_access("read")
        hidden = self._pipemail_content_hidden()
        if not hidden:
            return super()._export_rows(fields, _is_toplevel_call=_is_toplevel_call)
        redacted = [
            path
            if path[0] in THREAD_READABLE or path[0] in ("id", ".id")
            else ["pipemail_redacted"]
            for path in fields
        ]
        rows = []
        # keep the caller's order; redact runs of metadata-only rows
        # consecutive runs, not odoo.tools.groupby's global grouping: order matters here
        # pylint: disable-next=bad-builtin-groupby
        for is_hidden, run in itertools.groupby(self, key=lambda t: t in hidden):
            records = self.browse([t.id for t in run])
            rows += super(PipemailThread, records)._export_rows(
                redacted if is_hidden else fields, _is_toplevel_call=_is_toplevel_call
            )
        return rows


class PipemailMessage(models.Model):
    _inherit = "pipemail.message"

    @api.model
    def _pipemail_thread_query(self):
        """Conversations whose content the current user may see."""
        Thread = self.env["pipemail.thread"].with_context(active_test=False)
        return Thread._search(Thread._pipemail_content_domain())

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        if self.env.su:
            return super()._search(domain, offset, limit, order)
        domain = expression.AND([domain, [("thread_id", "in", self._pipemail_thread_query())]])
        return super()._search(domain, offset, limit, order)

    def _check_access(self, operation):
        return _read_as_searched(self, operation, super()._check_access(operation))

    def _export_rows(self, fields, *, _is_toplevel_call=True):
        if not self.env.su:
            # see PipemailThread._export_rows: never export from the cache unchecked
            self.check_access("read")
        return super()._export_rows(fields, _is_toplevel_call=_is_toplevel_call)


class ResPartner(models.Model):
    _inherit = "res.partner"

    pipemail_thread_ids = fields.Many2many(
        "pipemail.thread",
        string="Emails",
        compute="_compute_pipemail_thread_ids",
        groups="pipemail_sync.group_pipemail_user",
        help="The most recent conversations with this contact (or this company's contacts) "
        "that you may see.",
    )

    def _compute_pipemail_thread_ids(self):
        # searched as the reader: the visibility rules above decide what is listed
        Thread = self.env["pipemail.thread"]
        for partner in self:
            partner.pipemail_thread_ids = (
                Thread.search(partner._pipemail_thread_domain(), limit=80) if partner.id else Thread
            )


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    @api.depends_context("uid")
    def _compute_display_name(self):
        """A file name is content: an email's attachment is named only to who may read
        the email, even where Odoo names a many2one's value as superuser."""
        super()._compute_display_name()
        if not self.env.su:
            return
        ours = self.filtered(lambda a: (a.res_model or "").startswith("pipemail."))
        access.hide_unreadable_names(ours, _("Attachment (hidden)"))

    def _check_access(self, operation):
        """An email's attachment is readable only by who may read the email.

        Odoo checks the linked document in ``check()`` and ``_search()``; this makes
        ``check_access``/``has_access`` agree even when the values are already cached.
        """
        result = super()._check_access(operation)
        if not self or self.env.su:
            return result
        remaining = self - result[0] if result else self
        if not remaining:
            return result
        self.env["ir.attachment"].flush_model(["res_model", "res_id"])
        rows = self.env.execute_query(
            SQL(
                "SELECT id, res_id FROM ir_attachment"
                " WHERE id = ANY(%s) AND res_model = 'pipemail.message' AND res_id IS NOT NULL",
                list(remaining.ids),
            )
        )
        if not rows:
            return result
        messages = self.env["pipemail.message"].browse({res_id for _id, res_id in rows}).exists()
        doc_operation = "read" if operation == "read" else "write"
        allowed = messages._filtered_access(doc_operation)
        forbidden = self.browse(id_ for id_, res_id in rows if res_id not in allowed.ids)
        if not forbidden:
            return result
        if result:
            forbidden += result[0]
        return forbidden, lambda: self.env["ir.rule"]._make_access_error(operation, forbidden)
