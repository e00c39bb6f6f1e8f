"""``python -m pipemail --oauth google|microsoft``: XOAUTH2 against the harness Dovecot.

Dovecot checks every token through its oauth2 passdb against the harness OAuth server,
whose token endpoint the CLI's google-auth / msal token sources talk to: plain HTTP for
Google (``--token-uri``), HTTPS with the harness CA for Microsoft (``--authority``,
``REQUESTS_CA_BUNDLE``). Every token request is counted, so a retry loop would show.
"""

from __future__ import annotations

import io
import json
import stat

import pytest
from test_cli import SECRET_ENV, mail, run_module

from pipemail import cli

CLIENT_ID = "cli-client"
CLIENT_SECRET = "cli-client-secret"


@pytest.fixture
def server(oauth_server):
    oauth_server.client_id = CLIENT_ID
    oauth_server.client_secret = CLIENT_SECRET
    return oauth_server


@pytest.fixture
def user(dovecot_oauth):
    return dovecot_oauth.add_user()


def oauth_args(dovecot, user, command, provider, server, *extra):
    endpoint = (
        ["--token-uri", server.token_url]
        if provider == "google"
        else ["--authority", server.authority]
    )
    return [
        command,
        "--host", dovecot.host,
        "--port", str(dovecot.ssl_port),
        "--user", user.name,
        "--cafile", dovecot.cafile,
        "--allow-private-hosts",
        "--oauth", provider,
        "--client-id", CLIENT_ID,
        *endpoint,
        *extra,
    ]  # fmt: skip


def run_oauth_module(argv, server, refresh_token=None, secret=CLIENT_SECRET):
    env = {"REQUESTS_CA_BUNDLE": server.cafile}
    if secret is not None:
        env["PIPEMAIL_OAUTH_CLIENT_SECRET"] = secret
    if refresh_token is not None:
        env["PIPEMAIL_OAUTH_REFRESH_TOKEN"] = refresh_token
    return run_module(argv, **env)


def run_main(argv, monkeypatch, server, refresh_token=None):
    """``cli.main`` in this process, secrets in the environment as a user would set them."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPEMAIL_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.cafile)
    if refresh_token is not None:
        monkeypatch.setenv("PIPEMAIL_OAUTH_REFRESH_TOKEN", refresh_token)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def token_requests(server) -> int:
    return sum(1 for r in server.requests if r.endpoint == "token")


# --- Google ------------------------------------------------------------------------------


def test_google_check_logs_in_with_xoauth2(dovecot_oauth, user, server):
    dovecot_oauth.append_many(user, "INBOX", [mail(n) for n in range(1, 3)])
    _, rt = server.issue(user.name)
    proc = run_oauth_module(oauth_args(dovecot_oauth, user, "check", "google", server), server, rt)
    assert proc.returncode == 0, proc.stderr
    assert "Login:        ok" in proc.stdout
    inbox = next(line for line in proc.stdout.splitlines() if line.strip().startswith("INBOX"))
    assert inbox.split()[-2:] == ["2", "2"]
    assert token_requests(server) == 1  # one refresh, its token used for the login
    assert server.counts["introspect.active"] >= 1  # Dovecot checked a real token
    assert rt not in proc.stdout + proc.stderr and CLIENT_SECRET not in proc.stdout + proc.stderr


def test_google_sync_fetches_the_messages(dovecot_oauth, user, server, monkeypatch):
    dovecot_oauth.append_many(user, "INBOX", [mail(n) for n in range(1, 6)])
    dovecot_oauth.append(user, "Sent", mail(99))
    _, rt = server.issue(user.name)
    argv = oauth_args(dovecot_oauth, user, "sync", "google", server, "--json", "--no-progress")
    code, out, err = run_main(argv, monkeypatch, server, rt)
    assert code == 0, err
    report = json.loads(out)
    assert report["folders"]["INBOX"]["new"] == 5
    assert report["folders"]["Sent"]["new"] == 1
    assert err == ""


@pytest.mark.parametrize("how", ["revoked", "unknown"])
def test_google_dead_refresh_token_is_a_plain_error(dovecot_oauth, user, server, how):
    _, rt = server.issue(user.name)
    if how == "revoked":
        server.revoke(rt)
    else:
        rt = "rt-never-issued"
    proc = run_oauth_module(oauth_args(dovecot_oauth, user, "sync", "google", server), server, rt)
    assert proc.returncode == cli.EXIT_ERROR
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "Error: Google no longer accepts this mailbox's sign-in. "
        "Reconnect the account to resume syncing.",
        "Google answered invalid_grant: the refresh token was revoked, has expired, "
        "or is unknown to Google: sign in again to get a new one.",
    ]
    assert token_requests(server) == 1  # no retry
    assert server.counts["introspect"] == 0  # the mail server was never bothered


def test_google_wrong_client_secret_is_a_plain_error(dovecot_oauth, user, server):
    _, rt = server.issue(user.name)
    argv = oauth_args(dovecot_oauth, user, "check", "google", server)
    proc = run_oauth_module(argv, server, rt, secret="not-the-secret")
    assert proc.returncode == cli.EXIT_ERROR
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        "Error: Google refused this application's sign-in settings. Ask an administrator "
        "to check the OAuth client id and secret."
    )
    assert lines[1] == (
        "Google answered invalid_client: Google does not know this client or its secret: "
        "check --client-id and the client secret in PIPEMAIL_OAUTH_CLIENT_SECRET."
    )
    assert "Traceback" not in proc.stderr
    assert server.refresh_token_valid(rt)  # a client error does not burn the grant


def test_google_debug_shows_the_provider_answer_not_the_secrets(dovecot_oauth, user, server):
    _, rt = server.issue(user.name)
    server.revoke(rt)
    argv = oauth_args(dovecot_oauth, user, "check", "google", server, "--debug")
    proc = run_oauth_module(argv, server, rt)
    assert proc.returncode == cli.EXIT_ERROR
    assert "detail: 400 invalid_grant" in proc.stderr
    assert rt not in proc.stderr and CLIENT_SECRET not in proc.stderr


def test_google_needs_a_client_secret_and_a_refresh_token(dovecot_oauth, user, server):
    argv = oauth_args(dovecot_oauth, user, "check", "google", server)
    proc = run_oauth_module(argv, server, "rt-x", secret=None)
    assert proc.returncode == cli.EXIT_ERROR
    assert proc.stderr.strip() == (
        "Error: No OAuth client secret: set the environment variable "
        "PIPEMAIL_OAUTH_CLIENT_SECRET (Google requires one)."
    )
    proc = run_oauth_module(argv, server, None)
    assert proc.returncode == cli.EXIT_ERROR
    assert "No refresh token: set the environment variable PIPEMAIL_OAUTH_REFRESH_TOKEN" in (
        proc.stderr
    )
    assert token_requests(server) == 0


def test_secret_variable_names_can_be_chosen(dovecot_oauth, user, server, monkeypatch):
    _, rt = server.issue(user.name)
    monkeypatch.setenv("MY_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("MY_TOKEN", rt)
    argv = oauth_args(
        dovecot_oauth, user, "check", "google", server,
        "--client-secret-env", "MY_SECRET", "--refresh-token-env", "MY_TOKEN",
    )  # fmt: skip
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(argv, out=out, err=err) == cli.EXIT_OK, err.getvalue()
    assert "Login:        ok" in out.getvalue()


# --- Microsoft ---------------------------------------------------------------------------


def test_microsoft_rotation_is_written_back_to_the_token_file(
    dovecot_oauth, user, server, tmp_path
):
    server.rotate_refresh_tokens = True
    dovecot_oauth.append_many(user, "INBOX", [mail(n) for n in range(1, 4)])
    _, rt = server.issue(user.name)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    token_file = secrets_dir / "refresh-token"
    token_file.write_text(rt + "\n")
    argv = oauth_args(
        dovecot_oauth, user, "sync", "microsoft", server,
        "--refresh-token-file", str(token_file), "--no-progress",
        "--store", f"jsonl:{tmp_path / 'store.jsonl'}",
    )  # fmt: skip
    proc = run_oauth_module(argv, server)
    assert proc.returncode == 0, proc.stderr
    assert "INBOX: 3 new" in proc.stdout
    rotated = token_file.read_text().strip()
    assert rotated != rt and server.refresh_token_valid(rotated)
    assert not server.refresh_token_valid(rt)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert [p.name for p in secrets_dir.iterdir()] == ["refresh-token"]  # no temporary left

    dovecot_oauth.append(user, "INBOX", mail(4))
    proc = run_oauth_module(argv, server)  # the saved token works: nothing to redo by hand
    assert proc.returncode == 0, proc.stderr
    assert "Done: 1 new" in proc.stdout
    assert token_requests(server) == 2


def test_microsoft_rotation_without_a_file_is_reported(dovecot_oauth, user, server, monkeypatch):
    server.rotate_refresh_tokens = True
    _, rt = server.issue(user.name)
    argv = oauth_args(dovecot_oauth, user, "check", "microsoft", server)
    code, out, err = run_main(argv, monkeypatch, server, rt)
    assert code == cli.EXIT_OK, err
    assert "Login:        ok" in out
    assert "Microsoft issued a new refresh token" in err and "--refresh-token-file" in err


def test_microsoft_revoked_grant_is_a_plain_error(dovecot_oauth, user, server, monkeypatch):
    _, rt = server.issue(user.name)
    server.revoke_user(user.name)
    argv = oauth_args(dovecot_oauth, user, "sync", "microsoft", server, "--no-progress")
    code, out, err = run_main(argv, monkeypatch, server, rt)
    assert code == cli.EXIT_ERROR
    assert err.splitlines() == [
        "Error: Microsoft no longer accepts this mailbox's sign-in. "
        "Reconnect the account to resume syncing.",
        "Microsoft answered invalid_grant: the refresh token was revoked, has expired, "
        "or is unknown to Microsoft: sign in again to get a new one.",
    ]
    assert out == ""
    assert token_requests(server) == 1


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("unauthorized_client", "this client may not use refresh tokens"),
        ("interaction_required", "must sign in again in a browser"),
        ("temporarily_unavailable", "try again later"),
    ],
)
def test_microsoft_advice_follows_the_provider_code(
    dovecot_oauth, user, server, monkeypatch, error, advice
):
    _, rt = server.issue(user.name)
    server.fail_next(400, error=error)
    argv = oauth_args(dovecot_oauth, user, "check", "microsoft", server)
    code, out, err = run_main(argv, monkeypatch, server, rt)
    assert code == cli.EXIT_ERROR
    assert out == ""
    hint = err.splitlines()[1]
    assert hint.startswith(f"Microsoft answered {error}: ") and advice in hint, hint


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--oauth", "microsoft", "--token-uri", "http://x/token"], "--token-uri is for"),
        (["--oauth", "google", "--authority", "https://x/t"], "--authority is for"),
        (["--client-id", "x"], "--oauth is needed for --client-id"),
    ],
)
def test_option_mistakes_are_usage_errors(extra, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["check", "--host", "mail.example.com", "--user", "u", *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_host_defaults_to_the_provider(monkeypatch):
    monkeypatch.setenv("PIPEMAIL_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("PIPEMAIL_OAUTH_REFRESH_TOKEN", "rt-x")
    for provider, host in (("google", "imap.gmail.com"), ("microsoft", "outlook.office365.com")):
        args = cli._parser().parse_args(
            ["check", "--user", "u@example.com", "--oauth", provider, "--client-id", "c"]
        )
        config = cli._config(args, io.StringIO())
        assert (config.imap.host, config.imap.port) == (host, 993)
        assert config.auth.username == "u@example.com"
    with pytest.raises(SystemExit):
        cli.main(["check", "--user", "u"])  # neither --host nor --oauth


def test_refresh_token_file_errors_are_plain(tmp_path, monkeypatch, capsys):
    argv = ["check", "--host", "127.0.0.1", "--user", "u", "--oauth", "microsoft",
            "--client-id", "c", "--refresh-token-file", str(tmp_path / "missing")]  # fmt: skip
    assert cli.main(argv) == cli.EXIT_ERROR
    assert capsys.readouterr().err.strip() == (
        f"Error: Cannot read the refresh token file {tmp_path / 'missing'} "
        "(No such file or directory)."
    )
    (tmp_path / "missing").write_text("\n")
    assert cli.main(argv) == cli.EXIT_ERROR
    assert "is empty" in capsys.readouterr().err


def test_rotated_token_is_not_written_over_a_changed_file(tmp_path):
    path = tmp_path / "rt"
    path.write_text("rt-other-run\n")
    err = io.StringIO()
    cli._save_refresh_token(path, "rt-new", "rt-old", "Microsoft", err)
    assert path.read_text() == "rt-other-run\n"  # someone else's newer token stays
    assert "changed during the run" in err.getvalue()
    cli._save_refresh_token(tmp_path / "gone" / "rt", "rt-new", "rt-old", "Microsoft", err)
    assert "could not save the new Microsoft refresh token" in err.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rt"]
