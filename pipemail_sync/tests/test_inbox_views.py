"""The Sales Inbox and the Emails tabs: views load for a salesperson, filters and
searches do what their labels say, the inbox holds only one's own mailboxes, and the
link wizard / suggestions link in one click."""

from lxml import etree

from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged
from odoo.tools.safe_eval import safe_eval

from .visibility_common import PipemailWorldMixin


@tagged("post_install", "-at_install")
class TestInboxViews(PipemailWorldMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pipemail_world()
        cls.inbox_action = cls.env.ref("pipemail_sync.pipemail_thread_action_inbox")

    def _inbox(self, user, extra=()):
        Thread = self.env(user=user)["pipemail.thread"]
        domain = safe_eval(self.inbox_action.domain, {"uid": user.id})
        return Thread.search(domain + list(extra))

    def test_views_load_for_a_salesperson(self):
        env = self.env(user=self.outsider)
        for model, types in (
            ("pipemail.thread", ["list", "form", "search"]),
            ("pipemail.message", ["list", "form", "search"]),
            ("pipemail.account", ["list", "form", "search"]),
            ("pipemail.link.wizard", ["form"]),
        ):
            views = env[model].get_views([(False, t) for t in types])
            self.assertEqual(set(views["views"]), set(types), model)
        for model, xmlid in (
            ("crm.lead", "crm.crm_lead_view_form"),
            ("project.project", "project.edit_project"),
            ("res.partner", "base.view_partner_form"),
        ):
            arch = env[model].get_view(self.env.ref(xmlid).id, "form")["arch"]
            tree = etree.fromstring(arch)
            self.assertTrue(tree.xpath("//page[@name='pipemail_emails']"), model)
            self.assertTrue(
                tree.xpath("//button[@name='action_view_pipemail_threads']"),
                f"{model} smart button",
            )
        # the inbox reader renders bodies with the sandboxed widget, never a raw html field
        form = etree.fromstring(env["pipemail.thread"].get_view(view_type="form")["arch"])
        self.assertEqual(
            form.xpath("//field[@name='message_ids']/@widget"), ["pipemail_conversation"]
        )

    def test_inbox_holds_only_own_mailboxes(self):
        held_by_teammate = {"t_shared", "t_team", "t_meta"}
        self.assertEqual(
            set(self._inbox(self.teammate).ids),
            {self.threads[n].id for n in held_by_teammate},
        )
        owner_expected = {t.id for n, t in self.threads.items() if n != "c2_shared"}
        self.assertEqual(set(self._inbox(self.owner).ids), owner_expected)
        # shared conversations the outsider reads through the lead are not in their inbox
        self.assertFalse(self._inbox(self.outsider))
        self.assertFalse(self._inbox(self.manager))

    def test_filters_and_searches(self):
        owner = self.owner
        Thread = self.env(user=owner)["pipemail.thread"]
        self.threads["p_shared"].with_user(owner).action_mark_read()
        search = etree.fromstring(Thread.get_view(view_type="search")["arch"])
        filters = {
            f.get("name"): safe_eval(f.get("domain"), {"uid": owner.id})
            for f in search.xpath("//filter[@domain]")
        }
        for domain in filters.values():
            # every filter runs for a salesperson
            self._inbox(owner, domain)
        held = set(self._inbox(owner).ids)
        self.assertNotIn(self.threads["p_shared"].id, self._inbox(owner, filters["unread"]).ids)
        self.assertIn(self.threads["p_shared"].id, self._inbox(owner, filters["read"]).ids)
        linked = set(self._inbox(owner, filters["linked"]).ids)
        unlinked = set(self._inbox(owner, filters["unlinked"]).ids)
        self.assertEqual(linked | unlinked, held)
        self.assertIn(self.threads["p_unlinked"].id, unlinked)
        self.assertIn(self.threads["p_project"].id, linked)
        self.assertEqual(len(self._inbox(owner, filters["with_attachments"])), len(held))
        archived = self.threads["p_unlinked"]
        archived.with_user(owner).action_archive_remote()
        self.assertNotIn(archived.id, self._inbox(owner).ids)
        self.assertEqual(self._inbox(owner, filters["archived"]), archived)
        held = set(self._inbox(owner).ids)
        # search by person, subject, body, label, mailbox
        fields = {f.get("name"): f for f in search.xpath("//field")}
        person = safe_eval(fields["participant_emails"].get("filter_domain"), {"self": "carla"})
        self.assertEqual(set(self._inbox(owner, person).ids), held)
        self.assertEqual(
            self._inbox(owner, [("subject", "ilike", "CANARYP_META")]), self.threads["p_meta"]
        )
        self.assertEqual(
            self._inbox(owner, [("message_body", "ilike", "CANARYT_TEAMBODY")]),
            self.threads["t_team"],
        )
        self.assertEqual(
            self._inbox(owner, [("label_ids", "ilike", "CANARYT_SHAREDLABEL")]),
            self.threads["t_shared"],
        )
        self.assertEqual(len(self._inbox(owner, [("account_id", "=", self.team.id)])), 4)

    def test_group_by_account_and_label(self):
        Thread = self.env(user=self.owner)["pipemail.thread"]
        domain = safe_eval(self.inbox_action.domain, {"uid": self.owner.id})
        by_account = Thread.web_read_group(domain, ["account_id"], ["account_id"])["groups"]
        self.assertEqual(
            {g["account_id"][0]: g["account_id_count"] for g in by_account},
            {self.personal.id: 6, self.team.id: 4},
        )
        by_label = Thread.web_read_group(domain, ["label_ids"], ["label_ids"])["groups"]
        self.assertEqual(len(by_label), 10)

    def test_emails_tabs_and_smart_buttons(self):
        lead = self.lead.with_user(self.outsider)
        # shared p_shared, t_shared; metadata p_meta, t_meta
        self.assertEqual(lead.pipemail_thread_count, 4)
        action = lead.action_view_pipemail_threads()
        self.assertEqual(
            self.env(user=self.outsider)["pipemail.thread"].search_count(action["domain"]), 4
        )
        partner = self.customer.with_user(self.stranger)
        self.assertEqual(partner.pipemail_thread_count, 1)
        self.assertEqual(partner.pipemail_thread_ids, self.threads["p_partner"])
        project = self.project.with_user(self.owner)
        self.assertEqual(project.pipemail_thread_ids, self.threads["p_project"])

    def test_link_wizard_and_one_click_suggestion(self):
        env = self.env(user=self.owner)
        thread = env["pipemail.thread"].browse(self.threads["p_unlinked"].id)
        action = thread.action_open_link_wizard()
        wizard = env["pipemail.link.wizard"].with_context(action["context"]).create({})
        self.assertEqual(wizard.lead_id, self.lead, "the best suggestion is preselected")
        self.assertIn("CANARYP_UNLINKEDREASON2", wizard.suggestion_ids.reason)
        wizard.action_link()
        self.assertEqual(thread.lead_id, self.lead)
        self.assertEqual(thread.link_mode, "manual")
        thread.action_unlink()
        self.assertFalse(thread.lead_id)
        # one click from the reader
        suggestion = (
            env["pipemail.link.suggestion"]
            .sudo()
            .create(
                {
                    "thread_id": thread.id,
                    "res_model": "crm.lead",
                    "res_id": self.lead.id,
                    "reason": "x",
                }
            )
        )
        suggestion.with_user(self.owner).action_accept()
        self.assertEqual(thread.lead_id, self.lead)
        # someone who does not hold the conversation cannot open the wizard for it
        with self.assertRaises(Exception):  # noqa: B017 - AccessError raised by the ORM
            self.env(user=self.outsider)["pipemail.link.wizard"].with_context(
                default_thread_id=self.threads["p_shared"].id
            ).create({})

    def test_mark_read_unread_and_visibility_change(self):
        thread = self.threads["p_meta"].with_user(self.owner)
        thread.action_mark_read()
        self.assertFalse(thread.is_unread)
        thread.action_mark_unread()
        self.assertTrue(thread.is_unread)
        thread.write({"visibility": "private"})
        self.assertFalse(
            self.env(user=self.outsider)["pipemail.thread"].search([("id", "=", thread.id)])
        )

    def test_holder_edits_in_the_form(self):
        """The reader's editable fields (visibility, labels) save and run onchange."""
        thread = self.threads["p_shared"].with_user(self.owner)
        spec = {"visibility": {}, "subject": {}, "label_ids": {}, "message_ids": {}}
        result = thread.onchange({"visibility": "private"}, ["visibility"], spec)
        self.assertNotIn("warning", result)
        thread.web_save({"visibility": "private"}, {"visibility": {}})
        self.assertEqual(thread.visibility, "private")
        outsider_thread = self.threads["p_shared"].with_user(self.outsider)
        with self.assertRaises(AccessError):
            outsider_thread.read(["subject"])
