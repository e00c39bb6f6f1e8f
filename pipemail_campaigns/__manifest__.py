{
    "name": "Pipemail: Group Email, Automations and Reports",
    "summary": "Personalized group email from the salesperson's own mailbox, email "
    "automations and follow-ups, and an email performance report",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "website": "https://github.com/pipemail/pipemail",
    "author": "pipemail",
    "license": "LGPL-3",
    "installable": True,
    "depends": ["pipemail_sync"],
    "external_dependencies": {"python": ["lxml"]},
    "data": [
        "views/res_config_settings_views.xml",
        "security/ir.model.access.csv",
        "security/pipemail_group_email_rules.xml",
        "views/pipemail_group_email_views.xml",
        "views/unsubscribe_templates.xml",
        "wizards/pipemail_group_email_wizard_views.xml",
        "data/pipemail_group_email_data.xml",
    ],
}
