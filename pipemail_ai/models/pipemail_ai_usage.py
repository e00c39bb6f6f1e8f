from odoo import _, api, fields, models
from odoo.exceptions import UserError

HELPERS = [
    ("summary", "Thread Summary"),
    ("replies", "Suggested Replies"),
    ("compose", "AI Compose"),
    ("probe", "Settings Test"),
]
DAILY_CAP_PARAM = "pipemail_ai.daily_cap"
DAILY_CAP_DEFAULT = 100


class PipemailAiUsage(models.Model):
    """One AI request: who asked, which helper, which model, what it cost, how it ended.

    Never the email content, the prompt or the answer. Written by server code only
    (administrators read it); a row is created before the model is asked, so a request
    that crashes still counts against the daily cap, and its ``run_token`` is how the
    person who asked cancels it from another request.
    """

    _name = "pipemail.ai.usage"
    _description = "Email AI Usage"
    _order = "id desc"

    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    user_id = fields.Many2one("res.users", string="User", required=True, readonly=True, index=True)
    helper = fields.Selection(HELPERS, required=True, readonly=True)
    model_name = fields.Char(string="AI Model", readonly=True)
    tokens_in = fields.Integer(string="Tokens In", readonly=True)
    tokens_out = fields.Integer(string="Tokens Out", readonly=True)
    latency = fields.Float(string="Latency (s)", digits=(16, 2), readonly=True)
    state = fields.Selection(
        [
            ("running", "Running"),
            ("done", "Done"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
        ],
        required=True,
        default="running",
        readonly=True,
    )
    success = fields.Boolean(compute="_compute_success", store=True)
    error_code = fields.Char(string="Error", readonly=True)
    run_token = fields.Char(readonly=True, index=True, copy=False)
    cancel_requested = fields.Boolean(readonly=True)

    @api.depends("state")
    def _compute_success(self):
        for usage in self:
            usage.success = usage.state == "done"

    @api.model
    def _pipemail_daily_cap(self):
        value = self.env["ir.config_parameter"].sudo().get_param(DAILY_CAP_PARAM)
        try:
            return int(value) if value not in (None, False, "") else DAILY_CAP_DEFAULT
        except ValueError:
            return DAILY_CAP_DEFAULT

    @api.model
    def _pipemail_check_cap(self):
        """Refuse once the current user made today's number of requests (0: no cap)."""
        cap = self._pipemail_daily_cap()
        if cap <= 0:
            return
        today = fields.Datetime.to_datetime(fields.Date.context_today(self))
        used = (
            self.sudo()
            .with_context(active_test=False)
            .search_count(
                [
                    ("user_id", "=", self.env.uid),
                    ("helper", "!=", "probe"),
                    ("create_date", ">=", today),
                ]
            )
        )
        if used >= cap:
            raise UserError(
                _(
                    "You reached today's limit of %(cap)s AI requests: try again tomorrow, or "
                    "ask an administrator to raise the limit in the AI settings.",
                    cap=cap,
                )
            )

    @api.model
    def action_pipemail_cancel(self, run_token):
        """Ask the caller's own running request ``run_token`` to stop (RPC, any user)."""
        if not isinstance(run_token, str) or not run_token:
            return False
        runs = self.sudo().search(
            [
                ("run_token", "=", run_token),
                ("user_id", "=", self.env.uid),
                ("state", "=", "running"),
            ]
        )
        runs.write({"cancel_requested": True})
        return bool(runs)
