"""The translation path, proven with the French translation (``i18n/fr.po``).

A salesperson whose language is French gets the addon's server-side messages, field
labels, selection values and menus in French; the same request from an English user
stays in English. The French terms are loaded as Odoo loads them when a language is
installed (``ir.module.module._load_module_terms``), for this addon only: fast.
"""

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestFrench(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        env["res.lang"]._activate_lang("fr_FR")
        env["ir.module.module"]._load_module_terms(["pipemail_sync"], ["fr_FR"])
        common = {
            "company_id": env.company.id,
            "company_ids": [Command.set(env.company.ids)],
            "groups": "sales_team.group_sale_salesman_all_leads",
        }
        cls.francoise = new_test_user(
            env, "pm_francoise", email="francoise@ourco.example", lang="fr_FR", **common
        )
        cls.emma = new_test_user(env, "pm_emma", email="emma@ourco.example", lang="en_US", **common)
        Account = env["pipemail.account"]
        cls.box_fr = Account.create(
            {
                "name": "Françoise",
                "email": "francoise@ourco.example",
                "imap_host": "imap.ourco.example",
                "smtp_host": "smtp.ourco.example",
                "user_id": cls.francoise.id,
            }
        )
        cls.box_en = Account.create(
            {
                "name": "Emma",
                "email": "emma@ourco.example",
                "imap_host": "imap.ourco.example",
                "smtp_host": "smtp.ourco.example",
                "user_id": cls.emma.id,
            }
        )

    def as_user(self, user):
        """The environment of a request by ``user``: the web client sends the user's
        own context (language, time zone) with every call."""
        env = self.env(user=user)
        return env(context=env["res.users"].context_get())

    def send_to(self, user, account, email_to):
        env = self.as_user(user)
        wizard = env["pipemail.compose"].create(
            {"account_id": account.id, "email_to": email_to, "subject": "Devis"}
        )
        with self.assertRaises(UserError) as caught:
            wizard.action_send()
        return caught.exception.args[0]

    def test_server_messages_follow_the_user_language(self):
        metadata = {"imap_host": "169.254.169.254"}  # refused by the engine, always
        # the composer's address check (engine.parse_addresses), env._ in the seam
        self.assertEqual(
            self.send_to(self.francoise, self.box_fr, "bob"),
            "« bob » n'est pas une adresse e-mail valide.",
        )
        self.assertEqual(
            self.send_to(self.emma, self.box_en, "bob"),
            "“bob” is not a valid email address.",
        )
        # an engine refusal shown by a model constraint (engine.error_message)
        with self.assertRaises(UserError) as caught:
            self.box_fr.with_env(self.as_user(self.francoise)).write(metadata)
        self.assertEqual(
            caught.exception.args[0],
            "Cette adresse de serveur n'est pas autorisée. Demandez à un administrateur "
            "s'il s'agit d'un serveur privé.",
        )
        with self.assertRaises(UserError) as caught:
            self.box_en.with_env(self.as_user(self.emma)).write(metadata)
        self.assertIn("This server address is not allowed.", caught.exception.args[0])

    def test_labels_menus_and_selections_in_french(self):
        env = self.as_user(self.francoise)
        fields = env["pipemail.account"].fields_get(["backlog", "state", "history"])
        self.assertEqual(fields["backlog"]["string"], "En attente de synchronisation")
        self.assertIn(("connected", "Connectée"), fields["state"]["selection"])
        self.assertIn(("1y", "1 an"), fields["history"]["selection"])
        self.assertEqual(
            env["pipemail.compose"].fields_get(["email_bcc"])["email_bcc"]["string"], "Cci"
        )
        menu = env.ref("pipemail_sync.pipemail_thread_menu_inbox")
        self.assertEqual(menu.name, "Boîte de réception commerciale")
        mine = env.ref("pipemail_sync.pipemail_account_menu_mine")
        self.assertEqual(mine.name, "Mes boîtes mail")
        # the English user still reads the source terms
        en = self.as_user(self.emma)
        self.assertEqual(en.ref("pipemail_sync.pipemail_thread_menu_inbox").name, "Sales Inbox")
        backlog = en["pipemail.account"].fields_get(["backlog"])["backlog"]
        self.assertEqual(backlog["string"], "Backlog")

    def test_archive_folder_is_a_noun_the_button_a_verb(self):
        """One English word, two French ones (po files have no context): the folder
        is "Archives", the button and the shortcut "Archiver"."""
        env = self.as_user(self.francoise)
        pane = env["pipemail.thread"].pipemail_folder_counts()
        names = {f["key"]: f["name"] for g in pane["groups"] for f in g["folders"]}
        self.assertEqual(names["mine-archive"], "Archives")
        roles = dict(env["pipemail.folder"].fields_get(["role"])["role"]["selection"])
        self.assertEqual(roles["archive"], "Archives")
        arch = env["pipemail.thread"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn('string="Archiver"', arch)
        en = self.as_user(self.emma)
        pane = en["pipemail.thread"].pipemail_folder_counts()
        names = {f["key"]: f["name"] for g in pane["groups"] for f in g["folders"]}
        self.assertEqual(names["mine-archive"], "Archives")
