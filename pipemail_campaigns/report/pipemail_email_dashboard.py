from odoo import _, api, fields, models

PERIODS = [
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("365", "Last 12 months"),
    ("all", "All time"),
]


class PipemailEmailDashboard(models.TransientModel):
    """The headline rates of the email performance report, over what the reader may
    see of it (the report's record rules apply: figures are read as the user)."""

    _name = "pipemail.email.dashboard"
    _description = "Email Performance Dashboard"

    period = fields.Selection(PERIODS, default="30", required=True)
    sent = fields.Integer(compute="_compute_figures")
    delivered = fields.Integer(compute="_compute_figures")
    bounced = fields.Integer(string="Bounces", compute="_compute_figures")
    opened = fields.Integer(string="Unique Opens", compute="_compute_figures")
    clicked = fields.Integer(string="Unique Clicks", compute="_compute_figures")
    replied = fields.Integer(string="Replies", compute="_compute_figures")
    unsubscribed = fields.Integer(string="Unsubscribes", compute="_compute_figures")
    open_rate = fields.Float(string="Open Rate (%)", digits=(5, 1), compute="_compute_figures")
    click_rate = fields.Float(string="Click Rate (%)", digits=(5, 1), compute="_compute_figures")
    reply_rate = fields.Float(string="Reply Rate (%)", digits=(5, 1), compute="_compute_figures")

    @api.depends("period")
    @api.depends_context("uid")
    def _compute_figures(self):
        Report = self.env["pipemail.email.report"]
        for dashboard in self:
            domain = []
            if dashboard.period != "all":
                since = fields.Datetime.subtract(fields.Datetime.now(), days=int(dashboard.period))
                domain = [("date", ">=", since)]
            figures = Report._pipemail_headline(domain)
            for name in (
                "sent",
                "delivered",
                "bounced",
                "opened",
                "clicked",
                "replied",
                "unsubscribed",
                "open_rate",
                "click_rate",
                "reply_rate",
            ):
                dashboard[name] = figures[name]

    @api.depends("period")
    def _compute_display_name(self):
        for dashboard in self:
            dashboard.display_name = _("Email Performance")

    @api.model
    def _pipemail_open(self):
        """The dashboard as a saved record of the reader's, so the page opens titled and
        clean (a new record would show "New" and a save button)."""
        return {
            "type": "ir.actions.act_window",
            "name": _("Email Dashboard"),
            "res_model": self._name,
            "res_id": self.create({}).id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }

    def action_open_report(self):
        self.ensure_one()
        return self.env["ir.actions.act_window"]._for_xml_id(
            "pipemail_campaigns.pipemail_email_report_action"
        )
