"""Stored secrets: unreadable without the configured key, tamper-evident, kept out of logs."""

from __future__ import annotations

import base64
import logging

import pytest

from pipemail.errors import ConfigError
from pipemail.secrets import (
    MASK,
    PREFIX,
    UNREADABLE_MESSAGE,
    RedactingFilter,
    SecretUnreadable,
    decrypt,
    encrypt,
    is_encrypted,
    redact,
    reencrypt,
)

KEY = "k" * 16 + "0123456789abcdef-config-file-secret"
OTHER_KEY = "another long secret from another config file 42"


def test_round_trip_and_prefix():
    for plaintext in ("hunter2", "1//0gRefreshTokenWithUnicode-é✓", ""):
        value = encrypt(KEY, plaintext)
        assert value.startswith(PREFIX)
        assert value.isascii()
        assert is_encrypted(value)
        assert decrypt(KEY, value) == plaintext


def test_ciphertext_reveals_nothing_and_is_randomised():
    a = encrypt(KEY, "correct horse battery staple")
    b = encrypt(KEY, "correct horse battery staple")
    assert a != b
    for value in (a, b):
        assert "horse" not in value
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :])
        assert b"horse" not in raw


def test_wrong_key_is_a_plain_words_error_without_the_value():
    value = encrypt(KEY, "hunter2")
    with pytest.raises(SecretUnreadable) as info:
        decrypt(OTHER_KEY, value)
    assert str(info.value) == UNREADABLE_MESSAGE
    assert "hunter2" not in str(info.value) + info.value.detail
    assert value not in str(info.value) + info.value.detail


@pytest.mark.parametrize("position", [4, 10, 30, 60, -5, -1])
def test_any_tampered_character_is_detected(position):
    value = encrypt(KEY, "hunter2")
    chars = list(value)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(SecretUnreadable):
        decrypt(KEY, "".join(chars))


def test_truncated_or_plain_values_are_refused():
    value = encrypt(KEY, "hunter2")
    for bad in (value[:-10], "hunter2", "", "pm1:", "pm2:" + value[4:]):
        with pytest.raises(SecretUnreadable):
            decrypt(KEY, bad)
    assert not is_encrypted("hunter2")
    assert not is_encrypted(None)


def test_context_binds_a_value_to_its_record():
    """Copying account 7's encrypted token into account 8 must not hand over the mailbox."""
    value = encrypt(KEY, "1//0gToken", context="account:7:refresh_token")
    assert decrypt(KEY, value, context="account:7:refresh_token") == "1//0gToken"
    for other in ("account:8:refresh_token", "account:7:password", ""):
        with pytest.raises(SecretUnreadable):
            decrypt(KEY, value, context=other)


def test_key_rotation():
    old = encrypt(OTHER_KEY, "hunter2", context="c")
    assert decrypt([KEY, OTHER_KEY], old, context="c") == "hunter2"
    new = reencrypt([KEY, OTHER_KEY], old, context="c")
    assert decrypt(KEY, new, context="c") == "hunter2"
    with pytest.raises(SecretUnreadable):
        decrypt(OTHER_KEY, new, context="c")


@pytest.mark.parametrize("key", ["", "short", b"   " * 20, []])
def test_missing_or_short_key_is_a_config_error(key):
    with pytest.raises(ConfigError):
        encrypt(key, "x") if not isinstance(key, list) else decrypt(key, encrypt(KEY, "x"))


def test_bytes_key_material_is_accepted():
    value = encrypt(KEY.encode(), "x")
    assert decrypt(KEY, value) == "x"


@pytest.mark.parametrize(
    "line, secret",
    [
        ("> b'ABCD1 LOGIN alice@example.com \"s3cr3t pass\"'", "s3cr3t pass"),
        ("> b'ABCD1 LOGIN alice plainpass'", "plainpass"),
        ("A3 AUTHENTICATE XOAUTH2 dXNlcj1hQGIuYwFhdXRoPUJlYXJlciB0b2sBAQ==", "dXNlcj1h"),
        ("send: dXNlcj1hQGIuYwFhdXRoPUJlYXJlciB0b2sBAQ==", "dXNlcj1h"),
        ("refresh_token=1//0gAbCdEf-_x&client_secret=GOCSPX-abc123&grant_type=x", "1//0gAbCdEf"),
        ("refresh_token=1//0gAbCdEf-_x&client_secret=GOCSPX-abc123&grant_type=x", "GOCSPX"),
        ('{"access_token": "ya29.a0AfB_byCsecret", "expires_in": 3599}', "ya29"),
        ('{"refresh_token":"M.C105_BAY.0.U.-Cq!Abc*"}', "M.C105_BAY"),
        ("Authorization: Bearer eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl", "eyJ0eXAi"),
        ("Authorization: Basic YWxpY2U6aHVudGVyMg==", "YWxpY2U6aHVudGVyMg"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-1", "eyJhbGciOi"),
        ("stored value pm1:gAAAAABl3x_yz-abc==", "gAAAAABl"),
        ("GET /oauth/callback?code=4/0AeaYSHAbc&state=xyz", "4/0AeaYSHAbc"),
        ("password: hunter2", "hunter2"),
        ("opaque 0123456789abcdefABCDEF0123456789abcdef99 end", "0123456789abcdef"),
    ],
)
def test_redact_masks_tokens_and_passwords(line, secret):
    out = redact(line)
    assert secret not in out
    assert MASK in out


@pytest.mark.parametrize(
    "line",
    [
        "Synced 120 messages from INBOX in 3.2 s",
        "status_code=500 error_code: 7",
        "failed login for bob from 10.0.0.1",
        "Message-ID <CAF=3dkqweqwe8768768asdasdasdasdasd1231232@mail.gmail.com>",
        "grant_type=refresh_token",
    ],
)
def test_redact_leaves_ordinary_log_lines_alone(line):
    assert redact(line) == line


def test_redact_known_secrets_whatever_they_look_like():
    assert redact("server said: bad pass 'pony' for alice", known=["pony", None, ""]) == (
        f"server said: bad pass '{MASK}' for alice"
    )


def test_logging_filter_redacts_formatted_records(caplog):
    logger = logging.getLogger("pipemail.test.redact")
    logger.addFilter(RedactingFilter(known=["pony"]))
    with caplog.at_level(logging.DEBUG, logger="pipemail.test.redact"):
        logger.debug("> %r", b"AB12 LOGIN alice pony")
        logger.info("refresh with %s", "refresh_token=1//0gSecret")
    text = caplog.text
    assert "pony" not in text
    assert "1//0gSecret" not in text
    assert text.count(MASK) == 2
