"""A real Dovecot for the addon's tests, and helpers to write mail into it.

The Dovecot, OAuth server and SMTP sink are the engine test suite's harness
(``tests/harness/``); the repository root is computed from this file, so the tests run
whatever the working directory or PYTHONPATH. One server per test class: started in
``setUpClass``, stopped in ``tearDownClass``; each test adds its own mailbox users, so
tests never see each other's mail.
"""

import contextlib
import itertools
import sys
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from odoo import SUPERUSER_ID, Command, api
from odoo.sql_db import db_connect
from odoo.tests import TransactionCase, new_test_user
from odoo.tools import config

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

try:
    from tests.harness.dovecot import Dovecot
except ImportError:  # pragma: no cover - only without the repository next to the addon
    Dovecot = None
try:
    from tests.harness.oauth_server import OAuthServer
    from tests.harness.smtp import SmtpSink
except ImportError:  # pragma: no cover - only without the repository next to the addon
    OAuthServer = SmtpSink = None

TEST_SECRET_KEY = "pipemail-tests-only-key-0123456789-abcdefghijklmnop"
_counter = itertools.count(1)


@contextlib.contextmanager
def worker_env(dbname):
    """An environment on its own connection, like another Odoo worker's (what a
    TransactionCase hides: other connections see only committed rows)."""
    cr = db_connect(dbname).cursor()
    try:
        yield api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
    finally:
        cr.rollback()
        cr.close()


def set_class_config(cls, **options):
    """Set Odoo server options (``odoo.tools.config``) for the test class ``cls``; each
    comes back to its previous value, or goes away, when the class is done."""
    for key, value in options.items():
        cls.addClassCleanup(_restore_config, key, config.get(key))
        config[key] = value


def _restore_config(key, previous):
    if previous is None:
        config.options.pop(key, None)
    else:
        config[key] = previous


def make_mail(
    subject="Hello",
    sender="Bob Buyer <bob@acme.example>",
    to="sally@ourco.example",
    cc=None,
    message_id=None,
    in_reply_to=None,
    references=None,
    body="Hello there, about the quote.",
    html=None,
    attachments=(),
    date=None,
    headers=None,
):
    """An RFC 5322 message as bytes; ``attachments`` are (filename, bytes, mime type)."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Message-ID"] = message_id or f"<t{next(_counter)}.{id(msg)}@test.example>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = references or in_reply_to
    when = date or datetime.now(timezone.utc).replace(microsecond=0)
    msg["Date"] = format_datetime(when if when.tzinfo else when.replace(tzinfo=timezone.utc))
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, content, mimetype in attachments:
        maintype, _, subtype = mimetype.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


class PipemailDovecotCase(TransactionCase):
    """TransactionCase with a private Dovecot and a salesperson who owns a mailbox."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if Dovecot is None:
            cls.skipTest(cls, "tests/harness not importable: run with the repository on PYTHONPATH")
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls.dovecot = Dovecot()
        cls.addClassCleanup(cls.dovecot.close)
        cls.env = cls.env(
            context=dict(cls.env.context, tracking_disable=True, mail_create_nolog=True)
        )
        cls.company = cls.env.company
        cls.sally = new_test_user(
            cls.env,
            "pm_sally",
            email="sally@ourco.example",
            groups="sales_team.group_sale_salesman_all_leads",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    # ------------------------------------------------------------------ helpers

    def new_mailbox(self, user=None, email=None, **vals):
        """A Dovecot user plus a connected pipemail.account for ``user`` (default Sally)."""
        user = user or self.sally
        email = email or user.email
        login = self.dovecot.add_user(
            f"{email.split('@')[0]}{next(_counter)}@{email.split('@')[1]}"
        )
        values = {
            "name": email,
            "email": email,
            "username": login.name,
            "password": login.password,
            "imap_host": "127.0.0.1",
            "imap_port": self.dovecot.port,
            "imap_security": "none",
            "user_id": user.id,
            "history": "all",
        }
        values.update(vals)
        account = self.env["pipemail.account"].create(values)
        # what "Test connection" does for a user: log in, discover the folders
        account._action_test_connection()
        self.assertEqual(account.state, "connected", account.last_error)
        return login, account

    def deliver(self, login, raw, folder="INBOX", flags=()):
        return self.dovecot.append(login, folder, raw, flags=flags)

    def sync(self, account):
        ok = account._sync()
        account.invalidate_recordset()
        self.env["pipemail.thread"].invalidate_model()
        self.env["pipemail.message"].invalidate_model()
        return ok

    def threads(self, account, **domain):
        extra = [(k, "=", v) for k, v in domain.items()]
        return (
            self.env["pipemail.thread"]
            .with_context(active_test=False)
            .search([("account_id", "=", account.id)] + extra)
        )

    def message(self, account, message_id):
        return self.env["pipemail.message"].search(
            [("account_id", "=", account.id), ("message_id_header", "=", message_id)]
        )
