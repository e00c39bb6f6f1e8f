import logging
import time

from werkzeug.exceptions import BadRequest, NotFound

from odoo import http
from odoo.http import request

from pipemail import errors as pm_errors

from .. import oauth
from ..engine import oauth as engine_oauth
from ..routes import OAUTH_CALLBACK, OAUTH_START

_logger = logging.getLogger(__name__)


class PipemailOAuthController(http.Controller):
    def _redirect_uri(self):
        base = request.env["ir.config_parameter"].sudo().get_param("web.base.url")
        return f"{base.rstrip('/')}{OAUTH_CALLBACK}"

    @http.route(OAUTH_START.format(provider="<string:provider>"), type="http", auth="user")
    def oauth_start(self, provider, account_id=None, **kwargs):
        if provider not in oauth.PROVIDERS:
            raise NotFound()
        Account = request.env["pipemail.account"]
        if account_id:
            try:
                account = Account.browse(int(account_id)).exists()
            except ValueError:
                raise BadRequest()
            # the caller must be allowed to sign this mailbox in; a missing mailbox and
            # someone else's get the same answer, so ids tell nothing
            if not account or not account._pipemail_may_sign_in():
                raise NotFound()
        else:
            account = Account
        try:
            settings = oauth.client_settings(request.env, provider)
        except pm_errors.PipemailError as exc:
            return request.render(
                "pipemail_sync.pipemail_oauth_result", {"ok": False, "message": str(exc)}
            )
        verifier, challenge = engine_oauth.pkce_pair()
        nonce = oauth.new_nonce()
        request.session[f"pipemail_oauth_{nonce}"] = verifier
        state = oauth.sign_state(
            request.env,
            {
                "uid": request.env.uid,
                "db": request.env.cr.dbname,
                "account_id": account.id or 0,
                "provider": provider,
                "nonce": nonce,
                "ts": int(time.time()),
            },
        )
        url = oauth.authorize_url(
            settings, self._redirect_uri(), state, challenge, account.email or ""
        )
        return request.redirect(url, local=False)

    @http.route(OAUTH_CALLBACK, type="http", auth="user")
    def oauth_callback(self, state=None, code=None, error=None, **kwargs):
        payload = oauth.verify_state(request.env, state or "")
        if not payload or payload.get("uid") != request.env.uid:
            # same answer for forged, expired and other people's states
            raise BadRequest("Invalid or expired sign-in request.")
        verifier = request.session.pop(f"pipemail_oauth_{payload.get('nonce')}", None)
        if not verifier:
            raise BadRequest("Invalid or expired sign-in request.")
        if error or not code:
            return request.render(
                "pipemail_sync.pipemail_oauth_result",
                {"ok": False, "message": "Sign-in was cancelled or refused by the provider."},
            )
        result = request.env["pipemail.account"]._oauth_complete(
            payload, code, self._redirect_uri(), verifier
        )
        if result.get("account_id"):
            return request.redirect(
                f"/odoo/action-pipemail_sync.pipemail_account_action/{result['account_id']}"
            )
        return request.render("pipemail_sync.pipemail_oauth_result", result)
