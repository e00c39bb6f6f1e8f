"""A local OAuth2 provider: token endpoint, RFC 7662 introspection and OIDC discovery.

One object plays both sides a pipemail test needs: the Google/Microsoft token endpoint the
engine refreshes against (``POST .../token``), and the introspection endpoint Dovecot's
oauth2 passdb asks whether an XOAUTH2 bearer token is valid. Because both read the same
token table, "access token expired" or "refresh token revoked" is one call in a test and
is seen consistently by the IMAP server and the token client.

It listens on two loopback ports sharing that state: plain HTTP (``url``; Dovecot and
google-auth use it) and HTTPS with the harness CA (``https_url``; msal refuses any
authority that is not https).
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._common import LOOPBACK, tls_material


@dataclass
class _Access:
    user: str
    expires_at: float
    scope: str
    client_id: str | None


@dataclass
class _Refresh:
    user: str
    scope: str
    client_id: str | None
    revoked: bool = False
    replaced_by: str | None = None


@dataclass
class RequestRecord:
    """One request as the server saw it (for asserting on retry behaviour)."""

    at: float
    endpoint: str  # "token", "introspect", "discovery", "userinfo", "other"
    grant_type: str | None
    status: int
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class OAuthServer:
    """Token + introspection endpoint on loopback.

    ``rotate_refresh_tokens=True`` behaves like Microsoft: every refresh returns a new
    refresh token and the old one stops working (``invalid_grant``). Without it, refresh
    responses omit ``refresh_token`` like Google's, and the token stays valid.
    ``access_token_lifetime`` is the ``expires_in`` of issued access tokens.
    With ``client_id``/``client_secret`` set, token requests must carry them
    (form fields or HTTP Basic) or get 401 ``invalid_client``.
    """

    def __init__(
        self,
        *,
        rotate_refresh_tokens: bool = False,
        access_token_lifetime: float = 3600,
        client_id: str | None = None,
        client_secret: str | None = None,
        tenant: str = "tenant",
        start: bool = True,
    ) -> None:
        self.host = LOOPBACK
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.access_token_lifetime = access_token_lifetime
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self._defaults = (rotate_refresh_tokens, access_token_lifetime, client_id, client_secret)
        self.cafile = str(tls_material().cafile)
        self._lock = threading.RLock()
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._codes: dict[str, tuple[str, str]] = {}
        self._failures: list[tuple[str, int, str]] = []
        self._delay = 0.0
        self.counts: Counter[str] = Counter()
        self.requests: list[RequestRecord] = []
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.ssl_port = 0
        if start:
            self.start()

    # ------------------------------------------------------------------ URLs

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.ssl_port}"

    @property
    def introspection_url(self) -> str:
        """What Dovecot's oauth2 passdb POSTs ``token=...`` to."""
        return f"{self.url}/introspect"

    @property
    def token_url(self) -> str:
        """Google-style token endpoint (plain HTTP), e.g. for google-auth ``token_uri``."""
        return f"{self.url}/token"

    @property
    def https_token_url(self) -> str:
        return f"{self.https_url}/token"

    @property
    def authority(self) -> str:
        """msal ``authority=`` (use with ``validate_authority=False`` and ``verify=cafile``)."""
        return f"{self.https_url}/{self.tenant}"

    def http_session(self) -> Any:
        """A ``requests.Session`` that trusts the harness CA, e.g. msal's ``http_client=``.

        requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``Session.verify``
        (CI images set them), so ``verify=cafile`` alone is not enough: ``trust_env`` is off.
        """
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = self.cafile
        return session

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> OAuthServer:
        if self._servers:
            return self
        handler = _make_handler(self)
        plain = ThreadingHTTPServer((self.host, 0), handler)
        secure = ThreadingHTTPServer((self.host, 0), handler)
        # Handshake in the per-request thread: a stalled client cannot block accept().
        secure.socket = (
            tls_material()
            .server_context()
            .wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
        )
        for server in (plain, secure):
            server.daemon_threads = True
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"oauth-server-{server.server_address[1]}",
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.port = plain.server_address[1]
        self.ssl_port = secure.server_address[1]
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        self._threads.clear()

    close = stop

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ tokens

    def issue(
        self, user: object, expires_in: float | None = None, scope: str = "mail"
    ) -> tuple[str, str]:
        """Mint an access token and a refresh token for ``user`` (a name or a User)."""
        with self._lock:
            access = self._new_access(str(user), expires_in, scope, self.client_id)
            refresh = "rt-" + secrets.token_urlsafe(24)
            self._refresh[refresh] = _Refresh(str(user), scope, self.client_id)
            return access, refresh

    def issue_code(self, user: object, scope: str = "mail") -> str:
        """An authorization code for the ``authorization_code`` grant (single use)."""
        with self._lock:
            code = "code-" + secrets.token_urlsafe(16)
            self._codes[code] = (str(user), scope)
            return code

    def _new_access(
        self, user: str, expires_in: float | None, scope: str, client_id: str | None
    ) -> str:
        lifetime = self.access_token_lifetime if expires_in is None else expires_in
        token = "at-" + secrets.token_urlsafe(24)
        self._access[token] = _Access(user, time.time() + lifetime, scope, client_id)
        return token

    def expire(self, access_token: str) -> None:
        """Make an access token expired from now on (introspection says inactive)."""
        with self._lock:
            if access_token in self._access:
                self._access[access_token].expires_at = 0

    def expire_all(self, user: object | None = None) -> None:
        with self._lock:
            for token in self._access.values():
                if user is None or token.user == str(user):
                    token.expires_at = 0

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token: its next use answers 400 ``invalid_grant``."""
        with self._lock:
            if refresh_token in self._refresh:
                self._refresh[refresh_token].revoked = True

    def revoke_user(self, user: object) -> None:
        """Revoke every refresh token and expire every access token of ``user``."""
        with self._lock:
            for rt in self._refresh.values():
                if rt.user == str(user):
                    rt.revoked = True
            self.expire_all(user)

    def active_user(self, access_token: str) -> str | None:
        """The user an access token belongs to, or None if unknown/expired."""
        with self._lock:
            info = self._access.get(access_token)
            if info is None or info.expires_at <= time.time():
                return None
            return info.user

    def refresh_token_valid(self, refresh_token: str) -> bool:
        with self._lock:
            info = self._refresh.get(refresh_token)
            return info is not None and not info.revoked

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        status: int = 503,
        n: int = 1,
        endpoint: str = "token",
        error: str = "temporarily_unavailable",
    ) -> None:
        """Answer the next ``n`` requests to ``endpoint`` with ``status`` and ``error``."""
        with self._lock:
            self._failures.extend([(endpoint, status, error)] * n)

    def delay(self, seconds: float) -> None:
        """Hold every token response this long (makes concurrent refreshes overlap)."""
        self._delay = seconds

    def reset(self) -> None:
        """Clear counters, faults and delay and restore constructor settings (tokens stay)."""
        with self._lock:
            (
                self.rotate_refresh_tokens,
                self.access_token_lifetime,
                self.client_id,
                self.client_secret,
            ) = self._defaults
            self._failures.clear()
            self._delay = 0.0
            self.counts.clear()
            self.requests.clear()

    def reset_counters(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()

    def _take_failure(self, endpoint: str) -> tuple[int, str] | None:
        with self._lock:
            for i, (ep, status, error) in enumerate(self._failures):
                if ep == endpoint:
                    del self._failures[i]
                    return status, error
        return None

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)
            self.counts[record.endpoint] += 1
            if record.grant_type:
                self.counts[f"{record.endpoint}.{record.grant_type}"] += 1
            if record.error:
                self.counts[f"{record.endpoint}.error.{record.error}"] += 1

    # ------------------------------------------------------------------ endpoint logic

    def _introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            info = self._access.get(token)
            if info is None or info.expires_at <= time.time():
                return {"active": False}
            return {
                "active": True,
                "username": info.user,
                "email": info.user,
                "sub": info.user,
                "scope": info.scope,
                "client_id": info.client_id,
                "exp": int(info.expires_at),
                "token_type": "Bearer",
            }

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if self.client_id is not None and (
            form.get("client_id") != self.client_id
            or (self.client_secret is not None and form.get("client_secret") != self.client_secret)
        ):
            return 401, {"error": "invalid_client", "error_description": "bad client credentials"}
        with self._lock:
            if grant == "refresh_token":
                token = form.get("refresh_token", "")
                info = self._refresh.get(token)
                if info is None or info.revoked:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "refresh token revoked, expired or unknown",
                    }
                scope = form.get("scope") or info.scope
                body: dict[str, Any] = {
                    "access_token": self._new_access(info.user, None, scope, info.client_id),
                    "token_type": "Bearer",
                    "expires_in": int(self.access_token_lifetime),
                    "scope": scope,
                }
                if self.rotate_refresh_tokens:
                    new = "rt-" + secrets.token_urlsafe(24)
                    self._refresh[new] = _Refresh(info.user, info.scope, info.client_id)
                    info.revoked = True
                    info.replaced_by = new
                    body["refresh_token"] = new
                return 200, body
            if grant == "authorization_code":
                code = form.get("code", "")
                if code not in self._codes:
                    return 400, {"error": "invalid_grant", "error_description": "bad code"}
                user, scope = self._codes.pop(code)
                access = self._new_access(user, None, scope, form.get("client_id"))
                refresh = "rt-" + secrets.token_urlsafe(24)
                self._refresh[refresh] = _Refresh(user, scope, form.get("client_id"))
                return 200, {
                    "access_token": access,
                    "refresh_token": refresh,
                    "token_type": "Bearer",
                    "expires_in": int(self.access_token_lifetime),
                    "scope": scope,
                }
        return 400, {"error": "unsupported_grant_type", "error_description": grant}

    def _discovery(self, base: str) -> dict[str, Any]:
        tenant_base = f"{base}/{self.tenant}"
        return {
            "issuer": f"{tenant_base}/v2.0",
            "authorization_endpoint": f"{tenant_base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{tenant_base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{tenant_base}/oauth2/v2.0/devicecode",
            "introspection_endpoint": f"{base}/introspect",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{tenant_base}/discovery/v2.0/keys",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }


def _make_handler(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pipemail-test-oauth/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silence per-request stderr noise; ``OAuthServer.requests`` has the record."""

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                try:
                    data = json.loads(raw or b"{}")
                    return {str(k): str(v) for k, v in data.items()}
                except (ValueError, AttributeError):
                    return {}
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    form.setdefault("client_id", cid)
                    form.setdefault("client_secret", secret)
                except ValueError:
                    pass
            return form

        def _base(self) -> str:
            if isinstance(self.connection, ssl.SSLSocket):
                return server.https_url
            return server.url

        def _bearer(self) -> str:
            auth = self.headers.get("Authorization", "")
            return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            form = self._form() if method == "POST" else {}
            if path.endswith("/introspect"):
                endpoint = "introspect"
            elif path.endswith("/token"):
                endpoint = "token"
            elif path.endswith("/.well-known/openid-configuration"):
                endpoint = "discovery"
            elif path.endswith("/userinfo") or path.endswith("/tokeninfo"):
                endpoint = "userinfo"
            else:
                endpoint = "other"
            grant = form.get("grant_type") if endpoint == "token" else None
            failure = server._take_failure(endpoint)
            if failure is not None:
                status, error = failure
                server._record(RequestRecord(time.time(), endpoint, grant, status, error))
                self._send(status, {"error": error, "error_description": "injected fault"})
                return
            if endpoint == "introspect":
                token = form.get("token") or query.get("token") or self._bearer()
                body = server._introspect(token)
                status = 200
                extra = {"active": body["active"]}
            elif endpoint == "userinfo":
                token = self._bearer() or query.get("access_token", "")
                body = server._introspect(token)
                status = 200 if body["active"] else 401
                if not body["active"]:
                    body = {"error": "invalid_token"}
                extra = {}
            elif endpoint == "token":
                if method != "POST":
                    status, body = 405, {"error": "invalid_request"}
                else:
                    if server._delay:
                        time.sleep(server._delay)
                    status, body = server._token(form)
                extra = {}
            elif endpoint == "discovery":
                status, body, extra = 200, server._discovery(self._base()), {}
            else:
                status, body, extra = 404, {"error": "not_found"}, {}
            error = body.get("error") if status >= 400 else None
            server._record(RequestRecord(time.time(), endpoint, grant, status, error, extra))
            if endpoint == "introspect":
                server.counts["introspect.active" if body["active"] else "introspect.inactive"] += 1
            self._send(status, body)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self._handle("POST")

    return Handler
