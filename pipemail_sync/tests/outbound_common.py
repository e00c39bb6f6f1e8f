"""A salesperson with a mailbox on a private Dovecot whose outgoing server is an
aiosmtpd sink, for the outbound tests (harness: see :mod:`.common`).
"""

import email
import email.policy
import logging

from odoo import Command
from odoo.tests import new_test_user

from .common import OAuthServer, PipemailDovecotCase, SmtpSink  # noqa: F401 - re-exported

SIGNATURE = "<p>Sam Sender — ACME Sales</p>"


def parse(raw):
    """A received message as the stdlib reads it (modern policy: decoded headers)."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def html_part(message):
    return message.get_body(("html",)).get_content()


def text_part(message):
    return message.get_body(("plain",)).get_content()


class PipemailOutboundCase(PipemailDovecotCase):
    """One sending mailbox per class: its IMAP is the class's Dovecot, its SMTP a sink
    that accepts that mailbox's login. Each test clears the sink."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if SmtpSink is None:
            cls.skipTest(cls, "tests/harness not found next to the addon")
        # aiosmtpd's own deprecation notice about its auth API, once per sign-in
        mail_log = logging.getLogger("mail.log")
        cls.addClassCleanup(mail_log.setLevel, mail_log.level)
        mail_log.setLevel(logging.ERROR)
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
        cls.env["ir.config_parameter"].sudo().set_param("web.base.url", "http://crm.example.com")
        cls.sender = new_test_user(
            cls.env,
            "pm_sam",
            name="Sam Sender",
            email="sam@ourco.example",
            groups="sales_team.group_sale_salesman_all_leads",
            notification_type="inbox",
            signature=SIGNATURE,
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.login = cls.dovecot.add_user("sam@ourco.example", "sam-imap-password")
        cls.sink = SmtpSink(auth=(cls.login.name, cls.login.password))
        cls.addClassCleanup(cls.sink.stop)
        cls.account = cls.env["pipemail.account"].create(
            {
                "name": "Sam's mailbox",
                "email": "sam@ourco.example",
                "username": cls.login.name,
                "password": cls.login.password,
                "imap_host": "127.0.0.1",
                "imap_port": cls.dovecot.port,
                "imap_security": "none",
                "smtp_host": "127.0.0.1",
                "smtp_port": cls.sink.port,
                "smtp_security": "none",
                "user_id": cls.sender.id,
                "history": "all",
            }
        )
        cls.account._action_test_connection()
        assert cls.account.state == "connected", cls.account.last_error
        cls.customer = cls.env["res.partner"].create(
            {"name": "Carla Customer", "email": "carla@customer.example"}
        )

    def setUp(self):
        super().setUp()
        self.sink.clear()
        self.sink.clear_faults()

    # ------------------------------------------------------------------ helpers

    def compose(self, user=None, **context):
        """A composer as ``user`` (default the sender) opened with ``default_*`` values."""
        user = user or self.sender
        ctx = {f"default_{k}": v for k, v in context.items()}
        return self.env["pipemail.compose"].with_user(user).with_context(**ctx)

    def send(self, wizard_model, **vals):
        wizard = wizard_model.create(vals)
        action = wizard.action_send()
        return wizard.outbox_id.sudo(), action

    def received(self, count=1, timeout=10):
        return self.sink.wait_for(count, timeout=timeout)

    def sent_folder_copies(self, message_id):
        """How many messages in the mailbox's Sent folder carry this Message-ID."""
        rows = self.dovecot.fetch_state(self.login, "Sent")
        return sum(1 for row in rows if row["message_id"] == message_id)
