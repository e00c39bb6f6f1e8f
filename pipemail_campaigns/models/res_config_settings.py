from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    pipemail_group_email_max_recipients = fields.Integer(
        string="Recipients per group email",
        config_parameter="pipemail_campaigns.max_recipients",
        default=100,
        help="Each recipient gets their own copy; larger lists are refused before sending.",
    )
    pipemail_followup_days = fields.Integer(
        string="Follow up after (days)",
        config_parameter="pipemail_campaigns.followup_days",
        default=3,
        help="Default delay of 'no reply' follow-up automations.",
    )
