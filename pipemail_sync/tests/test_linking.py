from odoo.tests import tagged

from .common import PipemailDovecotCase, make_mail


@tagged("post_install", "-at_install")
class TestLinking(PipemailDovecotCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.acme = Partner.create(
            {"name": "Acme Corp", "is_company": True, "email": "info@acme.example"}
        )
        cls.bob = Partner.create(
            {"name": "Bob Buyer", "email": "bob@acme.example", "parent_id": cls.acme.id}
        )
        cls.gina = Partner.create({"name": "Gina Gmail", "email": "gina@gmail.com"})

    def _thread_of(self, account, message_id):
        return self.message(account, message_id).thread_id

    def test_single_open_lead_is_linked_with_reason(self):
        lead = self.env["crm.lead"].create({"name": "40 chairs", "partner_id": self.bob.id})
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Chairs", message_id="<c1@acme.example>"))
        self.sync(account)
        thread = self._thread_of(account, "c1@acme.example")
        self.assertEqual(thread.lead_id, lead)
        self.assertEqual(thread.link_mode, "auto")
        self.assertIn("40 chairs", thread.link_reason)
        # new messages follow their conversation
        self.deliver(
            login,
            make_mail(
                subject="Re: Chairs",
                message_id="<c2@acme.example>",
                in_reply_to="<c1@acme.example>",
            ),
        )
        self.sync(account)
        self.assertEqual(self._thread_of(account, "c2@acme.example"), thread)
        self.assertEqual(thread.message_count, 2)

    def test_company_domain_finds_company_leads(self):
        """An unknown colleague of a known company: matched by the company's domain."""
        lead = self.env["crm.lead"].create(
            {"name": "Acme framework deal", "partner_id": self.acme.id}
        )
        login, account = self.new_mailbox()
        self.deliver(
            login,
            make_mail(sender="New Person <newbie@acme.example>", message_id="<d1@acme.example>"),
        )
        self.sync(account)
        self.assertEqual(self._thread_of(account, "d1@acme.example").lead_id, lead)

    def test_freemail_domain_never_matches_a_company(self):
        self.env["crm.lead"].create({"name": "Gina's deal", "partner_id": self.gina.id})
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(sender="stranger@gmail.com", message_id="<g1@gmail.com>"))
        self.sync(account)
        thread = self._thread_of(account, "g1@gmail.com")
        self.assertFalse(thread.lead_id)
        self.assertFalse(thread.suggestion_ids)

    def test_several_close_candidates_are_suggested_then_chosen(self):
        first = self.env["crm.lead"].create({"name": "Tables", "partner_id": self.bob.id})
        second = self.env["crm.lead"].create({"name": "Lamps", "partner_id": self.bob.id})
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Hello", message_id="<s1@acme.example>"))
        self.sync(account)
        thread = self._thread_of(account, "s1@acme.example")
        self.assertFalse(thread.lead_id)
        self.assertEqual(thread.link_mode, "suggested")
        self.assertEqual(set(thread.suggestion_ids.mapped("res_id")), {first.id, second.id})
        self.assertTrue(all(s.reason for s in thread.suggestion_ids))
        suggestion = thread.suggestion_ids.filtered(lambda s: s.res_id == second.id)
        suggestion.with_user(self.sally).action_accept()
        self.assertEqual(thread.lead_id, second)
        self.assertEqual(thread.link_mode, "manual")
        self.assertFalse(thread.suggestion_ids)

    def test_clearly_ahead_candidate_is_linked(self):
        strong = self.env["crm.lead"].create(
            {"name": "Office chairs order", "partner_id": self.bob.id, "probability": 90}
        )
        self.env["crm.lead"].create(
            {"name": "Old idea", "partner_id": self.acme.id, "probability": 5}
        )
        login, account = self.new_mailbox()
        self.deliver(
            login, make_mail(subject="Office chairs order", message_id="<a1@acme.example>")
        )
        self.sync(account)
        self.assertEqual(self._thread_of(account, "a1@acme.example").lead_id, strong)

    def test_manual_unlink_sticks(self):
        self.env["crm.lead"].create({"name": "Chairs", "partner_id": self.bob.id})
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Chairs", message_id="<u1@acme.example>"))
        self.sync(account)
        thread = self._thread_of(account, "u1@acme.example")
        self.assertTrue(thread.lead_id)
        thread.with_user(self.sally).action_unlink()
        self.assertFalse(thread.lead_id)
        self.deliver(
            login,
            make_mail(
                subject="Re: Chairs",
                message_id="<u2@acme.example>",
                in_reply_to="<u1@acme.example>",
            ),
        )
        self.sync(account)
        self.assertFalse(thread.lead_id, "a conversation unlinked by hand stays unlinked")
        self.assertEqual(thread.link_mode, "manual")
        # and a new lead for the contact does not take it either
        self.env["crm.lead"].create({"name": "Another", "partner_id": self.bob.id})
        self.assertFalse(thread.lead_id)

    def test_manual_link_wins_over_automatic(self):
        auto_lead = self.env["crm.lead"].create({"name": "Chairs", "partner_id": self.bob.id})
        chosen = self.env["project.project"].create({"name": "Install at Acme"})
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Chairs", message_id="<m1@acme.example>"))
        self.sync(account)
        thread = self._thread_of(account, "m1@acme.example")
        self.assertEqual(thread.lead_id, auto_lead)
        thread.with_user(self.sally).action_unlink()
        thread.with_user(self.sally).action_link(
            {"res_model": "project.project", "res_id": chosen.id}
        )
        self.assertEqual(thread.project_id, chosen)
        self.deliver(
            login,
            make_mail(
                subject="Re: Chairs",
                message_id="<m2@acme.example>",
                in_reply_to="<m1@acme.example>",
            ),
        )
        self.sync(account)
        self.assertEqual(thread.project_id, chosen)
        self.assertFalse(thread.lead_id)
        self.assertEqual(chosen.pipemail_thread_count, 1)

    def test_projects_of_the_company_are_candidates(self):
        project = self.env["project.project"].create(
            {"name": "Acme rollout", "partner_id": self.acme.id}
        )
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Rollout", message_id="<p1@acme.example>"))
        self.sync(account)
        self.assertEqual(self._thread_of(account, "p1@acme.example").project_id, project)

    def test_retroactive_link_when_lead_created(self):
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Interested", message_id="<r1@acme.example>"))
        self.sync(account)
        thread = self._thread_of(account, "r1@acme.example")
        self.assertFalse(thread.lead_id)
        lead = (
            self.env["crm.lead"]
            .with_user(self.sally)
            .create({"name": "Bob is interested", "partner_id": self.bob.id})
        )
        self.assertEqual(thread.lead_id, lead)
        self.assertEqual(thread.link_mode, "auto")
        self.assertEqual(lead.pipemail_thread_count, 1)
        # the contact's conversations show on the contact and its company too
        self.assertEqual(self.bob.pipemail_thread_count, 1)
        self.assertEqual(self.acme.pipemail_thread_count, 1)

    def test_retroactive_link_when_contact_set_later(self):
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Later", message_id="<l1@acme.example>"))
        self.sync(account)
        lead = self.env["crm.lead"].create({"name": "No contact yet"})
        thread = self._thread_of(account, "l1@acme.example")
        self.assertFalse(thread.lead_id)
        lead.partner_id = self.bob
        self.assertEqual(thread.lead_id, lead)

    def test_automated_mail_is_never_linked(self):
        self.env["crm.lead"].create({"name": "Chairs", "partner_id": self.bob.id})
        login, account = self.new_mailbox()
        for n, headers in enumerate(
            [
                {"List-Unsubscribe": "<mailto:unsub@acme.example>"},
                {"Precedence": "bulk"},
                {"Auto-Submitted": "auto-replied"},
            ]
        ):
            self.deliver(
                login,
                make_mail(subject=f"News {n}", message_id=f"<n{n}@acme.example>", headers=headers),
            )
        self.sync(account)
        for n in range(3):
            thread = self._thread_of(account, f"n{n}@acme.example")
            self.assertTrue(thread.is_automated)
            self.assertFalse(thread.lead_id)
        # nor retroactively
        self.env["crm.lead"].create({"name": "More chairs", "partner_id": self.bob.id})
        self.assertFalse(self._thread_of(account, "n0@acme.example").lead_id)
        # a person may still link it by hand
        thread = self._thread_of(account, "n0@acme.example")
        lead = self.env["crm.lead"].create({"name": "Newsletter reply"})
        thread.with_user(self.sally).action_link(lead)
        self.assertEqual(thread.lead_id, lead)

    def test_create_lead_from_conversation(self):
        login, account = self.new_mailbox()
        self.deliver(
            login,
            make_mail(
                subject="Need 12 desks",
                sender="Dora <dora@newco.example>",
                message_id="<new1@newco.example>",
                body="Could you quote 12 desks?",
            ),
        )
        self.sync(account)
        thread = self._thread_of(account, "new1@newco.example")
        action = thread.with_user(self.sally).action_create_lead()
        lead = self.env["crm.lead"].browse(action["res_id"])
        self.assertEqual(lead.name, "Need 12 desks")
        self.assertEqual(lead.email_from, "Dora <dora@newco.example>")
        self.assertEqual(lead.user_id, self.sally)
        self.assertIn("12 desks", str(lead.description))
        self.assertEqual(thread.lead_id, lead)
        self.assertEqual(thread.link_mode, "manual")

    def test_never_links_across_companies(self):
        other = self.env["res.company"].create({"name": "Other Co (linking)"})
        theirs = self.env["crm.lead"].create(
            {"name": "Their chairs", "partner_id": self.bob.id, "company_id": other.id}
        )
        login, account = self.new_mailbox()
        self.deliver(login, make_mail(subject="Chairs", message_id="<xc1@acme.example>"))
        self.sync(account)
        thread = self._thread_of(account, "xc1@acme.example")
        self.assertFalse(thread.lead_id)
        self.assertNotIn(theirs.id, thread.suggestion_ids.mapped("res_id"))
        # nor retroactively
        self.env["crm.lead"].create(
            {"name": "More of theirs", "partner_id": self.bob.id, "company_id": other.id}
        )
        self.assertFalse(thread.lead_id)
