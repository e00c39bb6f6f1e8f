"""``python -m pipemail`` smoke tests against the harness Dovecot."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from pipemail import cli
from pipemail.cli import main

ROOT = Path(__file__).resolve().parent.parent


def args(dovecot, user, command, *extra, security="ssl"):
    port = dovecot.ssl_port if security == "ssl" else dovecot.port
    return [
        command,
        "--host", dovecot.host,
        "--port", str(port),
        "--security", security,
        "--user", user.name,
        "--password-env", "TEST_IMAP_PASSWORD",
        "--cafile", dovecot.cafile,
        "--allow-private-hosts",
        *extra,
    ]  # fmt: skip


# Secrets the CLI reads from the environment: a test sets the ones it means to.
SECRET_ENV = ("PIPEMAIL_PASSWORD", "PIPEMAIL_OAUTH_CLIENT_SECRET", "PIPEMAIL_OAUTH_REFRESH_TOKEN")


def run_module(argv, password=None, **env):
    """``python -m pipemail`` in a child process, stdin closed (no prompt)."""
    full = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    full.update(PYTHONPATH=str(ROOT), **env)
    if password is not None:
        full["TEST_IMAP_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "pipemail", *argv],
        capture_output=True,
        text=True,
        env=full,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def mail(n: int) -> bytes:
    return f"Message-ID: <c{n}@x>\r\nFrom: a@customer.example\r\nSubject: {n}\r\n\r\nb\r\n".encode()


def test_check_prints_capabilities_folders_counts_strategy(dovecot, imap_user):
    dovecot.append_many(imap_user, "INBOX", [mail(n) for n in range(1, 4)])
    proc = run_module(args(dovecot, imap_user, "check"), imap_user.password)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Strategy:     condstore+qresync" in out
    assert "QRESYNC" in out and "CONDSTORE" in out
    inbox = next(line for line in out.splitlines() if line.strip().startswith("INBOX"))
    assert inbox.split()[-2:] == ["3", "3"]
    assert "Archive" in out and "archive" in out
    assert "Would sync:   INBOX, Sent" in out


def test_check_wrong_password_exit_2_plain_message(dovecot, imap_user):
    proc = run_module(args(dovecot, imap_user, "check"), "wrong")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "Error: The server rejected the user name or password."
    assert "Traceback" not in proc.stderr


def test_check_refused_private_host_without_flag(dovecot, imap_user):
    argv = [a for a in args(dovecot, imap_user, "check") if a != "--allow-private-hosts"]
    proc = run_module(argv, imap_user.password)
    assert proc.returncode == 2
    assert "not allowed" in proc.stderr and "Traceback" not in proc.stderr


def test_sync_jsonl_with_progress_and_resume(dovecot, imap_user, tmp_path):
    dovecot.append_many(imap_user, "INBOX", [mail(n) for n in range(1, 51)])
    dovecot.append(imap_user, "Sent", mail(100))
    journal = tmp_path / "store.jsonl"
    argv = args(
        dovecot, imap_user, "sync", "--store", f"jsonl:{journal}", "--batch-size", "10",
        "--progress",
    )  # fmt: skip
    proc = run_module(argv, imap_user.password)
    assert proc.returncode == 0, proc.stderr
    assert "INBOX: 50 new" in proc.stdout and "Sent: 1 new" in proc.stdout
    assert "Done: 51 new" in proc.stdout
    assert "[" in proc.stderr and "50/50" in proc.stderr  # the text progress bar
    assert journal.exists()

    dovecot.append(imap_user, "INBOX", mail(51))
    proc = run_module(argv, imap_user.password)
    assert proc.returncode == 0, proc.stderr
    assert "Done: 1 new" in proc.stdout


def test_sync_since_folders_and_json(dovecot, imap_user):
    dovecot.append(imap_user, "INBOX", mail(1), internaldate="01-Jan-2015 10:00:00 +0000")
    dovecot.append(imap_user, "INBOX", mail(2))
    dovecot.append(imap_user, "Sent", mail(3))
    out, err = io.StringIO(), io.StringIO()
    os.environ["TEST_IMAP_PASSWORD"] = imap_user.password
    try:
        code = main(
            args(dovecot, imap_user, "sync", "--since", "2020-01-01", "--folders", "INBOX",
                 "--json", "--no-progress", security="starttls"),
            out=out,
            err=err,
        )  # fmt: skip
    finally:
        del os.environ["TEST_IMAP_PASSWORD"]
    assert code == 0, err.getvalue()
    report = json.loads(out.getvalue())
    assert list(report["folders"]) == ["INBOX"]
    assert report["folders"]["INBOX"]["new"] == 1
    assert report["summary"].startswith("1 new")
    assert err.getvalue() == ""


def test_sync_missing_folder_exit_1(dovecot, imap_user):
    out, err = io.StringIO(), io.StringIO()
    os.environ["TEST_IMAP_PASSWORD"] = imap_user.password
    try:
        code = main(
            args(dovecot, imap_user, "sync", "--folders", "INBOX,Nope", "--no-progress"),
            out=out,
            err=err,
        )
    finally:
        del os.environ["TEST_IMAP_PASSWORD"]
    assert code == 1
    assert "error in Nope: The folder “Nope” does not exist on the server." in out.getvalue()


def test_no_password_is_a_clear_error(dovecot, imap_user):
    err = io.StringIO()
    os.environ.pop("TEST_IMAP_PASSWORD", None)
    code = main(args(dovecot, imap_user, "check"), out=io.StringIO(), err=err)
    assert code == 2
    assert "TEST_IMAP_PASSWORD" in err.getvalue()


def run_module_stderr_on_terminal(argv, password):
    """``python -m pipemail`` with stderr on a pseudo-terminal; returns (code, stdout, stderr)."""
    master, slave = pty.openpty()
    full = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    full.update(PYTHONPATH=str(ROOT), TEST_IMAP_PASSWORD=password)
    with subprocess.Popen(
        [sys.executable, "-m", "pipemail", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=full,
        cwd=ROOT,
    ) as child:
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal's last writer
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        out = child.stdout.read().decode()
        code = child.wait(timeout=120)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_sync_progress_bar_only_on_a_terminal_by_default(dovecot, imap_user):
    """Logs and pipes get no carriage-return redraws unless --progress asks for them."""
    dovecot.append_many(imap_user, "INBOX", [mail(n) for n in range(1, 21)])
    argv = args(dovecot, imap_user, "sync", "--folders", "INBOX")
    proc = run_module(argv, imap_user.password)  # stdout and stderr are pipes
    assert proc.returncode == 0, proc.stderr
    assert "INBOX: 20 new" in proc.stdout
    assert proc.stderr == ""

    code, out, err = run_module_stderr_on_terminal(argv, imap_user.password)
    assert code == 0, err
    assert "INBOX: 20 new" in out  # stdout is a pipe: what counts is where the bar goes
    assert "\r" in err and "INBOX" in err

    code, out, err = run_module_stderr_on_terminal([*argv, "--no-progress"], imap_user.password)
    assert code == 0, err
    assert err == ""


def test_progress_options_override_the_terminal_check():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    parser = cli._parser()
    base = ["sync", "--host", "h", "--user", "u"]
    for extra, stream, expected in [
        ([], io.StringIO(), False),
        ([], Terminal(), True),
        (["--no-progress"], Terminal(), False),
        (["--progress"], io.StringIO(), True),
    ]:
        assert cli._wants_progress(parser.parse_args([*base, *extra]), stream) is expected
