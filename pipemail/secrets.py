"""Encrypt stored mailbox secrets with a key the database never sees, and keep them out of logs.

Passwords and OAuth refresh tokens are stored in the database, and databases leak:
``pg_dump`` files, backups, a support copy, a careless export. So the values are
encrypted with a key that lives outside the database (an option of the Odoo config
file, passed in by the caller); a dump alone yields only ciphertext.

* Fernet (``cryptography``): AES-128-CBC plus HMAC-SHA256, so a changed byte is
  detected rather than decrypted into garbage, and a random IV per value, so equal
  passwords do not produce equal ciphertexts.
* The Fernet key is derived from the configured secret with HKDF-SHA256. The
  configured secret can then be any long random string an administrator pastes into
  a config file, and each ``context`` gets its own key: a ciphertext bound to
  ``"account:7:refresh_token"`` does not decrypt as ``"account:8:refresh_token"``, so
  copying another user's encrypted token into your own record yields an error, not
  their mailbox.
* Values carry a version prefix (``pm1:``) so the scheme can change later and so a
  plaintext left over from before encryption is recognizable.
* Key rotation: :func:`decrypt` accepts several keys (newest first) and
  :func:`reencrypt` moves a value to the newest one.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Sequence

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipemail.errors import ConfigError, PipemailError

PREFIX = "pm1:"
MIN_KEY_LENGTH = 32
"""Characters of configured secret required; 32 random characters is ~190 bits."""

_SALT = b"pipemail.secrets.v1"

KeyMaterial = str | bytes


class SecretUnreadable(PipemailError):
    """A stored secret could not be decrypted: wrong key, tampered or not encrypted."""

    code = "secret"


UNREADABLE_MESSAGE = (
    "A saved password or sign-in could not be read. The encryption key may have changed: "
    "ask an administrator, or enter the password or reconnect the account again."
)


def _fernet(key_material: KeyMaterial, context: str) -> Fernet:
    raw = key_material.encode() if isinstance(key_material, str) else bytes(key_material)
    if len(raw.strip()) < MIN_KEY_LENGTH:
        raise ConfigError(
            "The encryption key for saved passwords is missing or too short. "
            "Ask an administrator to set it in the server configuration.",
            detail=f"need at least {MIN_KEY_LENGTH} characters of key material",
        )
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_SALT,
        info=b"fernet:" + context.encode(),
    ).derive(raw)
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys(key_material: KeyMaterial | Sequence[KeyMaterial]) -> list[KeyMaterial]:
    if isinstance(key_material, str | bytes):
        return [key_material]
    keys = list(key_material)
    if not keys:
        raise ConfigError(
            "The encryption key for saved passwords is missing. "
            "Ask an administrator to set it in the server configuration.",
            detail="empty key list",
        )
    return keys


def encrypt(key_material: KeyMaterial, plaintext: str, *, context: str = "") -> str:
    """Encrypt ``plaintext`` to ``"pm1:<fernet token>"`` (ASCII, safe in a char column)."""
    token = _fernet(key_material, context).encrypt(plaintext.encode("utf-8"))
    return PREFIX + token.decode("ascii")


def is_encrypted(value: str | None) -> bool:
    return bool(value) and value.startswith(PREFIX)  # type: ignore[union-attr]


def decrypt(
    key_material: KeyMaterial | Sequence[KeyMaterial], value: str, *, context: str = ""
) -> str:
    """Decrypt a value made by :func:`encrypt`; raise :class:`SecretUnreadable` otherwise.

    ``key_material`` may be a list of keys, newest first, during a key rotation.
    The error never contains the value itself.
    """
    if not is_encrypted(value):
        raise SecretUnreadable(UNREADABLE_MESSAGE, detail="value is not a pm1 ciphertext")
    token = value[len(PREFIX) :].encode("ascii", "replace")
    for key in _keys(key_material):
        try:
            return _fernet(key, context).decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            continue
    raise SecretUnreadable(
        UNREADABLE_MESSAGE, detail="wrong key, wrong context or tampered ciphertext"
    )


def reencrypt(key_material: Sequence[KeyMaterial], value: str, *, context: str = "") -> str:
    """Decrypt with any of the keys and encrypt again with the first (newest) one."""
    keys = _keys(key_material)
    return encrypt(keys[0], decrypt(keys, value, context=context), context=context)


# --- keeping secrets out of logs -------------------------------------------------------

MASK = "[redacted]"

_SENSITIVE_FIELDS = (
    r"\b(?:[\w-]*(?:pass(?:word|wd)|secret|token|api[_-]?key)[\w-]*"
    r"|pass|pwd|code|code_verifier|assertion|authorization)"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # HTTP auth headers and bearer strings
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/=]+"), r"\1 " + MASK),
    # IMAP (commands are upper case on the wire): LOGIN's password, AUTHENTICATE's argument
    (
        re.compile(r'(\bLOGIN\s+(?:"(?:[^"\\]|\\.)*"|\S+)\s+)("(?:[^"\\]|\\.)*"|\S+)'),
        r"\1" + MASK,
    ),
    (
        re.compile(r"(\bAUTHENTICATE\s+(?:XOAUTH2|OAUTHBEARER|PLAIN|LOGIN)\s+)\S+"),
        r"\1" + MASK,
    ),
    # key=value, key: value and "key": "value" pairs with a secret-looking name
    (
        re.compile(
            r"(?i)(" + _SENSITIVE_FIELDS + r"[\"']?\s*[:=]\s*[\"']?)"
            r"(?!(?:Bearer|Basic)\b)([^\s\"'&,;}]+)"
        ),
        r"\1" + MASK,
    ),
    # our own ciphertexts
    (re.compile(r"pm1:[A-Za-z0-9_\-=]+"), MASK),
    # JWTs, Google access (ya29.) and refresh (1//) tokens
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), MASK),
    (re.compile(r"\bya29\.[A-Za-z0-9_\-.]+"), MASK),
    (re.compile(r"\b1//[A-Za-z0-9_\-]+"), MASK),
    # base64 of "user=" starts every XOAUTH2 string
    (re.compile(r"\bdXNlcj[A-Za-z0-9+/=]+"), MASK),
    # any other long run of token characters that mixes letters and digits; a run that
    # ends in "@" is a Message-ID's left part and is kept, it helps debugging
    (
        re.compile(
            r"(?<![\w@.\-])(?=[A-Za-z0-9_\-.~+/=]*[0-9])(?=[A-Za-z0-9_\-.~+/=]*[A-Za-z])"
            r"[A-Za-z0-9_\-.~+/=]{32,}(?![\w@])"
        ),
        MASK,
    ),
]


def redact(text: str, known: Iterable[str | None] = ()) -> str:
    """Mask anything in ``text`` that looks like a password or token.

    ``known`` lists the actual secrets in play (the account's password, its current
    tokens): they are masked wherever they appear, whatever they look like, which
    the patterns alone cannot promise for a short human password.
    """
    for secret in sorted((s for s in known if s), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message before it is written.

    Attach it to handlers (or to the ``imapclient`` logger, which logs whole protocol
    lines, LOGIN passwords included, at debug level).
    """

    def __init__(self, known: Iterable[str] = ()) -> None:
        super().__init__()
        self.known = list(known)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            message = str(record.msg)
        record.msg = redact(message, self.known)
        record.args = None
        return True
