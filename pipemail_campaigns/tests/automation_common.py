"""Automation rules on a sending mailbox whose SMTP is the aiosmtpd sink (harness: see
pipemail_sync's outbound_common)."""

from odoo import Command
from odoo.tests import new_test_user

from odoo.addons.pipemail_sync.tests.outbound_common import PipemailOutboundCase


class PipemailAutomationCase(PipemailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lead_model = cls.env.ref("crm.model_crm_lead")
        cls.template = cls.env["mail.template"].create(
            {
                "name": "Welcome",
                "model_id": cls.lead_model.id,
                "subject": "Welcome, {{ object.partner_id.name }}",
                "body_html": "<p>Hello <t t-out='object.partner_id.name'/>, about "
                "<t t-out='object.name'/>: see <a href='https://shop.example.com/x'>this</a>.</p>",
            }
        )
        cls.stage_won = cls.env["crm.stage"].create({"name": "Won it", "is_won": True})
        cls.stage_proposal = cls.env["crm.stage"].create({"name": "Proposal sent"})

    def make_user(self, login, groups="sales_team.group_sale_salesman", **vals):
        """A user of the test company (``login``@ourco.example)."""
        return new_test_user(
            self.env,
            login,
            email=f"{login}@ourco.example",
            groups=groups,
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
            **vals,
        )

    def make_rule(self, trigger="on_create", template=None, **action_vals):
        rule = self.env["base.automation"].create(
            {"name": f"Rule {trigger}", "model_id": self.lead_model.id, "trigger": trigger}
        )
        action = self.env["ir.actions.server"].create(
            {
                "name": "Send",
                "model_id": self.lead_model.id,
                "base_automation_id": rule.id,
                "usage": "base_automation",
                "state": "pipemail_send",
                "pipemail_template_id": (template or self.template).id,
                **action_vals,
            }
        )
        return rule, action

    def make_lead(self, user=None, **vals):
        return self.env["crm.lead"].create(
            {
                "name": "Forty chairs",
                "type": "opportunity",
                "partner_id": self.customer.id,
                "user_id": (user or self.sender).id,
                **vals,
            }
        )

    def outboxes(self, lead):
        return self.env["pipemail.outbox"].sudo().search([("lead_id", "=", lead.id)])

    def rule_log(self, rule):
        return (
            self.env["ir.logging"]
            .sudo()
            .search([("path", "=", f"base_automation({rule.id})")], order="id")
        )

    def run_outbox(self):
        self.env["pipemail.outbox"].sudo()._cron_send_outbox()
