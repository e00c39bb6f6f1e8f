"""The one-click unsubscribe route through real HTTP (RFC 8058): the POST a mail
client sends unsubscribes, a GET only shows a button, forged tokens are answered
like any miss, twice is once."""

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.pipemail_sync.engine import unsubscribe as pm_unsubscribe
from odoo.addons.pipemail_sync.tests.common import TEST_SECRET_KEY, set_class_config

from pipemail import tracking as pm_tracking


@tagged("post_install", "-at_install")
class TestUnsubscribe(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        company = cls.env.company
        sender = new_test_user(
            cls.env,
            "us_sender",
            email="us@ourco.example",
            groups="sales_team.group_sale_salesman",
            company_id=company.id,
            company_ids=[Command.set(company.ids)],
        )
        account = cls.env["pipemail.account"].create(
            {
                "name": "Us",
                "email": "us@ourco.example",
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "user_id": sender.id,
            }
        )
        group = (
            cls.env["pipemail.group.email"]
            .sudo()
            .create({"user_id": sender.id, "account_id": account.id, "subject": "News"})
        )
        cls.rows = (
            cls.env["pipemail.group.email.recipient"]
            .sudo()
            .create(
                [
                    {"group_id": group.id, "email": e, "email_normalized": e}
                    for e in ("ann@unsub-test.example", "bob@unsub-test.example")
                ]
            )
        )
        cls.Blacklist = cls.env["mail.blacklist"].sudo()

    def path(self, row):
        url = row._pipemail_unsubscribe_url()
        return url[url.index(pm_unsubscribe.UNSUBSCRIBE_PATH) :]

    def blacklisted(self, email):
        return bool(self.Blacklist.search_count([("email", "=", email)]))

    def test_one_click_post_as_a_mail_client_sends_it(self):
        row = self.rows[0]
        response = self.url_open(
            self.path(row),
            data={"List-Unsubscribe": "One-Click"},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertIn("You are unsubscribed", response.text)
        self.assertTrue(self.blacklisted("ann@unsub-test.example"))
        self.assertTrue(row.unsubscribed)
        again = self.url_open(self.path(row), data={"List-Unsubscribe": "One-Click"})
        self.assertEqual(again.status_code, 200)
        self.assertEqual(self.Blacklist.search_count([("email", "=", "ann@unsub-test.example")]), 1)
        self.assertFalse(self.blacklisted("bob@unsub-test.example"), "only that recipient")

    def test_get_is_inert(self):
        row = self.rows[1]
        for _i in range(2):
            response = self.url_open(self.path(row))
            self.assertEqual(response.status_code, 200)
            self.assertIn("<form", response.text)
            self.assertIn("bob@unsub-test.example", response.text)
        head = self.opener.head(self.base_url() + self.path(row), timeout=10)
        self.assertEqual(head.status_code, 200)
        self.assertFalse(self.blacklisted("bob@unsub-test.example"))
        self.assertFalse(row.unsubscribed)

    def test_forged_tokens_answered_like_any_miss(self):
        good = self.path(self.rows[0])
        token = good.rsplit("/", 1)[1]
        ident, mac = token.split(".")
        secret = self.env["pipemail.tracking.event"]._pipemail_secret()
        tracking_kind = pm_tracking.sign(secret, pm_tracking.KIND_OPEN, f"gr:{self.rows[0].id}")
        unknown = pm_unsubscribe.recipient_token(secret, 987654321)
        misses = [
            f"{ident}.{mac[:-2]}AA",  # forged signature
            "garbage",
            tracking_kind,  # signed, but for another kind
            unknown,  # signed, names nothing
            "x" * 600,
        ]
        answers = set()
        for bad in misses:
            for method in ("get", "post"):
                url = pm_unsubscribe.UNSUBSCRIBE_PATH + bad
                if method == "get":
                    response = self.url_open(url)
                else:
                    response = self.url_open(url, data={"List-Unsubscribe": "One-Click"})
                answers.add((response.status_code, response.content))
        self.assertEqual(len(answers), 1, "every miss gets the same bytes")
        self.assertEqual(next(iter(answers))[0], 404)
        self.assertFalse(self.Blacklist.search_count([("email", "like", "clients.example")]))
