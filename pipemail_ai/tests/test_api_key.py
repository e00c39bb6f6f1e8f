import os
from pathlib import Path
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.modules.migration import load_script
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import SQL, config, mute_logger

from odoo.addons.pipemail_sync.tests.common import TEST_SECRET_KEY, set_class_config

from pipemail import secrets as pm_secrets

from ..models.res_config_settings import API_KEY_PARAM, LEGACY_API_KEY_PARAM

API_KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"
MIGRATION = Path(__file__).resolve().parents[1] / "migrations" / "18.0.2.0.0" / "post-migrate.py"


@tagged("post_install", "-at_install")
class TestAiApiKey(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls.Params = cls.env["ir.config_parameter"]
        cls.Params.set_param(API_KEY_PARAM, False)
        cls.Params.set_param(LEGACY_API_KEY_PARAM, False)
        cls.salesman = new_test_user(
            cls.env,
            login="pm_ai_sales",
            groups="base.group_user,sales_team.group_sale_manager,base.group_allow_export",
        )

    def _save_settings(self, vals, user=None):
        Settings = self.env["res.config.settings"]
        if user:
            Settings = Settings.with_user(user)
        settings = Settings.create(vals)
        settings.execute()
        return settings

    def _rows_holding(self, table, text):
        """Rows of ``table`` whose text (every column) holds ``text``: what a dump would show."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM %s AS t WHERE t::text LIKE %s",
                SQL.identifier(table),
                f"%{text}%",
            )
        )
        return self.env.cr.fetchone()[0]

    def test_admin_sets_key_stored_encrypted_never_read_back(self):
        settings = self._save_settings({"pipemail_ai_api_key": API_KEY})
        stored = self.Params.get_param(API_KEY_PARAM)
        self.assertTrue(stored.startswith(pm_secrets.PREFIX))
        self.assertNotIn(API_KEY, stored)
        self.assertFalse(self.Params.get_param(LEGACY_API_KEY_PARAM))
        for table in ("ir_config_parameter", "res_config_settings"):
            self.assertEqual(self._rows_holding(table, API_KEY), 0, table)
        # write-only: the form and RPC see "set", never the key, even as administrator
        self.assertEqual(settings.read(["pipemail_ai_api_key"])[0]["pipemail_ai_api_key"], False)
        fresh = self.env["res.config.settings"].create({})
        self.assertFalse(fresh.pipemail_ai_api_key)
        self.assertTrue(fresh.pipemail_ai_api_key_set)
        # what the web client asks when it opens the settings form (a new record)
        spec = {"pipemail_ai_api_key": {}, "pipemail_ai_api_key_set": {}}
        opened = self.env["res.config.settings"].onchange({}, [], spec)["value"]
        self.assertEqual(
            (opened["pipemail_ai_api_key"], opened["pipemail_ai_api_key_set"]), (False, True)
        )
        # the AI client gets the clear key server side only
        self.assertEqual(self.env["res.config.settings"]._pipemail_ai_api_key(), API_KEY)
        # saving the settings again without typing a key keeps it
        self._save_settings({"pipemail_ai_api_key": False, "pipemail_ai_model": "m"})
        self.assertEqual(self.env["res.config.settings"]._pipemail_ai_api_key(), API_KEY)
        # a new key replaces it; the ciphertext changes
        self._save_settings({"pipemail_ai_api_key": API_KEY + "-2"})
        self.assertNotEqual(self.Params.get_param(API_KEY_PARAM), stored)
        self.assertEqual(self.env["res.config.settings"]._pipemail_ai_api_key(), API_KEY + "-2")

    def test_key_can_be_removed(self):
        settings = self._save_settings({"pipemail_ai_api_key": API_KEY})
        settings.action_pipemail_ai_clear_api_key()
        self.assertFalse(self.Params.get_param(API_KEY_PARAM))
        self.assertFalse(self.env["res.config.settings"]._pipemail_ai_api_key())
        self.assertFalse(self.env["res.config.settings"].create({}).pipemail_ai_api_key_set)

    def test_not_in_export_or_config_parameter_read(self):
        settings = self._save_settings({"pipemail_ai_api_key": API_KEY})
        self.assertEqual(settings.export_data(["pipemail_ai_api_key"])["datas"], [[""]])
        params = self.Params.search([])
        self.assertNotIn(API_KEY, str(params.read(["key", "value"])))
        self.assertNotIn(API_KEY, str(params.export_data(["key", "value"])["datas"]))
        self.assertNotIn(API_KEY, str(self.env["res.config.settings"].default_get([])))

    def test_non_admin_cannot_read_or_write(self):
        settings = self._save_settings({"pipemail_ai_api_key": API_KEY})
        as_sales = settings.with_user(self.salesman)
        with self.assertRaises(AccessError):
            as_sales.read(["pipemail_ai_api_key"])
        with self.assertRaises(AccessError):
            as_sales.read(["pipemail_ai_api_key_set"])
        with self.assertRaises(AccessError):
            self._save_settings({"pipemail_ai_api_key": "sk-other"}, self.salesman)
        with self.assertRaises(AccessError):
            as_sales.action_pipemail_ai_clear_api_key()
        with self.assertRaises(AccessError):
            self.env["res.config.settings"].with_user(self.salesman)._pipemail_ai_set_api_key("x")
        with self.assertRaises(AccessError):
            self.Params.with_user(self.salesman).search_read([], ["value"])
        self.assertEqual(self.env["res.config.settings"]._pipemail_ai_api_key(), API_KEY)

    def test_wrong_key_or_context_is_unreadable_not_garbage(self):
        self._save_settings({"pipemail_ai_api_key": API_KEY})
        with (
            patch.dict(config.options, {"pipemail_secret_key": "another-key-" + "k" * 40}),
            patch.dict(os.environ, {"PIPEMAIL_SECRET_KEY": ""}),
            self.assertRaisesRegex(UserError, "enter the AI API key again"),
        ):
            self.env["res.config.settings"]._pipemail_ai_api_key()
        # a ciphertext made for a mailbox password does not decrypt as the AI key
        foreign = pm_secrets.encrypt(TEST_SECRET_KEY, API_KEY, context="pipemail.account:1:x")
        self.Params.set_param(API_KEY_PARAM, foreign)
        with self.assertRaises(UserError):
            self.env["res.config.settings"]._pipemail_ai_api_key()

    def test_upgrade_migrates_clear_parameter_and_deletes_it(self):
        self.Params.set_param(LEGACY_API_KEY_PARAM, API_KEY)
        # 18.0.1.0.0 stored the field on the settings' table: a save left the key there
        cr = self.env.cr
        cr.execute("ALTER TABLE res_config_settings ADD COLUMN pipemail_ai_api_key varchar")
        self.env["res.config.settings"].create({})
        self.env.flush_all()
        cr.execute("UPDATE res_config_settings SET pipemail_ai_api_key = %s", [API_KEY])
        self.assertGreater(self._rows_holding("res_config_settings", API_KEY), 0)
        load_script(str(MIGRATION), "pipemail_ai_post_migrate_18_0_2").migrate(
            self.env.cr, "18.0.1.0.0"
        )
        self.assertFalse(self.Params.get_param(LEGACY_API_KEY_PARAM))
        self.assertEqual(self.Params.search_count([("key", "=", LEGACY_API_KEY_PARAM)]), 0)
        self.assertTrue(self.Params.get_param(API_KEY_PARAM).startswith(pm_secrets.PREFIX))
        for table in ("ir_config_parameter", "res_config_settings"):
            self.assertEqual(self._rows_holding(table, API_KEY), 0, table)
        self.assertEqual(self.env["res.config.settings"]._pipemail_ai_api_key(), API_KEY)

    def test_upgrade_without_secret_key_keeps_the_key_and_encrypts_it_later(self):
        self.Params.set_param(LEGACY_API_KEY_PARAM, API_KEY)
        script = load_script(str(MIGRATION), "pipemail_ai_post_migrate_18_0_2")
        with (
            patch.dict(config.options, {"pipemail_secret_key": ""}),
            patch.dict(os.environ, {"PIPEMAIL_SECRET_KEY": ""}),
            self.assertLogs("odoo.addons.pipemail_ai", "WARNING") as logs,
        ):
            script.migrate(self.env.cr, "18.0.1.0.0")
        self.assertIn("pipemail_secret_key", logs.output[0])
        self.assertNotIn(API_KEY, "".join(logs.output))
        self.assertEqual(self.Params.get_param(LEGACY_API_KEY_PARAM), API_KEY)  # not lost
        # the key configured (a restart), the first use encrypts it and drops the clear one
        with mute_logger("odoo.addons.pipemail_ai.models.res_config_settings"):
            self.assertEqual(self.env["res.config.settings"]._pipemail_ai_api_key(), API_KEY)
        self.assertFalse(self.Params.get_param(LEGACY_API_KEY_PARAM))
        self.assertTrue(self.Params.get_param(API_KEY_PARAM).startswith(pm_secrets.PREFIX))

    def test_fresh_install_has_nothing_to_migrate(self):
        script = load_script(str(MIGRATION), "pipemail_ai_post_migrate_18_0_2")
        script.migrate(self.env.cr, None)
        script.migrate(self.env.cr, "18.0.1.0.0")
        self.assertFalse(self.Params.get_param(API_KEY_PARAM))
