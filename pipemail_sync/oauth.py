"""OAuth glue between Odoo records and the engine's ``pipemail.oauth``.

The engine speaks to Google (google-auth) and Microsoft (msal); this module only reads
the client settings an admin saved, signs the consent ``state`` with the database
secret (``odoo.tools.misc.hmac``, checked with ``consteq``), and keeps refresh tokens
encrypted in the account, saved in their own committed transaction so a rotated
Microsoft token is never lost in a rolled-back sync.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as py_secrets
import threading
import time
import urllib.request

from odoo.tools import SQL, config
from odoo.tools.misc import consteq, hmac

from pipemail import errors as pm_errors

from .engine import oauth as engine_oauth

MAIL_HOSTS = {
    "gmail": ("imap.gmail.com", "smtp.gmail.com"),
    "microsoft": (
        "outlook.office365.com",
        "outlook.office.com",
        "smtp.office365.com",
        "smtp-mail.outlook.com",
    ),
}
"""The only servers an access token of each provider is ever sent to. An administrator
may add hosts (sovereign clouds, tests) with the system parameter
``pipemail.google_mail_hosts`` / ``pipemail.microsoft_mail_hosts`` (comma separated)."""
STATE_SCOPE = "pipemail-oauth-state"
STATE_MAX_AGE = 15 * 60
PROVIDERS = ("gmail", "microsoft")
ENGINE_PROVIDER = {"gmail": "google", "microsoft": "microsoft"}
_PARAM_PREFIX = {"gmail": "pipemail.google", "microsoft": "pipemail.microsoft"}

_sources: dict[tuple[str, int], engine_oauth.RefreshingTokenSource] = {}
_sources_lock = threading.Lock()
"""One token source per (database, account) per process: access tokens are cached
in memory until shortly before they expire, so a sync every few minutes does not
refresh every time."""


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
    if not isinstance(state, str) or state.count(".") != 1:
        return None
    body, signature = state.split(".")
    expected = hmac(env(su=True), STATE_SCOPE, body)
    if not consteq(expected, signature):
        return None
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    if time.time() - float(payload.get("ts") or 0) > STATE_MAX_AGE:
        return None
    return payload


def new_nonce() -> str:
    return _b64(py_secrets.token_bytes(16))


# --------------------------------------------------------------------- mail servers


def mail_hosts(env, provider: str) -> frozenset[str]:
    """The IMAP/SMTP hosts that may receive ``provider``'s access tokens."""
    extra = env["ir.config_parameter"].sudo().get_param(f"{_PARAM_PREFIX[provider]}_mail_hosts")
    hosts = {*MAIL_HOSTS[provider], *(h.strip() for h in (extra or "").split(","))}
    return frozenset(h.lower().rstrip(".") for h in hosts if h)


def check_mail_hosts(account) -> None:
    """Refuse to hand a provider's token to a server that is not the provider's.

    A token proves to anybody who receives it that they may read the mailbox: a
    mailbox connected with Google signs in to Google's servers only, whatever is typed
    in its server fields.
    """
    allowed = mail_hosts(account.env, account.provider)
    for host in (account.imap_host, account.smtp_host):
        if host and host.strip().lower().rstrip(".") not in allowed:
            provider = "Google" if account.provider == "gmail" else "Microsoft"
            allowed_text = ", ".join(sorted(MAIL_HOSTS[account.provider]))
            raise pm_errors.ConfigError(
                account.env._(
                    "A mailbox connected with %(provider)s signs in to %(provider)s's own "
                    "mail servers only (%(allowed)s), not to %(host)s. Correct the server "
                    "address, or connect this mailbox as IMAP / SMTP with a password.",
                    provider=provider,
                    allowed=allowed_text,
                    host=host,
                )
            )


def _binding(account) -> tuple:
    """What a cached token source is bound to: a changed server or login gets a new
    source (and with it no cached access token)."""
    return (
        account.provider,
        (account.imap_host or "").lower(),
        (account.smtp_host or "").lower(),
        (account.username or account.email or "").lower(),
    )


# --------------------------------------------------------------------- client settings


def client_settings(env, provider: str) -> dict:
    """Client id/secret set by an admin; endpoints overridable (tests, sovereign clouds)
    through system parameters ``pipemail.google_auth_uri``, ``pipemail.google_token_uri``,
    ``pipemail.microsoft_authority``."""
    if provider not in PROVIDERS:
        raise pm_errors.ConfigError(env._("This sign-in provider is not supported."))
    params = env["ir.config_parameter"].sudo()
    prefix = _PARAM_PREFIX[provider]
    settings = {
        "provider": ENGINE_PROVIDER[provider],
        "client_id": params.get_param(f"{prefix}_client_id") or "",
        "client_secret": params.get_param(f"{prefix}_client_secret") or "",
        "auth_uri": params.get_param(f"{prefix}_auth_uri") or None,
        "token_uri": params.get_param(f"{prefix}_token_uri") or None,
        "userinfo_uri": params.get_param(f"{prefix}_userinfo_uri") or None,
        "authority": params.get_param("pipemail.microsoft_authority")
        or engine_oauth.MICROSOFT_AUTHORITY,
    }
    # a private authority (on-premise identity server, tests) is not in Microsoft's
    # instance discovery and may use a private CA (``pipemail_cafile``)
    settings["validate_authority"] = settings["authority"].startswith(
        engine_oauth.MICROSOFT_AUTHORITY.rsplit("/", 1)[0]
    )
    settings["session"] = _http_session()
    if not settings["client_id"]:
        raise pm_errors.ConfigError(
            env._(
                "Sign-in with this provider is not set up yet. Ask an administrator to "
                "enter the OAuth client in CRM settings, Email Sync."
            )
        )
    return settings


def _http_session():
    """A requests session trusting ``pipemail_cafile`` when configured, else ``None``
    (the libraries' defaults)."""
    cafile = config.get("pipemail_cafile") or os.environ.get("PIPEMAIL_CAFILE")
    if not cafile:
        return None
    import requests

    session = requests.Session()
    # with trust_env, REQUESTS_CA_BUNDLE would silently replace the configured CA;
    # proxies from the environment are kept by hand
    session.trust_env = False
    session.proxies = urllib.request.getproxies()
    session.verify = cafile
    return session


def authorize_url(settings: dict, redirect_uri: str, state: str, challenge: str, hint: str) -> str:
    return engine_oauth.authorization_url(
        settings["provider"],
        settings["client_id"],
        redirect_uri,
        state,
        hint or None,
        auth_uri=settings["auth_uri"],
        authority=settings["authority"],
        code_challenge=challenge,
    )


def exchange_code(settings: dict, code: str, redirect_uri: str, verifier: str):
    """Trade the consent code for tokens (a :class:`pipemail.oauth.TokenResult`)."""
    return engine_oauth.exchange_code(
        settings["provider"],
        code,
        redirect_uri,
        settings["client_id"],
        settings["client_secret"] or None,
        token_uri=settings["token_uri"],
        authority=settings["authority"],
        userinfo_uri=settings["userinfo_uri"],
        code_verifier=verifier,
        session=settings["session"],
        validate_authority=settings["validate_authority"],
    )


# --------------------------------------------------------------------- token source


def _load_refresh_token(registry, account_id: int):
    """Read the committed refresh token with a fresh cursor (never a stale snapshot)."""

    def load():
        with registry.cursor() as cr:
            from odoo.api import Environment

            env = Environment(cr, 1, {})
            account = env["pipemail.account"].browse(account_id).exists()
            return account._get_secret("refresh_token") if account else None

    return load


def _save_refresh_token(registry, account_id: int):
    """Store a rotated refresh token with a compare-and-swap on the old one, committed
    at once in its own transaction (two workers may rotate at the same moment)."""

    def save(new: str, old: str) -> None:
        with registry.cursor() as cr:
            from odoo.api import Environment

            env = Environment(cr, 1, {})
            cr.execute(SQL("SELECT id FROM pipemail_account WHERE id = %s FOR UPDATE", account_id))
            account = env["pipemail.account"].browse(account_id)
            current = account._get_secret("refresh_token")
            if current and current != old:
                return  # someone stored a newer token already; theirs wins
            account._set_secret("refresh_token", new)
            # the old token is dead at the provider: the new one must survive rollbacks
            cr.commit()

    return save


def token_source(account):
    """The engine's token source for ``account``, shared within this process."""
    account.ensure_one()
    registry = account.env.registry
    key = (account.env.cr.dbname, account.id)
    with _sources_lock:
        source = _sources.get(key)
        if source is not None and getattr(source, "_pipemail_binding", None) == _binding(account):
            return source
        settings = client_settings(account.env, account.provider)
        common = {
            "load_refresh_token": _load_refresh_token(registry, account.id),
            "on_refresh_token": _save_refresh_token(registry, account.id),
        }
        if account.provider == "gmail":
            kwargs = {"token_uri": settings["token_uri"]} if settings["token_uri"] else {}
            source = engine_oauth.GoogleTokenSource(
                None,
                settings["client_id"],
                settings["client_secret"],
                session=settings["session"],
                **kwargs,
                **common,
            )
        else:
            source = engine_oauth.MicrosoftTokenSource(
                None,
                settings["client_id"],
                settings["client_secret"] or None,
                authority=settings["authority"],
                http_client=settings["session"],
                validate_authority=settings["validate_authority"],
                **common,
            )
        source._pipemail_binding = _binding(account)
        _sources[key] = source
        return source


def forget_source(account) -> None:
    """Drop the cached source (after a reconnect: its reconnect latch must go)."""
    with _sources_lock:
        _sources.pop((account.env.cr.dbname, account.id), None)
