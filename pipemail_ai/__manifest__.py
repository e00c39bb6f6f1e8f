{
    "name": "Pipemail: AI for Email",
    "summary": "Thread summaries, AI drafting and suggested replies for synced email, "
    "on any OpenAI-compatible endpoint (a local llama.cpp server by default)",
    "version": "18.0.2.1.1",
    "category": "Sales/CRM",
    "website": "https://github.com/pipemail/pipemail",
    "author": "pipemail",
    "license": "LGPL-3",
    "installable": True,
    "depends": ["pipemail_sync"],
    "external_dependencies": {"python": ["openai"]},
    "data": [
        "security/ir.model.access.csv",
        "security/pipemail_ai_rules.xml",
        "views/pipemail_ai_usage_views.xml",
        "views/res_config_settings_views.xml",
        "views/res_users_views.xml",
        "views/pipemail_compose_views.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "pipemail_ai/static/src/**/*.js",
            "pipemail_ai/static/src/**/*.scss",
            "pipemail_ai/static/src/**/*.xml",
        ],
        "web.assets_tests": [
            "pipemail_ai/static/tests/tours/*.js",
        ],
    },
}
