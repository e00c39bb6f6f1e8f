"""A small world of mailboxes, conversations, emails and attachments for the visibility
and inbox tests, built directly (no IMAP): every secret value carries a canary string
so that a leak is found by looking for it in whatever a user gets back."""

import base64

from odoo import Command
from odoo.tests import new_test_user

FULL, META, NONE = "full", "meta", "none"


class PipemailWorldMixin:
    """Users × conversations with the access each user must get to each conversation."""

    @classmethod
    def _pipemail_world(cls):
        env = cls.env
        cls.company = env.ref("base.main_company")
        cls.company2 = env["res.company"].create({"name": "Other Company (pipemail)"})
        common = {"company_id": cls.company.id, "company_ids": [Command.set(cls.company.ids)]}
        # pipemail users are salespeople (Sales implies pipemail); "all leads" reads every lead
        cls.owner = new_test_user(
            env,
            "pm_owner",
            groups="sales_team.group_sale_salesman_all_leads,base.group_allow_export",
            **common,
        )
        cls.teammate = new_test_user(
            env,
            "pm_teammate",
            groups="sales_team.group_sale_salesman_all_leads,base.group_allow_export",
            **common,
        )
        cls.outsider = new_test_user(
            env,
            "pm_outsider",
            groups="sales_team.group_sale_salesman_all_leads,base.group_allow_export",
            **common,
        )
        # a salesperson who reads only their own leads
        cls.stranger = new_test_user(
            env,
            "pm_stranger",
            groups="sales_team.group_sale_salesman,base.group_allow_export",
            **common,
        )
        cls.manager = new_test_user(
            env,
            "pm_manager",
            groups="sales_team.group_sale_manager,base.group_allow_export",
            **common,
        )
        cls.other_co = new_test_user(
            env,
            "pm_otherco",
            groups="sales_team.group_sale_manager,base.group_allow_export",
            company_id=cls.company2.id,
            company_ids=[Command.set(cls.company2.ids)],
        )
        cls.users = {
            "owner": cls.owner,
            "teammate": cls.teammate,
            "outsider": cls.outsider,
            "stranger": cls.stranger,
            "manager": cls.manager,
            "other_co": cls.other_co,
        }

        Partner = env["res.partner"]
        cls.customer = Partner.create(
            {
                "name": "Carla Customer",
                "email": "carla@customer.example",
                "company_id": cls.company.id,
            }
        )
        cls.lead = env["crm.lead"].create(
            {
                "name": "Big deal",
                "type": "opportunity",
                "user_id": cls.owner.id,
                "company_id": cls.company.id,
            }
        )
        cls.project = env["project.project"].create(
            {
                "name": "Followers-only project",
                "privacy_visibility": "followers",
                "company_id": cls.company.id,
            }
        )
        cls.project.message_subscribe(partner_ids=cls.owner.partner_id.ids)

        Account = env["pipemail.account"].with_context(
            mail_create_nolog=True, tracking_disable=True
        )
        cls.personal = Account.create(
            {
                "name": "Owner mailbox",
                "email": "pm_owner@example.com",
                "user_id": cls.owner.id,
                "company_id": cls.company.id,
            }
        )
        cls.team = Account.create(
            {
                "name": "Team mailbox",
                "email": "team@example.com",
                "kind": "team",
                "user_id": cls.owner.id,
                "member_ids": [Command.set((cls.owner | cls.teammate).ids)],
                "company_id": cls.company.id,
            }
        )
        cls.foreign = Account.create(
            {
                "name": "Other company mailbox",
                "email": "pm_otherco@example.com",
                "user_id": cls.other_co.id,
                "company_id": cls.company2.id,
            }
        )

        # name: (account, visibility, links, {user: access})
        lead = {"lead_id": cls.lead.id}
        spec = {
            "p_shared": (
                cls.personal,
                "shared",
                lead,
                {"teammate": FULL, "outsider": FULL, "manager": FULL},
            ),
            "p_private": (cls.personal, "private", lead, {}),
            "p_meta": (
                cls.personal,
                "metadata",
                lead,
                {"teammate": META, "outsider": META, "manager": META},
            ),
            "p_unlinked": (cls.personal, "shared", {}, {}),
            "p_partner": (
                cls.personal,
                "shared",
                {"partner_ids": [Command.set(cls.customer.ids)]},
                {"teammate": FULL, "outsider": FULL, "manager": FULL, "stranger": FULL},
            ),
            "p_project": (cls.personal, "shared", {"project_id": cls.project.id}, {}),
            "t_shared": (
                cls.team,
                "shared",
                lead,
                {"teammate": FULL, "outsider": FULL, "manager": FULL},
            ),
            "t_team": (cls.team, "team", lead, {"teammate": FULL}),
            "t_meta": (
                cls.team,
                "metadata",
                lead,
                {"teammate": FULL, "outsider": META, "manager": META},
            ),
            "t_private": (cls.team, "private", lead, {}),
            "c2_shared": (cls.foreign, "shared", lead, {}),
        }
        cls.threads = {}
        cls.messages = {}
        cls.attachments = {}
        cls.access = {}
        Thread = env["pipemail.thread"]
        for name, (account, visibility, links, access) in spec.items():
            canary = f"CANARY{name.upper()}"
            label = env["pipemail.label"].create(
                {
                    "name": f"{canary}LABEL",
                    "account_id": account.id,
                    "company_id": account.company_id.id,
                }
            )
            thread = Thread.create(
                {
                    "account_id": account.id,
                    "thread_key": f"key-{name}",
                    "subject": f"{canary}SUBJECT",
                    "snippet": f"{canary}SNIPPET",
                    "last_date": "2024-05-01 10:00:00",
                    "participant_emails": f"{account.email},carla@customer.example",
                    "visibility": visibility,
                    "label_ids": [Command.set(label.ids)],
                    "link_reason": f"{canary}REASON",
                    **links,
                }
            )
            message = env["pipemail.message"].create(
                {
                    "thread_id": thread.id,
                    "account_id": account.id,
                    "key": f"msg-{name}",
                    "subject": f"{canary}SUBJECT",
                    "email_from": "Carla <carla@customer.example>",
                    "email_to": account.email,
                    "date": "2024-05-01 10:00:00",
                    "body_html": f"<p>{canary}BODY</p>",
                    "body_text": f"{canary}BODY",
                    "snippet": f"{canary}SNIPPET",
                    "is_read": False,
                    "has_attachments": True,
                }
            )
            attachment = env["ir.attachment"].create(
                {
                    "name": f"{canary}FILE.txt",
                    "res_model": "pipemail.message",
                    "res_id": message.id,
                    "raw": f"{canary}FILEDATA".encode(),
                    "mimetype": "text/plain",
                }
            )
            cls.threads[name] = thread
            cls.messages[name] = message
            cls.attachments[name] = attachment
            levels = {"owner": FULL if account != cls.foreign else NONE}
            if account == cls.foreign:
                levels["other_co"] = FULL
            levels.update(access)
            cls.access[name] = {user: levels.get(user, NONE) for user in cls.users}
        # team mailbox: Private is the owner's alone, even in a team mailbox
        cls.access["t_private"]["teammate"] = NONE
        cls.env["pipemail.link.suggestion"].create(
            {
                "thread_id": cls.threads["p_unlinked"].id,
                "res_model": "crm.lead",
                "res_id": cls.lead.id,
                "score": 0.8,
                "reason": "CANARYP_UNLINKEDREASON2",
            }
        )

    # ------------------------------------------------------------------ helpers

    @classmethod
    def _canaries(cls, name):
        return f"CANARY{name.upper()}"

    def _forbidden(self, user_key):
        """Canaries this user must never see: every hidden or metadata-only thread's."""
        return [
            self._canaries(name) for name, levels in self.access.items() if levels[user_key] != FULL
        ]

    def _expected(self, user_key, levels=(FULL, META)):
        return {self.threads[name].id for name, lv in self.access.items() if lv[user_key] in levels}

    @staticmethod
    def _b64(data):
        return base64.b64encode(data).decode()
