"""Refuse mail-server addresses that would let a salesperson reach our own network.

The account form lets any user type a host and a port, and the sync worker then opens
a TCP connection to it from inside the Odoo server's network. Without a check, that is
a server-side request forgery: "IMAP server 169.254.169.254 port 80" reads the cloud
metadata service, "127.0.0.1 port 6379" talks to Redis, and the error text tells the
user what answered. So every connection the engine makes goes through
:func:`connect_checked`, which

* refuses addresses that are not public unicast: loopback, RFC 1918 / ULA / CGNAT and
  other non-global ranges, link-local, cloud metadata endpoints, unspecified,
  multicast, broadcast and reserved space, including the same addresses hidden inside
  IPv6 (IPv4-mapped, IPv4-compatible, NAT64 ``64:ff9b::/96``, 6to4, Teredo);
* refuses odd spellings of IPv4 literals (``0x7f000001``, ``2130706433``,
  ``017700000001``, ``127.1``, ``0177.0.0.1``). ``inet_aton`` accepts them but other
  parsers read them differently, no legitimate form ever needs them, and they exist in
  practice only to slip past filters, so they are refused even for administrators;
* resolves names with ``getaddrinfo`` and refuses the name if ANY of its addresses is
  bad (a name with one public and one loopback record must not depend on which one
  the resolver happens to return first);
* connects to the exact address it checked, so a name cannot resolve to a public
  address for the check and to 127.0.0.1 for the connection (DNS rebinding);
* allows only mail ports (:data:`MAIL_PORTS`) unless the administrator allows
  private hosts.

Policy with ``allow_private=True`` (an administrator's switch per server, for
on-premise mail servers and for the test suite): loopback and private ranges and any
port 1-65535 are allowed, because an on-premise server on ``10.0.0.5:10143`` is a
real setup. Still refused even then: link-local (169.254/16, fe80::/10 — home of the
cloud metadata services, never a mail server), the metadata addresses themselves,
unspecified (``0.0.0.0`` connects to the local host on Linux), multicast, broadcast,
reserved space and the odd numeric spellings.

Every refusal raises :class:`~pipemail.errors.HostRefused` with the same text
(:data:`REFUSED_MESSAGE`), whatever the reason, so the form cannot be used to map the
internal network; the reason goes to ``detail`` for the server log only. A name that
does not resolve raises :class:`~pipemail.errors.ConnectFailed` instead: telling a
user "check the spelling" for a typo is worth more than hiding that a name is unknown.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

from pipemail.errors import ConnectFailed, HostRefused

REFUSED_MESSAGE = (
    "This server address is not allowed. Ask an administrator if it is a private server."
)

MAIL_PORTS: frozenset[int] = frozenset({25, 143, 465, 587, 993, 2525})
"""IMAP (143, 993), SMTP submission (587, 465), SMTP relay (25) and the common
alternative submission port 2525. Other ports need ``allow_private``."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS instance metadata over IPv6 (inside ULA space)
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata (inside CGNAT space)
        "168.63.129.16",  # Azure WireServer: a public-looking address that is host-local
    )
)
"""Cloud metadata and host services, refused even when private hosts are allowed."""

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPAT = ipaddress.ip_network("::/96")

# A label made only of digits or of 0x-hex: what inet_aton accepts as a number.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
# RFC 1123 host name characters after IDNA encoding; anything else is refused.
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$", re.I)

Resolver = Callable[..., list[tuple[Any, ...]]]


def _refuse(reason: str) -> HostRefused:
    return HostRefused(REFUSED_MESSAGE, detail=reason)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really leads to, if it embeds one.

    A NAT64 gateway or a dual-stack kernel turns these back into IPv4 connections, so
    ``::ffff:127.0.0.1`` must be judged as 127.0.0.1.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused: ``"never: ..."``, ``"private: ..."``, or ``None`` if public.

    ``never`` reasons hold even when private hosts are allowed.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = classify(inner)
            return f"{reason} (embedded in {ip})" if reason else None
        if ip.teredo is not None:
            return "never: Teredo tunnel address"
        if ip in _NAT64_LOCAL:
            return "never: local-use NAT64 address"
    if ip in METADATA_ADDRESSES:
        return "never: cloud metadata address"
    if ip.is_loopback:
        # before is_reserved: ::1 sits inside the reserved ::/8 block
        return "private: loopback address"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "never: unspecified address"
    if ip.is_multicast:
        return "never: multicast address"
    if ip.is_link_local:
        return "never: link-local address"
    if ip.is_reserved:
        return "never: reserved or broadcast address"
    if ip.is_private or not ip.is_global:
        return "private: non-public address"
    return None


def _literal(host: str) -> IPAddress | None:
    """Parse ``host`` as an IP literal in its canonical spelling only.

    Raises HostRefused for numeric spellings that ``inet_aton`` would accept but
    :mod:`ipaddress` does not (hex, octal, single integer, fewer than four parts).
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    labels = bare.rstrip(".").split(".")
    if all(_NUMERIC_LABEL.match(label) for label in labels):
        raise _refuse(f"non-canonical numeric address {host!r}")
    if ":" in bare or bare != host:
        raise _refuse(f"malformed address {host!r}")
    return None


def _normalize(host: str) -> str:
    """The ASCII form getaddrinfo would look up, so our checks see what it sees.

    Python IDNA-encodes non-ASCII names before resolving; full-width digits
    (``１２７.０.０.１``) come out as ``127.0.0.1``.
    """
    if not isinstance(host, str):
        raise _refuse("host is not text")
    host = host.strip()
    if not host or len(host) > 253 + 2:
        raise _refuse("empty or overlong host")
    if any(ord(c) < 0x21 or c in "/\\@?#" for c in host):
        raise _refuse(f"host contains forbidden characters {host!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _refuse(f"host is not a valid international name {host!r}")
    return host


def check_port(port: int, *, allow_private: bool = False) -> None:
    """Refuse ports outside :data:`MAIL_PORTS` unless private hosts are allowed."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise _refuse(f"invalid port {port!r}")
    if not allow_private and port not in MAIL_PORTS:
        raise _refuse(f"port {port} is not a mail port")


def check_host(
    host: str,
    port: int,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> list[str]:
    """Resolve ``host`` and return its addresses, or raise HostRefused.

    Nothing is connected here. ``resolver`` defaults to :func:`socket.getaddrinfo`
    (looked up at call time); it exists so tests can describe DNS answers that no
    local resolver gives, such as a name with one public and one loopback record.
    """
    check_port(port, allow_private=allow_private)
    host = _normalize(host)
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        name = host.rstrip(".")
        if not _HOSTNAME.match(name):
            raise _refuse(f"invalid host name {host!r}")
        resolve = resolver or socket.getaddrinfo
        try:
            infos = resolve(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConnectFailed(
                "We could not find this server name. Check the spelling of the server address.",
                detail=f"{host}: {exc}",
            )
        addresses = []
        for info in infos:
            family, sockaddr = info[0], info[4]
            if family not in (socket.AF_INET, socket.AF_INET6):
                raise _refuse(f"{host} resolves to a non-IP address family {family!r}")
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if not addresses:
            raise ConnectFailed(
                "We could not find this server name. Check the spelling of the server address.",
                detail=f"{host}: no addresses",
            )

    result: list[str] = []
    for ip in addresses:
        reason = classify(ip)
        if reason and (reason.startswith("never") or not allow_private):
            raise _refuse(f"{host} -> {ip}: {reason}")
        if str(ip) not in result:
            result.append(str(ip))
    return result


def connect_checked(
    host: str,
    port: int,
    timeout: float = 30.0,
    allow_private: bool = False,
    *,
    resolver: Resolver | None = None,
) -> socket.socket:
    """Open a TCP connection to ``host:port`` after :func:`check_host` approved it.

    The socket is connected to one of the addresses that were checked, never to a
    fresh DNS answer. TLS, if any, is the caller's job (wrap with the original
    ``host`` as ``server_hostname`` so certificates are still checked by name).
    """
    addresses = check_host(host, port, allow_private=allow_private, resolver=resolver)
    errors: list[str] = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.settimeout(timeout)
            sock.connect((address, port))
        except OSError as exc:
            sock.close()
            errors.append(f"{address}: {exc}")
            continue
        return sock
    raise ConnectFailed(
        "We could not reach the mail server. Check the address and port, or try again later.",
        detail=f"{host}:{port}: " + "; ".join(errors),
    )
