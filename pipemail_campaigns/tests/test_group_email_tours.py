"""The group email wizard in a browser (an Odoo tour, headless Chromium)."""

from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestGroupEmailTours(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.user = new_test_user(
            env,
            "pm_tina",
            name="Tina Group",
            email="tina@ourco.example",
            groups="sales_team.group_sale_salesman,base.group_partner_manager",
            tz="UTC",
        )
        env["pipemail.account"].create(
            {"name": "Tina", "email": "tina@ourco.example", "user_id": cls.user.id}
        )
        env["res.partner"].create(
            [
                {"name": "Tour Ann", "email": "ann@customer.example"},
                {"name": "Tour Bob", "email": "bob@customer.example"},
            ]
        )

    def test_preview_steps_keep_the_tab(self):
        self.start_tour(
            "/odoo/action-base.action_partner_form?view_type=list",
            "pipemail_group_email_preview_tour",
            login="pm_tina",
        )
