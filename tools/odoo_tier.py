#!/usr/bin/env python3
"""Run the Odoo tier: install, test, upgrade and uninstall the pipemail addons in a
fresh database of a real Odoo 18, on a private PostgreSQL started for the run.

Odoo is not on any package registry, so it is found, never installed:

1. ``PIPEMAIL_ODOO``: a folder holding ``odoo-bin`` (an Odoo 18 source tree);
2. an importable ``odoo`` package (``python -c "import odoo"``);
3. ``/opt/odoo18`` when it holds ``odoo-bin``.

The Python that runs Odoo is ``PIPEMAIL_ODOO_PYTHON``, else ``<tree>/venv/bin/python``
when it exists, else the current interpreter.

Used by ``tests/odoo/test_odoo_tier.py``; also runnable alone::

    python tools/odoo_tier.py test        # install + addon tests
    python tools/odoo_tier.py lifecycle   # install, upgrade, uninstall, log must be clean
    python tools/odoo_tier.py requirements  # Odoo's venv + requirements.txt installs them
    python tools/odoo_tier.py serve       # a demo server (used by scripts/setup.sh)
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDONS = ("pipemail_sync", "pipemail_ai", "pipemail_campaigns")
BASE_MODULES = ("crm", "project", "mail")
ENGINE_IMPORTS = (
    "import imapclient, msal, google.auth, lxml, openai, cryptography, aiosmtpd, websocket"
)
REQUIREMENTS = ROOT / "requirements.txt"
"""What the addons need in Odoo's Python beyond Odoo's own requirements.txt."""
TEST_REQUIREMENTS = ROOT / "test-requirements.txt"
"""What the addons' tests need there too (aiosmtpd for the SMTP sink)."""


class TierUnavailable(Exception):
    """No usable Odoo 18 here; the message says what is missing and how to point at one."""


@dataclass
class OdooInstall:
    python: str
    command: list[str]
    """argv prefix that starts Odoo (``python odoo-bin`` or ``python -m odoo``)."""
    addons_path: list[str]
    version: str
    where: str


def _odoo_version(python: str, cwd: str | None) -> str:
    proc = subprocess.run(
        [python, "-c", "import odoo.release as r; print(r.version)"],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def find_odoo() -> OdooInstall:
    """Locate an Odoo 18 or raise TierUnavailable with a sentence a newcomer can act on."""
    tried: list[str] = []
    candidates: list[Path] = []
    if os.environ.get("PIPEMAIL_ODOO"):
        candidates.append(Path(os.environ["PIPEMAIL_ODOO"]))
    else:
        probe = subprocess.run(
            [sys.executable, "-c", "import odoo, os; print(os.path.dirname(odoo.__path__[0]))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip():
            candidates.append(Path(probe.stdout.strip()))
        else:
            tried.append("'import odoo' failed in " + sys.executable)
        candidates.append(Path("/opt/odoo18"))
    for tree in candidates:
        odoo_bin = tree / "odoo-bin"
        if not (tree / "odoo").is_dir():
            tried.append(f"{tree} has no odoo/ package")
            continue
        python = os.environ.get("PIPEMAIL_ODOO_PYTHON") or (
            str(tree / "venv/bin/python") if (tree / "venv/bin/python").exists() else sys.executable
        )
        version = _odoo_version(python, str(tree))
        if not version.startswith("18."):
            tried.append(f"{tree} with {python} is Odoo {version or 'unknown (import failed)'}")
            continue
        command = [python, str(odoo_bin)] if odoo_bin.exists() else [python, "-m", "odoo"]
        addons = [str(p) for p in (tree / "odoo/addons", tree / "addons") if p.is_dir()]
        return OdooInstall(python, command, [*addons, str(ROOT)], version, str(tree))
    raise TierUnavailable(
        "no Odoo 18 found ("
        + "; ".join(tried)
        + "). Point PIPEMAIL_ODOO at an Odoo 18 source tree (the folder holding odoo-bin) "
        "and PIPEMAIL_ODOO_PYTHON at a Python with Odoo's requirements installed."
    )


def ensure_engine_deps(odoo: OdooInstall) -> None:
    """The addons import the engine, their tests the harness's aiosmtpd: these packages
    must be in Odoo's Python.

    When they are not, they are installed from requirements.txt and test-requirements.txt,
    pinned versions that leave Odoo's own pins alone (an unpinned latest once brought a
    cryptography that broke Odoo's pyOpenSSL).
    """
    check = subprocess.run([odoo.python, "-c", ENGINE_IMPORTS], capture_output=True, check=False)
    if check.returncode == 0:
        return
    subprocess.run(
        [odoo.python, "-m", "pip", "install", "-q"]
        + ["-r", str(REQUIREMENTS), "-r", str(TEST_REQUIREMENTS)],
        check=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise TierUnavailable(
            "PostgreSQL server binaries are missing: run 'apt-get install postgresql'"
        )
    return Path(found[-1]).parent


@contextlib.contextmanager
def private_postgres(workdir: Path, port: int | None = None) -> Iterator[dict[str, str]]:
    """A private PostgreSQL cluster on a loopback port, owned by ``postgres``.

    A private cluster keeps the tier independent of whatever database service the
    machine runs (CI has none running). A ``workdir`` that already holds a cluster (the
    demo's) is started again as it is.
    """
    bindir = _pg_bindir()
    data = workdir / "pgdata"
    fresh = not (data / "PG_VERSION").exists()
    data.mkdir(parents=True, exist_ok=True)
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = port or free_port()
    if not fresh:
        # a cluster left running by an earlier, killed run: stop it so it restarts on our port
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            check=False,
            capture_output=True,
        )
    if fresh:
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
        )
    log = workdir / "postgres.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres")
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        if not fresh:
            yield {
                "db_host": "127.0.0.1",
                "db_port": str(port),
                "db_user": "odoo",
                "db_password": "odoo",
            }
            return
        subprocess.run(
            [
                str(bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "CREATE ROLE odoo LOGIN SUPERUSER PASSWORD 'odoo'",
            ],
            check=True,
            capture_output=True,
        )
        yield {
            "db_host": "127.0.0.1",
            "db_port": str(port),
            "db_user": "odoo",
            "db_password": "odoo",
        }
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )


def odoo_args(odoo: OdooInstall, db: dict[str, str], dbname: str, workdir: Path) -> list[str]:
    return [
        *odoo.command,
        f"--addons-path={','.join(odoo.addons_path)}",
        f"--data-dir={workdir / 'filestore'}",
        f"--db_host={db['db_host']}",
        f"--db_port={db['db_port']}",
        f"--db_user={db['db_user']}",
        f"--db_password={db['db_password']}",
        f"--database={dbname}",
        f"--db-filter=^{re.escape(dbname)}$",
        "--without-demo=all",
        "--max-cron-threads=0",
    ]


def run_odoo(args: list[str], log_path: Path, env_extra: dict[str, str] | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PIPEMAIL_ALLOW_PRIVATE_HOSTS="1")
    env.update(env_extra or {})
    with open(log_path, "ab") as log:
        log.write(("\n$ " + " ".join(args) + "\n").encode())
        log.flush()
        start = log.tell()
        subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    with open(log_path, "rb") as log:
        log.seek(start)
        return log.read().decode("utf-8", "replace")


LOG_LINE = re.compile(r"^\S+ \S+ \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ", re.M)


UNMET = re.compile(r"odoo\.modules\.graph: module (\w+): Unmet dependencies: ")
INCONSISTENT = re.compile(
    r"Some modules have inconsistent states, some dependencies may be missing: \[(.*)\]"
)


def foreign_unmet(line: str, output: str) -> list[str]:
    """The modules an "inconsistent states" ERROR names, when it is the Odoo tree's own
    fault and not the addons': every module it names is neither ours nor one we build on,
    and Odoo's graph logged it as having unmet dependencies in the same run. An Odoo tree
    holding some enterprise modules without the modules they need (an auto_install
    module whose dependencies are absent is still queued) logs that on any install."""
    match = INCONSISTENT.search(line)
    if not match:
        return []
    names = re.findall(r"'(\w+)'", match.group(1))
    unmet = set(UNMET.findall(output))
    ours = set(ADDONS) | set(BASE_MODULES)
    if names and all(name in unmet and name not in ours for name in names):
        return names
    return []


def problems(output: str, *, warnings: bool) -> list[str]:
    """Log lines that make the run unclean (errors always; warnings when asked).

    Not one: Odoo's "inconsistent states" error about modules of the Odoo tree whose
    dependencies are absent from it (foreign_unmet); it is printed to stderr instead.
    """
    bad = {"ERROR", "CRITICAL"} | ({"WARNING"} if warnings else set())
    out = []
    for line in output.splitlines():
        match = LOG_LINE.match(line)
        if match and match.group(1) in bad:
            foreign = foreign_unmet(line, output)
            if foreign:
                print(
                    f"note: the Odoo tree has {', '.join(foreign)} without their dependencies; "
                    "Odoo's 'inconsistent states' error about them is not counted",
                    file=sys.stderr,
                )
                continue
            out.append(line)
    return out


TEST_RESULT = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests")


def run_tests(odoo: OdooInstall, workdir: Path, log_path: Path) -> tuple[int, int, int, list[str]]:
    """Install the addons in a fresh database and run their tests.

    Returns (tests run, failed, errors, problem lines).
    """
    with private_postgres(workdir) as db:
        args = odoo_args(odoo, db, "pipemail_test", workdir)
        tags = ",".join(f"/{name}" for name in ADDONS)
        output = run_odoo(
            [
                *args,
                "-i",
                ",".join(ADDONS),
                f"--test-tags={tags}",
                f"--http-port={free_port()}",
                "--stop-after-init",
                "--log-level=test",
            ],
            log_path,
        )
    match = TEST_RESULT.findall(output)
    failed = sum(int(m[0]) for m in match)
    errors = sum(int(m[1]) for m in match)
    ran = sum(int(m[2]) for m in match)
    return ran, failed, errors, problems(output, warnings=False)


def install_addons(args: list[str], log_path: Path) -> list[str]:
    """Install Odoo's modules the addons build on, then the addons, each in its own run.

    Problems: errors in the first run; any warning or error in the second, the addons'.
    """
    found: list[str] = []
    out = run_odoo([*args, "-i", ",".join(BASE_MODULES), "--stop-after-init"], log_path)
    found += [f"[base install] {p}" for p in problems(out, warnings=False)]
    out = run_odoo([*args, "-i", ",".join(ADDONS), "--stop-after-init"], log_path)
    found += [f"[install] {p}" for p in problems(out, warnings=True)]
    return found


def psql(db: dict[str, str], dbname: str, query: str) -> str:
    """One query's rows, unaligned, fields separated by a space (``psql -At``)."""
    proc = subprocess.run(
        [
            str(_pg_bindir() / "psql"),
            "-h",
            db["db_host"],
            "-p",
            db["db_port"],
            "-U",
            db["db_user"],
            "-d",
            dbname,
            "-At",
            "-F",
            " ",
            "-c",
            query,
        ],
        env=dict(os.environ, PGPASSWORD=db["db_password"]),
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def module_states(db: dict[str, str], dbname: str) -> dict[str, str]:
    """The addons' state in ir_module_module ('installed', 'to install', ...)."""
    names = ",".join(f"'{name}'" for name in ADDONS)
    query = f"SELECT name, state FROM ir_module_module WHERE name IN ({names})"  # noqa: S608 - ours
    rows = psql(db, dbname, query).splitlines()
    return dict(row.split(" ", 1) for row in rows if row)


def run_lifecycle(odoo: OdooInstall, workdir: Path, log_path: Path) -> list[str]:
    """Install, upgrade and uninstall the addons; any warning or error is a problem."""
    with private_postgres(workdir) as db:
        args = odoo_args(odoo, db, "pipemail_lifecycle", workdir)
        found = install_addons(args, log_path)
        out = run_odoo([*args, "-u", ",".join(ADDONS), "--stop-after-init"], log_path)
        found += [f"[upgrade] {p}" for p in problems(out, warnings=True)]
        code = (
            "mods = env['ir.module.module'].search([('name', 'in', %r)]);"
            "mods.button_immediate_uninstall();"
            "left = env['ir.module.module'].search([('name', 'in', %r), "
            "('state', '!=', 'uninstalled')]);"
            "print('PIPEMAIL_LEFT', left.mapped('name'));"
            "print('PIPEMAIL_MODELS', "
            "env['ir.model'].search_count([('model', '=like', 'pipemail.%')]))"
        ).replace("%r", repr(list(ADDONS)))
        shell = run_odoo_shell(args, code, log_path)
        found += [f"[uninstall] {p}" for p in problems(shell, warnings=True)]
        if "PIPEMAIL_LEFT []" not in shell:
            found.append("[uninstall] modules still installed: " + _grep(shell, "PIPEMAIL_LEFT"))
        if "PIPEMAIL_MODELS 0" not in shell:
            found.append(
                "[uninstall] pipemail models left behind: " + _grep(shell, "PIPEMAIL_MODELS")
            )
    return found


def _grep(text: str, needle: str) -> str:
    return next((line for line in text.splitlines() if needle in line), "(no output)")


def run_odoo_shell(args: list[str], code: str, log_path: Path) -> str:
    shell_args = [args[0], *args[1:2], "shell", *args[2:], "--no-http"]
    if args[1] == "-m":
        shell_args = [args[0], "-m", "odoo", "shell", *args[3:], "--no-http"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        shell_args, input=code + "\nenv.cr.commit()\n", capture_output=True, text=True, env=env
    )
    with open(log_path, "a") as log:
        log.write("\n$ odoo shell\n" + proc.stdout + proc.stderr)
    return proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["find", "test", "lifecycle", "requirements"])
    parser.add_argument("--log", default=str(ROOT / "var/odoo-tier.log"))
    opts = parser.parse_args(argv)
    try:
        odoo = find_odoo()
    except TierUnavailable as exc:
        print(f"ODOO TIER SKIPPED: {exc}")
        return 0
    print(f"Odoo {odoo.version} at {odoo.where} (python {odoo.python})")
    if opts.action == "find":
        return 0
    if opts.action == "requirements":
        import odoo_requirements  # here: it imports this module

        return odoo_requirements.main(odoo, Path(opts.log))
    ensure_engine_deps(odoo)
    log_path = Path(opts.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipemail-odoo-") as tmp:
        if opts.action == "test":
            ran, failed, errors, bad = run_tests(odoo, Path(tmp), log_path)
            print(f"odoo tier: {ran} tests, {failed} failed, {errors} errors; log {log_path}")
            for line in bad:
                print("  " + line)
            return 0 if ran and not failed and not errors and not bad else 1
        bad = run_lifecycle(odoo, Path(tmp), log_path)
        for line in bad:
            print("  " + line)
        verdict = "clean" if not bad else f"{len(bad)} problems"
        print(f"odoo lifecycle: {verdict}; log {log_path}")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
