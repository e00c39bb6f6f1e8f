"""OAuth token sources against the harness OAuth server: real HTTP, real google-auth and msal.

RELIABILITY test 9: token expiry, invalid_grant and concurrent refresh, counting every
request the token endpoint sees so a retry storm cannot hide.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from pipemail.errors import AuthFailed, ConfigError, ConnectFailed, ReconnectNeeded
from pipemail.oauth import (
    GMAIL_SCOPE,
    MICROSOFT_IMAP_SCOPE,
    MICROSOFT_SMTP_SCOPE,
    GoogleTokenSource,
    MicrosoftTokenSource,
    TokenResult,
    authenticate_with_retry,
    authorization_url,
    exchange_code,
    pkce_pair,
    xoauth2_string,
)

CLIENT_ID = "pipemail-client"
CLIENT_SECRET = "pipemail-client-secret"


class Vault:
    """The Odoo side in miniature: one stored refresh token, compare-and-swap on save."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._lock = threading.Lock()
        self.saves: list[str] = []
        self.cas_conflicts = 0

    def load(self) -> str:
        with self._lock:
            return self.token

    def save(self, new: str, old: str) -> None:
        with self._lock:
            if self.token == old:
                self.token = new
                self.saves.append(new)
            else:
                self.cas_conflicts += 1


def token_requests(server) -> int:
    return sum(1 for r in server.requests if r.endpoint == "token")


@pytest.fixture
def server(oauth_server):
    oauth_server.client_id = CLIENT_ID
    oauth_server.client_secret = CLIENT_SECRET
    return oauth_server


def google(server, refresh_token, **kwargs) -> GoogleTokenSource:
    return GoogleTokenSource(
        refresh_token, CLIENT_ID, CLIENT_SECRET, token_uri=server.token_url, **kwargs
    )


def microsoft(server, refresh_token, **kwargs) -> MicrosoftTokenSource:
    return MicrosoftTokenSource(
        refresh_token,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=server.authority,
        http_client=server.http_session(),
        validate_authority=False,
        **kwargs,
    )


# --- Google ------------------------------------------------------------------------------


def test_google_refresh_then_cache(server):
    _, rt = server.issue("alice")
    source = google(server, rt)
    token = source.access_token()
    assert server.active_user(token) == "alice"
    assert source.access_token() == token
    assert token_requests(server) == 1
    assert server.requests[-1].grant_type == "refresh_token"
    assert source.expires_at > time.time() + 3000


def test_google_scope_is_gmail(server):
    _, rt = server.issue("alice")
    source = google(server, rt)
    source.access_token()
    assert source.scopes == [GMAIL_SCOPE]


def test_google_expiry_triggers_refresh(server):
    server.access_token_lifetime = 2
    _, rt = server.issue("alice")
    source = google(server, rt)
    first = source.access_token()
    assert source.access_token() == first  # cached while fresh
    time.sleep(2.1)
    second = source.access_token()
    assert second != first
    assert server.active_user(second) == "alice"
    assert token_requests(server) == 2


def test_google_force_refresh_skips_cache(server):
    _, rt = server.issue("alice")
    source = google(server, rt)
    first = source.access_token()
    server.expire(first)
    second = source.access_token(force_refresh=True)
    assert second != first and server.active_user(second) == "alice"


def test_google_revoked_is_reconnect_needed_without_retry_storm(server):
    _, rt = server.issue("alice")
    server.revoke(rt)
    source = google(server, rt)
    for _ in range(20):
        with pytest.raises(ReconnectNeeded) as info:
            source.access_token(force_refresh=True)
        assert "Reconnect" in str(info.value)
        assert info.value.oauth_error == "invalid_grant"  # the latched error keeps it too
    assert source.reconnect_needed
    n = token_requests(server)
    print(f"\n[no-retry-storm] google: 20 calls after revoke -> {n} token request(s)")
    assert n == 1


def test_google_refresh_token_handed_back_if_rotated(server):
    server.rotate_refresh_tokens = True
    _, rt = server.issue("alice")
    vault = Vault(rt)
    source = google(server, None, load_refresh_token=vault.load, on_refresh_token=vault.save)
    source.access_token()
    assert vault.token != rt
    assert server.refresh_token_valid(vault.token)
    assert not server.refresh_token_valid(rt)


def test_google_bad_client_is_auth_failed_not_reconnect(server):
    _, rt = server.issue("alice")
    source = GoogleTokenSource(rt, CLIENT_ID, "wrong-secret", token_uri=server.token_url)
    with pytest.raises(AuthFailed) as info:
        source.access_token()
    assert not isinstance(info.value, ReconnectNeeded)
    assert "administrator" in str(info.value)
    assert info.value.oauth_error == "invalid_client"


def test_google_transient_error_is_connect_failed_and_not_latched(server):
    _, rt = server.issue("alice")
    server.fail_next(503, n=5)
    source = google(server, rt)
    with pytest.raises(ConnectFailed):
        source.access_token()
    assert not source.reconnect_needed
    server.reset()
    server.client_id, server.client_secret = CLIENT_ID, CLIENT_SECRET
    assert server.active_user(source.access_token()) == "alice"


def test_google_unreachable_token_endpoint_is_connect_failed():
    source = GoogleTokenSource(
        "rt", CLIENT_ID, CLIENT_SECRET, token_uri="http://127.0.0.1:9/token", timeout=2
    )
    with pytest.raises(ConnectFailed) as info:
        source.access_token()
    assert info.value.oauth_error == ""  # no provider answered


def test_no_refresh_token_at_all_is_a_config_error():
    with pytest.raises(ConfigError):
        GoogleTokenSource(None, CLIENT_ID, CLIENT_SECRET)


# --- Microsoft ---------------------------------------------------------------------------


def test_microsoft_rotation_is_saved_atomically(server):
    server.rotate_refresh_tokens = True
    _, rt = server.issue("bob")
    vault = Vault(rt)
    source = microsoft(server, rt, on_refresh_token=vault.save, load_refresh_token=vault.load)
    token = source.access_token()
    assert server.active_user(token) == "bob"
    assert vault.saves == [vault.token] and vault.token != rt
    assert server.refresh_token_valid(vault.token) and not server.refresh_token_valid(rt)
    source.access_token(force_refresh=True)
    assert len(vault.saves) == 2 and server.refresh_token_valid(vault.token)
    assert token_requests(server) == 2


def test_microsoft_scopes(server):
    source = microsoft(server, "rt")
    assert source.scopes == [MICROSOFT_IMAP_SCOPE, MICROSOFT_SMTP_SCOPE]


def test_microsoft_without_loader_keeps_rotated_token_in_memory(server):
    server.rotate_refresh_tokens = True
    _, rt = server.issue("bob")
    source = microsoft(server, rt)
    source.access_token()
    source.access_token(force_refresh=True)  # uses the rotated token, not the dead one
    assert token_requests(server) == 2


def test_microsoft_threads_sharing_one_source_send_one_request(server):
    server.rotate_refresh_tokens = True
    server.delay(0.3)
    _, rt = server.issue("bob")
    vault = Vault(rt)
    source = microsoft(server, rt, on_refresh_token=vault.save, load_refresh_token=vault.load)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(source.access_token())) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert token_requests(server) == 1


def test_microsoft_concurrent_refresh_by_two_workers(server):
    """Two workers (two sources, one store) refresh at once; the loser re-reads and retries once."""
    server.rotate_refresh_tokens = True
    server.delay(0.5)
    _, rt = server.issue("bob")
    vault = Vault(rt)
    workers = [
        microsoft(server, None, on_refresh_token=vault.save, load_refresh_token=vault.load)
        for _ in range(2)
    ]
    for w in workers:
        w._msal_app()  # authority discovery outside the race, so the refreshes overlap
    barrier = threading.Barrier(2)
    tokens: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            tokens[i] = workers[i].access_token()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(server.active_user(t) == "bob" for t in tokens.values())
    n = token_requests(server)
    print(f"\n[concurrent refresh] 2 workers -> {n} token requests, saves={len(vault.saves)}")
    assert n <= 3  # two overlapping requests + at most one retry by the loser
    assert server.refresh_token_valid(vault.token)  # no lost token
    assert vault.cas_conflicts == 0
    # both workers keep working afterwards
    for w in workers:
        assert server.active_user(w.access_token(force_refresh=True)) == "bob"
    assert server.refresh_token_valid(vault.token)


def test_microsoft_revoked_is_reconnect_needed_without_retry_storm(server):
    server.rotate_refresh_tokens = True
    _, rt = server.issue("bob")
    server.revoke(rt)
    vault = Vault(rt)
    source = microsoft(
        server,
        None,
        on_refresh_token=vault.save,
        load_refresh_token=vault.load,
        rotation_grace=0.3,
    )
    for _ in range(20):
        with pytest.raises(ReconnectNeeded):
            source.access_token(force_refresh=True)
    n = token_requests(server)
    print(f"\n[no-retry-storm] microsoft: 20 calls after revoke -> {n} token request(s)")
    assert n == 1
    # the user reconnects: a new token appears in the store and the latch lifts
    _, fresh = server.issue("bob")
    vault.token = fresh
    assert server.active_user(source.access_token()) == "bob"
    assert not source.reconnect_needed
    assert token_requests(server) == 2


@pytest.mark.parametrize(
    "error", ["invalid_grant", "interaction_required", "consent_required", "login_required"]
)
def test_microsoft_user_fixable_errors_are_reconnect_needed(server, error):
    _, rt = server.issue("bob")
    server.fail_next(400, error=error)
    source = microsoft(server, rt)
    with pytest.raises(ReconnectNeeded):
        source.access_token()
    with pytest.raises(ReconnectNeeded):
        source.access_token()
    assert token_requests(server) == 1


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_provider_error_code_is_on_the_exception(server, provider):
    """Callers tell a revoked grant from a wrong client by the provider's own code."""
    make = google if provider == "google" else microsoft
    _, rt = server.issue("carol")
    server.revoke(rt)
    with pytest.raises(ReconnectNeeded) as revoked:
        make(server, rt, rotation_grace=0).access_token()
    assert (revoked.value.code, revoked.value.oauth_error) == ("reconnect", "invalid_grant")

    _, rt = server.issue("carol")
    server.client_secret = "not-what-the-app-sends"
    with pytest.raises(AuthFailed) as wrong_client:
        make(server, rt).access_token()
    assert (wrong_client.value.code, wrong_client.value.oauth_error) == ("auth", "invalid_client")
    server.client_secret = CLIENT_SECRET

    server.fail_next(400, error="unauthorized_client")
    with pytest.raises(AuthFailed) as unauthorized:
        make(server, rt).access_token()
    assert not isinstance(unauthorized.value, ReconnectNeeded)
    assert unauthorized.value.oauth_error == "unauthorized_client"
    assert server.refresh_token_valid(rt)  # a client error does not burn the grant

    server.fail_next(503, n=5, error="temporarily_unavailable")
    with pytest.raises(ConnectFailed) as transient:
        make(server, rt).access_token()
    # msal raises for a 5xx without the body's code; it says server_error then
    assert transient.value.oauth_error in ("temporarily_unavailable", "server_error")


def test_microsoft_transient_error_is_connect_failed(server):
    _, rt = server.issue("bob")
    server.fail_next(503, error="temporarily_unavailable")
    source = microsoft(server, rt)
    with pytest.raises(ConnectFailed):
        source.access_token()
    assert not source.reconnect_needed


def test_microsoft_unreachable_authority_is_connect_failed():
    source = MicrosoftTokenSource(
        "rt",
        CLIENT_ID,
        CLIENT_SECRET,
        authority="https://127.0.0.1:9/tenant",
        validate_authority=False,
        timeout=2,
    )
    with pytest.raises(ConnectFailed):
        source.access_token()


# --- consent flow ------------------------------------------------------------------------


def test_authorization_url_google():
    verifier, challenge = pkce_pair()
    url = authorization_url(
        "google",
        "cid",
        "https://crm.example.com/cb",
        "st4te",
        "a@example.com",
        code_challenge=challenge,
    )
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "accounts.google.com"
    assert q["scope"].split() == [GMAIL_SCOPE, "openid", "email"]
    assert q["access_type"] == "offline" and q["prompt"] == "consent"
    assert q["state"] == "st4te" and q["login_hint"] == "a@example.com"
    assert q["redirect_uri"] == "https://crm.example.com/cb" and q["response_type"] == "code"
    assert q["code_challenge"] == challenge and q["code_challenge_method"] == "S256"
    assert len(verifier) >= 43


def test_authorization_url_microsoft():
    url = authorization_url(
        "microsoft", "cid", "https://crm.example.com/cb", "s", authority="https://login.example/t"
    )
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.netloc}{parts.path}" == "login.example/t/oauth2/v2.0/authorize"
    scopes = q["scope"].split()
    assert {MICROSOFT_IMAP_SCOPE, MICROSOFT_SMTP_SCOPE, "offline_access"} <= set(scopes)
    assert "login_hint" not in q


def test_exchange_code_google(server):
    code = server.issue_code("carol@example.com")
    result = exchange_code(
        "google",
        code,
        "https://crm.example.com/cb",
        CLIENT_ID,
        CLIENT_SECRET,
        token_uri=server.token_url,
        userinfo_uri=f"{server.url}/userinfo",
    )
    assert isinstance(result, TokenResult)
    assert result.email == "carol@example.com"
    assert server.active_user(result.access_token) == "carol@example.com"
    assert server.refresh_token_valid(result.refresh_token)
    assert result.expires_at > time.time() + 3000
    assert result.refresh_token not in repr(result)
    # the refresh token works with the token source
    assert server.active_user(google(server, result.refresh_token).access_token())
    # a code is single use
    with pytest.raises(ReconnectNeeded):
        exchange_code(
            "google",
            code,
            "https://crm.example.com/cb",
            CLIENT_ID,
            CLIENT_SECRET,
            token_uri=server.token_url,
        )


def test_exchange_code_microsoft(server):
    code = server.issue_code("dave@example.com")
    result = exchange_code(
        "microsoft",
        code,
        "https://crm.example.com/cb",
        CLIENT_ID,
        CLIENT_SECRET,
        authority=server.authority,
        session=server.http_session(),
        validate_authority=False,
        userinfo_uri=f"{server.url}/userinfo",
    )
    assert result.email == "dave@example.com"
    assert server.refresh_token_valid(result.refresh_token)
    assert server.active_user(result.access_token) == "dave@example.com"


def test_xoauth2_string():
    assert xoauth2_string("a@b.c", "tok") == "user=a@b.c\x01auth=Bearer tok\x01\x01"
    with pytest.raises(ConfigError):
        xoauth2_string("a\x01b", "tok")


# --- end to end: XOAUTH2 against Dovecot -------------------------------------------------


def _imap_login(dovecot, user: str):
    def attempt(token: str) -> IMAPClient:
        client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
        try:
            client.oauth2_login(user, token)
        except LoginError:
            client.shutdown()
            raise
        return client

    return attempt


def test_xoauth2_login_with_token_source(dovecot_oauth, server):
    user = dovecot_oauth.add_user()
    _, rt = server.issue(user.name)
    source = google(server, rt)
    client = authenticate_with_retry(source, _imap_login(dovecot_oauth, user.name), (LoginError,))
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()
    assert token_requests(server) == 1


def test_token_expired_mid_session_refreshes_once_and_logs_in_again(dovecot_oauth, server):
    user = dovecot_oauth.add_user()
    _, rt = server.issue(user.name)
    source = google(server, rt)
    login = _imap_login(dovecot_oauth, user.name)
    client = authenticate_with_retry(source, login, (LoginError,))
    first = source.access_token()
    client.select_folder("INBOX")
    # The server-side token expires early and the session is dropped.
    server.expire(first)
    dovecot_oauth.kick(user.name)
    with pytest.raises(Exception):  # noqa: B017 - the old connection is gone
        client.noop()
    client = authenticate_with_retry(source, login, (LoginError,))
    try:
        client.select_folder("INBOX")
    finally:
        client.logout()
    assert source.access_token() != first
    assert token_requests(server) == 2  # the first refresh and exactly one more


def test_revoked_grant_mid_session_stops_without_storm(dovecot_oauth, server):
    user = dovecot_oauth.add_user()
    _, rt = server.issue(user.name)
    source = google(server, rt)
    login = _imap_login(dovecot_oauth, user.name)
    authenticate_with_retry(source, login, (LoginError,)).logout()
    server.revoke_user(user.name)
    for _ in range(5):
        with pytest.raises(ReconnectNeeded):
            authenticate_with_retry(source, login, (LoginError,))
    n = token_requests(server)
    print(f"\n[no-retry-storm] imap: 5 reconnect attempts after revoke -> {n} token requests")
    assert n == 2  # the initial refresh and the one that found the grant revoked
