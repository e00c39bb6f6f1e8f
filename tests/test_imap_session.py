"""pipemail.imap and pipemail.folders against the harness Dovecot (no IMAP mocks).

Connection security, authentication, the error each failure becomes, capability
handling (ENABLE before SELECT, ignored capabilities), windowed SEARCH, folder roles.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from pipemail.errors import (
    AuthFailed,
    ConfigError,
    ConnectFailed,
    ConnectionLost,
    HostRefused,
    ReconnectNeeded,
    TLSFailed,
)
from pipemail.folders import classify, default_sync_folders
from pipemail.imap import AUTH_MESSAGE, ImapSession
from pipemail.imap_parse import fetched_from_response, parse_copyuid, parse_uid_set, uid_set
from pipemail.types import AccountConfig, OAuth2Auth, PasswordAuth, ServerConfig


def config(dovecot, user, *, security="ssl", password=None, **server_kw) -> AccountConfig:
    port = dovecot.ssl_port if security == "ssl" else dovecot.port
    server = ServerConfig(
        host=dovecot.host,
        port=server_kw.pop("port", port),
        security=security,
        cafile=server_kw.pop("cafile", dovecot.cafile),
        allow_private_hosts=server_kw.pop("allow_private_hosts", True),
        timeout=server_kw.pop("timeout", 10.0),
        **server_kw,
    )
    return AccountConfig(
        key=f"acct-{user.name}",
        imap=server,
        auth=PasswordAuth(user.name, user.password if password is None else password),
    )


def msg(n: int) -> bytes:
    return (
        f"Message-ID: <m{n}@example.com>\r\nFrom: a{n}@example.com\r\n"
        f"To: me@example.org\r\nSubject: test {n}\r\n\r\nbody {n}\r\n"
    ).encode()


# ---------------------------------------------------------------- connect and login


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_login_each_security_mode(dovecot, imap_user, security):
    with ImapSession.open(config(dovecot, imap_user, security=security)) as s:
        assert s.has("IMAP4REV1")
        assert s.qresync and s.condstore
        if security != "none":
            assert s.info.tls.startswith("TLSv1.")
        else:
            assert s.info.tls == ""


def test_wrong_password_is_auth_failed_in_plain_words(dovecot, imap_user):
    with pytest.raises(AuthFailed) as err:
        ImapSession.open(config(dovecot, imap_user, password="not-the-password"))
    assert str(err.value) == AUTH_MESSAGE
    assert "rejected the user name or password" in str(err.value)
    assert type(err.value) is AuthFailed  # not ReconnectNeeded


def test_non_ascii_password_uses_plain(dovecot):
    user = dovecot.add_user(password="pässwörd-ünïcode")
    with ImapSession.open(config(dovecot, user, security="starttls")) as s:
        assert s.alive


def test_tls_verified_against_cafile(dovecot, imap_user):
    cfg = config(dovecot, imap_user, security="ssl")
    assert cfg.imap.verify_tls is True
    with ImapSession.open(cfg) as s:
        sock = s._require().socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.getpeercert()  # only filled in when the chain was verified


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_wrong_cafile_fails(dovecot, imap_user, security, tmp_path):
    # A CA bundle that does not contain the harness CA: the system one.
    bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    cfg = config(dovecot, imap_user, security=security, cafile=bundle)
    with pytest.raises(TLSFailed) as err:
        ImapSession.open(cfg)
    assert "certificate could not be verified" in str(err.value)
    assert err.value.code == "tls"


def test_unreadable_cafile_is_config_error(dovecot, imap_user, tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError):
        ImapSession.open(config(dovecot, imap_user, cafile=str(missing)))


def test_insecure_only_when_asked(dovecot, imap_user):
    cfg = config(dovecot, imap_user, security="ssl", cafile=None, verify_tls=False)
    with ImapSession.open(cfg) as s:
        assert s.alive


def test_ssl_against_plain_port_is_tls_failed(dovecot, imap_user):
    cfg = config(dovecot, imap_user, security="ssl", port=dovecot.port, timeout=3)
    with pytest.raises((TLSFailed, ConnectFailed)) as err:
        ImapSession.open(cfg)
    assert str(err.value)  # plain words, no traceback text
    assert "Traceback" not in str(err.value)


def test_refused_port_is_connect_failed(dovecot, imap_user):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = config(dovecot, imap_user, security="none", port=port)
    with pytest.raises(ConnectFailed) as err:
        ImapSession.open(cfg)
    assert "could not reach" in str(err.value) or "refused" in str(err.value)


def test_private_host_refused_unless_allowed(dovecot, imap_user):
    cfg = config(dovecot, imap_user, allow_private_hosts=False)
    with pytest.raises(HostRefused):
        ImapSession.open(cfg)


def test_hung_server_times_out_as_connect_failed(dovecot, imap_user, tcp_proxy):
    proxy = tcp_proxy(dovecot)
    proxy.blackhole()
    cfg = config(dovecot, imap_user, security="none", port=proxy.port, timeout=1.0)
    with pytest.raises(ConnectFailed):
        ImapSession.open(cfg)


def test_kick_mid_session_is_connection_lost(dovecot, imap_user):
    with ImapSession.open(config(dovecot, imap_user)) as s:
        s.select("INBOX")
        dovecot.kick(imap_user)
        with pytest.raises(ConnectionLost) as err:
            for _ in range(3):  # the BYE may arrive with the first command or the next
                s.noop()
                time.sleep(0.1)
        assert "connection to the mail server was lost" in str(err.value)
        assert not s.alive
        with pytest.raises(ConnectionLost):
            s.select("INBOX")


def test_cut_inside_literal_is_connection_lost(dovecot, imap_user, tcp_proxy):
    big = msg(1).replace(b"body 1", b"x" * 200_000)
    dovecot.append(imap_user, "INBOX", big)
    proxy = tcp_proxy(dovecot)
    with ImapSession.open(config(dovecot, imap_user, security="none", port=proxy.port)) as s:
        s.select("INBOX")
        proxy.cut_after(50_000)
        with pytest.raises(ConnectionLost):
            s.fetch_messages([1])


# ---------------------------------------------------------------- OAuth


class _Tokens:
    """A token source whose first token is already expired on the server."""

    def __init__(self, server, user, *, fresh_on_refresh=True, reconnect=False):
        self.server = server
        self.user = user
        self.calls: list[bool] = []
        self.fresh_on_refresh = fresh_on_refresh
        self.reconnect = reconnect
        stale, _ = server.issue(user)
        server.expire(stale)
        self.current = stale

    def access_token(self, *, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        if force_refresh:
            if self.reconnect:
                raise ReconnectNeeded("Reconnect the account.")
            if self.fresh_on_refresh:
                self.current, _ = self.server.issue(self.user)
        return self.current


def _oauth_config(dovecot, user, tokens) -> AccountConfig:
    cfg = config(dovecot, user)
    cfg.auth = OAuth2Auth(user.name, tokens)
    return cfg


def test_oauth_refreshes_once_then_logs_in(dovecot_oauth, oauth_server):
    user = dovecot_oauth.add_user()
    tokens = _Tokens(oauth_server, user)
    with ImapSession.open(_oauth_config(dovecot_oauth, user, tokens)) as s:
        assert s.alive
        assert s.auth_retries == 1
    assert tokens.calls == [False, True]


def test_oauth_second_rejection_is_auth_failed(dovecot_oauth, oauth_server):
    user = dovecot_oauth.add_user()
    tokens = _Tokens(oauth_server, user, fresh_on_refresh=False)
    with pytest.raises(AuthFailed) as err:
        ImapSession.open(_oauth_config(dovecot_oauth, user, tokens))
    assert type(err.value) is AuthFailed
    assert "access token" in str(err.value)
    assert tokens.calls == [False, True]  # exactly one refresh, no storm


def test_oauth_reconnect_needed_propagates(dovecot_oauth, oauth_server):
    user = dovecot_oauth.add_user()
    tokens = _Tokens(oauth_server, user, reconnect=True)
    with pytest.raises(ReconnectNeeded):
        ImapSession.open(_oauth_config(dovecot_oauth, user, tokens))


# ---------------------------------------------------------------- capabilities, select


def test_enable_before_select_gives_highestmodseq(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", msg(1))
    with ImapSession.open(config(dovecot, imap_user)) as s:
        assert "QRESYNC" in s.info.enabled
        mb = s.select("INBOX")
        assert mb.highestmodseq and mb.highestmodseq > 0
        assert mb.uidnext == 2 and mb.exists == 1
        assert "MODSEQ" in s.message_items()


def test_ignored_condstore_never_sends_modseq(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", msg(1))
    cfg = config(dovecot, imap_user)
    cfg.disable_condstore = True
    with ImapSession.open(cfg) as s:
        assert not s.condstore and not s.qresync
        assert "CONDSTORE" not in s.capabilities
        mb = s.select("INBOX")
        assert mb.highestmodseq is None
        assert "MODSEQ" not in s.message_items()
        flags, _ = s.fetch_flags([1])
        assert set(flags) == {1} and flags[1].modseq is None
        with pytest.raises(Exception, match="CHANGEDSINCE"):
            s.fetch_flags([1], changedsince=1)


def test_missing_folder_is_folder_missing(dovecot, imap_user):
    from pipemail.imap import FolderMissing

    with ImapSession.open(config(dovecot, imap_user)) as s:
        with pytest.raises(FolderMissing):
            s.select("Does/Not/Exist")
        assert s.alive  # a NO keeps the session usable
        s.select("INBOX")


@pytest.mark.parametrize("esearch", [True, False])
def test_windowed_search_covers_range(dovecot, imap_user, esearch, monkeypatch):
    import pipemail.imap as imap_mod

    uids = dovecot.append_many(imap_user, "INBOX", [msg(n) for n in range(1, 301)])
    dovecot.expunge(imap_user, "INBOX", uids[50:60])
    monkeypatch.setattr(imap_mod, "SEARCH_WINDOW", 37)
    cfg = config(dovecot, imap_user)
    if not esearch:
        cfg.ignore_capabilities = ["ESEARCH"]
    with ImapSession.open(cfg) as s:
        s.select("INBOX")
        windows = list(s.search_uids(1, 300))
        found = [u for _lo, _hi, us in windows for u in us]
        assert found == [u for u in uids if u not in uids[50:60]]
        # windows tile [1, 300] with no gap
        assert windows[0][0] == 1 and windows[-1][1] == 300
        assert all(a[1] + 1 == b[0] for a, b in zip(windows, windows[1:]))
        down = [u for _lo, _hi, us in s.search_uids(1, 300, descending=True) for u in us]
        assert down == sorted(found, reverse=True)


def test_fetch_messages_returns_flags_sizes_and_bodies(dovecot, imap_user):
    raw = msg(7)
    dovecot.append(imap_user, "INBOX", raw, flags=["\\Seen", "$Label1"])
    with ImapSession.open(config(dovecot, imap_user)) as s:
        s.select("INBOX")
        got = s.fetch_messages([1])
        item = got[1]
        assert item.body == raw
        assert item.flags == frozenset({"\\Seen", "$Label1"})
        assert item.size == len(raw)
        assert item.modseq and item.internaldate is not None
        header = s.fetch_messages([1], header_only=True)[1]
        assert header.truncated and header.body.startswith(b"Message-ID")


def test_move_reports_copyuid_and_append_reports_appenduid(dovecot, imap_user):
    with ImapSession.open(config(dovecot, imap_user)) as s:
        found = s.append("INBOX", msg(1), flags=["\\Seen"])
        assert found is not None
        uv, uid = found
        s.select("INBOX")
        moved = s.move([uid], "Archive")
        assert moved is not None
        target_uv, mapping = moved
        assert target_uv == dovecot.uidvalidity(imap_user, "Archive")
        assert list(mapping) == [uid]
    state = dovecot.fetch_state(imap_user, "Archive")
    assert [r["uid"] for r in state] == list(mapping.values())


# ---------------------------------------------------------------- folders


def test_folder_roles_from_special_use(dovecot, imap_user):
    from pipemail.folders import discover

    dovecot.create_mailbox(imap_user, "Clients/Société Générale")
    with ImapSession.open(config(dovecot, imap_user)) as s:
        fmap = discover(s)
        assert fmap.roles == {
            "inbox": "INBOX",
            "sent": "Sent",
            "archive": "Archive",
            "trash": "Trash",
            "drafts": "Drafts",
            "junk": "Junk",
        }
        assert "Clients/Société Générale" in fmap.names()  # UTF-7 decoded
        mb = s.select("Clients/Société Générale")  # and encoded again on the way out
        assert mb.exists == 0
    assert default_sync_folders(fmap, gmail=False) == ["INBOX", "Sent"]


def test_folder_roles_gmail_shape():
    rows = [
        (("\\HasNoChildren",), "/", "INBOX"),
        (("\\HasChildren", "\\Noselect"), "/", "[Gmail]"),
        (("\\All", "\\HasNoChildren"), "/", "[Gmail]/All Mail"),
        (("\\HasNoChildren", "\\Sent"), "/", "[Gmail]/Sent Mail"),
        (("\\HasNoChildren", "\\Trash"), "/", "[Gmail]/Trash"),
        (("\\HasNoChildren", "\\Junk"), "/", "[Gmail]/Spam"),
        (("\\Drafts", "\\HasNoChildren"), "/", "[Gmail]/Drafts"),
        (("\\Flagged", "\\HasNoChildren"), "/", "[Gmail]/Starred"),
    ]
    fmap = classify(rows)
    assert fmap.get("all") == "[Gmail]/All Mail"
    assert fmap.get("trash") == "[Gmail]/Trash"
    assert fmap.get("archive") is None
    assert default_sync_folders(fmap, gmail=True) == ["[Gmail]/All Mail"]


def test_folder_roles_by_name_without_special_use():
    rows = [
        ((), ".", "INBOX"),
        ((), ".", "INBOX.Sent Items"),
        ((), ".", "INBOX.Deleted Items"),
        ((), ".", "INBOX.Archives"),
        ((), ".", "INBOX.Junk E-mail"),
        (("\\Noselect",), ".", "Trash"),  # not selectable: never a role
    ]
    fmap = classify(rows)
    assert fmap.get("sent") == "INBOX.Sent Items"
    assert fmap.get("trash") == "INBOX.Deleted Items"
    assert fmap.get("archive") == "INBOX.Archives"
    assert fmap.get("junk") == "INBOX.Junk E-mail"


def test_attribute_beats_name():
    rows = [((), "/", "Sent"), (("\\Sent",), "/", "Sent Messages")]
    assert classify(rows).get("sent") == "Sent Messages"


# ---------------------------------------------------------------- pure helpers


def test_gmail_fetch_items_are_typed():
    item = fetched_from_response(
        42,
        {
            b"FLAGS": (b"\\Seen", b"\\Recent"),
            b"RFC822.SIZE": 123,
            b"BODY[]": b"Subject: x\r\n\r\nbody",
            b"MODSEQ": (9001,),
            b"X-GM-MSGID": 1278455344230334865,
            b"X-GM-THRID": 1278455344230334800,
            b"X-GM-LABELS": (b"\\Inbox", b"\\Important", b"Customers", b"&AMk-quipe"),
        },
    )
    assert item.uid == 42 and item.size == 123 and item.modseq == 9001
    assert item.flags == frozenset({"\\Seen"})  # \Recent is per session
    assert item.gm_msgid == 1278455344230334865
    assert item.labels == ("Customers", "\\Important", "\\Inbox", "Équipe")


def test_sequence_sets():
    assert uid_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    assert parse_uid_set("1:3,7") == [1, 2, 3, 7]
    with pytest.raises(ValueError):
        parse_uid_set("1:4294967295", limit=1000)
    assert parse_copyuid(b"[COPYUID 77 3,1:2 10:12] Moved") == (77, {3: 10, 1: 11, 2: 12})


# ---------------------------------------------------------------- fast FETCH parser


def _imapclient_view(data):
    from imapclient.response_parser import parse_fetch_response

    parsed = parse_fetch_response(data, False, False)
    return {item[b"UID"]: item for item in parsed.values() if b"UID" in item}


def _fast_view(data):
    from pipemail.imap_parse import fast_parse_fetch

    return fast_parse_fetch(data)


def test_fast_fetch_parser_matches_imapclient_on_dovecot(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", msg(1), flags=["\\Seen", "$Hot"])
    dovecot.append(imap_user, "INBOX", msg(2).replace(b"body 2", b'(unbalanced ) { } " body'))
    dovecot.append(imap_user, "INBOX", b"X: y\r\n\r\n")  # no body at all
    client = dovecot.imap(imap_user)
    client._simple_command("ENABLE", "QRESYNC")
    client.select("INBOX")
    for items in (
        "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[] MODSEQ)",
        "(BODY.PEEK[HEADER] UID RFC822.SIZE)",
        "(UID FLAGS)",
        "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)] BODY.PEEK[])",
    ):
        typ, data = client.uid("FETCH", "1:*", items)
        assert typ == "OK"
        assert _fast_view(data) == _imapclient_view(data), items
    client.logout()


def test_fast_fetch_parser_gmail_shapes():
    data = [
        (
            b"1 (X-GM-THRID 1278455344230334800 X-GM-MSGID 1278455344230334865 "
            b'X-GM-LABELS ("\\\\Inbox" "\\\\Important" {11}',
            b"Odd (label)",
        ),
        b' "My \\"quoted\\" label" Customers) UID 7 FLAGS (\\Seen) MODSEQ (12))',
        b"2 (UID 8 FLAGS () X-GM-LABELS () X-GM-MSGID 5)",
        b"3 (FLAGS (\\Deleted))",  # unsolicited, no UID: dropped
    ]
    assert _fast_view(data) == _imapclient_view(data)
    item = fetched_from_response(7, _fast_view(data)[7])
    assert item.labels == (
        "Customers",
        'My "quoted" label',
        "Odd (label)",
        "\\Important",
        "\\Inbox",
    )


def test_fast_fetch_parser_declines_what_it_does_not_know():
    from pipemail.imap_parse import _Unparsable, fast_parse_fetch

    with pytest.raises(_Unparsable):
        fast_parse_fetch([b"1 (UID 1 FLAGS (\\Seen)"])  # unterminated
    with pytest.raises(_Unparsable):
        fast_parse_fetch([(b"1 (UID 1 BODY[] {5}", b"abc")])  # literal of the wrong size


def test_connection_dropped_during_login_is_not_a_wrong_password() -> None:
    """A scripted peer (not a real server) that greets, then hangs up on LOGIN: the
    credentials were never judged, so the error must be retryable, not "rejected"."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _addr = listener.accept()
        with conn:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] scripted peer ready\r\n")
            data = b""
            while b"LOGIN" not in data.upper():
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
                if b"CAPABILITY" in data.upper() and b"LOGIN" not in data.upper():
                    tag = data.split(b" ", 1)[0]
                    conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                    data = b""

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    cfg = AccountConfig(
        key="dropped",
        imap=ServerConfig(
            host="127.0.0.1", port=port, security="none", allow_private_hosts=True, timeout=5
        ),
        auth=PasswordAuth("someone", "secret"),
    )
    try:
        with pytest.raises(ConnectFailed) as caught:
            ImapSession.open(cfg)
        assert not isinstance(caught.value, AuthFailed)
        assert "closed while connecting" in str(caught.value)
    finally:
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("\\Sent", "sent"),
        ("INBOX", "inbox"),
        ("Gesendete Elemente", "sent"),
        ("INBOX.Trash", "trash"),
        ("Éléments supprimés", "trash"),
        ("[Gmail]/All Mail", "all"),
        ("Projects/Acme", None),
        ("", None),
    ],
)
def test_folder_role_from_a_name(name: str, role: str | None) -> None:
    """The one role table (pipemail.folders) answers for a bare name as well; the Odoo
    store uses it for folders it meets before a connection check listed them."""
    from pipemail.folders import role_for

    assert role_for(name) == role
