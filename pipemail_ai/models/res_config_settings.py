from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    pipemail_ai_enabled = fields.Boolean(related="company_id.pipemail_ai_enabled", readonly=False)
    pipemail_ai_base_url = fields.Char(
        string="AI endpoint",
        config_parameter="pipemail_ai.base_url",
        help="Base URL of an OpenAI-compatible API (OpenAI, Azure, Ollama, vLLM, llama.cpp). "
        "Empty: the local llama.cpp server, so nothing leaves this server.",
    )
    pipemail_ai_model = fields.Char(string="AI model", config_parameter="pipemail_ai.model")
    pipemail_ai_api_key = fields.Char(string="AI API key", config_parameter="pipemail_ai.api_key")
