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
        "views/res_config_settings_views.xml",
        "views/pipemail_menus.xml",
    ],
}
