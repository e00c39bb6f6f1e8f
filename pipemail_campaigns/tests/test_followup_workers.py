"""Two cron workers at the same moment: a due follow-up is written exactly once.

Needs what a TransactionCase hides (other connections, committed rows): the rows are
created and committed on their own connection, and deleted again afterwards.
"""

from datetime import timedelta

from odoo import fields
from odoo.tests import TransactionCase, tagged

from odoo.addons.pipemail_sync.tests.common import worker_env


@tagged("post_install", "-at_install")
class TestFollowupWorkers(TransactionCase):
    def worker_env(self):
        return worker_env(self.env.cr.dbname)

    def _committed_followup(self):
        with self.worker_env() as env:
            admin = env.ref("base.user_admin")
            partner = env["res.partner"].create({"name": "Race", "email": "race@customer.example"})
            lead = env["crm.lead"].create(
                {"name": "Race lead", "partner_id": partner.id, "user_id": admin.id}
            )
            account = env["pipemail.account"].create(
                {
                    "name": "race box",
                    "email": "race-admin@ourco.example",
                    "user_id": admin.id,
                    "imap_host": "127.0.0.1",
                    "smtp_host": "127.0.0.1",
                }
            )
            template = env["mail.template"].create(
                {
                    "name": "Race nudge",
                    "model_id": env.ref("crm.model_crm_lead").id,
                    "body_html": "<p>Any news?</p>",
                }
            )
            sent = fields.Datetime.now() - timedelta(days=5)
            outbox = env["pipemail.outbox"].create(
                {
                    "account_id": account.id,
                    "user_id": admin.id,
                    "lead_id": lead.id,
                    "partner_id": partner.id,
                    "email_to": "race@customer.example",
                    "subject": "Offer",
                    "body_html": "<p>Offer</p>",
                }
            )
            outbox.write(
                {"state": "sent", "sent_date": sent, "message_id_header": "<race.1@ourco.example>"}
            )
            followup = env["pipemail.followup"]._pipemail_schedule(outbox, template, 3)
            env.cr.commit()
            ids = {
                "followup": followup.id,
                "outbox": outbox.id,
                "lead": lead.id,
                "partner": partner.id,
                "account": account.id,
                "template": template.id,
            }
        self.addCleanup(self._drop, ids)
        return ids

    def _drop(self, ids):
        with self.worker_env() as env:
            outboxes = env["pipemail.outbox"].search([("account_id", "=", ids["account"])])
            env["pipemail.followup"].search([("outbox_id", "in", outboxes.ids)]).unlink()
            outboxes.unlink()
            env["crm.lead"].browse(ids["lead"]).unlink()
            env["pipemail.account"].browse(ids["account"]).unlink()
            env["mail.template"].browse(ids["template"]).unlink()
            env["res.partner"].browse(ids["partner"]).unlink()
            env.cr.commit()

    def test_two_workers_write_it_once(self):
        ids = self._committed_followup()
        with self.worker_env() as env_a, self.worker_env() as env_b:
            taken_a = env_a["pipemail.followup"]._cron_send_followups()
            self.assertIn(ids["followup"], taken_a.ids)
            # B runs while A holds the row lock: it skips the row instead of waiting
            taken_b = env_b["pipemail.followup"]._cron_send_followups()
            self.assertNotIn(ids["followup"], taken_b.ids)
            env_b.cr.rollback()
            env_a.cr.commit()
            # after A committed, B's next run finds nothing left to do
            taken_b = env_b["pipemail.followup"]._cron_send_followups()
            self.assertNotIn(ids["followup"], taken_b.ids)
            env_b.cr.commit()
        with self.worker_env() as env:
            followup = env["pipemail.followup"].browse(ids["followup"])
            self.assertEqual(followup.state, "sent")
            replies = env["pipemail.outbox"].search(
                [("account_id", "=", ids["account"]), ("mode", "=", "reply")]
            )
            self.assertEqual(len(replies), 1, "one follow-up written, not two")
            self.assertEqual(replies.in_reply_to, "<race.1@ourco.example>")
