"""OAuth glue between Odoo records and the engine: signed state, code exchange, and a
TokenSource that refreshes tokens and stores rotated refresh tokens safely.

Protocol details (endpoints, scopes, refresh, ``invalid_grant`` → ReconnectNeeded) belong
to ``pipemail.oauth``; this module only reads client settings from Odoo, signs the state
with the database secret, and persists tokens encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as py_secrets
import time
from datetime import datetime, timedelta

from odoo import fields
from odoo.tools.misc import consteq, hmac

from pipemail import errors as pm_errors

STATE_SCOPE = "pipemail-oauth-state"
STATE_MAX_AGE = 15 * 60
PROVIDERS = ("gmail", "microsoft")
DEFAULT_ENDPOINTS = {
    "gmail": {
        "authorize": "https://accounts.google.com/o/oauth2/v2/auth",
        "token": "https://oauth2.googleapis.com/token",
        "scope": "https://mail.google.com/ openid email",
    },
    "microsoft": {
        "authorize": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "token": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All "
        "https://outlook.office.com/SMTP.Send offline_access openid email",
    },
}
_PARAM_PREFIX = {"gmail": "pipemail.google", "microsoft": "pipemail.microsoft"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------- signed state


def sign_state(env, payload: dict) -> str:
    """``<payload>.<hmac>``: the callback trusts nothing it did not sign itself."""
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    return f"{body}.{hmac(env(su=True), STATE_SCOPE, body)}"


def verify_state(env, state: str) -> dict | None:
    """The payload of a state we signed less than 15 minutes ago, else ``None``."""
    if not state or state.count(".") != 1:
        return None
    body, signature = state.split(".")
    expected = hmac(env(su=True), STATE_SCOPE, body)
    if not consteq(expected, signature):
        return None
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or time.time() - payload.get("ts", 0) > STATE_MAX_AGE:
        return None
    return payload


def new_nonce() -> str:
    return _b64(py_secrets.token_bytes(16))


def id_token_email(body: dict) -> str:
    """The signed-in address from the id_token we just received over TLS from the
    token endpoint itself (OpenID Connect allows skipping the signature check then)."""
    token = body.get("id_token") or ""
    parts = token.split(".")
    if len(parts) != 3:
        return ""
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, TypeError):
        return ""
    email = claims.get("email") or claims.get("preferred_username") or ""
    return str(email).strip().lower()


def new_pkce() -> tuple[str, str]:
    verifier = _b64(py_secrets.token_bytes(48))
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


# --------------------------------------------------------------------- client settings


def client_settings(env, provider: str) -> dict:
    """Client id/secret and endpoints set by an admin (endpoints overridable for tests)."""
    if provider not in PROVIDERS:
        raise pm_errors.ConfigError("This sign-in provider is not supported.")
    params = env["ir.config_parameter"].sudo()
    prefix = _PARAM_PREFIX[provider]
    settings = dict(DEFAULT_ENDPOINTS[provider])
    for key in ("authorize", "token", "scope"):
        settings[key] = (
            params.get_param(f"{prefix}_{key}_url" if key != "scope" else f"{prefix}_scope")
            or settings[key]
        )
    settings["client_id"] = params.get_param(f"{prefix}_client_id") or ""
    settings["client_secret"] = params.get_param(f"{prefix}_client_secret") or ""
    if not settings["client_id"]:
        raise pm_errors.ConfigError(
            "Sign-in with this provider is not set up yet. Ask an administrator to enter "
            "the OAuth client in CRM settings, Email Sync."
        )
    return settings


def authorize_url(
    settings: dict, redirect_uri: str, state: str, challenge: str, login_hint: str
) -> str:
    from urllib.parse import urlencode

    query = {
        "client_id": settings["client_id"],
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": settings["scope"],
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",
    }
    if login_hint:
        query["login_hint"] = login_hint
    return f"{settings['authorize']}?{urlencode(query)}"


def _token_request(settings: dict, data: dict) -> dict:
    """POST to the token endpoint; map refusals to the engine's typed errors."""
    import requests

    data = dict(data, client_id=settings["client_id"])
    if settings.get("client_secret"):
        data["client_secret"] = settings["client_secret"]
    try:
        response = requests.post(settings["token"], data=data, timeout=30)
    except requests.RequestException as exc:
        raise pm_errors.ConnectFailed(
            "We could not reach the sign-in service. Try again in a moment.",
            detail=type(exc).__name__,
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400 or "access_token" not in body:
        error = body.get("error", "") if isinstance(body, dict) else ""
        if error in ("invalid_grant", "unauthorized_client", "invalid_client"):
            raise pm_errors.ReconnectNeeded(
                "The mailbox sign-in has expired or was revoked. Reconnect the mailbox.",
                detail=error,
            )
        raise pm_errors.AuthFailed(
            "The sign-in service refused the request. Reconnect the mailbox.",
            detail=f"HTTP {response.status_code} {error}",
        )
    return body


def exchange_code(settings: dict, code: str, redirect_uri: str, verifier: str) -> dict:
    try:
        from pipemail import oauth as engine_oauth
    except ImportError:
        engine_oauth = None
    if engine_oauth is not None and hasattr(engine_oauth, "exchange_code"):
        return engine_oauth.exchange_code(settings, code, redirect_uri, verifier)
    return _token_request(
        settings,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


def refresh(settings: dict, refresh_token: str) -> dict:
    return _token_request(settings, {"grant_type": "refresh_token", "refresh_token": refresh_token})


# --------------------------------------------------------------------- token source


class OdooTokenSource:
    """Access tokens for one account; refresh tokens persisted encrypted, at once.

    The refresh runs in its own short transaction with the account row locked, so two
    workers refreshing together do not both spend a rotating (Microsoft) refresh token:
    the second one waits, then finds the fresh access token the first one stored.
    A rotated refresh token is committed before it is used, never lost in a rollback.
    """

    def __init__(self, account) -> None:
        self.env = account.env
        self.account_id = account.id
        self.provider = account.provider

    def access_token(self, *, force_refresh: bool = False) -> str:
        registry = self.env.registry
        with registry.cursor() as cr:
            env = self.env(cr=cr, su=True)
            cr.execute(
                "SELECT id FROM pipemail_account WHERE id = %s FOR UPDATE", (self.account_id,)
            )
            account = env["pipemail.account"].browse(self.account_id)
            expiry = account.oauth_access_expiry
            if (
                not force_refresh
                and expiry
                and expiry > fields.Datetime.now() + timedelta(minutes=2)
            ):
                token = account._get_secret("access_token")
                if token:
                    return token
            refresh_token = account._get_secret("refresh_token")
            if not refresh_token:
                raise pm_errors.ReconnectNeeded(
                    "This mailbox is not signed in. Use Reconnect to sign in again.",
                    detail="no refresh token stored",
                )
            body = refresh(client_settings(env, self.provider), refresh_token)
            store_tokens(account, body)
            # persist now: a rotated refresh token must outlive this sync's rollbacks
            cr.commit()
            return body["access_token"]


def store_tokens(account, body: dict) -> None:
    """Save tokens from a token endpoint answer, encrypted; keep the old refresh token
    when the provider did not send a new one (Google does not rotate)."""
    account.ensure_one()
    if body.get("refresh_token"):
        account._set_secret("refresh_token", body["refresh_token"])
    account._set_secret("access_token", body["access_token"])
    expires_in = int(body.get("expires_in") or 3600)
    account.sudo().write(
        {"oauth_access_expiry": datetime.utcnow() + timedelta(seconds=max(60, expires_in))}
    )
