#!/usr/bin/env python3
"""The demo behind ``scripts/setup.sh``: a local Odoo 18 with the pipemail addons, and a
demo mailbox on a local Dovecot, already connected and synced.

Everything lives under ``var/demo/`` and is reused by the next run: Dovecot (ports
10143 plain/STARTTLS and 10993 IMAPS), PostgreSQL (port 15432), the ``pipemail_demo``
database and its ``odoo.conf``. Odoo then serves until Ctrl-C (or SIGTERM), which stops
all of it; ``rm -rf var/demo`` forgets it. With ``--no-serve``, or when ``CI`` is set
(no one there to press Ctrl-C), it stops once the mailbox is synced instead of serving.

Without an Odoo 18 the script says loudly what is missing and how to point at one, then
runs the engine alone: ``python -m pipemail sync`` syncs the demo mailbox into a JSON-lines
store (``var/demo/engine-store.jsonl``; the next run syncs incrementally from it), lists
the conversations it stored, stops Dovecot and exits 0 (the sync's status if it failed).
"""

from __future__ import annotations

import argparse
import ast
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]

import mailgen  # noqa: E402
import odoo_tier  # noqa: E402
from harness import Dovecot, HarnessError  # noqa: E402

VAR = ROOT / "var" / "demo"
IMAP_PORT, IMAPS_PORT, PG_PORT, HTTP_PORT = 10143, 10993, 15432, 8069
DB = "pipemail_demo"
MAILBOX_USER, MAILBOX_PASSWORD = "demo", "demo-mailbox"
OWNER = "demo@pipemail.example"
MESSAGES = 400


def say(text: str) -> None:
    print(f"[setup] {text}", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_mailbox() -> Dovecot:
    for port in (IMAP_PORT, IMAPS_PORT):
        if not port_free(port):
            raise SystemExit(
                f"[setup] port {port} is in use: stop the previous demo (Ctrl-C in its terminal) "
                "or whatever listens there, then run this again."
            )
    dovecot = Dovecot(port=IMAP_PORT, ssl_port=IMAPS_PORT, workdir=VAR / "dovecot")
    user = dovecot.add_user(MAILBOX_USER, MAILBOX_PASSWORD)
    if dovecot.status(user, "INBOX").get("messages", 0) == 0:
        say(f"seeding the demo mailbox with {MESSAGES} messages")
        by_folder: dict[str, list[tuple[bytes, tuple[str, ...], object]]] = {}
        for msg in mailgen.generate(MESSAGES, owner=OWNER, owner_name="Demo Salesperson"):
            flags = ("\\Seen",) if msg.seen else ()
            by_folder.setdefault(msg.folder, []).append((msg.raw, flags, msg.date))
        for folder, items in by_folder.items():
            dovecot.append_many(user, folder, items)
    say(f"demo mailbox: {MAILBOX_USER} / {MAILBOX_PASSWORD} on 127.0.0.1:{IMAP_PORT} (STARTTLS)")
    return dovecot


def engine_only(dovecot: Dovecot, why: str) -> int:
    print()
    print(f"ODOO NOT FOUND: {why}")
    print("To run the full demo, point at an Odoo 18 source tree and its Python, then rerun:")
    print("  PIPEMAIL_ODOO=/path/to/odoo-18 PIPEMAIL_ODOO_PYTHON=/path/to/venv/bin/python \\")
    print("    bash scripts/setup.sh")
    print()
    say("meanwhile, the engine alone syncs the demo mailbox (python -m pipemail sync):")
    env = dict(os.environ, PIPEMAIL_DEMO_PASSWORD=MAILBOX_PASSWORD)
    store = VAR / "engine-store.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "pipemail",
        "sync",
        "--host=127.0.0.1",
        f"--port={IMAP_PORT}",
        "--security=starttls",
        f"--user={MAILBOX_USER}",
        "--password-env=PIPEMAIL_DEMO_PASSWORD",
        f"--cafile={dovecot.cafile}",
        "--allow-private-hosts",
        f"--store=jsonl:{store}",
    ]
    if not sys.stderr.isatty():
        cmd.append("--no-progress")  # a progress bar is carriage returns in a log
    print("  $ python " + " ".join(cmd[1:]), flush=True)
    code = subprocess.run(cmd, env=env, check=False).returncode
    if code != 0:
        say(f"the engine sync failed (status {code}, output above)")
        return code
    show_store(store)
    print()
    say(
        f"engine demo done: the demo mailbox is synced into {store.relative_to(ROOT)}. "
        "Run scripts/setup.sh again for an incremental sync from it; rm -rf var/demo starts over."
    )
    say("Dovecot is stopped now. Odoo was not set up: see ODOO NOT FOUND above.")
    return 0


def show_store(path: Path) -> None:
    """What the engine stored: message and conversation counts, the largest conversations."""
    from pipemail.store import JsonlStore

    with JsonlStore(path) as store:
        messages = store.messages(f"{MAILBOX_USER}@127.0.0.1")
    threads: dict[str, list] = {}
    for msg in messages:
        threads.setdefault(msg.thread or msg.key, []).append(msg)
    print()
    say(f"stored: {len(messages)} messages in {len(threads)} conversations; the largest:")
    largest = sorted(threads.values(), key=len, reverse=True)[:5]
    for msgs in largest:
        first = min(msgs, key=lambda m: m.date.timestamp() if m.date else 0.0)
        print(f"  {len(msgs):3} messages  {first.subject[:50]:50}  from {first.sender}")


DEMO_SHELL = r"""
import sys
sys.path.insert(0, {tools!r})
import demo_data
import mailgen
result = demo_data.setup(
    env, "127.0.0.1", {port}, {user!r}, {password!r}, security="starttls", email={owner!r},
    contacts=[(c.name, c.email, c.company) for c in mailgen.contacts(7)],
)
if {ai!r}:
    # the local AI server runs beside the demo: the helpers are on for its company
    env.company.pipemail_ai_enabled = True
    env.cr.commit()
print("PIPEMAIL_DEMO", result)
"""


def write_conf(db: dict[str, str], odoo: odoo_tier.OdooInstall, cafile: str) -> Path:
    conf = VAR / "odoo.conf"
    key_file = VAR / "secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    conf.write_text(
        "[options]\n"
        f"addons_path = {','.join(odoo.addons_path)}\n"
        f"data_dir = {VAR / 'filestore'}\n"
        f"db_host = {db['db_host']}\ndb_port = {db['db_port']}\n"
        f"db_user = {db['db_user']}\ndb_password = {db['db_password']}\n"
        f"db_name = {DB}\ndbfilter = ^{DB}$\n"
        f"http_port = {HTTP_PORT}\nmax_cron_threads = 1\nwithout_demo = all\n"
        f"pipemail_secret_key = {key_file.read_text().strip()}\n"
        f"pipemail_cafile = {cafile}\n"
    )
    return conf


def database_exists(db: dict[str, str]) -> bool:
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"  # noqa: S608 - constant
    try:
        return odoo_tier.psql(db, "postgres", query).strip() == "1"
    except subprocess.CalledProcessError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-serve",
        action="store_true",
        help="set up and sync, then stop instead of serving Odoo (the default when CI is set)",
    )
    opts = parser.parse_args(argv)
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    no_serve = "--no-serve" if opts.no_serve else "CI is set" if ci else ""
    VAR.mkdir(parents=True, exist_ok=True)
    try:
        dovecot = start_mailbox()
    except HarnessError as exc:
        print(f"[setup] the demo mailbox server did not start: {exc}")
        return 1
    with dovecot:
        try:
            odoo = odoo_tier.find_odoo()
        except odoo_tier.TierUnavailable as exc:
            return engine_only(dovecot, str(exc))
        say(f"Odoo {odoo.version} at {odoo.where}")
        odoo_tier.ensure_engine_deps(odoo)
        if not port_free(HTTP_PORT):
            say(f"port {HTTP_PORT} is in use: stop what listens there (an earlier demo?) first")
            return 1
        # only a served demo starts the model (finding it may assemble a 253 MB file)
        ai_model = "" if no_serve else local_ai_model()
        with odoo_tier.private_postgres(VAR / "pg", port=PG_PORT) as db:
            conf = write_conf(db, odoo, dovecot.cafile)
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            base = [*odoo.command, "-c", str(conf)]
            if not database_exists(db):
                say(f"creating database {DB} with crm, project and the pipemail addons (~1 min)")
                step = ["-i", ",".join(("crm", "project", *odoo_tier.ADDONS))]
            else:
                # the checkout may have moved on since the database was made
                say(f"updating the pipemail addons in database {DB}")
                step = ["-u", ",".join(odoo_tier.ADDONS)]
            subprocess.run(
                [*base, "-d", DB, *step, "--stop-after-init", "--log-level=warn"],
                env=env,
                check=True,
            )
            say("connecting the demo mailbox and syncing it")
            code = DEMO_SHELL.format(
                tools=str(ROOT / "tools"),
                owner=OWNER,
                user=MAILBOX_USER,
                password=MAILBOX_PASSWORD,
                port=IMAP_PORT,
                ai=bool(ai_model),
            )
            shell = [odoo.command[0], *odoo.command[1:2], "shell", *base[len(odoo.command) :]]
            proc = subprocess.run(
                [*shell, "-d", DB, "--no-http", "--log-level=warn"],
                input=code,
                text=True,
                capture_output=True,
                env=env,
                check=False,
            )
            summary = [line for line in proc.stdout.splitlines() if "PIPEMAIL_DEMO" in line]
            if not summary:
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                say("the demo data step failed (output above)")
                return 1
            result = ast.literal_eval(summary[0].split(" ", 1)[1])
            say(
                f"demo mailbox {result['state']}: {result['messages']} messages in "
                f"{result['threads']} conversations, {result['linked']} linked to opportunities"
                + (f"; {result['error']}" if result.get("error") else "")
            )
            print()
            print(f"  Odoo:      http://localhost:{HTTP_PORT}")
            print(f"  Log in as: {result['login']} / {result['password']}  (the demo salesperson)")
            print("         or: admin / admin  (administrator)")
            print("  Sales Inbox: CRM > Inbox > Sales Inbox")
            print("  Mailbox health: CRM > Inbox > My Mailboxes")
            print(f"  Mailbox:   {MAILBOX_USER} / {MAILBOX_PASSWORD} on 127.0.0.1:{IMAP_PORT}")
            print()
            if no_serve:
                say(
                    f"demo set up; not serving ({no_serve}): Odoo, PostgreSQL and Dovecot "
                    f"stop now. Without --no-serve and CI, scripts/setup.sh serves on "
                    f"http://localhost:{HTTP_PORT}."
                )
                return 0
            say(
                f"serving on http://localhost:{HTTP_PORT} until Ctrl-C (or SIGTERM), "
                "which stops Odoo, PostgreSQL and Dovecot."
            )
            ai = start_local_ai(ai_model)
            try:
                subprocess.run([*base, "-d", DB, "--log-level=warn"], env=env, check=False)
            except KeyboardInterrupt:
                pass
            finally:
                if ai is not None:
                    ai.terminate()
                    ai.wait(timeout=30)
    return 0


def local_ai_model() -> str:
    """The bundled model's file when the local AI server can run here, else ''."""
    from pipemail.ai import local
    from pipemail.errors import ConfigError

    if not local.server_available():
        say(
            "AI helpers: llama-cpp-python is not installed here (pip install -e .[ai]); "
            "the demo runs without them"
        )
        return ""
    try:
        return str(local.bundled_model_path())
    except ConfigError as exc:
        say(f"AI helpers: {exc}; the demo runs without them")
        return ""


def start_local_ai(model: str) -> subprocess.Popen[bytes] | None:
    """The local llama.cpp server the AI helpers use by default, beside the demo Odoo."""
    if not model:
        return None
    from pipemail.ai import local

    if not port_free(local.DEFAULT_PORT):
        say(f"AI helpers: port {local.DEFAULT_PORT} is in use; using the AI server there")
        return None
    log = open(VAR / "ai-server.log", "wb")  # noqa: SIM115 - the server's, closed with it
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipemail.ai.local", "--model", model],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    say(f"AI helpers: local model on {local.DEFAULT_BASE_URL} (log {log.name})")
    return proc


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # SIGTERM (e.g. from `timeout` or a service manager) must stop Odoo, PostgreSQL and
    # Dovecot as Ctrl-C does, not leave them running.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
