"""``python -m pipemail``: check a mailbox or sync it, from a shell.

For support and for trying a server before configuring it in Odoo: the same engine,
the same errors. A failure prints the engine's plain-words message and exits 2, with
no stack trace (``--debug`` shows one). The password comes from an environment
variable (``--password-env``, default ``PIPEMAIL_PASSWORD``) or a prompt, never from
the command line, where ``ps`` and shell history would keep it.
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
from typing import TextIO

from pipemail.errors import ConfigError, PipemailError
from pipemail.store import JsonlStore, MemoryStore
from pipemail.sync import CheckReport, Progress, SyncReport, check_account, sync_account
from pipemail.types import AccountConfig, PasswordAuth, ServerConfig

EXIT_OK = 0
EXIT_FOLDER_ERRORS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipemail", description="Check or sync one IMAP mailbox."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", required=True, help="IMAP server name or address")
        p.add_argument("--port", type=int, help="default: 993 for ssl, 143 otherwise")
        p.add_argument("--security", choices=["ssl", "starttls", "none"], default="ssl")
        p.add_argument("--user", required=True, help="login name")
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

    check = sub.add_parser("check", help="log in, list folders with counts, show the strategy")
    common(check)
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    sync = sub.add_parser("sync", help="sync the mailbox into a store and print a summary")
    common(sync)
    sync.add_argument(
        "--store",
        default="memory",
        help="memory (forget after the run) or jsonl:PATH (resumable journal)",
    )
    sync.add_argument("--since", type=date.fromisoformat, help="history window start, YYYY-MM-DD")
    sync.add_argument("--folders", help="comma-separated folder names (default: Inbox and Sent)")
    sync.add_argument("--batch-size", type=int, default=200)
    sync.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
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


def _config(args: argparse.Namespace) -> AccountConfig:
    port = args.port or (993 if args.security == "ssl" else 143)
    server = ServerConfig(
        host=args.host,
        port=port,
        security=args.security,
        verify_tls=not args.insecure,
        cafile=args.cafile,
        allow_private_hosts=args.allow_private_hosts,
        timeout=args.timeout,
    )
    config = AccountConfig(
        key=f"{args.user}@{args.host}",
        imap=server,
        auth=PasswordAuth(args.user, _password(args)),
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
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=err,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        config = _config(args)
        if args.command == "check":
            report = check_account(config)
            if args.json:
                json.dump(asdict(report), out, indent=2, default=str)
                out.write("\n")
            else:
                _print_check(report, out)
            return EXIT_OK
        store = _open_store(args.store)
        bar = None if args.no_progress else ProgressBar(err)
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
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.write("\nInterrupted. What was stored is kept; the next sync resumes from there.\n")
        return EXIT_INTERRUPTED
