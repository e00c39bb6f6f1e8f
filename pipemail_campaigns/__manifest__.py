{
    "name": "Pipemail: Group Email, Automations and Reports",
    "summary": "Personalized group email from the salesperson's own mailbox, email "
    "automations and follow-ups, and an email performance report",
    "version": "18.0.1.1.0",
    "category": "Sales/CRM",
    "website": "https://github.com/pipemail/pipemail",
    "author": "pipemail",
    "license": "LGPL-3",
    "installable": True,
    "depends": [
        "pipemail_sync",
        "base_automation",
    ],
    "external_dependencies": {"python": ["lxml"]},
    "data": [
        "security/ir.model.access.csv",
        "security/pipemail_followup_rules.xml",
        "security/pipemail_email_report_rules.xml",
        "views/res_config_settings_views.xml",
        "security/pipemail_group_email_rules.xml",
        "views/pipemail_group_email_views.xml",
        "views/pipemail_outbox_views.xml",
        "views/unsubscribe_templates.xml",
        "wizards/pipemail_group_email_wizard_views.xml",
        "data/pipemail_group_email_data.xml",
        "views/ir_actions_server_views.xml",
        "views/pipemail_followup_views.xml",
        "wizards/pipemail_compose_followup_views.xml",
        "views/base_automation_views.xml",
        "report/pipemail_email_report_views.xml",
        "data/pipemail_followup_cron.xml",
        "data/pipemail_automation_templates.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "pipemail_campaigns/static/src/**/*.js",
            "pipemail_campaigns/static/src/**/*.xml",
        ],
        "web.assets_tests": [
            "pipemail_campaigns/static/tests/tours/*.js",
        ],
    },
}
