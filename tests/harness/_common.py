"""Pieces shared by every harness server: the error type, port picking and TLS material.

Kept in one private module so that each server module can import it without importing the
others (the package ``__init__`` re-exports the public names).
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class HarnessError(RuntimeError):
    """A test server could not be started or driven.

    Raised with the server's own log lines in the message, so a broken environment shows
    up as one readable failure at fixture set-up instead of a confusing error later on.
    """


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago.

    There is a small window between closing the probe socket and the real server binding
    it; callers that hand the port to another process retry on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Poll until something accepts TCP connections on (host, port)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


@dataclass(frozen=True)
class TLSMaterial:
    """A private CA and one server certificate valid for 127.0.0.1, ::1 and localhost.

    A real CA plus a leaf (rather than one self-signed leaf) keeps verification working
    under strict X.509 checking (Python 3.13 turns on VERIFY_X509_STRICT by default).
    """

    cafile: Path
    certfile: Path  # leaf followed by the CA, the order servers expect for a chain file
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the harness CA."""
        return ssl.create_default_context(cafile=str(self.cafile))


_tls_lock = threading.Lock()
_tls_material: TLSMaterial | None = None


def tls_material() -> TLSMaterial:
    """Create (once per process) the CA and server certificate shared by all servers.

    Sharing one CA means a test can trust every harness server with a single ``cafile``.
    EC keys are used because generating them takes milliseconds, not the ~100 ms of RSA.
    """
    global _tls_material
    with _tls_lock:
        if _tls_material is None:
            _tls_material = _generate_tls_material()
        return _tls_material


def _generate_tls_material() -> TLSMaterial:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(tempfile.mkdtemp(prefix="pipemail-tls-"))
    directory.chmod(0o755)  # Dovecot reads the files as root, but keep them readable
    atexit.register(shutil.rmtree, directory, True)

    now = dt.datetime.now(dt.timezone.utc)
    not_before = now - dt.timedelta(days=1)
    not_after = now + dt.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pipemail test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    cafile = directory / "ca.pem"
    certfile = directory / "cert.pem"
    keyfile = directory / "key.pem"
    cafile.write_bytes(ca_cert.public_bytes(pem))
    certfile.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    keyfile.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    keyfile.chmod(0o600)
    return TLSMaterial(cafile=cafile, certfile=certfile, keyfile=keyfile)
