import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from odoo.addons.pipemail_sync.engine import secrets as pm_secrets

from pipemail import ai
from pipemail import errors as pm_errors

from .pipemail_ai_usage import DAILY_CAP_DEFAULT, DAILY_CAP_PARAM

_logger = logging.getLogger(__name__)

API_KEY_PARAM = "pipemail_ai.api_key_enc"
"""System parameter holding the AI API key as a ``pm1:`` ciphertext, never in clear."""
LEGACY_API_KEY_PARAM = "pipemail_ai.api_key"
"""Where versions before 18.0.2.0.0 kept the key in clear; migrated, then deleted."""
API_KEY_CONTEXT = "pipemail_ai:api_key"
"""Encryption context: a mailbox password's ciphertext pasted here does not decrypt."""


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
    pipemail_ai_context_tokens = fields.Integer(
        string="AI context (tokens)",
        config_parameter="pipemail_ai.context_tokens",
        help="The model's context window: longer conversations are cut to fit it, keeping the "
        "first and the newest messages. Empty: 8192 (the local model).",
    )
    pipemail_ai_daily_cap = fields.Integer(
        string="AI requests per user per day",
        config_parameter=DAILY_CAP_PARAM,
        default=DAILY_CAP_DEFAULT,
        help="Cost control: each user's AI requests a day (0: no limit). Enforced by the server.",
    )
    # Write-only and not stored: a stored field of this transient model would put the
    # clear key in the res_config_settings table (and so in a dump) until the vacuum.
    pipemail_ai_api_key = fields.Char(
        string="AI API key",
        compute="_compute_pipemail_ai_api_key",
        inverse="_inverse_pipemail_ai_api_key",
        groups="base.group_system",
        help="Stored encrypted with the server's pipemail_secret_key; never shown again "
        "once saved. Leave empty to keep the saved key.",
    )
    # a plain field filled by get_values() (the settings form's defaults): a computed one
    # is not evaluated by the web client's onchange of the new settings record, and the
    # form said "Not set." under a saved key
    pipemail_ai_api_key_set = fields.Boolean(
        string="AI API key saved", readonly=True, groups="base.group_system"
    )

    def _compute_pipemail_ai_api_key(self):
        # write-only: the clear key never leaves the server, whoever asks
        self.pipemail_ai_api_key = False

    @api.model
    def get_values(self):
        values = super().get_values()
        if self.env.is_system():
            values["pipemail_ai_api_key_set"] = bool(self._pipemail_ai_api_key_stored())
        return values

    def _inverse_pipemail_ai_api_key(self):
        for settings in self:
            if settings.pipemail_ai_api_key:
                settings._pipemail_ai_set_api_key(settings.pipemail_ai_api_key)
        # drop the typed value from the cache too: the save's answer must not echo it
        self.invalidate_recordset(["pipemail_ai_api_key"])

    def action_pipemail_ai_clear_api_key(self):
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(_("Only an administrator can remove the AI API key."))
        self._pipemail_ai_set_api_key(False)
        return {"type": "ir.actions.client", "tag": "reload"}

    def action_pipemail_ai_test(self):
        """The Test button: does the endpoint (as typed in the form) answer, with which model?"""
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(_("Only an administrator can test the AI endpoint."))
        Service = self.env["pipemail.ai.service"]
        endpoint = Service._pipemail_endpoint(
            base_url=self.pipemail_ai_base_url or "",
            model=self.pipemail_ai_model or "",
            api_key=self.pipemail_ai_api_key or None,
        )
        try:
            result = Service._pipemail_run(
                "probe", lambda _endpoint, _cancel: ai.probe_endpoint(endpoint)
            )
        except UserError as exc:
            return self._pipemail_ai_notify(_("The AI endpoint did not answer"), str(exc), "danger")
        listed = ", ".join(result.models[:8]) or _("none listed")
        if result.answered:
            message = _(
                "%(url)s answered in %(seconds)s s with the model %(model)s. Models it serves: "
                "%(models)s.",
                url=result.base_url,
                seconds=f"{result.latency_s:.1f}",
                model=result.model,
                models=listed,
            )
        else:
            message = _("%(url)s serves: %(models)s.", url=result.base_url, models=listed)
        if result.warning:
            message = f"{message} {result.warning}"
        kind = "success" if result.answered and not result.warning else "warning"
        return self._pipemail_ai_notify(_("AI endpoint test"), message, kind)

    def _pipemail_ai_notify(self, title, message, kind):
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"title": title, "message": message, "type": kind, "sticky": True},
        }

    # ------------------------------------------------------------------ secret store

    @api.model
    def _pipemail_ai_api_key_stored(self):
        """The ciphertext (or, before migration, a clear legacy value); never returned to RPC."""
        params = self.env["ir.config_parameter"].sudo()
        return params.get_param(API_KEY_PARAM) or params.get_param(LEGACY_API_KEY_PARAM)

    @api.model
    def _pipemail_ai_encrypt(self, value):
        keys = self.env["pipemail.account"]._secret_keys()
        try:
            return pm_secrets.encrypt(keys[0], value, context=API_KEY_CONTEXT)
        except pm_errors.ConfigError as exc:
            raise UserError(str(exc)) from exc

    @api.model
    def _pipemail_ai_set_api_key(self, value):
        """Encrypt ``value`` into the system parameter; an empty value removes the key."""
        if not self.env.is_system():
            raise AccessError(_("Only an administrator can change the AI API key."))
        params = self.env["ir.config_parameter"].sudo()
        params.set_param(API_KEY_PARAM, self._pipemail_ai_encrypt(value) if value else False)
        params.set_param(LEGACY_API_KEY_PARAM, False)

    @api.model
    def _pipemail_ai_api_key(self):
        """The clear API key for the AI client (server side only); ``False`` when none.

        Raises :class:`UserError` when the key cannot be decrypted (the server's
        pipemail_secret_key changed): an administrator enters the key again.
        """
        params = self.env["ir.config_parameter"].sudo()
        stored = params.get_param(API_KEY_PARAM)
        if not stored:
            legacy = params.get_param(LEGACY_API_KEY_PARAM)
            if legacy:
                # left in clear by an upgrade that ran without pipemail_secret_key
                self._pipemail_ai_migrate_api_key()
            return legacy or False
        keys = self.env["pipemail.account"]._secret_keys()
        try:
            return pm_secrets.decrypt(keys, stored, context=API_KEY_CONTEXT)
        except pm_secrets.SecretUnreadable as exc:
            raise UserError(
                _(
                    "The saved AI API key could not be read: the server's encryption key "
                    "may have changed. Ask an administrator to enter the AI API key again."
                )
            ) from exc

    @api.model
    def _pipemail_ai_migrate_api_key(self):
        """Move a clear ``pipemail_ai.api_key`` parameter to the encrypted one, then delete it.

        Run by the 18.0.2.0.0 post-migration script, and again by
        :meth:`_pipemail_ai_api_key` if that upgrade ran before ``pipemail_secret_key``
        was configured (the clear value is then kept rather than lost). Returns whether
        a clear key was migrated.
        """
        params = self.env["ir.config_parameter"].sudo()
        legacy = params.get_param(LEGACY_API_KEY_PARAM)
        if not legacy:
            return False
        try:
            ciphertext = self._pipemail_ai_encrypt(legacy)
        except UserError:
            _logger.warning(
                "The AI API key is still stored in clear in the system parameter %s: set "
                "pipemail_secret_key in the Odoo configuration file and restart; it is "
                "encrypted on its next use.",
                LEGACY_API_KEY_PARAM,
            )
            return False
        params.set_param(API_KEY_PARAM, ciphertext)
        params.set_param(LEGACY_API_KEY_PARAM, False)
        _logger.info("AI API key moved from %s to encrypted storage", LEGACY_API_KEY_PARAM)
        return True
