"""The Sales Inbox in a browser (Odoo tours, headless Chromium): the folders pane, the
reading pane and the keyboard shortcuts. What the browser did is checked on the
records afterwards: read state and archive queued for the mail server."""

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestInboxTours(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env(context=dict(cls.env.context, tracking_disable=True, mail_create_nolog=True))
        cls.user = new_test_user(
            env,
            "pm_ivy",
            name="Ivy Inbox",
            email="ivy@ourco.example",
            groups="sales_team.group_sale_salesman",
            tz="UTC",
        )
        Account = env["pipemail.account"]
        cls.personal = Account.create(
            {"name": "Ivy", "email": "ivy@ourco.example", "user_id": cls.user.id}
        )
        cls.team = Account.create(
            {
                "name": "Ivy Team",
                "email": "team-ivy@ourco.example",
                "kind": "team",
                "user_id": cls.user.id,
                "member_ids": [Command.set(cls.user.ids)],
            }
        )
        inbox = env["pipemail.folder"].search(
            [("account_id", "=", cls.personal.id), ("role", "=", "inbox")]
        )
        hot = env["pipemail.label"].create({"name": "Ivy Hot", "color": 1})
        cls.alpha = cls._thread(env, cls.personal, "Alpha order", "2026-01-03", False, hot)
        cls.beta = cls._thread(env, cls.personal, "Beta question", "2026-01-02", True)
        cls.gamma = cls._thread(env, cls.team, "Gamma team", "2026-01-01", False)
        env["pipemail.message.location"].create(
            {
                "message_id": cls.alpha.message_ids.id,
                "folder_id": inbox.id,
                "uidvalidity": 7,
                "uid": 1,
                "flags": "",
            }
        )
        env["pipemail.draft"].create({"user_id": cls.user.id, "subject": "Ivy draft"})

    @classmethod
    def _thread(cls, env, account, subject, day, read, label=None):
        thread = env["pipemail.thread"].create(
            {
                "account_id": account.id,
                "thread_key": f"tour-{subject}",
                "subject": subject,
                "last_date": f"{day} 10:00:00",
                "participant_emails": f"{account.email},carla@customer.example",
                "label_ids": [Command.set(label.ids)] if label else [],
            }
        )
        env["pipemail.message"].create(
            {
                "thread_id": thread.id,
                "account_id": account.id,
                "key": f"tour-{subject}",
                "subject": subject,
                "email_from": "Carla <carla@customer.example>",
                "email_to": account.email,
                "date": f"{day} 10:00:00",
                "body_html": f"<p>About {subject}</p>",
                "is_read": read,
            }
        )
        return thread

    def start_tour(self, *args, **kwargs):
        # The setup's changes told the inbox over the bus (pipemail.inbox/changed); a
        # new browser is handed the last minute's notices and would reload the list
        # under the tour's first click. The tours start from a quiet bus.
        self.env.flush_all()
        self.env["bus.bus"].sudo().search([]).unlink()
        return super().start_tour(*args, **kwargs)

    def _writebacks(self, op):
        return self.env["pipemail.writeback"].search(
            [("message_id", "=", self.alpha.message_ids.id), ("op", "=", op)]
        )

    def test_folders_pane(self):
        self.start_tour("/odoo/sales-inbox", "pipemail_inbox_folders_tour", login="pm_ivy")

    def test_reading_pane(self):
        self.start_tour("/odoo/sales-inbox", "pipemail_inbox_pane_tour", login="pm_ivy")
        self.assertTrue(self.alpha.message_ids.is_read, "opened in the pane: read")
        self.assertTrue(self._writebacks("seen"), "and the mail server is told")

    def _alpha_lead(self):
        carla = self.env["res.partner"].create({"name": "Carla", "email": "carla@customer.example"})
        lead = self.env["crm.lead"].create(
            {
                "name": "Alpha deal",
                "type": "opportunity",
                "user_id": self.user.id,
                "partner_id": carla.id,
            }
        )
        self.alpha.lead_id = lead
        return lead

    def test_record_emails(self):
        lead = self._alpha_lead()
        action = lead.with_user(self.user).action_view_pipemail_threads()
        self.assertTrue(action["context"]["pipemail_record_emails"])
        self.assertEqual(action["context"]["pipemail_record_id"], lead.id)
        self.start_tour(f"/odoo/crm/{lead.id}", "pipemail_record_emails_tour", login="pm_ivy")

    def test_record_emails_tab(self):
        lead = self._alpha_lead()
        self.start_tour(f"/odoo/crm/{lead.id}", "pipemail_record_tab_tour", login="pm_ivy")
        self.assertTrue(self.alpha.message_ids.is_read, "opened in the tab's pane: read")

    def test_shortcuts(self):
        self.start_tour("/odoo/sales-inbox", "pipemail_inbox_keys_tour", login="pm_ivy")
        self.assertFalse(self.alpha.active, "e archived the selected conversation")
        self.assertTrue(self._writebacks("archive"), "in the mailbox too")
        self.assertTrue(self.beta.active, "# was cancelled")
