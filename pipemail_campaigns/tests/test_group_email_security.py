"""Who may do what with group email, over the ORM as any RPC caller would: a
colleague, a salesperson of another team who sees only their own leads, a portal
user. Nothing here needs a mail server."""

from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged

from .group_email_common import company_user


@tagged("post_install", "-at_install")
class TestGroupEmailSecurity(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()

        def user(login, groups):
            return company_user(cls.env, login, groups)

        cls.sender = user("gs_sender", "sales_team.group_sale_salesman_all_leads")
        cls.colleague = user("gs_colleague", "sales_team.group_sale_salesman_all_leads")
        cls.outsider = user("gs_outsider", "sales_team.group_sale_salesman")
        cls.portal = user("gs_portal", "base.group_portal")
        Account = cls.env["pipemail.account"]
        cls.accounts = {}
        for who in (cls.sender, cls.colleague, cls.outsider):
            cls.accounts[who] = Account.create(
                {
                    "name": who.name,
                    "email": who.email,
                    "imap_host": "127.0.0.1",
                    "smtp_host": "127.0.0.1",
                    "user_id": who.id,
                }
            )
        cls.partners = cls.env["res.partner"].create(
            [{"name": f"Client {i}", "email": f"client{i}@security-test.example"} for i in range(3)]
        )
        cls.lead = cls.env["crm.lead"].create(
            {"name": "Sender's deal", "partner_id": cls.partners[0].id, "user_id": cls.sender.id}
        )
        wizard = cls.wizard_as(cls.sender, "res.partner", cls.partners.ids)
        cls.group = cls.env["pipemail.group.email"].browse(wizard._action_send().id)

    @classmethod
    def wizard_as(cls, user, model, ids, **vals):
        vals.setdefault("subject", "Hello")
        vals.setdefault("body", "<p>Hello</p>")
        return (
            cls.env["pipemail.group.email.wizard"]
            .with_user(user)
            .with_context(active_model=model, active_ids=ids)
            .create(vals)
        )

    def test_from_only_a_mailbox_one_may_send_from(self):
        with self.assertRaises(AccessError):
            self.wizard_as(
                self.colleague,
                "res.partner",
                self.partners.ids,
                account_id=self.accounts[self.sender].id,
            )
        wizard = self.wizard_as(self.colleague, "res.partner", self.partners.ids)
        self.assertEqual(wizard.account_id, self.accounts[self.colleague])
        with self.assertRaises(AccessError):
            wizard.write({"account_id": self.accounts[self.sender].id})

    def test_only_records_one_can_read(self):
        with self.assertRaisesRegex(AccessError, "records you may see"):
            self.wizard_as(self.outsider, "crm.lead", self.lead.ids)
        with self.assertRaisesRegex(AccessError, "records you may see"):
            self.wizard_as(self.sender, "res.partner", [self.partners[0].id, 999999999])
        # a hand-made selection cannot smuggle records in through source_ids
        with self.assertRaises(AccessError):
            self.wizard_as(
                self.outsider, "res.partner", self.partners.ids, source_ids=f"[{self.lead.id}]"
            ).write({"source_model": "crm.lead"})
        with self.assertRaises(UserError):
            self.wizard_as(self.sender, "res.users", [self.sender.id])
        # a lead template given partner ids would render the leads with those ids
        lead_template = self.env["mail.template"].create(
            {
                "name": "Lead news",
                "model_id": self.env.ref("crm.model_crm_lead").id,
                "subject": "{{ object.name }}",
                "body_html": "<p><t t-out='object.description'/></p>",
            }
        )
        with self.assertRaisesRegex(UserError, "another kind of record"):
            self.wizard_as(
                self.outsider, "res.partner", self.partners.ids, template_id=lead_template.id
            )

    def test_portal_user_gets_nothing(self):
        with self.assertRaises(AccessError):
            self.wizard_as(self.portal, "res.partner", self.partners.ids)
        with self.assertRaises(AccessError):
            self.group.with_user(self.portal).read(["subject"])
        with self.assertRaises(AccessError):
            self.group.recipient_ids.with_user(self.portal).read(["email"])

    def test_group_email_is_its_senders_alone(self):
        self.assertEqual(self.group.with_user(self.sender).count_total, 3)
        for intruder in (self.colleague, self.outsider):
            with self.assertRaises(AccessError):
                self.group.with_user(intruder).read(["subject"])
            with self.assertRaises(AccessError):
                self.group.recipient_ids.with_user(intruder).read(["email", "body_html"])
            for button in ("action_pause", "action_cancel"):
                with self.assertRaises(AccessError):
                    getattr(self.group.with_user(intruder), button)()
        self.assertEqual(self.group.state, "scheduled")

    def test_rows_written_by_the_server_only(self):
        group = self.group.with_user(self.sender)
        with self.assertRaises(AccessError):
            group.write({"state": "done"})
        with self.assertRaises(AccessError):
            group.recipient_ids[:1].write({"excluded": False, "email": "x@evil.example"})
        with self.assertRaises(AccessError):
            self.env["pipemail.group.email.recipient"].with_user(self.sender).create(
                {"group_id": group.id, "email": "x@evil.example"}
            )
        with self.assertRaises(AccessError):
            self.env["pipemail.group.email"].with_user(self.sender).create(
                {"user_id": self.sender.id, "account_id": self.accounts[self.sender].id}
            )
        with self.assertRaises(AccessError):
            group.unlink()
        # the buttons do work for the sender
        group.action_pause()
        self.assertEqual(group.state, "paused")
        group.action_resume()
        group.action_cancel()
        self.assertEqual(group.state, "cancelled")
        self.assertEqual(group.count_cancelled, 3)
