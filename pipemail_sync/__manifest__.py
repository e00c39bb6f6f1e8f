{
    "name": "Pipemail: Mailbox Sync",
    "summary": "Two-way sync of salespeople's Gmail, Microsoft 365 and IMAP mailboxes "
    "into CRM, with a Sales Inbox and automatic linking to leads, deals and projects",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "website": "https://github.com/pipemail/pipemail",
    "author": "pipemail",
    "license": "LGPL-3",
    "application": False,
    "installable": True,
    "depends": ["crm", "project", "mail"],
    "external_dependencies": {
        "python": ["imapclient", "msal", "google-auth", "lxml", "cryptography"],
    },
    "data": [
        "security/pipemail_security.xml",
        "security/ir.model.access.csv",
        "security/pipemail_rules.xml",
        "views/pipemail_account_views.xml",
        "views/pipemail_thread_views.xml",
        "views/pipemail_message_views.xml",
        "views/crm_lead_views.xml",
        "views/project_project_views.xml",
        "views/res_partner_views.xml",
        "views/pipemail_oauth_templates.xml",
        "views/res_config_settings_views.xml",
        "wizards/pipemail_link_wizard_views.xml",
        "views/pipemail_menus.xml",
        "data/ir_cron.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "pipemail_sync/static/src/**/*.js",
            "pipemail_sync/static/src/**/*.scss",
            "pipemail_sync/static/src/**/*.xml",
        ],
    },
}
