"""OAuth2 access tokens for Gmail and Microsoft 365 mailboxes, and the consent flow helpers.

Two facts shape this module:

* A revoked grant (``invalid_grant``) can only be fixed by the user clicking
  "Reconnect". Retrying it just hammers the provider (and gets the app throttled), so
  it becomes :class:`~pipemail.errors.ReconnectNeeded` at once, and the token source
  remembers it: further calls raise again without a request until the stored refresh
  token changes (the user reconnected).
* Microsoft rotates the refresh token on every use, and several Odoo workers may refresh
  the same account at the same moment. The new refresh token is handed to the caller's
  ``on_refresh_token(new, old)`` callback, which stores it with a compare-and-swap on
  ``old`` in its own committed transaction. A worker whose refresh fails with
  ``invalid_grant`` because another worker just rotated the token re-reads the stored
  token (``load_refresh_token()``); if it changed, it retries exactly once with it.

The token sources hold one lock each, so threads sharing a source send one request;
access tokens are cached until shortly before they expire.

Only the refresh is done here; talking IMAP/SMTP with the token is done elsewhere with
:func:`xoauth2_string`.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import logging
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar, cast
from urllib.parse import urlencode

import requests

from pipemail.errors import AuthFailed, ConfigError, ConnectFailed, ReconnectNeeded
from pipemail.types import TokenSource

_logger = logging.getLogger(__name__)

OAuthProvider = Literal["google", "microsoft"]

GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
GOOGLE_USERINFO_URI = "https://openidconnect.googleapis.com/v1/userinfo"
GMAIL_SCOPE = "https://mail.google.com/"
GOOGLE_SCOPES: tuple[str, ...] = (GMAIL_SCOPE,)
GOOGLE_CONSENT_SCOPES: tuple[str, ...] = (GMAIL_SCOPE, "openid", "email")
"""Asked at consent: ``openid email`` put the address in the id_token, so the Odoo side
can check the user connected the mailbox they meant to."""

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/common"
MICROSOFT_IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
MICROSOFT_SMTP_SCOPE = "https://outlook.office.com/SMTP.Send"
MICROSOFT_SCOPES: tuple[str, ...] = (MICROSOFT_IMAP_SCOPE, MICROSOFT_SMTP_SCOPE, "offline_access")
_MSAL_RESERVED = frozenset({"openid", "profile", "offline_access"})
"""msal adds these itself and raises ValueError if a caller passes them."""

RECONNECT_ERRORS = frozenset(
    {"invalid_grant", "interaction_required", "consent_required", "login_required"}
)
RECONNECT_AADSTS = frozenset(
    {
        50076,  # MFA now required
        50079,  # MFA enrolment required
        50173,  # grant revoked (password changed)
        53003,  # blocked by conditional access
        54005,  # code already redeemed
        65001,  # consent missing or withdrawn
        70000,  # invalid grant
        70008,  # refresh token expired
        70043,  # refresh token expired by sign-in frequency policy
        700082,  # refresh token expired through inactivity
        700084,  # refresh token of a single-page app expired
    }
)
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error", "internal_failure"})

RefreshTokenSaver = Callable[[str, str], None]
RefreshTokenLoader = Callable[[], "str | None"]

_NAMES: dict[str, str] = {"google": "Google", "microsoft": "Microsoft"}

T = TypeVar("T")


# --- errors ------------------------------------------------------------------------------


@dataclass
class _TokenFailure(Exception):
    """A token endpoint answer that is not a token, normalized across google-auth/msal."""

    error: str
    description: str = ""
    status: int = 0
    codes: Sequence[int] = ()

    @property
    def needs_reconnect(self) -> bool:
        if self.error in RECONNECT_ERRORS or set(self.codes) & RECONNECT_AADSTS:
            return True
        return any(f"AADSTS{code}:" in self.description for code in RECONNECT_AADSTS)

    @property
    def transient(self) -> bool:
        return self.status >= 500 or self.status == 429 or self.error in TRANSIENT_ERRORS


def _raise_typed(provider: str, failure: _TokenFailure) -> NoReturn:
    name = _NAMES.get(provider, provider)
    detail = f"{failure.status} {failure.error}: {failure.description}".strip()
    if failure.needs_reconnect:
        raise ReconnectNeeded(
            f"{name} no longer accepts this mailbox's sign-in. "
            "Reconnect the account to resume syncing.",
            detail=detail,
            oauth_error=failure.error,
        )
    if failure.transient:
        raise ConnectFailed(
            f"{name} could not renew the mailbox sign-in just now. Syncing will try again.",
            detail=detail,
            oauth_error=failure.error,
        )
    if failure.error in ("invalid_client", "unauthorized_client"):
        raise AuthFailed(
            f"{name} refused this application's sign-in settings. Ask an administrator to "
            "check the OAuth client id and secret.",
            detail=detail,
            oauth_error=failure.error,
        )
    raise AuthFailed(
        f"{name} refused to renew the mailbox sign-in. Try reconnecting the account.",
        detail=detail,
        oauth_error=failure.error,
    )


def _network_error(provider: str, exc: BaseException) -> ConnectFailed:
    return ConnectFailed(
        f"Could not reach {_NAMES.get(provider, provider)} to renew the mailbox sign-in. "
        "Syncing will try again.",
        detail=f"{type(exc).__name__}: {exc}",
    )


# --- token sources -----------------------------------------------------------------------


@dataclass
class _Grant:
    access_token: str
    expires_at: float
    refresh_token: str | None  # None: the provider did not rotate it


class RefreshingTokenSource:
    """What Google and Microsoft share: caching, locking, rotation and the reconnect latch.

    ``refresh_token`` is the token known at construction; when ``load_refresh_token``
    is given it is the source of truth and is read before every refresh (it must read
    committed data, e.g. with a fresh cursor, not a snapshot taken earlier).
    """

    provider: OAuthProvider

    def __init__(
        self,
        refresh_token: str | None = None,
        *,
        on_refresh_token: RefreshTokenSaver | None = None,
        load_refresh_token: RefreshTokenLoader | None = None,
        access_token: str | None = None,
        expires_at: float | None = None,
        refresh_margin: float = 300.0,
        rotation_grace: float = 3.0,
    ) -> None:
        if not refresh_token and load_refresh_token is None:
            raise ConfigError(
                "This mailbox has no saved sign-in. Connect the account first.",
                detail="no refresh token and no loader",
            )
        self._refresh_token = refresh_token
        self._save = on_refresh_token
        self._load = load_refresh_token
        self._access = access_token
        self._expires_at = expires_at or 0.0
        self._lifetime = max(0.0, self._expires_at - time.time())
        self.refresh_margin = refresh_margin
        self.rotation_grace = rotation_grace
        self._lock = threading.Lock()
        self._dead_token: str | None = None
        self._dead_error: ReconnectNeeded | None = None
        self.requests_made = 0
        """Token endpoint requests this source sent (for tests and the health panel)."""

    # public -------------------------------------------------------------------------

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A valid access token, refreshing (once, under a lock) if needed.

        ``force_refresh`` is for a server that just rejected the cached token (expired
        early, revoked session): the cache is skipped but the reconnect latch is not.
        """
        with self._lock:
            if not force_refresh and self._fresh():
                return self._access  # type: ignore[return-value]
            return self._refresh_locked()

    @property
    def reconnect_needed(self) -> bool:
        return self._dead_error is not None

    @property
    def expires_at(self) -> float:
        return self._expires_at

    def invalidate(self) -> None:
        """Forget the cached access token (e.g. after the server said it expired)."""
        with self._lock:
            self._access = None
            self._expires_at = 0.0

    # internals ----------------------------------------------------------------------

    def _fresh(self) -> bool:
        if not self._access:
            return False
        margin = min(self.refresh_margin, self._lifetime * 0.25)
        return time.time() < self._expires_at - margin

    def _current_refresh_token(self) -> str | None:
        if self._load is not None:
            stored = self._load()
            if stored:
                self._refresh_token = stored
        return self._refresh_token

    def _refresh_locked(self) -> str:
        used = self._current_refresh_token()
        if not used:
            raise ReconnectNeeded(
                f"{_NAMES[self.provider]} sign-in for this mailbox is missing. "
                "Reconnect the account to resume syncing.",
                detail="no refresh token stored",
            )
        if self._dead_error is not None:
            if used == self._dead_token:
                raise self._dead_error  # latched: no request until the user reconnects
            self._dead_token = self._dead_error = None
        try:
            grant = self._request_typed(used)
        except ReconnectNeeded as first:
            newer = self._wait_for_rotation(used)
            if newer is None:
                self._latch(used, first)
            _logger.info("%s refresh token rotated by another worker; retrying once", self.provider)
            used = newer
            try:
                grant = self._request_typed(used)
            except ReconnectNeeded as second:
                self._latch(used, second)
        self._access = grant.access_token
        self._expires_at = grant.expires_at
        self._lifetime = max(0.0, grant.expires_at - time.time())
        if grant.refresh_token and grant.refresh_token != used:
            self._refresh_token = grant.refresh_token
            if self._save is not None:
                # The old token is dead already: if saving fails the caller must know,
                # but this source keeps working with the new token in memory.
                self._save(grant.refresh_token, used)
        return grant.access_token

    def _latch(self, token: str, error: ReconnectNeeded) -> NoReturn:
        self._dead_token, self._dead_error = token, error
        self._access = None
        raise error

    def _wait_for_rotation(self, used: str) -> str | None:
        """After invalid_grant: did another worker rotate the token meanwhile?

        The winner may still be between its HTTP response and its commit, so the
        store is polled (no token requests) for up to ``rotation_grace`` seconds.
        """
        if self._load is None:
            return None
        deadline = time.monotonic() + self.rotation_grace
        while True:
            stored = self._load()
            if stored and stored != used:
                return stored
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def _request_typed(self, refresh_token: str) -> _Grant:
        self.requests_made += 1
        try:
            return self._request(refresh_token)
        except _TokenFailure as failure:
            _raise_typed(self.provider, failure)

    def _request(self, refresh_token: str) -> _Grant:
        raise NotImplementedError


class _TimeoutRequest:
    """google-auth's Request with our timeout (its own default is 120 s per attempt)."""

    def __init__(self, session: requests.Session | None, timeout: float) -> None:
        from google.auth.transport.requests import Request

        self._inner = Request(session=session)
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return self._inner(*args, **kwargs)


class GoogleTokenSource(RefreshingTokenSource):
    """Gmail access tokens from a refresh token, through google-auth's Credentials.

    google-auth retries 5xx / ``temporarily_unavailable`` answers itself (at most three
    attempts in one call); everything else is one request per refresh.
    """

    provider: OAuthProvider = "google"

    def __init__(
        self,
        refresh_token: str | None,
        client_id: str,
        client_secret: str,
        *,
        token_uri: str = GOOGLE_TOKEN_URI,
        scopes: Sequence[str] = GOOGLE_SCOPES,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(refresh_token, **kwargs)
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_uri = token_uri
        self.scopes = list(scopes)
        self._http = _TimeoutRequest(session, timeout)

    def __repr__(self) -> str:
        return f"GoogleTokenSource(client_id={self.client_id!r}, token_uri={self.token_uri!r})"

    def _request(self, refresh_token: str) -> _Grant:
        import google.auth.exceptions
        from google.oauth2.credentials import Credentials

        creds = Credentials(
            token=None,
            refresh_token=refresh_token,
            token_uri=self.token_uri,
            client_id=self.client_id,
            client_secret=self._client_secret,
            scopes=self.scopes,
        )
        try:
            creds.refresh(self._http)
        except google.auth.exceptions.RefreshError as exc:
            raise _google_failure(exc)
        except google.auth.exceptions.TransportError as exc:
            raise _network_error(self.provider, exc)
        if creds.expiry is not None:
            expires_at = float(calendar.timegm(creds.expiry.timetuple()))
        else:
            expires_at = time.time() + 3600
        rotated = creds.refresh_token if creds.refresh_token != refresh_token else None
        # google-auth types the token as optional: refresh() either sets it or raises
        return _Grant(cast(str, creds.token), expires_at, rotated)


def _google_failure(exc: Exception) -> _TokenFailure:
    data: Any = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, Mapping):
        error = str(data.get("error") or "")
        description = str(data.get("error_description") or "")
    else:
        text = str(exc.args[0]) if exc.args else str(exc)
        error, _, description = text.partition(":")
        if " " in error.strip():
            error, description = "", text
    retryable = bool(getattr(exc, "retryable", False))
    return _TokenFailure(error.strip(), description.strip(), status=503 if retryable else 400)


class MicrosoftTokenSource(RefreshingTokenSource):
    """Microsoft 365 access tokens through msal; the refresh token rotates on every use.

    With ``client_secret`` the app is a ConfidentialClientApplication (the usual web app
    registration), without it a PublicClientApplication.
    """

    provider: OAuthProvider = "microsoft"

    def __init__(
        self,
        refresh_token: str | None,
        client_id: str,
        client_secret: str | None = None,
        *,
        authority: str = MICROSOFT_AUTHORITY,
        scopes: Sequence[str] = MICROSOFT_SCOPES,
        http_client: requests.Session | None = None,
        timeout: float = 30.0,
        validate_authority: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(refresh_token, **kwargs)
        self.client_id = client_id
        self._client_secret = client_secret
        self.authority = authority
        self.scopes = [s for s in scopes if s not in _MSAL_RESERVED]
        self._http_client = http_client
        self._timeout = timeout
        self._validate_authority = validate_authority
        self._app: Any = None

    def __repr__(self) -> str:
        return f"MicrosoftTokenSource(client_id={self.client_id!r}, authority={self.authority!r})"

    def _msal_app(self) -> Any:
        # Built lazily: msal fetches the authority's metadata in the constructor.
        if self._app is None:
            self._app = _msal_app(
                self.client_id,
                self._client_secret,
                self.authority,
                self._http_client,
                self._timeout,
                self._validate_authority,
            )
        return self._app

    def _request(self, refresh_token: str) -> _Grant:
        import msal

        try:
            app = self._msal_app()
            # A fresh cache per call: we keep tokens ourselves, msal's cache would only grow.
            app.token_cache = msal.TokenCache()
            result = app.acquire_token_by_refresh_token(refresh_token, scopes=self.scopes)
        except (requests.RequestException, OSError) as exc:
            raise _network_error(self.provider, exc)
        except msal.exceptions.MsalServiceError as exc:  # msal raises for 5xx answers
            raise _TokenFailure(getattr(exc, "error", None) or "server_error", str(exc), 503)
        except ValueError as exc:  # msal: unusable authority metadata
            raise _network_error(self.provider, exc)
        if "access_token" not in result:
            raise _msal_failure(result)
        expires_in = float(result.get("expires_in") or 3600)
        return _Grant(result["access_token"], time.time() + expires_in, result.get("refresh_token"))


def _msal_app(
    client_id: str,
    client_secret: str | None,
    authority: str,
    http_client: requests.Session | None,
    timeout: float,
    validate_authority: bool,
) -> Any:
    import msal

    common: dict[str, Any] = {
        "authority": authority,
        "timeout": timeout,
        "validate_authority": validate_authority,
        "instance_discovery": validate_authority,
    }
    if http_client is not None:
        # msal ignores ``timeout`` when given a client; requests has no session timeout
        common["http_client"] = _SessionWithTimeout(http_client, timeout)
    try:
        if client_secret:
            return msal.ConfidentialClientApplication(
                client_id, client_credential=client_secret, **common
            )
        return msal.PublicClientApplication(client_id, **common)
    except (requests.RequestException, OSError, ValueError) as exc:
        raise _network_error("microsoft", exc)


class _SessionWithTimeout:
    """Duck-typed msal http_client: a requests.Session whose calls carry a timeout."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(url, **kwargs)

    def close(self) -> None:
        self._session.close()


def _msal_failure(result: Mapping[str, Any]) -> _TokenFailure:
    codes = [int(c) for c in result.get("error_codes") or () if str(c).isdigit()]
    status = 503 if result.get("error") in TRANSIENT_ERRORS else 400
    return _TokenFailure(
        str(result.get("error") or "unknown_error"),
        str(result.get("error_description") or ""),
        status=status,
        codes=codes,
    )


def authenticate_with_retry(
    tokens: TokenSource,
    attempt: Callable[[str], T],
    rejected: tuple[type[BaseException], ...],
) -> T:
    """Log in with the cached token; if the server rejects it, refresh once and try again.

    A cached token can be dead before its ``expires_in`` (revoked session, clock skew,
    server-side expiry). One forced refresh covers that; a second rejection propagates,
    so a server that refuses every token costs one extra token request, not a loop.
    """
    try:
        return attempt(tokens.access_token())
    except rejected as exc:
        _logger.info(
            "server rejected the cached access token (%s); refreshing once", type(exc).__name__
        )
    return attempt(tokens.access_token(force_refresh=True))


# --- consent flow (the "Connect Google/Microsoft" buttons) ------------------------------


@dataclass
class TokenResult:
    """What a successful authorization-code exchange yields; store ``refresh_token``."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    email: str = ""
    """The signed-in address from the id_token or userinfo; "" if the provider said
    nothing. The caller should check it against the account it is connecting."""
    scope: str = ""


def pkce_pair() -> tuple[str, str]:
    """A PKCE (RFC 7636) ``(code_verifier, code_challenge)``; keep the verifier server-side."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    provider: OAuthProvider,
    client_id: str,
    redirect_uri: str,
    state: str,
    login_hint: str | None = None,
    *,
    auth_uri: str | None = None,
    authority: str = MICROSOFT_AUTHORITY,
    code_challenge: str | None = None,
) -> str:
    """The URL to send the user's browser to for consent.

    Google gets ``access_type=offline`` and ``prompt=consent`` so a refresh token is
    returned even when the user had consented before (a reconnect would otherwise get
    none). ``state`` must be the caller's HMAC'd CSRF token; it comes back unchanged.
    """
    params: dict[str, str] = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "state": state,
    }
    if provider == "google":
        base = auth_uri or GOOGLE_AUTH_URI
        params.update(
            scope=" ".join(GOOGLE_CONSENT_SCOPES),
            access_type="offline",
            prompt="consent",
            include_granted_scopes="true",
        )
    elif provider == "microsoft":
        base = auth_uri or authority.rstrip("/") + "/oauth2/v2.0/authorize"
        params.update(
            scope=" ".join([*MICROSOFT_SCOPES, "openid", "email", "profile"]),
            response_mode="query",
            prompt="select_account",
        )
    else:
        raise ConfigError("Unknown mail provider.", detail=repr(provider))
    if login_hint:
        params["login_hint"] = login_hint
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    return f"{base}?{urlencode(params)}"


def exchange_code(
    provider: OAuthProvider,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str | None,
    *,
    token_uri: str | None = None,
    authority: str = MICROSOFT_AUTHORITY,
    userinfo_uri: str | None = None,
    session: requests.Session | None = None,
    code_verifier: str | None = None,
    validate_authority: bool = True,
    timeout: float = 30.0,
) -> TokenResult:
    """Trade the code from the consent redirect for tokens (the callback's one job).

    Google: a plain POST to ``token_uri`` (google-auth has no public code exchange).
    Microsoft: msal's ``acquire_token_by_authorization_code``. The email comes from
    the id_token (received straight from the token endpoint over TLS, so its
    signature need not be checked, OIDC Core 3.1.3.7), else from ``userinfo_uri``.
    """
    if provider == "google":
        tokens = _google_exchange(
            code,
            redirect_uri,
            client_id,
            client_secret,
            token_uri or GOOGLE_TOKEN_URI,
            session,
            code_verifier,
            timeout,
        )
        claims = _jwt_claims(tokens.get("id_token"))
        default_userinfo: str | None = GOOGLE_USERINFO_URI
    elif provider == "microsoft":
        tokens = _microsoft_exchange(
            code,
            redirect_uri,
            client_id,
            client_secret,
            authority,
            session,
            code_verifier,
            validate_authority,
            timeout,
        )
        claims = dict(tokens.get("id_token_claims") or {})
        default_userinfo = None  # Graph's userinfo needs a Graph token, not an Outlook one
    else:
        raise ConfigError("Unknown mail provider.", detail=repr(provider))
    refresh = tokens.get("refresh_token")
    if not refresh:
        raise AuthFailed(
            f"{_NAMES[provider]} did not grant offline access. Connect the account again "
            "and accept all requested permissions.",
            detail="no refresh_token in the code exchange response",
        )
    email = str(claims.get("email") or claims.get("preferred_username") or claims.get("upn") or "")
    userinfo = userinfo_uri or default_userinfo
    if not email and userinfo:
        email = _userinfo_email(
            userinfo,
            tokens["access_token"],
            session,
            timeout,
        )
    return TokenResult(
        access_token=tokens["access_token"],
        refresh_token=refresh,
        expires_at=time.time() + float(tokens.get("expires_in") or 3600),
        email=email.strip().lower(),
        scope=str(tokens.get("scope") or ""),
    )


def _google_exchange(
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str | None,
    token_uri: str,
    session: requests.Session | None,
    code_verifier: str | None,
    timeout: float,
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret or "",
    }
    if code_verifier:
        form["code_verifier"] = code_verifier
    http = session or requests.Session()
    try:
        response = http.post(token_uri, data=form, timeout=timeout)
    except requests.RequestException as exc:
        raise _network_error("google", exc)
    try:
        body = response.json()
    except ValueError:
        body = {"error": "invalid_response", "error_description": response.text[:200]}
    if response.status_code != 200 or "access_token" not in body:
        _raise_typed(
            "google",
            _TokenFailure(
                str(body.get("error") or "invalid_response"),
                str(body.get("error_description") or ""),
                status=response.status_code,
            ),
        )
    return dict(body)


def _microsoft_exchange(
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str | None,
    authority: str,
    session: requests.Session | None,
    code_verifier: str | None,
    validate_authority: bool,
    timeout: float,
) -> dict[str, Any]:
    import msal

    app = _msal_app(client_id, client_secret, authority, session, timeout, validate_authority)
    scopes = [s for s in MICROSOFT_SCOPES if s not in _MSAL_RESERVED]
    extra: dict[str, Any] = {"data": {"code_verifier": code_verifier}} if code_verifier else {}
    try:
        with warnings.catch_warnings():
            # msal prefers its auth-code-flow API, which keeps the whole flow (state,
            # PKCE) in a dict the web session must carry; our callback already checks
            # an HMAC'd state, so the plain code exchange is the right fit.
            warnings.simplefilter("ignore", DeprecationWarning)
            result = app.acquire_token_by_authorization_code(
                code, scopes=scopes, redirect_uri=redirect_uri, **extra
            )
    except (requests.RequestException, OSError) as exc:
        raise _network_error("microsoft", exc)
    except msal.exceptions.MsalServiceError as exc:
        _raise_typed(
            "microsoft", _TokenFailure(getattr(exc, "error", None) or "server_error", str(exc), 503)
        )
    if "access_token" not in result:
        _raise_typed("microsoft", _msal_failure(result))
    return dict(result)


def _jwt_claims(id_token: str | None) -> dict[str, Any]:
    if not id_token:
        return {}
    try:
        payload = id_token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _userinfo_email(
    uri: str, access_token: str, session: requests.Session | None, timeout: float
) -> str:
    http = session or requests.Session()
    try:
        response = http.get(
            uri, headers={"Authorization": f"Bearer {access_token}"}, timeout=timeout
        )
        if response.status_code == 200:
            return str(response.json().get("email") or "")
    except (requests.RequestException, ValueError) as exc:
        _logger.info("userinfo lookup failed: %s", type(exc).__name__)
    return ""


# --- SASL ---------------------------------------------------------------------------------


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response, *not* base64-encoded.

    imaplib's ``authenticate`` and smtplib's ``auth`` base64-encode what the callback
    returns, so encoding here would encode twice.
    """
    if "\x01" in user or "\x01" in token or not user or not token:
        raise ConfigError(
            "The mailbox user name or sign-in token is not usable.", detail="bad XOAUTH2 input"
        )
    return f"user={user}\x01auth=Bearer {token}\x01\x01"
