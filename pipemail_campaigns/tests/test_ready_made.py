"""The ready-made email automations: inactive until chosen, then fired by Odoo's own
triggers."""

from odoo.tests import tagged

from .automation_common import PipemailAutomationCase

READY = ("welcome", "no_reply", "stage", "closing_reminder", "thank_you")


@tagged("post_install", "-at_install")
class TestReadyMade(PipemailAutomationCase):
    def rule(self, name):
        return self.env.ref(f"pipemail_campaigns.automation_{name}")

    def test_inactive_until_chosen_then_sent(self):
        rules = [self.rule(name) for name in READY]
        self.assertEqual({r.pipemail_category for r in rules}, {"email"})
        self.assertFalse(any(r.active for r in rules), "nothing is sent until chosen")
        self.assertEqual(
            {r.action_server_ids.state for r in rules}, {"pipemail_send"}, "one action each"
        )
        lead = self.make_lead()
        self.assertFalse(self.outboxes(lead))

        self.rule("welcome").active = True
        self.rule("no_reply").active = True
        self.rule("thank_you").active = True
        lead = self.make_lead(name="Ten desks")
        outboxes = self.outboxes(lead)
        self.assertEqual(
            sorted(outboxes.mapped("subject")), ["About Ten desks", "Ten desks"], "welcome, intro"
        )
        intro = outboxes.filtered(lambda o: o.subject == "About Ten desks")
        followup = self.env["pipemail.followup"].sudo().search([("outbox_id", "=", intro.id)])
        self.assertEqual((followup.days, followup.state), (3, "pending"))
        lead.with_user(self.sender).write({"stage_id": self.stage_won.id})
        self.assertIn("Thank you", self.outboxes(lead).mapped("subject"))
        self.assertEqual((followup.state, followup.cancel_reason), ("cancelled", "closed"))
        self.run_outbox()
        received = self.received(3)
        self.assertEqual(sorted(m.rcpt_tos[0] for m in received), ["carla@customer.example"] * 3)
