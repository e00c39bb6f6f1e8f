"""Demo data for ``scripts/setup.sh`` (:mod:`demo`) and the Odoo benchmark: a
salesperson, contacts, leads and their mailbox on a (local) IMAP server, synced.

Runs inside an Odoo shell (``env`` is Odoo's environment); not part of the addon, so a
production database never carries a demo entry point.
"""

from __future__ import annotations


def setup(
    env,
    host,
    port,
    username,
    password,
    security="starttls",
    email=None,
    contacts=(),
    login="demo",
    sync=True,
    commit=True,
):
    """Demo data for ``scripts/setup.sh``: a salesperson, contacts, leads and their
    mailbox on a (local) IMAP server, synced. Idempotent: run it again to resync.

    ``contacts``: iterable of ``(name, email, company name)``; each company gets a
    company contact, and the first two companies an open opportunity owned by the
    demo user, so automatic linking has something to find.
    Returns ``{"login", "password", "account_id", "state", "messages", "threads",
    "linked", "error"}``.
    """
    env = env(su=True)
    Account = env["pipemail.account"].sudo()
    env["ir.config_parameter"].set_param("pipemail.allow_private_hosts", "True")
    email = (email or (username if "@" in username else f"{username}@demo.example")).lower()
    Users = env["res.users"].with_context(no_reset_password=True)
    user = Users.search([("login", "=", login)], limit=1)
    if not user:
        user = Users.create(
            {
                "name": "Demo Salesperson",
                "login": login,
                "password": login,
                "email": email,
                "groups_id": [
                    (4, env.ref("sales_team.group_sale_salesman_all_leads").id),
                    (4, env.ref("project.group_project_user").id),
                ],
            }
        )
    Partner = env["res.partner"]
    companies = {}
    for name, address, company_name in contacts:
        company = companies.get(company_name)
        if company is None and company_name:
            company = Partner.search(
                [("name", "=", company_name), ("is_company", "=", True)], limit=1
            ) or Partner.create(
                {
                    "name": company_name,
                    "is_company": True,
                    "email": f"info@{address.rpartition('@')[2]}",
                }
            )
            companies[company_name] = company
        if not Partner.search([("email_normalized", "=", address.lower())], limit=1):
            Partner.create(
                {"name": name, "email": address, "parent_id": company.id if company else False}
            )
    Lead = env["crm.lead"]
    for company in list(companies.values())[:2]:
        if not Lead.search([("partner_id", "child_of", company.id)], limit=1):
            contact = company.child_ids[:1] or company
            Lead.create(
                {
                    "name": f"{company.name}: office furniture",
                    "type": "opportunity",
                    "partner_id": contact.id,
                    "user_id": user.id,
                }
            )
    account = Account.search([("user_id", "=", user.id), ("email", "=", email)], limit=1)
    values = {
        "imap_host": host,
        "imap_port": int(port),
        "imap_security": security,
        "username": username,
    }
    if account:
        account.write(values)
    else:
        account = Account.create(
            dict(
                values,
                name=f"{user.name} ({email})",
                email=email,
                user_id=user.id,
                kind="personal",
                provider="imap",
                history="all",
            )
        )
    account.password = password
    check = account._action_test_connection()
    if commit:
        # the demo user, contacts and mailbox stay even if the sync below fails
        env.cr.commit()
    if sync and account.state == "connected":
        account._sync(commit=commit)
    account.invalidate_recordset()
    threads = env["pipemail.thread"].search([("account_id", "=", account.id)])
    return {
        "login": login,
        "password": login,
        "account_id": account.id,
        "state": account.state,
        "messages": account.message_total,
        "threads": len(threads),
        "linked": len(threads.filtered(lambda t: t.lead_id or t.project_id)),
        "error": account.last_error
        or ("" if account.state == "connected" else check["params"]["message"]),
    }
