"""A group email draft in a browser (Odoo tours): begun from the opportunities list,
saved as typed, reopened from Drafts in another session, deleted there."""

import json

from odoo.tests import HttpCase, tagged

from .group_email_common import company_user


@tagged("post_install", "-at_install")
class TestGroupEmailDraftTours(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = company_user(cls.env, "gd_tina", "sales_team.group_sale_salesman")
        cls.env["pipemail.account"].create(
            {
                "name": "Tina",
                "email": cls.user.email,
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "user_id": cls.user.id,
            }
        )
        partners = cls.env["res.partner"].create(
            [{"name": f"Tour buyer {n}", "email": f"buyer{n}@tour.example"} for n in "AB"]
        )
        cls.leads = cls.env["crm.lead"].create(
            [
                {
                    "name": f"Tour deal {n}",
                    "type": "opportunity",
                    "partner_id": partner.id,
                    "user_id": cls.user.id,
                }
                for n, partner in zip("AB", partners, strict=True)
            ]
        )

    def test_group_draft_reopened_in_another_session(self):
        action = self.env.ref("crm.crm_lead_action_pipeline")
        self.start_tour(
            f"/odoo/action-{action.id}?view_type=list",
            "pipemail_group_draft_write_tour",
            login="gd_tina",
        )
        draft = self.env["pipemail.draft"].search([("user_id", "=", self.user.id)])
        self.assertEqual((draft.kind, draft.subject), ("group", "Tour group draft"))
        self.assertEqual(draft.source_model, "crm.lead")
        self.assertEqual(sorted(json.loads(draft.source_ids)), sorted(self.leads.ids))
        self.start_tour("/odoo/sales-drafts", "pipemail_group_draft_reopen_tour", login="gd_tina")
        self.assertFalse(draft.exists(), "deleted from the reopened wizard")
