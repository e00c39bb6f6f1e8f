"""RELIABILITY test 18: the account form cannot make the server connect inwards.

A decoy TCP listener sits on 127.0.0.1 (and ::1) on port 2525, a port the guard allows,
so only the address rule stands between each vector and the decoy. The decoy counts the
connections it accepts; every refused vector must leave that count at zero.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pipemail import netguard
from pipemail.errors import ConnectFailed, HostRefused
from pipemail.netguard import MAIL_PORTS, REFUSED_MESSAGE, check_host, connect_checked


class Decoy:
    """Accepts TCP connections on loopback and counts them."""

    def __init__(self, port: int) -> None:
        self.accepted = 0
        self.port = port
        self._socks: list[socket.socket] = []
        for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((addr, port))
                s.listen(16)
                s.settimeout(0.05)
                self._socks.append(s)
            except OSError:
                if family == socket.AF_INET:
                    raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for s in self._socks:
                try:
                    conn, _ = s.accept()
                except (TimeoutError, OSError):
                    continue
                self.accepted += 1
                conn.close()

    def settle(self) -> int:
        """Count after giving any in-flight connection time to be accepted."""
        time.sleep(0.2)
        return self.accepted

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self._socks:
            s.close()


@pytest.fixture
def decoy():
    try:
        d = Decoy(2525)
    except OSError:
        pytest.skip("port 2525 on loopback is busy")
    yield d
    d.close()


@pytest.fixture
def connect_spy(monkeypatch):
    """Records every socket.connect the guard attempts (the decoy only sees loopback)."""
    calls: list[object] = []
    real = socket.socket.connect

    def spy(self, address):
        calls.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return calls


LOOPBACK_VECTORS = [
    "127.0.0.1",
    "::1",
    "[::1]",
    "0x7f000001",
    "2130706433",
    "017700000001",
    "127.1",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "127.0.0.1.",
    "localhost",
    "LOCALHOST",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "0:0:0:0:0:ffff:127.0.0.1",
    "::127.0.0.1",
    "2002:7f00:1::1",
    "64:ff9b::127.0.0.1",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # full-width digits: IDNA turns them into 127.0.0.1
    " 127.0.0.1 ",
]

OTHER_VECTORS = [
    "169.254.169.254",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "100.100.100.200",
    "0.0.0.0",
    "0",
    "::",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "fc00::1",
    "fe80::1",
    "fe80::1%lo",
    "169.254.1.1",
    "224.0.0.1",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "user@127.0.0.1",
    "127.0.0.1/admin",
    "",
]


@pytest.mark.parametrize("host", LOOPBACK_VECTORS)
def test_loopback_vectors_refused_before_connecting(decoy, connect_spy, host):
    with pytest.raises(HostRefused) as info:
        connect_checked(host, decoy.port, timeout=2)
    assert str(info.value) == REFUSED_MESSAGE
    assert info.value.detail  # the reason is kept for the log
    assert connect_spy == []
    assert decoy.settle() == 0


@pytest.mark.parametrize("host", OTHER_VECTORS)
def test_other_vectors_refused_before_connecting(connect_spy, host):
    with pytest.raises(HostRefused) as info:
        connect_checked(host, 993, timeout=2)
    assert str(info.value) == REFUSED_MESSAGE
    assert connect_spy == []


@pytest.mark.parametrize("port", [0, -1, 65536, 22, 80, 443, 3306, 5432, 6379, 8080, 11211, True])
def test_odd_ports_refused_with_same_text(decoy, connect_spy, port):
    # a public literal, so the port rule alone refuses
    with pytest.raises(HostRefused) as info:
        connect_checked("8.8.8.8", port, timeout=2)
    assert str(info.value) == REFUSED_MESSAGE
    assert connect_spy == []


def test_every_refusal_reads_the_same():
    texts = set()
    for host in LOOPBACK_VECTORS + OTHER_VECTORS:
        with pytest.raises(HostRefused) as info:
            check_host(host, 993)
        texts.add(str(info.value))
    with pytest.raises(HostRefused) as info:
        check_host("8.8.8.8", 6379)
    texts.add(str(info.value))
    assert texts == {REFUSED_MESSAGE}


def _answers(*addresses: str):
    """A resolver that answers like getaddrinfo with fixed addresses."""
    calls: list[str] = []

    def resolve(name, port, **kwargs):
        calls.append(name)
        out = []
        for a in addresses:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if family == socket.AF_INET6 else (a, port)
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_name_refused_if_any_address_is_bad(decoy, connect_spy):
    resolver = _answers("8.8.8.8", "127.0.0.1")
    with pytest.raises(HostRefused) as info:
        connect_checked("mail.example.test", decoy.port, resolver=resolver)
    assert str(info.value) == REFUSED_MESSAGE
    assert connect_spy == []
    assert decoy.settle() == 0
    with pytest.raises(HostRefused):
        check_host("mail.example.test", 993, resolver=_answers("2001:db8::1", "8.8.4.4"))
    with pytest.raises(HostRefused):
        check_host("mail.example.test", 993, resolver=_answers("::ffff:10.0.0.1"))


def test_public_name_is_resolved_once_and_returned():
    resolver = _answers("8.8.8.8", "2001:4860:4860::8888", "8.8.8.8")
    assert check_host("imap.example.test", 993, resolver=resolver) == [
        "8.8.8.8",
        "2001:4860:4860::8888",
    ]
    assert resolver.calls == ["imap.example.test"]


def test_connects_to_the_checked_address_not_a_later_answer(decoy):
    """DNS rebinding: the name is resolved once; the socket goes to that exact address."""
    answers = iter([["127.0.0.1"], ["10.66.66.66"]])

    def rebinding(name, port, **kwargs):
        (a,) = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))]

    sock = connect_checked("rebind.example.test", decoy.port, 2, True, resolver=rebinding)
    try:
        assert sock.getpeername()[0] == "127.0.0.1"
    finally:
        sock.close()
    assert decoy.settle() == 1


def test_allow_private_lets_an_admin_reach_loopback(decoy):
    for host in ("127.0.0.1", "localhost"):
        sock = connect_checked(host, decoy.port, timeout=2, allow_private=True)
        sock.close()
    assert decoy.settle() == 2
    assert check_host("10.1.2.3", 10143, allow_private=True) == ["10.1.2.3"]
    assert check_host("::1", 993, allow_private=True) == ["::1"]


@pytest.mark.parametrize(
    "host",
    [
        "0x7f000001",
        "2130706433",
        "017700000001",
        "127.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "0.0.0.0",
        "fe80::1",
        "224.0.0.1",
    ],
)
def test_allow_private_still_refuses_odd_spellings_and_metadata(decoy, connect_spy, host):
    with pytest.raises(HostRefused) as info:
        connect_checked(host, decoy.port, timeout=2, allow_private=True)
    assert str(info.value) == REFUSED_MESSAGE
    assert connect_spy == []
    assert decoy.settle() == 0


def test_allow_private_allows_any_valid_port_only():
    assert check_host("10.0.0.5", 10143, allow_private=True) == ["10.0.0.5"]
    for port in (0, 70000):
        with pytest.raises(HostRefused):
            check_host("10.0.0.5", port, allow_private=True)


def test_public_hosts_on_mail_ports_pass():
    for port in sorted(MAIL_PORTS):
        assert check_host("8.8.8.8", port) == ["8.8.8.8"]
    assert check_host("2a00:1450:4001:80b::200e", 993) == ["2a00:1450:4001:80b::200e"]


def test_unknown_name_is_a_connect_failure_not_a_refusal():
    def nxdomain(name, port, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ConnectFailed) as info:
        check_host("imap.gmial.test", 993, resolver=nxdomain)
    assert "spelling" in str(info.value)


def test_closed_public_port_is_connect_failed(monkeypatch):
    """A checked address that refuses the connection reports ConnectFailed, not a crash."""
    monkeypatch.setattr(netguard, "classify", lambda ip: None)  # pretend loopback is public
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed):
        connect_checked("127.0.0.1", port, timeout=2, allow_private=True)
