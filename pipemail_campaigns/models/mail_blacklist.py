from odoo import api, models


class MailBlacklist(models.Model):
    """An address unsubscribing (or coming back) changes the report's "unsubscribed"
    figure of every email sent to it."""

    _inherit = "mail.blacklist"

    @api.model_create_multi
    def create(self, vals_list):
        rows = super().create(vals_list)
        self.env["pipemail.email.stat"]._pipemail_refresh_emails(rows.mapped("email"))
        return rows

    def write(self, vals):
        before = self.mapped("email")
        res = super().write(vals)
        if {"active", "email"} & set(vals):
            self.env["pipemail.email.stat"]._pipemail_refresh_emails(
                [*before, *self.mapped("email")]
            )
        return res

    def unlink(self):
        emails = self.mapped("email")
        res = super().unlink()
        self.env["pipemail.email.stat"]._pipemail_refresh_emails(emails)
        return res
