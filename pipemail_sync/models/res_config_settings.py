from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    pipemail_google_client_id = fields.Char(
        string="Google Client ID", config_parameter="pipemail.google_client_id"
    )
    pipemail_google_client_secret = fields.Char(
        string="Google Client Secret", config_parameter="pipemail.google_client_secret"
    )
    pipemail_microsoft_client_id = fields.Char(
        string="Microsoft Client ID", config_parameter="pipemail.microsoft_client_id"
    )
    pipemail_microsoft_client_secret = fields.Char(
        string="Microsoft Client Secret", config_parameter="pipemail.microsoft_client_secret"
    )
    pipemail_allow_private_hosts = fields.Boolean(
        string="Allow private mail servers",
        config_parameter="pipemail.allow_private_hosts",
        help="Let users connect IMAP/SMTP servers on loopback or private networks. "
        "Leave off unless your mail server is on your own network.",
    )
    pipemail_imap_attachment_limit_mb = fields.Integer(
        string="Attachment limit for IMAP accounts (MB)",
        config_parameter="pipemail.imap_attachment_limit_mb",
        default=25,
    )
    pipemail_undo_send_seconds = fields.Integer(
        string="Undo send (seconds)",
        config_parameter="pipemail.undo_send_seconds",
        default=10,
        help="How long Send waits, with an Undo button, before the email leaves (0 to 60; "
        "0 sends at once).",
    )
