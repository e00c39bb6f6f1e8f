"""The Connect Google flow end to end, against a local token endpoint and a Dovecot that
accepts XOAUTH2 through that endpoint's introspection (tests/harness)."""

from urllib.parse import parse_qs, urlsplit

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged

from .common import TEST_SECRET_KEY, Dovecot, OAuthServer, make_mail, set_class_config


@tagged("post_install", "-at_install")
class TestOAuthConnect(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if Dovecot is None or OAuthServer is None:
            cls.skipTest(cls, "tests/harness not importable")
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls.oauth = OAuthServer(client_id="odoo-client", client_secret="odoo-secret")
        cls.addClassCleanup(cls.oauth.stop)
        cls.dovecot = Dovecot(oauth=cls.oauth)
        cls.addClassCleanup(cls.dovecot.close)
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("pipemail.google_client_id", "odoo-client")
        params.set_param("pipemail.google_client_secret", "odoo-secret")
        # the local IMAP server stands in for Google's: an admin's allowance
        params.set_param("pipemail.google_mail_hosts", "127.0.0.1")
        params.set_param("pipemail.google_auth_uri", f"{cls.oauth.url}/authorize")
        params.set_param("pipemail.google_token_uri", cls.oauth.token_url)
        params.set_param("pipemail.google_userinfo_uri", f"{cls.oauth.url}/userinfo")
        company = cls.env.company
        cls.sally = new_test_user(
            cls.env,
            "pm_oauth_sally",
            email="sally@ourco.example",
            groups="sales_team.group_sale_salesman",
            company_id=company.id,
            company_ids=[Command.set(company.ids)],
        )
        cls.mallory = new_test_user(
            cls.env,
            "pm_oauth_mallory",
            email="mallory@ourco.example",
            groups="sales_team.group_sale_salesman",
        )

    def _account(self, login):
        return self.env["pipemail.account"].create(
            {
                "name": "Sally at Google",
                "provider": "gmail",
                "email": login.name,
                "username": login.name,
                "imap_host": "127.0.0.1",
                "imap_port": self.dovecot.port,
                "imap_security": "none",
                "user_id": self.sally.id,
                "history": "all",
            }
        )

    def _start(self, account):
        response = self.url_open(
            f"/pipemail/oauth/gmail/start?account_id={account.id}", allow_redirects=False
        )
        self.assertIn(response.status_code, (302, 303))
        location = response.headers["Location"]
        self.assertTrue(location.startswith(f"{self.oauth.url}/authorize?"))
        query = parse_qs(urlsplit(location).query)
        self.assertEqual(query["client_id"], ["odoo-client"])
        self.assertEqual(query["code_challenge_method"], ["S256"])
        return query["state"][0]

    def test_connect_sync_and_revoke(self):
        login = self.dovecot.add_user()
        self.dovecot.append(
            login, "INBOX", make_mail(subject="Via OAuth", message_id="<o1@x.example>")
        )
        account = self._account(login)
        self.authenticate("pm_oauth_sally", "pm_oauth_sally")
        state = self._start(account)
        code = self.oauth.issue_code(login.name)
        response = self.url_open(
            f"/pipemail/oauth/callback?state={state}&code={code}", allow_redirects=False
        )
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        account.invalidate_recordset()
        self.assertEqual(account.state, "connected")
        self.assertTrue(account.oauth_connected)
        stored = account.sudo().oauth_refresh_token_enc
        self.assertTrue(stored.startswith("pm1:"))
        self.assertFalse(account.sudo().password_enc)

        # the same state cannot be used twice (its verifier left the session)
        replay = self.url_open(f"/pipemail/oauth/callback?state={state}&code={code}")
        self.assertEqual(replay.status_code, 400)

        # sync over XOAUTH2: the token source refreshes from the stored refresh token
        self.assertTrue(account._sync(), account.last_error)
        self.assertEqual(
            self.env["pipemail.message"].search_count([("account_id", "=", account.id)]), 1
        )

        # the user revokes access at Google: reconnect needed, told once, no storm
        self.oauth.revoke_user(login.name)
        from odoo.addons.pipemail_sync import oauth as addon_oauth

        addon_oauth.forget_source(account)
        self.assertFalse(account._sync())
        self.assertEqual(account.state, "reconnect")
        self.assertIn("reconnect", account.last_error.lower())
        self.assertEqual(len(account.activity_ids), 1)
        requests_after_first = len([r for r in self.oauth.requests if r.endpoint == "token"])
        self.assertFalse(account._sync())
        requests_after_second = len([r for r in self.oauth.requests if r.endpoint == "token"])
        self.assertEqual(
            requests_after_first, requests_after_second, "no retry against a dead grant"
        )
        self.assertNotIn(account, self.env["pipemail.account"]._acquire_next(ids=[account.id]))
        action = account.with_user(self.sally).action_reconnect()
        self.assertEqual(action["url"], f"/pipemail/oauth/gmail/start?account_id={account.id}")

    def test_bad_states_are_refused_alike(self):
        login = self.dovecot.add_user()
        account = self._account(login)
        self.authenticate("pm_oauth_sally", "pm_oauth_sally")
        state = self._start(account)
        code = self.oauth.issue_code(login.name)
        body, signature = state.split(".")
        forged = [
            "",
            "garbage",
            f"{body}.{'0' * len(signature)}",
            f"{body[:-2]}AA.{signature}",
            f"{state}x",
        ]
        for bad in forged:
            response = self.url_open(f"/pipemail/oauth/callback?state={bad}&code={code}")
            self.assertEqual(response.status_code, 400, bad)
        # another user's valid state is refused too
        self.authenticate("pm_oauth_mallory", "pm_oauth_mallory")
        response = self.url_open(f"/pipemail/oauth/callback?state={state}&code={code}")
        self.assertEqual(response.status_code, 400)
        account.invalidate_recordset()
        self.assertFalse(account.oauth_connected)
        # and a user cannot start a connection for someone else's mailbox
        response = self.url_open(
            f"/pipemail/oauth/gmail/start?account_id={account.id}", allow_redirects=False
        )
        self.assertNotIn(response.status_code, (302, 303))

    def test_not_configured_is_explained(self):
        self.env["ir.config_parameter"].sudo().set_param("pipemail.microsoft_client_id", "")
        self.env["ir.config_parameter"].sudo().set_param(
            "pipemail.microsoft_mail_hosts", "127.0.0.1"
        )
        login = self.dovecot.add_user()
        account = self._account(login)
        account.write({"provider": "microsoft", "smtp_host": "127.0.0.1"})
        self.authenticate("pm_oauth_sally", "pm_oauth_sally")
        response = self.url_open(f"/pipemail/oauth/microsoft/start?account_id={account.id}")
        self.assertEqual(response.status_code, 200)
        self.assertIn("not set up yet", response.text)


@tagged("post_install", "-at_install")
class TestOAuthMicrosoft(HttpCase):
    """Microsoft rotates the refresh token on every use: the new one must be stored
    at once, or the mailbox is lost at the next refresh."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if Dovecot is None or OAuthServer is None:
            cls.skipTest(cls, "tests/harness not importable")
        cls.oauth = OAuthServer(
            rotate_refresh_tokens=True, client_id="ms-client", client_secret="ms-secret"
        )
        cls.addClassCleanup(cls.oauth.stop)
        cls.dovecot = Dovecot(oauth=cls.oauth)
        cls.addClassCleanup(cls.dovecot.close)
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY, pipemail_cafile=cls.oauth.cafile)
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("pipemail.microsoft_client_id", "ms-client")
        params.set_param("pipemail.microsoft_client_secret", "ms-secret")
        params.set_param("pipemail.microsoft_authority", cls.oauth.authority)
        params.set_param("pipemail.microsoft_mail_hosts", "127.0.0.1")
        cls.sally = new_test_user(
            cls.env,
            "pm_ms_sally",
            email="sally@ourco.example",
            groups="sales_team.group_sale_salesman",
        )

    def test_connect_and_rotating_refresh_tokens_are_kept(self):
        from odoo.addons.pipemail_sync import oauth as addon_oauth

        login = self.dovecot.add_user()
        self.dovecot.append(
            login, "INBOX", make_mail(subject="From 365", message_id="<m365@x.example>")
        )
        account = self.env["pipemail.account"].create(
            {
                "name": "Sally at Microsoft",
                "provider": "microsoft",
                "email": login.name,
                "username": login.name,
                "imap_host": "127.0.0.1",
                "imap_port": self.dovecot.port,
                "imap_security": "none",
                "user_id": self.sally.id,
                "history": "all",
            }
        )
        self.authenticate("pm_ms_sally", "pm_ms_sally")
        response = self.url_open(
            f"/pipemail/oauth/microsoft/start?account_id={account.id}", allow_redirects=False
        )
        location = response.headers["Location"]
        self.assertTrue(location.startswith(f"{self.oauth.authority}/oauth2/v2.0/authorize?"))
        state = parse_qs(urlsplit(location).query)["state"][0]
        code = self.oauth.issue_code(login.name)
        response = self.url_open(
            f"/pipemail/oauth/callback?state={state}&code={code}", allow_redirects=False
        )
        self.assertIn(
            response.status_code, (302, 303), response.text[response.text.find("<h4") :][:400]
        )
        account.invalidate_recordset()
        self.assertEqual(account.state, "connected")
        first = account._get_secret("refresh_token")

        self.assertTrue(account._sync(), account.last_error)
        account.invalidate_recordset()  # saved by the token source's own transaction
        rotated = account._get_secret("refresh_token")
        self.assertNotEqual(rotated, first, "the rotated refresh token was stored")
        self.assertFalse(self.oauth.refresh_token_valid(first))
        self.assertTrue(self.oauth.refresh_token_valid(rotated))

        # a new process (no cached access token) refreshes with the stored token
        addon_oauth.forget_source(account)
        self.dovecot.append(
            login, "INBOX", make_mail(subject="Again", message_id="<m365b@x.example>")
        )
        self.assertTrue(account._sync(), account.last_error)
        self.assertEqual(
            self.env["pipemail.message"].search_count([("account_id", "=", account.id)]), 2
        )
        account.invalidate_recordset()
        latest = account._get_secret("refresh_token")
        self.assertNotEqual(latest, rotated)
        self.assertTrue(self.oauth.refresh_token_valid(latest))
