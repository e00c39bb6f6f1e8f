"""Group email drafts: saved as the wizard is written, reopened exactly as left (the
records re-checked as the writer), gone once sent or discarded, and nobody's but
their writer's, over the ORM as any RPC caller would. No mail server needed."""

import json
from datetime import timedelta

from odoo import Command, fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged

from ..wizards.pipemail_group_email_wizard_draft import GROUP_DRAFT_FIELDS
from .group_email_common import company_user


@tagged("post_install", "-at_install")
class TestGroupEmailDrafts(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()

        def user(login, groups):
            return company_user(cls.env, login, groups)

        # the writer sees only their own leads; the colleague sees every lead
        cls.writer = user("gd_writer", "sales_team.group_sale_salesman")
        cls.colleague = user("gd_colleague", "sales_team.group_sale_salesman_all_leads")
        Account = cls.env["pipemail.account"]
        cls.accounts = {
            who: Account.create(
                {
                    "name": who.name,
                    "email": who.email,
                    "imap_host": "127.0.0.1",
                    "smtp_host": "127.0.0.1",
                    "user_id": who.id,
                }
            )
            for who in (cls.writer, cls.colleague)
        }
        cls.partners = cls.env["res.partner"].create(
            [{"name": f"Buyer {i}", "email": f"buyer{i}@drafts-test.example"} for i in range(3)]
        )
        cls.leads = cls.env["crm.lead"].create(
            [
                {"name": f"Deal {i}", "partner_id": partner.id, "user_id": cls.writer.id}
                for i, partner in enumerate(cls.partners)
            ]
        )
        lead_model = cls.env.ref("crm.model_crm_lead").id
        cls.template = cls.env["mail.template"].create(
            {
                "name": "Deal news",
                "model_id": lead_model,
                "subject": "About {{ object.name }}",
                "body_html": "<p>Hello</p>",
            }
        )
        cls.followup = cls.env["mail.template"].create(
            {
                "name": "Deal nudge",
                "model_id": lead_model,
                "subject": "Re: {{ object.name }}",
                "body_html": "<p>Any news?</p>",
            }
        )

    def wizard(self, leads=None, **vals):
        leads = self.leads if leads is None else leads
        Wizard = (
            self.env["pipemail.group.email.wizard"]
            .with_user(self.writer)
            .with_context(active_model="crm.lead", active_ids=leads.ids)
        )
        vals.setdefault("subject", "News for {{ object.name }}")
        vals.setdefault("body", "<p>Our spring offer is out.</p>")
        return Wizard.create(vals)

    def upload(self, wizard, name="offer.pdf"):
        """A file as the browser uploads it into the saved wizard."""
        return (
            self.env["ir.attachment"]
            .with_user(self.writer)
            .create(
                {
                    "name": name,
                    "raw": b"%PDF offer",
                    "res_model": wizard._name,
                    "res_id": wizard.id or 0,
                }
            )
        )

    def draft_of(self, wizard):
        result = wizard.action_save_draft()
        return self.env["pipemail.draft"].with_user(self.writer).browse(result["draft_id"])

    def written(self):
        """A wizard with every option set, its file uploaded, saved as a draft."""
        when = fields.Datetime.now().replace(microsecond=0) + timedelta(days=2)
        wizard = self.wizard(
            template_id=self.template.id,
            tracking=True,
            followup_template_id=self.followup.id,
            followup_days=3,
            followup_business_days=True,
            followup_steps=2,
            schedule=True,
            scheduled_date=when,
        )
        wizard.write({"subject": "Spring for {{ object.name }}", "body": "<p>Spring!</p>"})
        wizard.write({"attachment_ids": [Command.set(self.upload(wizard).ids)]})
        return wizard, self.draft_of(wizard)

    # ------------------------------------------------------------------ saved, reopened

    def test_saved_as_written_and_reopened_as_left(self):
        wizard, draft = self.written()
        self.assertEqual(wizard.draft_id, draft)
        self.assertEqual(draft.kind, "group")
        self.assertEqual(draft.selected_count, 3)
        # written to many: never copied to the writer's Drafts folder on the server
        self.assertFalse(self.env["pipemail.draft.copy"].search([("draft_id", "=", draft.id)]))
        wizard.write({"subject": "Spring, v2"})
        wizard.action_save_draft()
        drafts = self.env["pipemail.draft"].with_user(self.writer).search([("kind", "=", "group")])
        self.assertEqual(drafts, draft, "one draft per wizard, saved over")
        self.assertEqual(draft.subject, "Spring, v2")
        [upload] = draft.attachment_ids
        self.assertEqual((upload.res_model, upload.res_id), ("pipemail.draft", draft.id))
        # a file chosen before the wizard was first saved comes with no id: kept too
        early = self.upload(wizard.browse(), "early.pdf")
        wizard.write({"attachment_ids": [Command.link(early.id)]})
        wizard.action_save_draft()
        self.assertEqual((early.res_model, early.res_id), ("pipemail.draft", draft.id))
        wizard.write({"attachment_ids": [Command.unlink(early.id)]})
        wizard.action_save_draft()
        self.assertEqual(draft.attachment_ids, upload, "a file taken out is out of the draft")

        # the wizard is gone (transient, another browser, a restart): the file is kept
        kept = GROUP_DRAFT_FIELDS + ("scheduled_date", "attachment_ids")
        self.assertIn("followup_steps", kept)
        left = {name: wizard[name] for name in kept}
        wizard.sudo().unlink()
        self.assertTrue(upload.exists())

        action = draft.action_open()
        self.assertEqual(action["res_model"], "pipemail.group.email.wizard")
        again = (
            self.env["pipemail.group.email.wizard"].with_user(self.writer).browse(action["res_id"])
        )
        self.assertEqual(again.create_uid, self.writer, "created as the writer")
        self.assertEqual(again.draft_id, draft)
        self.assertFalse(again.draft_notice)
        for name, value in left.items():
            self.assertEqual(again[name], value, name)
        self.assertEqual(json.loads(again.source_ids), self.leads.ids)
        self.assertEqual(again.preview_subject, "Spring, v2")
        self.assertEqual(again.included_count, 3)
        # it keeps saving into the same draft
        again.write({"subject": "Spring, v3"})
        self.assertEqual(again.action_save_draft()["draft_id"], draft.id)
        self.assertEqual(draft.subject, "Spring, v3")

    def test_reopened_without_what_the_writer_can_no_longer_read(self):
        wizard, draft = self.written()
        # one deal went to the colleague, the follow-up template was deleted
        self.leads[1].sudo().user_id = self.colleague
        self.followup.sudo().unlink()
        action = draft.action_open()
        again = (
            self.env["pipemail.group.email.wizard"].with_user(self.writer).browse(action["res_id"])
        )
        self.assertEqual(json.loads(again.source_ids), [self.leads[0].id, self.leads[2].id])
        self.assertIn("1 of the records selected", again.draft_notice)
        self.assertFalse(again.followup_template_id)
        self.assertEqual(again.subject, draft.subject)
        # nothing left to write to: refused
        (self.leads[0] | self.leads[2]).sudo().user_id = self.colleague
        with self.assertRaisesRegex(UserError, "None of the records"):
            draft.action_open()

    def test_reopened_from_another_mailbox_no_longer_allowed(self):
        wizard, draft = self.written()
        self.accounts[self.writer].sudo().user_id = self.colleague
        shared = self.env["pipemail.account"].create(
            {
                "name": "Writer, new mailbox",
                "email": "gd_writer2@ourco.example",
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "user_id": self.writer.id,
            }
        )
        again = (
            self.env["pipemail.group.email.wizard"]
            .with_user(self.writer)
            .browse(draft.action_open()["res_id"])
        )
        self.assertEqual(again.account_id, shared)
        self.assertIn("mailbox", again.draft_notice)

    # ------------------------------------------------------------------ gone

    def test_send_deletes_the_draft(self):
        wizard, draft = self.written()
        upload = draft.attachment_ids
        action = wizard.action_send()
        group = self.env["pipemail.group.email"].with_user(self.writer).browse(action["res_id"])
        self.assertFalse(draft.exists())
        self.assertFalse(upload.exists())
        self.assertEqual(group.attachment_ids.mapped("raw"), [b"%PDF offer"], "copied first")
        self.assertEqual(group.subject, "Spring for {{ object.name }}")
        self.assertEqual(group.followup_steps, 2)

    def test_discard_deletes_the_draft(self):
        wizard, draft = self.written()
        upload = draft.attachment_ids
        self.assertEqual(wizard.action_discard_draft()["type"], "ir.actions.act_window_close")
        self.assertFalse(draft.exists())
        self.assertFalse(upload.exists())
        # from the Drafts list
        draft = self.draft_of(self.wizard())
        draft.action_discard()
        self.assertFalse(draft.exists())

    # ------------------------------------------------------------------ nobody else's

    def test_another_salesperson_cannot_touch_it(self):
        wizard, draft = self.written()
        Draft = self.env["pipemail.draft"].with_user(self.colleague)
        self.assertFalse(Draft.search([]))
        theirs = draft.with_user(self.colleague)
        with self.assertRaises(AccessError):
            theirs.read(["subject", "source_ids"])
        for button in ("action_open", "action_discard"):
            with self.assertRaises(AccessError):
                getattr(theirs, button)()
        with self.assertRaises(AccessError):
            theirs.write({"subject": "Mine now"})
        # nor through the writer's open wizard
        for method in ("action_save_draft", "action_discard_draft", "action_send"):
            with self.assertRaises(AccessError):
                getattr(wizard.with_user(self.colleague), method)()
        with self.assertRaises(AccessError):
            wizard.with_user(self.colleague).read(["subject"])
        with self.assertRaises(AccessError):
            draft.attachment_ids.with_user(self.colleague).read(["raw"])
        self.assertTrue(draft.exists())
        self.assertEqual(draft.sudo().subject, "Spring for {{ object.name }}")

    def test_portal_user_and_follow_up_picks(self):
        """A portal user reads no draft and opens no wizard; the follow-up template and
        numbers a salesperson picks over RPC are checked before anything is sent."""
        _wizard, draft = self.written()
        portal = company_user(self.env, "gd_portal", "base.group_portal")
        with self.assertRaises(AccessError):
            self.env["pipemail.draft"].with_user(portal).search([])
        with self.assertRaises(AccessError):
            draft.with_user(portal).read(["subject"])
        with self.assertRaises(AccessError):
            self.env["pipemail.group.email.wizard"].with_user(portal).with_context(
                active_model="crm.lead", active_ids=self.leads.ids
            ).create({"subject": "x"})
        partner_template = self.env["mail.template"].create(
            {"name": "Contact news", "model_id": self.env.ref("base.model_res_partner").id}
        )
        for values in (
            {"followup_template_id": partner_template.id},
            {"followup_template_id": self.followup.id, "followup_steps": 11},
            {"followup_template_id": self.followup.id, "followup_days": 0},
        ):
            with self.assertRaises(UserError, msg=str(values)):
                self.wizard(**values).action_send()
        self.assertFalse(self.env["pipemail.group.email"].sudo().search([]))

    def test_internal_fields_not_writable(self):
        wizard, draft = self.written()
        with self.assertRaises(AccessError):
            draft.write({"subject": "by hand"})
        other = self.draft_of(self.wizard(self.leads[:1]))
        with self.assertRaises(AccessError):
            wizard.write({"draft_id": other.id})
        with self.assertRaises(AccessError):
            wizard.write({"draft_notice": "All clear"})
        with self.assertRaises(AccessError):
            self.env["pipemail.draft"].with_user(self.writer).create(
                {"kind": "group", "user_id": self.writer.id, "source_model": "crm.lead"}
            )
