"""The Sales Inbox's Body search (issue 14): a rare term goes through the trigram index,
a common one walks the listed conversations in order and stops at the page and at the
count limit (pipemail_visibility.BODY_INDEX_LIMIT). Whichever way, every user gets
exactly what the single query over pipemail.message gives them: same rows, same order,
same count, hidden bodies never matching. The walk is forced here by a limit of 0;
bench_inbox.py measures both ways on 150,000 messages."""

from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged

from ..models import pipemail_visibility
from .visibility_common import FULL, PipemailWorldMixin

ORDERS = ("last_date desc, id desc", "subject, id", "id", "account_id desc, lead_id, id")


@tagged("post_install", "-at_install")
class TestBodySearch(PipemailWorldMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()

    def _terms(self):
        # in every message, in one conversation's messages each, in none
        return ["canary", "BODY", *(f"{self._canaries(n)}body" for n in self.threads), "zzq"]

    def _single(self, Thread, term, extra=()):
        return [("message_ids", "any", [("body_text", "ilike", term)]), *extra]

    def _walk(self):
        return patch.object(pipemail_visibility, "BODY_INDEX_LIMIT", 0)

    def test_walk_and_index_give_the_single_query_answer(self):
        for user_key, user in self.users.items():
            Thread = self.env(user=user)["pipemail.thread"].with_context(active_test=False)
            for term in self._terms():
                for extra in ((), [("active", "=", True)], [("visibility", "!=", "private")]):
                    body = [("message_body", "ilike", term), *extra]
                    single = self._single(Thread, term, extra)
                    for order in ORDERS:
                        expected = Thread.search(single, order=order).ids
                        got = {"index": Thread.search(body, order=order).ids}
                        with self._walk():
                            got["walk"] = Thread.search(body, order=order).ids
                            page = Thread.search(body, order=order, offset=1, limit=2).ids
                            counted = Thread.search_count(body, limit=2)
                            total = Thread.search_count(body)
                        label = f"{user_key} {term!r} {extra} {order}"
                        self.assertEqual(got["index"], expected, label)
                        self.assertEqual(got["walk"], expected, label)
                        self.assertEqual(page, expected[1:3], label)
                        self.assertEqual(counted, min(2, len(expected)), label)
                        self.assertEqual(total, len(expected), label)

    def test_grouped_list(self):
        """The inbox grouped by mailbox or label, searched for a common word."""
        for user_key, user in self.users.items():
            Thread = self.env(user=user)["pipemail.thread"].with_context(active_test=False)
            for groupby in ("account_id", "label_ids", "visibility"):
                expected = Thread.read_group(
                    self._single(Thread, "canary"), [groupby], [groupby], orderby=groupby
                )
                with self._walk():
                    got = Thread.read_group(
                        [("message_body", "ilike", "canary")], [groupby], [groupby], orderby=groupby
                    )
                count = f"{groupby}_count"
                self.assertEqual(
                    [(g[groupby], g[count]) for g in got],
                    [(g[groupby], g[count]) for g in expected],
                    f"{user_key} {groupby}",
                )

    def test_hidden_bodies_never_match(self):
        for user_key, user in self.users.items():
            Thread = self.env(user=user)["pipemail.thread"].with_context(active_test=False)
            full = self._expected(user_key, (FULL,))
            for name, thread in self.threads.items():
                with self._walk():
                    got = Thread.search([("message_body", "ilike", self._canaries(name))]).ids
                self.assertEqual(
                    got, [thread.id] if thread.id in full else [], f"{user_key} {name}"
                )

    def test_other_shapes_keep_the_single_query(self):
        Thread = self.env(user=self.owner)["pipemail.thread"].with_context(active_test=False)
        for domain, single in (
            # an OR, a negation, wildcards: not the walk's plain AND
            (
                ["|", ("message_body", "ilike", "canary"), ("subject", "=", "x")],
                ["|", *self._single(Thread, "canary"), ("subject", "=", "x")],
            ),
            (
                ["!", ("message_body", "ilike", "CANARYP_METABODY")],
                ["!", *self._single(Thread, "CANARYP_METABODY")],
            ),
            ([("message_body", "ilike", "canary%body")], self._single(Thread, "canary%body")),
            ([("message_body", "not ilike", "canary")], [("id", "=", 0)]),
        ):
            with self._walk():
                got = Thread.search(domain, order="id").ids
            if single == [("id", "=", 0)]:
                self.assertEqual(got, [], domain)
            else:
                self.assertEqual(got, Thread.search(single, order="id").ids, domain)

    def test_one_search_per_list_load(self):
        Thread = self.env(user=self.owner)["pipemail.thread"]
        Message = type(self.env["pipemail.message"])
        original = Message._search
        calls = []

        def spy(records, domain, *args, **kwargs):
            if any(isinstance(leaf, list | tuple) and leaf[0] == "body_text" for leaf in domain):
                calls.append(domain)
            return original(records, domain, *args, **kwargs)

        spec = {"subject": {}, "participants_display": {}}
        for limit in (0, 10_000):
            calls.clear()
            with (
                patch.object(Message, "_search", spy),
                patch.object(pipemail_visibility, "BODY_INDEX_LIMIT", limit),
            ):
                result = Thread.with_context(active_test=False).web_search_read(
                    [("message_body", "ilike", "canary")], spec, limit=1, count_limit=3
                )
            self.assertEqual(result["length"], 3, limit)
            self.assertEqual(len(result["records"]), 1)
            # the page and its count share the one index search
            self.assertEqual(len(calls), 1, limit)

    def test_portal_user_searches_nothing(self):
        portal = new_test_user(self.env, "pm_body_portal", groups="base.group_portal")
        Thread = self.env(user=portal)["pipemail.thread"]
        with self._walk(), self.assertRaises(AccessError):
            Thread.web_search_read([("message_body", "ilike", "canary")], {"subject": {}})
