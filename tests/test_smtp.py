"""Sending through a real aiosmtpd on loopback: TLS, AUTH, errors, retries, exactly-once.

Faults come from the harness: the sink answers 4xx/5xx on cue (``fail_next``,
``fail_rate``, ``fail_recipient``) and the TCP proxy cuts the connection at an exact
byte of the server's replies, which is how "the server took the message but we never
heard its 250" is produced for real rather than mocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import threading
from pathlib import Path

import pytest
from harness import free_port, tls_material

from pipemail.errors import (
    AuthFailed,
    ConfigError,
    ConnectFailed,
    HostRefused,
    SendFailed,
    SizeLimitExceeded,
    TLSFailed,
)
from pipemail.outbound import OutgoingMessage, build_mime
from pipemail.smtp import (
    RecipientsRefused,
    SendResult,
    dot_stuff,
    send,
    send_with_retry,
)
from pipemail.types import Address, OAuth2Auth, PasswordAuth, ServerConfig

FROM = "zoe@example.com"


def _server(target, **overrides) -> ServerConfig:
    config = ServerConfig(
        host=target.host, port=target.port, security="none", allow_private_hosts=True, timeout=10
    )
    return dataclasses.replace(config, **overrides)


def _raw(to: list[str] | None = None, message_id: str = "", text: str = "Hello") -> bytes:
    msg = OutgoingMessage(
        sender=Address(FROM, "Zoë"),
        to=[Address(a) for a in (to or ["ann@example.org"])],
        subject="Quote",
        text=text,
        message_id=message_id,
    )
    return build_mime(msg, domain="example.com")[0]


class _Sleeps(list):
    """Records the waits send_with_retry asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- the basics ---------------------------------------------------------------------------


def test_send_plain_arrives_byte_equal(smtp_sink):
    raw = _raw(["ann@example.org", "bob@example.org"], text="a\n.\n..b\n.c\nend")
    result = send(_server(smtp_sink), None, FROM, ["ann@example.org", "bob@example.org"], raw)
    assert result.delivered and result.code == 250 and not result.refused
    (received,) = smtp_sink.wait_for(1)
    assert received.data == raw
    assert received.mail_from == FROM
    assert received.rcpt_tos == ["ann@example.org", "bob@example.org"]
    assert not received.tls


def test_dot_stuffing():
    assert dot_stuff(b"a\n.\n..b\r.c") == b"a\r\n..\r\n...b\r\n..c\r\n.\r\n"
    assert dot_stuff(b"x\r\n") == b"x\r\n.\r\n"


def test_starttls_with_cert_verification_and_auth(smtp_sink_factory):
    sink = smtp_sink_factory(starttls=True, auth=("zoe", "s3cret"), require_tls_for_auth=True)
    server = _server(sink, security="starttls", cafile=sink.cafile)
    result = send(server, PasswordAuth("zoe", "s3cret"), FROM, ["ann@example.org"], _raw())
    assert result.delivered
    (received,) = sink.wait_for(1)
    assert received.tls and received.auth_user == "zoe"


def _other_ca(directory: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.mark.parametrize("cafile", ["other", "system"])
def test_starttls_refuses_unverified_certificate(smtp_sink_factory, tmp_path, cafile):
    sink = smtp_sink_factory(starttls=True, auth=("zoe", "s3cret"))
    server = _server(
        sink, security="starttls", cafile=_other_ca(tmp_path) if cafile == "other" else None
    )
    with pytest.raises(TLSFailed) as info:
        send(server, PasswordAuth("zoe", "s3cret"), FROM, ["ann@example.org"], _raw())
    assert "certificate could not be verified" in str(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.detail
    assert sink.messages == [] and sink.attempts == 0
    # An administrator may knowingly turn verification off for an on-premise server.
    send(dataclasses.replace(server, verify_tls=False), None, FROM, ["ann@example.org"], _raw())
    assert len(sink.wait_for(1)) == 1


def test_starttls_required_but_not_offered(smtp_sink):
    with pytest.raises(TLSFailed, match="does not offer STARTTLS"):
        send(_server(smtp_sink, security="starttls"), None, FROM, ["ann@example.org"], _raw())
    assert smtp_sink.messages == [] and smtp_sink.attempts == 0


class _ImplicitTLSSink:
    """aiosmtpd behind implicit TLS (port-465 style), which the harness sink lacks."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received: list[bytes] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.received.append(envelope.original_content)
                return "250 OK"

        self.host, self.port = "127.0.0.1", free_port()
        self.controller = Controller(
            Handler(), hostname=self.host, port=self.port, server_hostname="localhost",
            ssl_context=tls_material().server_context(), ready_timeout=10,
        )  # fmt: skip
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def test_implicit_tls():
    sink = _ImplicitTLSSink()
    try:
        cafile = str(tls_material().cafile)
        raw = _raw()
        result = send(_server(sink, security="ssl", cafile=cafile), None, FROM, ["a@b.org"], raw)
        assert result.delivered and sink.received == [raw]
        with pytest.raises(TLSFailed):
            send(_server(sink, security="ssl", cafile=None), None, FROM, ["a@b.org"], raw)
        assert len(sink.received) == 1
    finally:
        sink.stop()


def test_wrong_password_is_auth_failed(smtp_sink_factory):
    sink = smtp_sink_factory(auth=("zoe", "s3cret"), require_auth=True)
    with pytest.raises(AuthFailed) as info:
        send(_server(sink), PasswordAuth("zoe", "wrong"), FROM, ["ann@example.org"], _raw())
    assert str(info.value).startswith("The mail server refused the user name or password.")
    assert "535" in info.value.detail
    assert sink.messages == []


def test_no_password_over_plaintext_to_public_hosts():
    server = ServerConfig(host="smtp.example.com", port=587, security="none")
    with pytest.raises(ConfigError, match="without encryption"):
        send(server, PasswordAuth("zoe", "s3cret"), FROM, ["ann@example.org"], _raw())


class _Tokens:
    """A TokenSource handing out tokens minted on the harness OAuth server."""

    def __init__(self, cached: str, fresh: str) -> None:
        self.cached, self.fresh = cached, fresh
        self.calls: list[bool] = []

    def access_token(self, *, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        return self.fresh if force_refresh else self.cached


def test_xoauth2_refreshes_an_expired_token_once(oauth_server, smtp_sink_factory):
    sink = smtp_sink_factory(oauth=oauth_server)
    stale, _ = oauth_server.issue(FROM)
    oauth_server.expire(stale)  # expired between our cache check and its use
    fresh, _ = oauth_server.issue(FROM)
    tokens = _Tokens(stale, fresh)
    result = send(_server(sink), OAuth2Auth(FROM, tokens), FROM, ["ann@example.org"], _raw())
    assert result.delivered
    assert tokens.calls == [False, True]
    (received,) = sink.wait_for(1)
    assert received.auth_user == FROM


def test_xoauth2_gives_up_after_one_refresh(oauth_server, smtp_sink_factory):
    sink = smtp_sink_factory(oauth=oauth_server)
    stale, _ = oauth_server.issue(FROM)
    also_bad, _ = oauth_server.issue("someone-else@example.com")
    oauth_server.expire(stale)
    tokens = _Tokens(stale, also_bad)
    with pytest.raises(AuthFailed, match="Reconnect the mailbox"):
        send(_server(sink), OAuth2Auth(FROM, tokens), FROM, ["ann@example.org"], _raw())
    assert tokens.calls == [False, True]  # one refresh, no retry storm
    assert sink.messages == []


# --- refusals and retries -------------------------------------------------------------------


def test_4xx_is_retried_then_delivered_once(smtp_sink):
    smtp_sink.fail_next(451, n=2)
    raw = _raw(message_id="<retry-me@example.com>")
    sleeps = _Sleeps()
    result = send_with_retry(
        _server(smtp_sink), None, FROM, ["ann@example.org"], raw, attempts=4, sleep=sleeps
    )
    assert result.delivered and result.attempts == 3
    assert sleeps == [2.0, 4.0]
    assert smtp_sink.message_ids() == {"<retry-me@example.com>": 1}
    assert [r.code for r in smtp_sink.rejections] == [451, 451]


def test_4xx_until_attempts_run_out_is_reported_temporary(smtp_sink):
    smtp_sink.fail_next(421, n=5)
    with pytest.raises(SendFailed) as info:
        send_with_retry(
            _server(smtp_sink), None, FROM, ["ann@example.org"], _raw(), attempts=3, sleep=_Sleeps()
        )
    assert info.value.temporary and info.value.smtp_code == 421
    assert smtp_sink.attempts == 3 and smtp_sink.messages == []


def test_5xx_is_reported_without_retry(smtp_sink):
    smtp_sink.fail_next(550)
    sleeps = _Sleeps()
    with pytest.raises(SendFailed) as info:
        send_with_retry(
            _server(smtp_sink), None, FROM, ["ann@example.org"], _raw(), attempts=5, sleep=sleeps
        )
    assert not info.value.temporary and info.value.smtp_code == 550
    assert str(info.value).startswith("The mail server refused the email (550:")
    assert smtp_sink.attempts == 1 and sleeps == [] and smtp_sink.messages == []


def test_recipient_refused_is_reported_the_others_get_it(smtp_sink):
    smtp_sink.fail_recipient("gone@example.org", 550)
    rcpts = ["ann@example.org", "gone@example.org", "bob@example.org"]
    result = send_with_retry(_server(smtp_sink), None, FROM, rcpts, _raw(rcpts), sleep=_Sleeps())
    assert result.delivered
    assert result.accepted == ["ann@example.org", "bob@example.org"]
    assert list(result.refused) == ["gone@example.org"]
    refusal = result.refused["gone@example.org"]
    assert refusal.code == 550 and not refusal.temporary
    (received,) = smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["ann@example.org", "bob@example.org"]


def test_temporarily_refused_recipient_is_retried_alone(smtp_sink):
    smtp_sink.fail_recipient("busy@example.org", 450)
    rcpts = ["ann@example.org", "busy@example.org"]
    sleeps = _Sleeps()

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        smtp_sink.clear_faults()  # the recipient's mailbox recovers while we wait

    raw = _raw(rcpts, message_id="<partial@example.com>")
    result = send_with_retry(_server(smtp_sink), None, FROM, rcpts, raw, sleep=sleep)
    assert result.delivered and result.attempts == 2 and not result.refused
    assert sorted(result.accepted) == sorted(rcpts)
    first, second = smtp_sink.wait_for(2)
    assert first.rcpt_tos == ["ann@example.org"]
    assert second.rcpt_tos == ["busy@example.org"]  # ann does not get a second copy
    assert first.data == second.data == raw


def test_every_recipient_refused(smtp_sink):
    smtp_sink.fail_recipient("a@example.org", 550)
    smtp_sink.fail_recipient("b@example.org", 553)
    sleeps = _Sleeps()
    with pytest.raises(RecipientsRefused) as info:
        send_with_retry(
            _server(smtp_sink), None, FROM, ["a@example.org", "b@example.org"], _raw(), sleep=sleeps
        )
    assert not info.value.temporary and sleeps == []
    assert {a: r.code for a, r in info.value.refused.items()} == {
        "a@example.org": 550,
        "b@example.org": 553,
    }
    assert "a@example.org (550:" in str(info.value)


def test_send_with_retry_needs_a_message_id(smtp_sink):
    raw = b"Subject: no id\r\n\r\nbody\r\n"
    with pytest.raises(ValueError, match="Message-ID"):
        send_with_retry(_server(smtp_sink), None, FROM, ["a@example.org"], raw)
    assert smtp_sink.attempts == 0


def test_size_announced_by_the_server_is_checked_before_sending(smtp_sink, tcp_proxy):
    proxy = tcp_proxy(smtp_sink)
    raw = _raw() + b"x" * (33 * 1024 * 1024)  # aiosmtpd announces SIZE 33554432
    with pytest.raises(SizeLimitExceeded, match=r"This mail server accepts at most 32 MB\.$"):
        send(_server(proxy), None, FROM, ["ann@example.org"], raw)
    assert proxy.bytes_up < 200  # EHLO and QUIT only: the 33 MB never left
    assert smtp_sink.attempts == 0


# --- connection faults ----------------------------------------------------------------------


def _reply_lengths(host: str, port: int) -> list[int]:
    """Bytes of each reply in one session: greeting, EHLO, MAIL, RCPT, DATA, end, QUIT."""
    with socket.create_connection((host, port), timeout=10) as sock:
        stream = sock.makefile("rb")

        def reply() -> int:
            size = 0
            while True:
                line = stream.readline()
                size += len(line)
                if line[3:4] != b"-":
                    return size

        lengths = [reply()]
        for command in (b"EHLO [127.0.0.1]", b"MAIL FROM:<c@x.org>", b"RCPT TO:<c@x.org>", b"DATA"):
            sock.sendall(command + b"\r\n")
            lengths.append(reply())
        sock.sendall(b"Message-ID: <calibration@x.org>\r\n\r\nx\r\n.\r\n")
        lengths.append(reply())
        sock.sendall(b"QUIT\r\n")
        lengths.append(reply())
    return lengths


def test_drop_before_end_of_data_is_retried(smtp_sink, tcp_proxy):
    greeting, ehlo, mail, rcpt, *_ = _reply_lengths(smtp_sink.host, smtp_sink.port)
    smtp_sink.clear()
    proxy = tcp_proxy(smtp_sink)
    proxy.cut_after(greeting + ehlo + mail + rcpt)  # the 354 to DATA never arrives
    raw = _raw(message_id="<dropped-early@example.com>")
    result = send_with_retry(_server(proxy), None, FROM, ["ann@example.org"], raw, sleep=_Sleeps())
    assert result.delivered and result.attempts == 2
    assert proxy.connections == 2
    assert smtp_sink.message_ids() == {"<dropped-early@example.com>": 1}


@pytest.mark.parametrize(
    ("extra", "at_sink"),
    [
        (1, 1),  # one byte of the server's "250" arrives: the server had taken it
        (0, 0),  # cut right after the 354: the body never reached the server
    ],
)
def test_drop_after_final_dot_is_ambiguous_and_not_resent(smtp_sink, tcp_proxy, extra, at_sink):
    """From the client's side both cases look the same, which is why neither is guessed."""
    greeting, ehlo, mail, rcpt, data, *_ = _reply_lengths(smtp_sink.host, smtp_sink.port)
    smtp_sink.clear()
    proxy = tcp_proxy(smtp_sink)
    proxy.cut_after(greeting + ehlo + mail + rcpt + data + extra)
    raw = _raw(message_id="<maybe@example.com>")
    sleeps = _Sleeps()
    result = send_with_retry(
        _server(proxy), None, FROM, ["ann@example.org"], raw, attempts=5, sleep=sleeps
    )
    assert isinstance(result, SendResult)
    assert result.ambiguous and not result.delivered
    assert result.accepted == ["ann@example.org"]  # taken at RCPT; delivery unknown
    assert proxy.connections == 1 and sleeps == []  # no blind resend
    # With extra=1 the server did take it: a resend would have been a duplicate.
    assert smtp_sink.message_ids() == ({"<maybe@example.com>": 1} if at_sink else {})


def test_unreachable_server():
    closed = ServerConfig(host="127.0.0.1", port=free_port(), security="none",
                          allow_private_hosts=True, timeout=5)  # fmt: skip
    with pytest.raises(ConnectFailed, match="could not reach the mail server"):
        send(closed, None, FROM, ["ann@example.org"], _raw())


def test_private_host_refused_before_connecting(smtp_sink, tcp_proxy):
    proxy = tcp_proxy(smtp_sink)
    server = _server(proxy, allow_private_hosts=False, port=587)
    server = dataclasses.replace(server, port=proxy.port)
    with pytest.raises(HostRefused):
        send(server, None, FROM, ["ann@example.org"], _raw())
    assert proxy.connections == 0


def test_server_busy_at_greeting(tcp_proxy):
    """A 421 greeting (server overloaded) is a connection failure in plain words."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"421 4.3.2 Too busy, try later\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        server = ServerConfig(host="127.0.0.1", port=port, security="none",
                              allow_private_hosts=True, timeout=5)  # fmt: skip
        with pytest.raises(ConnectFailed, match=r"not accepting connections right now \(421"):
            send(server, None, FROM, ["ann@example.org"], _raw())
    finally:
        thread.join(5)
        listener.close()


# --- RELIABILITY test 21 --------------------------------------------------------------------


def test_bulk_send_exactly_once_under_injected_failures(smtp_sink):
    """300 messages, 1% 4xx and 0.5% 5xx at DATA: 4xx retried, 5xx reported, no duplicate."""
    total = 300
    smtp_sink.fail_rate(p4xx=0.01, p5xx=0.005, seed=21)
    server = _server(smtp_sink)
    sleeps = _Sleeps()
    delivered: dict[str, SendResult] = {}
    reported: dict[str, SendFailed] = {}
    for i in range(total):
        mid = f"<bulk-{i}@example.com>"
        rcpt = f"r{i}@example.org"
        raw = _raw([rcpt], message_id=mid, text=f"Hello {i}")
        try:
            delivered[mid] = send_with_retry(
                server, None, FROM, [rcpt], raw, attempts=5, sleep=sleeps
            )
        except SendFailed as exc:
            reported[mid] = exc

    counts = smtp_sink.message_ids()
    rejected_4xx = [r for r in smtp_sink.rejections if 400 <= r.code < 500]
    rejected_5xx = [r for r in smtp_sink.rejections if r.code >= 500]
    retried = [mid for mid, r in delivered.items() if r.attempts > 1]
    duplicates = smtp_sink.duplicates()
    print(
        f"\nRELIABILITY 21: messages={total} delivered={len(delivered)} "
        f"reported_5xx={len(reported)} injected_4xx={len(rejected_4xx)} "
        f"injected_5xx={len(rejected_5xx)} retried_then_delivered={len(retried)} "
        f"DATA_attempts_at_sink={smtp_sink.attempts} accepted_at_sink={len(smtp_sink.messages)} "
        f"duplicates_at_sink={len(duplicates)}"
    )
    assert rejected_4xx and rejected_5xx, "the seed must exercise both fault kinds"
    assert duplicates == {}
    assert len(delivered) + len(reported) == total
    assert all(counts[mid] == 1 for mid in delivered)
    assert all(counts[mid] == 0 for mid in reported)
    assert all(not exc.temporary and exc.smtp_code == 550 for exc in reported.values())
    assert len(reported) == len(rejected_5xx)  # each 5xx reported once, never retried
    assert len(retried) == len({r.message_id for r in rejected_4xx} - set(reported))
    assert smtp_sink.attempts == total + len(rejected_4xx)  # one extra try per 4xx
