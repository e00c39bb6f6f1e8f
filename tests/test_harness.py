"""The harness servers, tested against real clients (imaplib, smtplib, google-auth, msal).

If these fail, every end-to-end test built on the fixtures is suspect, so each fixture is
exercised the way the engine will use it.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import re
import shutil
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

import pytest
import requests
from harness import Dovecot, HarnessError, OAuthServer, SmtpSink, TCPProxy, User

REQUIRED_CAPS = {"CONDSTORE", "QRESYNC", "IDLE", "MOVE", "SPECIAL-USE", "ENABLE", "UIDPLUS"}


def make_message(subject: str = "hello", body: str = "body", size: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.org>"
    msg["To"] = "rcpt@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}.{time.time_ns()}@example.org>"
    msg.set_content(body + ("x" * 75 + "\n") * (size // 76))
    return msg.as_bytes().replace(b"\n", b"\r\n")


def xoauth2(host: str, port: int, user: str, token: str) -> imaplib.IMAP4:
    """Log in with XOAUTH2 the way Gmail/Outlook clients do; raises IMAP4.error on NO."""
    client = imaplib.IMAP4(host, port, timeout=10)
    sent: list[bytes] = []

    def respond(challenge: bytes) -> bytes:
        # First call: send the token. Second call (error JSON challenge): answer empty.
        sent.append(challenge)
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode() if len(sent) == 1 else b""

    try:
        client.authenticate("XOAUTH2", respond)
    except imaplib.IMAP4.error:
        client.shutdown()
        raise
    return client


def caps_after_login(client: imaplib.IMAP4) -> set[str]:
    typ, data = client.capability()
    assert typ == "OK"
    return set(data[0].decode().upper().split())


# ---------------------------------------------------------------- Dovecot


def test_password_login_capabilities_and_special_use(dovecot: Dovecot, imap_user: User) -> None:
    client = dovecot.imap(imap_user)
    try:
        assert REQUIRED_CAPS <= caps_after_login(client)
        typ, listing = client.list()
        assert typ == "OK"
        uses = {}
        for line in listing:
            match = re.match(rb'\(([^)]*)\) "/" "?([^"]+)"?', line)
            assert match, line
            attrs = set(match.group(1).decode().split())
            uses[match.group(2).decode()] = attrs
        assert set(uses) == {"INBOX", "Sent", "Archive", "Trash", "Drafts", "Junk"}
        for name in ("Sent", "Archive", "Trash", "Drafts", "Junk"):
            assert f"\\{name}" in uses[name]
        typ, subscribed = client.lsub()
        assert typ == "OK" and len(subscribed) == 6
    finally:
        client.logout()


def test_wrong_password_fails_fast(dovecot: Dovecot, imap_user: User) -> None:
    client = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=10)
    start = time.monotonic()
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error):
            client.login(imap_user.name, "wrong")
    # No 2 s auth_failure_delay nor growing penalty; Dovecot 2.3's 0.5 s flush timer remains.
    print(f"\n[harness] two failed logins took {time.monotonic() - start:.2f} s")
    client.login(imap_user.name, imap_user.password)
    client.logout()


def test_starttls_and_imaps_verify_against_cafile(dovecot: Dovecot, imap_user: User) -> None:
    for mode in ("starttls", "ssl"):
        client = dovecot.imap(imap_user, mode=mode)
        assert isinstance(client.sock, ssl.SSLSocket)
        assert REQUIRED_CAPS <= caps_after_login(client)
        client.logout()
    # Trust store without the harness CA: verification must fail (the cert is not "any").
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    untrusting.load_default_certs()
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.ssl_port, ssl_context=untrusting, timeout=5)
    # The certificate is valid for "localhost" too.
    ctx = ssl.create_default_context(cafile=dovecot.cafile)
    with socket.create_connection((dovecot.host, dovecot.ssl_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_append_then_fetch_matches_fetch_state(dovecot: Dovecot, imap_user: User) -> None:
    raw = make_message("append test", "héllo wörld\n")
    when = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    uid = dovecot.append(imap_user, "INBOX", raw, flags=("\\Seen", "$Label1"), internaldate=when)
    uid2 = dovecot.append(imap_user, "INBOX", make_message("second"))
    assert uid2 == uid + 1

    client = dovecot.imap(imap_user)
    try:
        typ, _ = client.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = client.uid("FETCH", str(uid), "(FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
        assert typ == "OK"
        meta, body = data[0]
        assert body == raw
        flags = set(imaplib.ParseFlags(meta))
        assert {b"\\Seen", b"$Label1"} <= flags
        size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
        assert b'INTERNALDATE "04-Mar-2024 05:06:07 +0000"' in meta
    finally:
        client.logout()

    state = dovecot.fetch_state(imap_user, "INBOX")
    assert [row["uid"] for row in state] == [uid, uid2]
    first = state[0]
    assert first["flags"] == {"\\Seen", "$Label1"}
    assert first["message_id"] and first["message_id"] in raw.decode()
    assert first["size"] == size
    assert first["guid"]
    assert first["internaldate"] == dt.datetime(2024, 3, 4, 5, 6, 7)
    assert state[1]["flags"] == frozenset()
    assert dovecot.fetch_raw(imap_user, "INBOX", uid) == raw


def test_append_many_is_fast_and_ordered(dovecot: Dovecot, imap_user: User) -> None:
    messages = [make_message(f"bulk {i}") for i in range(200)]
    start = time.monotonic()
    uids = dovecot.append_many(imap_user, "Archive", messages)
    print(f"\n[harness] append_many of 200 messages: {time.monotonic() - start:.2f} s")
    assert uids == list(range(uids[0], uids[0] + 200))
    state = dovecot.fetch_state(imap_user, "Archive")
    assert len(state) == 200
    assert dovecot.status(imap_user, "Archive")["uidnext"] == uids[-1] + 1


def test_set_uidvalidity_is_seen_by_select(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.append(imap_user, "INBOX", make_message())
    before = dovecot.uidvalidity(imap_user, "INBOX")
    dovecot.set_uidvalidity(imap_user, "INBOX", before + 1000)
    client = dovecot.imap(imap_user)
    try:
        client.select("INBOX")
        assert client.response("UIDVALIDITY")[1] == [str(before + 1000).encode()]
    finally:
        client.logout()
    assert dovecot.uidvalidity(imap_user, "INBOX") == before + 1000


def test_kick_disconnects_client(dovecot: Dovecot, imap_user: User) -> None:
    client = dovecot.imap(imap_user)
    client.select("INBOX")
    assert dovecot.who(imap_user) == 1
    dovecot.kick(imap_user)
    assert dovecot.who(imap_user) == 0
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
        client.noop()


def test_move_expunge_and_flags(dovecot: Dovecot, imap_user: User) -> None:
    uids = dovecot.append_many(imap_user, "INBOX", [make_message(f"m{i}") for i in range(4)])
    modseq = dovecot.status(imap_user, "INBOX")["highestmodseq"]
    mapping = dovecot.move(imap_user, "INBOX", "Archive", uids[:2])
    assert set(mapping) == set(uids[:2])
    archived = dovecot.fetch_state(imap_user, "Archive")
    assert [row["uid"] for row in archived] == sorted(mapping.values())

    dovecot.add_flags(imap_user, "INBOX", [uids[2]], ["\\Flagged", "$Work"])
    dovecot.remove_flags(imap_user, "INBOX", [uids[2]], ["$Work"])
    dovecot.set_flags(imap_user, "INBOX", [uids[3]], ["\\Seen", "\\Answered"])
    dovecot.expunge(imap_user, "Archive", [mapping[uids[0]]])
    state = {row["uid"]: row["flags"] for row in dovecot.fetch_state(imap_user, "INBOX")}
    assert state == {uids[2]: {"\\Flagged"}, uids[3]: {"\\Seen", "\\Answered"}}
    dovecot.set_flags(imap_user, "INBOX", [uids[3]], [])
    assert dovecot.fetch_state(imap_user, "INBOX")[1]["flags"] == frozenset()
    assert len(dovecot.fetch_state(imap_user, "Archive")) == 1
    assert dovecot.status(imap_user, "INBOX")["highestmodseq"] > modseq

    client = dovecot.imap(imap_user)
    try:
        client.select("INBOX", readonly=True)
        typ, data = client.uid("SEARCH", "FLAGGED")
        assert data[0].split() == [str(uids[2]).encode()]
    finally:
        client.logout()


def test_mailbox_create_delete_recreate(dovecot: Dovecot, imap_user: User) -> None:
    name = "Projects/Ünïcode & Co"
    dovecot.create_mailbox(imap_user, name)
    assert name in dovecot.list_mailboxes(imap_user)
    dovecot.append(imap_user, name, make_message("in folder"))
    assert len(dovecot.fetch_state(imap_user, name)) == 1
    dovecot.delete_mailbox(imap_user, name)
    assert name not in dovecot.list_mailboxes(imap_user)
    dovecot.create_mailbox(imap_user, name)
    assert dovecot.fetch_state(imap_user, name) == []
    with pytest.raises(HarnessError):
        dovecot.fetch_state(imap_user, "No/Such/Folder")


def test_restart_keeps_ports_and_mail(dovecot_factory) -> None:
    dovecot = dovecot_factory()
    imap_user = dovecot.add_user()
    uid = dovecot.append(imap_user, "INBOX", make_message())
    client = dovecot.imap(imap_user)
    ports = (dovecot.port, dovecot.ssl_port)
    dovecot.restart()
    assert (dovecot.port, dovecot.ssl_port) == ports
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
        client.noop()
    again = dovecot.imap(imap_user)
    again.select("INBOX")
    assert again.uid("SEARCH", "ALL")[1][0].split() == [str(uid).encode()]
    again.logout()


def test_start_failure_shows_dovecot_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(HarnessError, match="Address already in use") as info:
            Dovecot(port=port, start_timeout=10)
    assert "dovecot" in str(info.value).lower()


def test_idle_is_woken_by_doveadm_changes(dovecot: Dovecot, imap_user: User) -> None:
    client = dovecot.imap(imap_user)
    try:
        client.select("INBOX")
        client.send(b"I1 IDLE\r\n")
        assert client.readline().startswith(b"+")
        dovecot.append(imap_user, "INBOX", make_message("wake up"))
        client.sock.settimeout(5)
        line = client.readline()
        assert re.match(rb"\* 1 EXISTS", line), line
        client.send(b"DONE\r\n")
        while not client.readline().startswith(b"I1 OK"):
            pass
    finally:
        client.logout()


def test_enable_qresync_then_select_reports_modseq(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.append(imap_user, "INBOX", make_message())
    client = dovecot.imap(imap_user)
    try:
        typ, data = client._simple_command("ENABLE", "QRESYNC")
        assert typ == "OK" and b"QRESYNC" in b" ".join(client.untagged_responses.pop("ENABLED"))
        client.select("INBOX")
        modseq = client.untagged_responses.get("OK", [])
        assert any(b"HIGHESTMODSEQ" in item for item in modseq), modseq
    finally:
        client.logout()


def test_config_error_and_missing_binary_are_explained(monkeypatch) -> None:
    server = Dovecot(start=False)
    try:
        server.config_path.write_text(server.config_path.read_text() + "\nno_such_setting = 1\n")
        with pytest.raises(HarnessError, match="no_such_setting"):
            server.start()
    finally:
        server.close()
    import harness.dovecot as dovecot_module

    monkeypatch.setattr(dovecot_module, "_find_binary", lambda name: None)
    with pytest.raises(HarnessError, match="apt-get install dovecot-imapd"):
        Dovecot()


def _live_members(pgid: int) -> list[int]:
    """Processes of a process group that are not zombies (PID 1 may reap them late)."""
    import os

    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry))
    return live


def test_dovecot_dies_with_a_killed_test_process() -> None:
    """A SIGKILLed pytest must not leave a Dovecot behind (setpriv --pdeathsig)."""
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from harness import Dovecot, tls_material; d = Dovecot();"
        "print(d._proc.pid, d.workdir, tls_material().cafile.parent, flush=True);"
        "time.sleep(60)"
    )
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.Popen(
        [sys.executable, "-c", script, tests_dir], stdout=subprocess.PIPE, text=True
    )
    leftover_dirs: list[str] = []
    try:
        pid_text, *leftover_dirs = child.stdout.readline().split()
        pid = int(pid_text)
        assert _live_members(pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=5)
        # The master dies at once; its children notice within ~2 s.
        deadline = time.monotonic() + 10
        while _live_members(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = _live_members(pid)
        if leftover:
            os.killpg(pid, signal.SIGKILL)
        assert not leftover, "Dovecot outlived the process that started it"
    finally:
        child.kill()
        child.wait()
        for path in leftover_dirs:  # the killed child could not clean up after itself
            shutil.rmtree(path, ignore_errors=True)


def test_users_added_at_runtime(dovecot: Dovecot) -> None:
    users = [dovecot.add_user() for _ in range(3)]
    named = dovecot.add_user("alice.example+tag@example.org", "s3cret")
    for user in [*users, named]:
        client = dovecot.imap(user)
        client.logout()
    with pytest.raises(ValueError):
        dovecot.add_user(named.name)


# ---------------------------------------------------------------- OAuth


def test_xoauth2_login_accepts_valid_token(
    dovecot_oauth: Dovecot, oauth_server: OAuthServer
) -> None:
    user = dovecot_oauth.add_user()
    access, _ = oauth_server.issue(user)
    client = xoauth2(dovecot_oauth.host, dovecot_oauth.port, user.name, access)
    assert REQUIRED_CAPS <= caps_after_login(client)
    client.logout()
    bearer = imaplib.IMAP4(dovecot_oauth.host, dovecot_oauth.port, timeout=10)
    gs2 = f"n,a={user.name},\x01host={dovecot_oauth.host}\x01port={dovecot_oauth.port}"
    bearer.authenticate("OAUTHBEARER", lambda _: f"{gs2}\x01auth=Bearer {access}\x01\x01")
    bearer.logout()
    assert oauth_server.counts["introspect.active"] == 2
    # The same user can still log in with a password on the OAuth-enabled server.
    dovecot_oauth.imap(user).logout()
    pre = imaplib.IMAP4(dovecot_oauth.host, dovecot_oauth.port)
    assert "AUTH=XOAUTH2" in pre.capabilities and "AUTH=OAUTHBEARER" in pre.capabilities
    pre.shutdown()


def test_xoauth2_rejects_expired_unknown_and_foreign_tokens(
    dovecot_oauth: Dovecot, oauth_server: OAuthServer
) -> None:
    user, other = dovecot_oauth.add_user(), dovecot_oauth.add_user()
    access, _ = oauth_server.issue(user)
    foreign, _ = oauth_server.issue(other)
    short, _ = oauth_server.issue(user, expires_in=0.2)
    oauth_server.expire(access)
    time.sleep(0.25)
    for token in (access, "at-unknown", foreign, short):
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED|failed"):
            xoauth2(dovecot_oauth.host, dovecot_oauth.port, user.name, token)
    assert oauth_server.counts["introspect"] == 4


def test_google_auth_refresh_then_imap(dovecot_oauth: Dovecot, oauth_server: OAuthServer) -> None:
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    user = dovecot_oauth.add_user()
    _, refresh = oauth_server.issue(user)
    creds = Credentials(
        token=None,
        refresh_token=refresh,
        token_uri=oauth_server.token_url,
        client_id="client",
        client_secret="secret",
    )
    creds.refresh(Request())
    assert creds.valid and creds.refresh_token == refresh  # Google does not rotate
    xoauth2(dovecot_oauth.host, dovecot_oauth.port, user.name, creds.token).logout()

    oauth_server.revoke(refresh)
    with pytest.raises(RefreshError, match="invalid_grant"):
        creds.refresh(Request())
    assert oauth_server.counts["token.refresh_token"] == 2
    assert oauth_server.counts["token.error.invalid_grant"] == 1


def test_msal_refresh_rotates_and_revoke_gives_invalid_grant(oauth_server: OAuthServer) -> None:
    import msal

    oauth_server.rotate_refresh_tokens = True
    _, refresh = oauth_server.issue("someone@example.org")
    app = msal.ConfidentialClientApplication(
        "client-id",
        client_credential="secret",
        authority=oauth_server.authority,
        validate_authority=False,
        instance_discovery=False,
        http_client=oauth_server.http_session(),
    )
    scopes = ["https://outlook.office.com/IMAP.AccessAsUser.All"]
    first = app.acquire_token_by_refresh_token(refresh, scopes=scopes)
    assert "access_token" in first, first
    rotated = first["refresh_token"]
    assert rotated != refresh
    assert oauth_server.active_user(first["access_token"]) == "someone@example.org"

    stale = app.acquire_token_by_refresh_token(refresh, scopes=scopes)
    assert stale.get("error") == "invalid_grant"
    second = app.acquire_token_by_refresh_token(rotated, scopes=scopes)
    assert "access_token" in second
    oauth_server.revoke(second["refresh_token"])
    revoked = app.acquire_token_by_refresh_token(second["refresh_token"], scopes=scopes)
    assert revoked.get("error") == "invalid_grant"
    assert oauth_server.counts["token"] == 4
    assert oauth_server.counts["discovery"] == 1


def test_token_endpoint_code_grant_client_auth_and_faults(oauth_server: OAuthServer) -> None:
    session = requests.Session()
    session.trust_env = False
    code = oauth_server.issue_code("carol")
    form = {"grant_type": "authorization_code", "code": code, "client_id": "c"}
    resp = session.post(oauth_server.token_url, data=form, timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert body["expires_in"] == 3600 and body["refresh_token"] and body["access_token"]
    assert session.post(oauth_server.token_url, data=form, timeout=5).json() == {
        "error": "invalid_grant",
        "error_description": "bad code",
    }

    oauth_server.fail_next(503, n=2)
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    codes = [
        session.post(oauth_server.token_url, data=refresh, timeout=5).status_code for _ in range(3)
    ]
    assert codes == [503, 503, 200]

    oauth_server.client_id, oauth_server.client_secret = "right", "s"
    resp = session.post(oauth_server.token_url, data=refresh, auth=("wrong", "s"), timeout=5)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    resp = session.post(oauth_server.token_url, data=refresh, auth=("right", "s"), timeout=5)
    assert resp.status_code == 200

    oauth_server.access_token_lifetime = 5
    assert (
        session.post(oauth_server.token_url, data=refresh, auth=("right", "s"), timeout=5).json()[
            "expires_in"
        ]
        == 5
    )


# ---------------------------------------------------------------- proxy


def test_proxy_cut_inside_literal(dovecot: Dovecot, imap_user: User, tcp_proxy) -> None:
    raw = make_message("big", size=400_000)
    uid = dovecot.append(imap_user, "INBOX", raw)
    proxy: TCPProxy = tcp_proxy(dovecot)
    client = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    client.login(imap_user.name, imap_user.password)
    client.select("INBOX", readonly=True)
    proxy.cut_after(100_000)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert proxy.cuts == 1
    # The rule was for one connection: a reconnect through the proxy gets the whole message.
    again = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    again.login(imap_user.name, imap_user.password)
    again.select("INBOX", readonly=True)
    typ, data = again.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert data[0][1] == raw
    again.logout()
    assert proxy.connections == 2


def test_proxy_delay_close_all_refuse(dovecot: Dovecot, imap_user: User, tcp_proxy) -> None:
    proxy: TCPProxy = tcp_proxy(dovecot.host, dovecot.port)
    proxy.delay(0.2)
    start = time.monotonic()
    client = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    assert time.monotonic() - start >= 0.2
    proxy.delay(0)
    client.login(imap_user.name, imap_user.password)
    assert proxy.active == 1
    assert proxy.close_all() == 1
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
        client.noop()
    proxy.refuse()
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        imaplib.IMAP4(proxy.host, proxy.port, timeout=5)
    assert proxy.connections == 2


# ---------------------------------------------------------------- SMTP


def _mail(i: int = 0, rcpt: str = "to@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "from@example.org"
    msg["To"] = rcpt
    msg["Subject"] = f"mail {i}"
    msg["Message-ID"] = f"<mail-{i}-{time.time_ns()}@example.org>"
    msg.set_content("hello")
    return msg


def test_smtp_sink_receives(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.send_message(_mail(1), to_addrs=["a@example.org", "b@example.org"])
    (received,) = smtp_sink.wait_for(1)
    assert received.mail_from == "from@example.org"
    assert received.rcpt_tos == ["a@example.org", "b@example.org"]
    assert b"Subject: mail 1" in received.data and received.message_id
    assert smtp_sink.duplicates() == {}


def test_smtp_sink_injected_451_550_and_recipient(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(451)
    smtp_sink.fail_next(550)
    smtp_sink.fail_recipient("bad@example.org")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as first:
            smtp.send_message(_mail(1))
        assert first.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPDataError) as second:
            smtp.send_message(_mail(2))
        assert second.value.smtp_code == 550
        refused = smtp.send_message(_mail(3), to_addrs=["ok@example.org", "bad@example.org"])
        assert refused == {"bad@example.org": (550, b"5.7.1 injected permanent failure")}
    assert len(smtp_sink.messages) == 1 and smtp_sink.messages[0].rcpt_tos == ["ok@example.org"]
    assert [(r.stage, r.code) for r in smtp_sink.rejections] == [
        ("data", 451),
        ("data", 550),
        ("rcpt", 550),
    ]


def test_smtp_fail_at_mail_from(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(451, stage="mail")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(_mail(1))
        assert refused.value.smtp_code == 451
        smtp.rset()
        smtp.send_message(_mail(2))
    assert smtp_sink.wait_for(1)[0].mail_from == "from@example.org"
    assert smtp_sink.attempts == 1


def test_smtp_fail_rate_is_deterministic(smtp_sink_factory) -> None:
    outcomes = []
    for _ in range(2):
        sink = smtp_sink_factory()
        sink.fail_rate(p4xx=0.2, p5xx=0.1, seed=42)
        codes = []
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            for i in range(40):
                try:
                    smtp.send_message(_mail(i))
                    codes.append(250)
                except smtplib.SMTPDataError as exc:
                    codes.append(exc.smtp_code)
        outcomes.append(codes)
        assert sink.attempts == 40
    assert outcomes[0] == outcomes[1]
    assert {250, 451, 550} <= set(outcomes[0])


def test_smtp_starttls_auth_and_xoauth2(smtp_sink_factory, oauth_server: OAuthServer) -> None:
    sink = smtp_sink_factory(
        starttls=True,
        auth=("mailer", "pw"),
        oauth=oauth_server,
        require_auth=True,
        require_tls_for_auth=True,
    )
    ctx = ssl.create_default_context(cafile=sink.cafile)
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.starttls(context=ctx)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("mailer", "wrong")
        smtp.login("mailer", "pw")
        smtp.send_message(_mail(1))
    access, _ = oauth_server.issue("oauth-user@example.org")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.starttls(context=ctx)
        blob = f"user=oauth-user@example.org\x01auth=Bearer {access}\x01\x01"
        smtp.ehlo()
        smtp.auth(
            "XOAUTH2",
            lambda challenge=None: blob if challenge is None else "",
            initial_response_ok=True,
        )
        smtp.send_message(_mail(2))
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth(
                "XOAUTH2",
                lambda challenge=None: (
                    "user=x\x01auth=Bearer nope\x01\x01" if challenge is None else ""
                ),
                initial_response_ok=True,
            )
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.send_message(_mail(3))
    received = sink.wait_for(2)
    assert [m.auth_user for m in received] == ["mailer", "oauth-user@example.org"]
    assert all(m.tls for m in received)
