from odoo import fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    pipemail_tracking_default = fields.Boolean(
        string="Track My Emails",
        default=True,
        help="New emails written from the CRM start with open and click tracking on; "
        "it can still be turned off for each email in the composer.",
    )

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + ["pipemail_tracking_default"]

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return super().SELF_WRITEABLE_FIELDS + ["pipemail_tracking_default"]
