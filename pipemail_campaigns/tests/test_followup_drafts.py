"""The composer's "Follow up if no reply" options kept in its 1:1 draft: reopened as
left (a new composer from the stored draft, as after a logout or in another
browser), sent from there with them, checked as the writer at each step, and nobody
else's to read or change."""

from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from ..wizards.pipemail_compose_followup import FOLLOWUP_FIELDS
from .automation_common import PipemailAutomationCase

OPTIONS = {"followup_days": 5, "followup_business_days": True, "followup_steps": 2}


@tagged("post_install", "-at_install")
class TestFollowupDrafts(PipemailAutomationCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nudge = cls.env["mail.template"].create(
            {
                "name": "Draft nudge",
                "model_id": cls.lead_model.id,
                "body_html": "<p>Any news about <t t-out='object.name'/>?</p>",
            }
        )
        cls.partner_template = cls.env["mail.template"].create(
            {"name": "Contact news", "model_id": cls.env.ref("base.model_res_partner").id}
        )
        # sees every lead: only the drafts' rule stops them
        cls.colleague = new_test_user(
            cls.env, "pm_fd_colleague", groups="sales_team.group_sale_salesman_all_leads"
        )
        cls.portal = new_test_user(cls.env, "pm_fd_portal", groups="base.group_portal")

    def save_draft(self, lead, **vals):
        values = {
            "subject": "Chairs",
            "body": "<p>Our offer</p>",
            "followup_template_id": self.nudge.id,
            **OPTIONS,
        }
        values.update(vals)
        composer = self.compose(res_model="crm.lead", res_id=lead.id).create(values)
        result = composer.action_save_draft()
        return composer, self.env["pipemail.draft"].with_user(self.sender).browse(
            result["draft_id"]
        )

    def reopen(self, draft):
        action = draft.action_open()
        return self.env["pipemail.compose"].with_user(self.sender).browse(action["res_id"])

    def test_reopened_as_left_and_sent_with_them(self):
        self.assertLessEqual(
            FOLLOWUP_FIELDS, set(self.env["pipemail.compose"]._pipemail_draft_fields())
        )
        lead = self.make_lead()
        composer, draft = self.save_draft(lead)
        self.assertEqual(draft.followup_template_id, self.nudge)
        self.assertEqual(draft.kind, "single")
        # changed in the composer, saved over
        composer.write({"followup_days": 4})
        composer.action_save_draft()
        self.assertEqual(draft.followup_days, 4)

        # after a logout, in another browser: a new composer from the stored draft
        again = self.reopen(draft)
        self.assertNotEqual(again, composer)
        self.assertEqual(again.draft_id, draft)
        for name in sorted(FOLLOWUP_FIELDS):
            self.assertEqual(again[name], composer[name], name)
        self.assertEqual(
            (again.followup_days, again.followup_business_days, again.followup_steps),
            (4, True, 2),
        )

        # sent from there: the follow-up is scheduled as chosen, the draft is gone
        again.action_send()
        outbox = again.outbox_id.sudo()
        self.assertEqual(outbox.state, "sent", outbox.last_error)
        self.received(1)
        followup = self.env["pipemail.followup"].with_user(self.sender).search([])
        self.assertEqual(followup.outbox_id, outbox)
        self.assertEqual(
            (followup.template_id, followup.days, followup.business_days, followup.steps_total),
            (self.nudge, 4, True, 2),
        )
        self.assertFalse(draft.exists())

    def test_draft_without_follow_up_stays_without(self):
        lead = self.make_lead()
        composer, draft = self.save_draft(lead, followup_template_id=False)
        again = self.reopen(draft)
        self.assertFalse(again.followup_template_id)
        again.action_send()
        self.received(1)
        self.assertFalse(self.env["pipemail.followup"].with_user(self.sender).search([]))

    def test_options_checked_as_the_writer(self):
        lead = self.make_lead()
        Draft = self.env["pipemail.draft"].with_user(self.sender)
        # saving refuses what Send would refuse: nothing is kept
        for values in (
            {"followup_template_id": self.partner_template.id},
            {"followup_days": 0},
            {"followup_steps": 0},
            {"followup_steps": 11},
        ):
            with self.assertRaises(UserError, msg=str(values)):
                self.save_draft(lead, **values)
            self.assertFalse(Draft.search([]), str(values))

        # a draft that no longer holds (its template now renders contacts, or numbers
        # stored before these checks) is refused on reopening and on Send
        _composer, draft = self.save_draft(lead)
        template = self.nudge.copy()
        draft.sudo().followup_template_id = template
        template.model_id = self.env.ref("base.model_res_partner")
        with self.assertRaises(UserError):
            draft.action_open()
        for values in ({"followup_days": -1}, {"followup_steps": 50}):
            draft.sudo().write({"followup_template_id": self.nudge.id, **OPTIONS, **values})
            with self.assertRaises(UserError, msg=str(values)):
                draft.action_open()
        draft.sudo().write({"followup_template_id": self.nudge.id, **OPTIONS})
        again = self.reopen(draft)
        again.followup_steps = 11  # over RPC, after reopening
        with self.assertRaises(UserError):
            again.action_send()
        self.assertEqual(self.sink.attempts, 0)
        self.assertFalse(self.env["pipemail.followup"].with_user(self.sender).search([]))

    def test_nobody_else_reads_or_writes_the_options(self):
        lead = self.make_lead()
        composer, draft = self.save_draft(lead)
        names = sorted(FOLLOWUP_FIELDS)
        for user in (self.colleague, self.portal):
            other = self.env["pipemail.draft"].with_user(user)
            theirs = other.browse(draft.id)
            with self.assertRaises(AccessError, msg=user.login):
                theirs.read(names)
            with self.assertRaises(AccessError, msg=user.login):
                theirs.write({"followup_days": 9, "followup_template_id": False})
            with self.assertRaises(AccessError, msg=user.login):
                theirs.action_open()
            with self.assertRaises(AccessError, msg=user.login):
                composer.with_user(user).write({"followup_steps": 9})
            with self.assertRaises(AccessError, msg=user.login):
                composer.with_user(user).action_save_draft()
            if not user.share:
                self.assertFalse(other.search([("followup_template_id", "!=", False)]))
        # the writer reads them, but only the checked composer writes them
        mine = draft.with_user(self.sender)
        self.assertEqual(mine.read(names)[0]["followup_days"], OPTIONS["followup_days"])
        with self.assertRaises(AccessError):
            mine.write({"followup_days": 0})
        draft.invalidate_recordset()
        self.assertEqual(
            (draft.sudo().followup_template_id, draft.sudo().followup_days),
            (self.nudge, OPTIONS["followup_days"]),
        )

    def test_undo_and_edit_give_the_options_back(self):
        """Undo send and Edit on a scheduled email reopen the composer with its follow-up
        options; the taken-back email's follow-up is cancelled as the user's, and the
        email sent again gets its own."""
        self.env["ir.config_parameter"].sudo().set_param("pipemail.undo_send_seconds", "10")
        Followup = self.env["pipemail.followup"].sudo()
        lead = self.make_lead()
        composer = self.compose(res_model="crm.lead", res_id=lead.id).create(
            {
                "subject": "Chairs",
                "body": "<p>Our offer</p>",
                "followup_template_id": self.nudge.id,
                **OPTIONS,
            }
        )
        composer.action_send_undoable()
        first = composer.outbox_id.sudo()
        taken_back = Followup.search([("outbox_id", "=", first.id)])
        self.assertEqual(taken_back.state, "pending")

        action = first.with_user(self.sender).action_undo_send()
        again = self.env["pipemail.compose"].with_user(self.sender).browse(action["res_id"])
        self.assertEqual(
            (taken_back.state, taken_back.cancel_reason, first.state),
            ("cancelled", "user", "cancelled"),
        )
        for name, value in {"followup_template_id": self.nudge, **OPTIONS}.items():
            self.assertEqual(again[name], value, name)
            self.assertEqual(again.draft_id.sudo()[name], value, f"draft {name}")

        # scheduled for tomorrow, then edited: the same again
        again.write({"scheduled_at": fields.Datetime.now() + timedelta(days=1)})
        again.action_send_later()
        second = again.outbox_id.sudo()
        scheduled = Followup.search([("outbox_id", "=", second.id)])
        self.assertEqual(scheduled.state, "pending")
        action = second.with_user(self.sender).action_edit_scheduled()
        third = self.env["pipemail.compose"].with_user(self.sender).browse(action["res_id"])
        self.assertEqual((scheduled.state, scheduled.cancel_reason), ("cancelled", "user"))
        self.assertEqual(third.followup_template_id, self.nudge)
        self.assertEqual(third.followup_steps, OPTIONS["followup_steps"])

        # sent at once this time: one pending follow-up, on the email that left
        self.env["ir.config_parameter"].sudo().set_param("pipemail.undo_send_seconds", "0")
        third.write({"scheduled_at": False})
        third.action_send_undoable()
        sent = third.outbox_id.sudo()
        self.assertEqual(sent.state, "sent", sent.last_error)
        pending = Followup.search([("state", "=", "pending"), ("user_id", "=", self.sender.id)])
        self.assertEqual(pending.outbox_id, sent)
        self.assertEqual((pending.days, pending.steps_total), (5, 2))
