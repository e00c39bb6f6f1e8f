"""``python -m pipemail``: check a mailbox or sync it, from a shell.

For support and for trying a server before configuring it in Odoo: the same engine,
the same errors. A failure prints the engine's plain-words message and exits 2, with
no stack trace (``--debug`` shows one). The password comes from an environment
variable (``--password-env``, default ``PIPEMAIL_PASSWORD``) or a prompt, never from
the command line, where ``ps`` and shell history would keep it.

``--oauth google|microsoft`` logs in with XOAUTH2 instead, through the token sources of
:mod:`pipemail.oauth` (the ones Odoo uses). The same rule holds for its secrets: the
client secret and the refresh token come from environment variables, a file or a
prompt. A refresh token Microsoft rotates is written back to ``--refresh-token-file``
(compare-and-swap, atomic replace); without a file the CLI says it was not kept.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import TextIO

from pipemail.check import CheckReport, check_account
from pipemail.errors import AuthFailed, ConfigError, ConnectFailed, PipemailError, ReconnectNeeded
from pipemail.oauth import (
    GOOGLE_TOKEN_URI,
    MICROSOFT_AUTHORITY,
    GoogleTokenSource,
    MicrosoftTokenSource,
    RefreshingTokenSource,
    RefreshTokenSaver,
)
from pipemail.store import JsonlStore, MemoryStore
from pipemail.sync import Progress, SyncReport, sync_account
from pipemail.types import AccountConfig, Auth, OAuth2Auth, PasswordAuth, ServerConfig

EXIT_OK = 0
EXIT_FOLDER_ERRORS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

OAUTH_HOSTS = {"google": "imap.gmail.com", "microsoft": "outlook.office365.com"}
PROVIDER_NAMES = {"google": "Google", "microsoft": "Microsoft"}
CLIENT_ID_ENV = "PIPEMAIL_OAUTH_CLIENT_ID"

SECRETS_EPILOG = """\
Secrets never go on the command line, where ps and shell history would show them.
They are read from environment variables, whose names the *-env options change:
  PIPEMAIL_PASSWORD              the password (prompted for on a terminal)
  PIPEMAIL_OAUTH_CLIENT_SECRET   the OAuth client secret (--oauth)
  PIPEMAIL_OAUTH_REFRESH_TOKEN   the OAuth refresh token (--oauth; prompted for on a
                                 terminal; or --refresh-token-file)
  PIPEMAIL_OAUTH_CLIENT_ID       the OAuth client id, when --client-id is not given
The token endpoint's certificate is checked against the system CAs, or against
REQUESTS_CA_BUNDLE when it is set (a private CA).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipemail",
        description="Check or sync one IMAP mailbox.",
        epilog=SECRETS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--host",
            help="IMAP server name or address (required, except with --oauth: "
            + ", ".join(f"{k}: {v}" for k, v in OAUTH_HOSTS.items())
            + ")",
        )
        p.add_argument("--port", type=int, help="default: 993 for ssl, 143 otherwise")
        p.add_argument("--security", choices=["ssl", "starttls", "none"], default="ssl")
        p.add_argument("--user", required=True, help="login name (with --oauth: the mailbox)")
        p.add_argument(
            "--password-env",
            default="PIPEMAIL_PASSWORD",
            metavar="VAR",
            help="environment variable holding the password (default PIPEMAIL_PASSWORD); "
            "prompted for when unset and stdin is a terminal",
        )
        p.add_argument("--cafile", help="CA bundle to verify the server certificate with")
        p.add_argument(
            "--insecure", action="store_true", help="do not verify the server certificate"
        )
        p.add_argument(
            "--allow-private-hosts",
            action="store_true",
            help="allow loopback/private addresses and any port (on-premise servers, tests)",
        )
        p.add_argument("--timeout", type=float, default=60.0, help="socket timeout, seconds")
        p.add_argument(
            "--disable-condstore",
            action="store_true",
            help="behave as with a server without CONDSTORE/QRESYNC",
        )
        p.add_argument("--debug", action="store_true", help="log protocol details, show tracebacks")
        oauth = p.add_argument_group(
            "OAuth", "XOAUTH2 login with a refresh token instead of a password"
        )
        oauth.add_argument(
            "--oauth", choices=list(OAUTH_HOSTS), help="log in with this provider's OAuth"
        )
        oauth.add_argument(
            "--client-id",
            metavar="ID",
            help=f"OAuth client (application) id (default ${CLIENT_ID_ENV})",
        )
        oauth.add_argument(
            "--client-secret-env",
            default="PIPEMAIL_OAUTH_CLIENT_SECRET",
            metavar="VAR",
            help="environment variable holding the client secret (default "
            "PIPEMAIL_OAUTH_CLIENT_SECRET); required for google, optional for microsoft "
            "(without it: a public client)",
        )
        oauth.add_argument(
            "--refresh-token-env",
            default="PIPEMAIL_OAUTH_REFRESH_TOKEN",
            metavar="VAR",
            help="environment variable holding the refresh token (default "
            "PIPEMAIL_OAUTH_REFRESH_TOKEN); prompted for when unset and stdin is a terminal",
        )
        oauth.add_argument(
            "--refresh-token-file",
            metavar="PATH",
            help="read the refresh token from this file instead; a new one the provider "
            "hands out (Microsoft rotates it on every use) is written back to it",
        )
        oauth.add_argument(
            "--token-uri",
            metavar="URL",
            help=f"google: the token endpoint (default {GOOGLE_TOKEN_URI})",
        )
        oauth.add_argument(
            "--authority",
            metavar="URL",
            help=f"microsoft: login host and tenant (default {MICROSOFT_AUTHORITY}), e.g. "
            "https://login.microsoftonline.us/TENANT for a national cloud; a custom "
            "authority is used as given, not checked against Microsoft's list",
        )

    def subcommand(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=SECRETS_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        common(p)
        return p

    check = subcommand("check", "log in, list folders with counts, show the strategy")
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    sync = subcommand("sync", "sync the mailbox into a store and print a summary")
    sync.add_argument(
        "--store",
        default="memory",
        help="memory (forget after the run) or jsonl:PATH (resumable journal)",
    )
    sync.add_argument("--since", type=date.fromisoformat, help="history window start, YYYY-MM-DD")
    sync.add_argument("--folders", help="comma-separated folder names (default: Inbox and Sent)")
    sync.add_argument("--batch-size", type=int, default=200)
    sync.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on stderr (default: only when stderr is a terminal, "
        "so logs and pipes get no carriage-return redraws)",
    )
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _password(args: argparse.Namespace) -> str:
    value = os.environ.get(args.password_env)
    if value is not None:
        return value
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {args.user}: ")
    raise ConfigError(
        f"No password: set the environment variable {args.password_env} "
        "(or run in a terminal to be asked)."
    )


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Option combinations argparse cannot express; usage error (exit 2) like argparse's."""
    if not args.host and not args.oauth:
        parser.error("the following arguments are required: --host (or --oauth)")
    used = [
        opt
        for opt, value in (
            ("--client-id", args.client_id),
            ("--refresh-token-file", args.refresh_token_file),
            ("--token-uri", args.token_uri),
            ("--authority", args.authority),
        )
        if value
    ]
    if used and not args.oauth:
        parser.error(f"--oauth is needed for {', '.join(used)}")
    if args.token_uri and args.oauth != "google":
        parser.error("--token-uri is for --oauth google (Microsoft: --authority)")
    if args.authority and args.oauth != "microsoft":
        parser.error("--authority is for --oauth microsoft (Google: --token-uri)")


def _refresh_token(args: argparse.Namespace, err: TextIO) -> tuple[str, RefreshTokenSaver]:
    """The refresh token to start from, and where a rotated one goes."""
    provider = PROVIDER_NAMES[args.oauth]
    if args.refresh_token_file:
        path = Path(args.refresh_token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the refresh token file {path} ({exc.strerror or exc}).",
                detail=repr(exc),
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"The refresh token file {path} is not text.") from exc
        if not token:
            raise ConfigError(f"The refresh token file {path} is empty.")
        return token, lambda new, old: _save_refresh_token(path, new, old, provider, err)
    token = os.environ.get(args.refresh_token_env, "").strip()
    if not token and sys.stdin.isatty():
        token = getpass.getpass(f"{provider} refresh token for {args.user}: ").strip()
    if not token:
        raise ConfigError(
            f"No refresh token: set the environment variable {args.refresh_token_env}, "
            "or use --refresh-token-file (or run in a terminal to be asked)."
        )

    def not_kept(new: str, old: str) -> None:
        err.write(
            f"Note: {provider} issued a new refresh token and may stop accepting the one "
            "given. It was not kept: use --refresh-token-file to keep it.\n"
        )

    return token, not_kept


def _save_refresh_token(path: Path, new: str, old: str, provider: str, err: TextIO) -> None:
    """Write a rotated refresh token back, unless the file changed since it was read.

    Atomic (a temporary file in the same folder, then ``os.replace``), readable by the
    owner only. A failure is reported, not raised: the run goes on with the new token
    in memory, and the message says the one on disk may be dead.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.read_text(encoding="utf-8").strip() != old:
            err.write(
                f"Note: {path} changed during the run; the new refresh token was not saved.\n"
            )
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        err.write(
            f"Warning: could not save the new {provider} refresh token to {path} "
            f"({exc.strerror or exc}); the one in the file may no longer work.\n"
        )


def _token_source(args: argparse.Namespace, err: TextIO) -> RefreshingTokenSource:
    provider = PROVIDER_NAMES[args.oauth]
    client_id = args.client_id or os.environ.get(CLIENT_ID_ENV, "").strip()
    if not client_id:
        raise ConfigError(f"No OAuth client id: pass --client-id or set {CLIENT_ID_ENV}.")
    secret = os.environ.get(args.client_secret_env, "").strip() or None
    if args.oauth == "google" and not secret:
        raise ConfigError(
            f"No OAuth client secret: set the environment variable {args.client_secret_env} "
            f"({provider} requires one)."
        )
    token, saver = _refresh_token(args, err)
    if args.oauth == "google":
        return GoogleTokenSource(
            token,
            client_id,
            secret or "",
            token_uri=args.token_uri or GOOGLE_TOKEN_URI,
            timeout=args.timeout,
            on_refresh_token=saver,
        )
    return MicrosoftTokenSource(
        token,
        client_id,
        secret,
        authority=args.authority or MICROSOFT_AUTHORITY,
        validate_authority=not args.authority,
        timeout=args.timeout,
        on_refresh_token=saver,
    )


def _auth(args: argparse.Namespace, err: TextIO) -> Auth:
    if args.oauth:
        return OAuth2Auth(args.user, _token_source(args, err))
    return PasswordAuth(args.user, _password(args))


class TokenError(PipemailError):
    """The provider would not hand out an access token; ``hint`` says what to do from a shell."""

    def __init__(self, cause: PipemailError, hint: str) -> None:
        super().__init__(cause.message, detail=cause.detail, oauth_error=cause.oauth_error)
        self.code = cause.code
        self.hint = hint


USER_SIGN_IN_ERRORS = frozenset({"interaction_required", "consent_required", "login_required"})


def _token_hint(exc: PipemailError, args: argparse.Namespace) -> str:
    """What to do about a token endpoint's refusal, told by the provider's error code."""
    hint = _token_advice(exc, args)
    return hint[:1].upper() + hint[1:]


def _token_advice(exc: PipemailError, args: argparse.Namespace) -> str:
    provider = PROVIDER_NAMES[args.oauth]
    said = f"{provider} answered {exc.oauth_error}: " if exc.oauth_error else ""
    if isinstance(exc, ReconnectNeeded):
        if exc.oauth_error in USER_SIGN_IN_ERRORS:
            return (
                f"{said}the user must sign in again in a browser (multi-factor "
                "authentication, consent or an access policy): get a new refresh token."
            )
        return (
            f"{said}the refresh token was revoked, has expired, or is unknown to "
            f"{provider}: sign in again to get a new one."
        )
    if isinstance(exc, AuthFailed):
        if exc.oauth_error == "invalid_client":
            return (
                f"{said}{provider} does not know this client or its secret: check "
                f"--client-id and the client secret in {args.client_secret_env}."
            )
        if exc.oauth_error == "unauthorized_client":
            return (
                f"{said}this client may not use refresh tokens, or the refresh token was "
                "issued to another client: check the app registration and --client-id."
            )
        return (
            f"{said}check --client-id and the client secret in {args.client_secret_env}: "
            "the refresh token must have been issued to that client."
        )
    if exc.oauth_error:
        return f"{said}{provider} is having trouble; try again later."
    where = (
        args.token_uri
        or args.authority
        or (GOOGLE_TOKEN_URI if args.oauth == "google" else MICROSOFT_AUTHORITY)
    )
    return f"The token endpoint is {where}: check the network and that address."


def _sign_in(auth: OAuth2Auth, args: argparse.Namespace) -> None:
    """Get the first access token before connecting (it is cached for the login).

    A failure here is the token endpoint's, not the mail server's, so it can be told
    in the CLI's terms: which option or variable to look at.
    """
    try:
        auth.tokens.access_token()
    except (AuthFailed, ConnectFailed) as exc:
        raise TokenError(exc, _token_hint(exc, args)) from exc


def _config(args: argparse.Namespace, err: TextIO) -> AccountConfig:
    port = args.port or (993 if args.security == "ssl" else 143)
    host = args.host or OAUTH_HOSTS[args.oauth]
    server = ServerConfig(
        host=host,
        port=port,
        security=args.security,
        verify_tls=not args.insecure,
        cafile=args.cafile,
        allow_private_hosts=args.allow_private_hosts,
        timeout=args.timeout,
    )
    config = AccountConfig(
        key=f"{args.user}@{host}",
        imap=server,
        auth=_auth(args, err),
        disable_condstore=args.disable_condstore,
    )
    if getattr(args, "since", None):
        config.since = args.since
    if getattr(args, "folders", None):
        config.folders = [f.strip() for f in args.folders.split(",") if f.strip()]
    if getattr(args, "batch_size", None):
        config.batch_size = args.batch_size
    return config


class ProgressBar:
    """One line on stderr, redrawn in place at most ten times a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.last = 0.0
        self.drawn = False

    def __call__(self, event: Progress) -> None:
        now = time.monotonic()
        final = event.total is not None and event.done >= event.total
        if now - self.last < 0.1 and not final:
            return
        self.last = now
        if event.total:
            share = min(1.0, event.done / event.total)
            filled = int(share * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"{event.folder} {event.phase:<8} [{bar}] {event.done}/{event.total}"
        else:
            text = f"{event.folder} {event.phase:<8} {event.done}"
        self.stream.write("\r" + text[:100].ljust(100))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _print_check(report: CheckReport, out: TextIO) -> None:
    out.write(f"Server:       {report.host}:{report.port} ({report.security})\n")
    if report.tls:
        out.write(f"TLS:          {report.tls}\n")
    if report.greeting:
        out.write(f"Greeting:     {report.greeting}\n")
    out.write(f"Login:        ok ({report.login_seconds:.2f} s)\n")
    out.write(f"Strategy:     {report.strategy}\n")
    out.write(f"Capabilities: {' '.join(report.capabilities)}\n")
    out.write(f"Would sync:   {', '.join(report.sync_folders)}\n")
    out.write("Folders:\n")
    width = max([len(f.name) for f in report.folders] + [6])
    out.write(f"  {'name'.ljust(width)}  {'role':<8} {'messages':>9} {'unseen':>7}\n")
    for folder in report.folders:
        if not folder.selectable:
            counts = f"{'-':>9} {'-':>7}"
        elif folder.error:
            counts = f"  error: {folder.error}"
        else:
            counts = f"{folder.messages or 0:>9} {folder.unseen or 0:>7}"
        out.write(f"  {folder.name.ljust(width)}  {folder.role or '':<8} {counts}\n")
    for note in report.notes:
        out.write(f"Note: {note}\n")


def _print_sync(report: SyncReport, out: TextIO) -> None:
    out.write(f"Strategy: {report.strategy}\n")
    for name, fr in report.folders.items():
        line = f"  {name}: {fr.new} new, {fr.flag_changes} flag changes, {fr.vanished} removed"
        if fr.quarantined:
            line += f", {fr.quarantined} quarantined"
        if fr.skipped:
            line += f", {fr.skipped} skipped"
        if fr.reset:
            line += " (folder rebuilt on the server: re-matched by message)"
        if not fr.backfill_complete:
            line += " (history not complete yet)"
        out.write(line + "\n")
    for error in report.errors:
        out.write(f"  error in {error.folder}: {error.message}\n")
    if report.retries:
        out.write(f"Reconnected {report.retries} time(s).\n")
    out.write(f"Done: {report.summary()}\n")


def _wants_progress(args: argparse.Namespace, err: TextIO) -> bool:
    """``--progress``/``--no-progress`` if given, else whether the bar's stream is a terminal.

    The bar redraws one line with carriage returns: on a terminal that is a bar, in a
    log file or a pipe it is a heap of partial lines. The stream checked is the one the
    bar is drawn on (stderr); stdout may be redirected to a file while the bar still
    shows on the terminal.
    """
    if args.progress is not None:
        return bool(args.progress)
    isatty = getattr(err, "isatty", None)
    return bool(isatty and isatty())


def _open_store(spec: str) -> MemoryStore:
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("jsonl:") and len(spec) > len("jsonl:"):
        return JsonlStore(spec[len("jsonl:") :])
    raise ConfigError("--store must be 'memory' or 'jsonl:PATH'.")


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=err,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        config = _config(args, err)
        if isinstance(config.auth, OAuth2Auth):
            _sign_in(config.auth, args)
        if args.command == "check":
            report = check_account(config)
            if args.json:
                json.dump(asdict(report), out, indent=2, default=str)
                out.write("\n")
            else:
                _print_check(report, out)
            return EXIT_OK
        store = _open_store(args.store)
        bar = ProgressBar(err) if _wants_progress(args, err) else None
        try:
            result = sync_account(config, store, progress=bar, keep_attachment_content=False)
        finally:
            if bar is not None:
                bar.close()
            if isinstance(store, JsonlStore):
                store.close()
        if args.json:
            data = asdict(result)
            data["summary"] = result.summary()
            json.dump(data, out, indent=2, default=str)
            out.write("\n")
        else:
            _print_sync(result, out)
        return EXIT_FOLDER_ERRORS if result.errors else EXIT_OK
    except PipemailError as exc:
        if args.debug:
            logging.getLogger(__name__).exception("failed")
            if exc.detail:
                err.write(f"detail: {exc.detail}\n")
        err.write(f"Error: {exc}\n")
        if isinstance(exc, TokenError):
            err.write(f"{exc.hint}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.write("\nInterrupted. What was stored is kept; the next sync resumes from there.\n")
        return EXIT_INTERRUPTED
