"""Check that an administrator's install works: a fresh virtualenv holding only Odoo's
requirements.txt, then the project's requirements.txt, installs the three addons.

That is what README.md ("Odoo tier") tells an administrator to run. The check fails when
requirements.txt changes a package Odoo's requirements installed (unless its line says
it "raises Odoo's pin", with the reason), when ``pip check`` finds a conflict, when the
venv gains ``packaging`` (stock Odoo has none, so the manifests' dependency names must be
checkable without it), or when installing the addons logs a warning or an error. It also
asks pip what test-requirements.txt (the addons' tests' packages) would install into that
venv, without installing it, and fails when that changes any package already there.

Building the venv takes a minute or more, so it is kept under ``~/.cache/pipemail/``
(``$XDG_CACHE_HOME`` honoured), keyed by both requirements files and the interpreter:
the first run on a machine builds it, later ones reuse it. Used by
``tests/odoo/test_odoo_requirements.py``; also runnable alone::

    python tools/odoo_tier.py requirements
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import odoo_tier

RAISES_PIN = "raises Odoo's pin"
BUILD_CONSTRAINT = "setuptools<72\n"
"""Odoo 18 pins cbor2 5.4.2 on Python < 3.12, an sdist whose setup.py imports pkg_resources:
its isolated build needs an older setuptools, given as PIP_CONSTRAINT (which reaches it)."""
BUILD_HINTS = {
    "lber.h": "python-ldap builds from source: apt-get install libldap2-dev libsasl2-dev",
    "ldap.h": "python-ldap builds from source: apt-get install libldap2-dev libsasl2-dev",
    "sasl/sasl.h": "python-ldap builds from source: apt-get install libldap2-dev libsasl2-dev",
    "pg_config executable not found": "psycopg2 builds from source: apt-get install libpq-dev",
    "Python.h": "a C extension builds from source: apt-get install python3-dev build-essential",
}
"""Odoo 18's requirements.txt pins some packages that a Python gets as sdists only
(python-ldap, psycopg2, ...): their builds need these Debian packages (README.md)."""
KEEP_UNUSED_DAYS = 14
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*(?:#.*)?$")


@dataclass
class StockVenv:
    """A cached virtualenv: Odoo's requirements.txt, then the project's."""

    path: Path
    python: str
    odoo_freeze: dict[str, str]
    """``pip freeze`` after Odoo's requirements.txt alone."""
    freeze: dict[str, str]
    """``pip freeze`` after the project's requirements.txt too."""
    test_installs: dict[str, str]
    """What ``pip install -r test-requirements.txt`` would install on top (a dry run)."""
    pip_check: str
    build_seconds: float
    built_now: bool


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> tuple[dict[str, str], set[str]]:
    """requirements.txt's pins, and the names whose line (or comment above) raises a pin."""
    pins: dict[str, str] = {}
    raised: set[str] = set()
    marked = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line:
            marked = False
            continue
        if line.startswith("#"):
            marked = marked or RAISES_PIN in line
            continue
        match = PIN_LINE.match(line)
        if not match:
            raise ValueError(f"{path}: {raw!r}: this check reads plain 'name==version' lines only")
        name = normalize(match.group(1))
        pins[name] = match.group(2)
        if marked or RAISES_PIN in line:
            raised.add(name)
        marked = False
    return pins, raised


def parse_freeze(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[normalize(name)] = version.strip()
    return out


def parse_report(text: str) -> dict[str, str]:
    """The packages a ``pip install --report`` would install, by normalized name."""
    return {
        normalize(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(text)["install"]
    }


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pipemail"


def _key(odoo: odoo_tier.OdooInstall, odoo_requirements: Path) -> str:
    interpreter = subprocess.run(
        [odoo.python, "-c", "import sys; print(sys.version); print(sys._base_executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    digest = hashlib.sha256()
    for part in (
        odoo_requirements.read_bytes(),
        odoo_tier.REQUIREMENTS.read_bytes(),
        odoo_tier.TEST_REQUIREMENTS.read_bytes(),
        BUILD_CONSTRAINT.encode(),
        interpreter.encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per venv (two test runs on one machine share the cache)."""
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _pip(python: str, args: list[str], log: Path, constraint: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONSTRAINT")}
    if constraint is not None:
        env["PIP_CONSTRAINT"] = str(constraint)
    cmd = [python, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode and args[0] != "check":
        output = proc.stdout + proc.stderr
        hints = [hint for marker, hint in BUILD_HINTS.items() if marker in output]
        raise RuntimeError(
            f"{' '.join(cmd)} failed (status {proc.returncode}); see {log}"
            + "".join(f"\n  {hint}" for hint in dict.fromkeys(hints))
        )
    return proc.stdout


def stock_venv(odoo: odoo_tier.OdooInstall) -> StockVenv:
    """The venv an administrator builds for Odoo, from the cache or built now."""
    tree = Path(odoo.where)
    odoo_requirements = tree / "requirements.txt"
    if not (tree / "odoo-bin").is_file() or not odoo_requirements.is_file():
        raise odoo_tier.TierUnavailable(
            f"{tree} has no odoo-bin and requirements.txt: the check builds Odoo's virtualenv "
            "from an Odoo source tree's requirements.txt"
        )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"odoo-venv-{_key(odoo, odoo_requirements)}"
    done = entry / "complete"
    python = str(entry / "venv/bin/python")
    with _locked(root / f"{entry.name}.lock"):
        built_now = not done.exists()
        if built_now:
            _build(odoo, odoo_requirements, entry)
        done.touch()  # its date says when the venv was last used
        _prune(root, keep=entry)
        return StockVenv(
            entry,
            python,
            parse_freeze((entry / "odoo-freeze.txt").read_text()),
            parse_freeze((entry / "freeze.txt").read_text()),
            parse_report((entry / "test-report.json").read_text()),
            (entry / "pip-check.txt").read_text(),
            float((entry / "build-seconds.txt").read_text()),
            built_now,
        )


def _build(odoo: odoo_tier.OdooInstall, odoo_requirements: Path, entry: Path) -> None:
    shutil.rmtree(entry, ignore_errors=True)
    entry.mkdir()
    log = entry / "build.log"
    start = time.monotonic()
    # the interpreter that runs Odoo (a venv's python makes a venv of its base interpreter)
    subprocess.run([odoo.python, "-m", "venv", str(entry / "venv")], check=True)
    python = str(entry / "venv/bin/python")
    constraint = entry / "build-constraints.txt"
    constraint.write_text(BUILD_CONSTRAINT)
    # exactly the administrator's two commands (README.md, "Odoo tier")
    _pip(python, ["install", "-r", str(odoo_requirements)], log, constraint)
    (entry / "odoo-freeze.txt").write_text(_pip(python, ["freeze"], log))
    _pip(python, ["install", "-r", str(odoo_tier.REQUIREMENTS)], log)
    (entry / "freeze.txt").write_text(_pip(python, ["freeze"], log))
    (entry / "pip-check.txt").write_text(_pip(python, ["check"], log))
    # the tests' packages: asked, not installed, so the venv stays the administrator's
    report = entry / "test-report.json"
    dry_run = ["install", "--dry-run", "--quiet", "--report", str(report)]
    _pip(python, [*dry_run, "-r", str(odoo_tier.TEST_REQUIREMENTS)], log)
    (entry / "build-seconds.txt").write_text(f"{time.monotonic() - start:.0f}")
    (entry / "complete").touch()


def _prune(root: Path, keep: Path) -> None:
    """Drop venvs of other requirements not used for KEEP_UNUSED_DAYS (other branches'
    venvs stay meanwhile, so checkouts of different branches do not rebuild in turn)."""
    cutoff = time.time() - KEEP_UNUSED_DAYS * 86400
    for other in root.glob("odoo-venv-*"):
        if other == keep or not other.is_dir():
            continue
        done = other / "complete"
        if not done.exists() or done.stat().st_mtime < cutoff:
            shutil.rmtree(other, ignore_errors=True)
            Path(f"{other}.lock").unlink(missing_ok=True)


def venv_problems(venv: StockVenv) -> list[str]:
    """What requirements.txt did to Odoo's packages that it should not have."""
    pins, raised = read_pins(odoo_tier.REQUIREMENTS)
    found = []
    for name, version in sorted(venv.odoo_freeze.items()):
        now = venv.freeze.get(name)
        if now == version or (name in raised and now == pins.get(name)):
            continue
        found.append(
            f"{name}: Odoo's requirements.txt installs {version}, requirements.txt makes it "
            f"{now or 'uninstalled'} (a line that must change it says {RAISES_PIN!r} and why)"
        )
    for name, pin in sorted(pins.items()):
        has = venv.freeze.get(name)
        if has != pin:
            found.append(f"{name}: requirements.txt pins {pin}; the venv has {has}")
    for name in sorted(raised - set(venv.odoo_freeze)):
        found.append(f"{name}: marked {RAISES_PIN!r}, but Odoo's requirements do not install it")
    test_pins, _ = read_pins(odoo_tier.TEST_REQUIREMENTS)
    for name, version in sorted(venv.test_installs.items()):
        if name in venv.freeze:
            found.append(
                f"{name}: test-requirements.txt would change it from {venv.freeze[name]} "
                f"to {version}"
            )
        elif name not in test_pins:
            found.append(f"{name}: test-requirements.txt would install {version}, unpinned")
    for name, pin in sorted(test_pins.items()):
        if venv.freeze.get(name, venv.test_installs.get(name)) != pin:
            found.append(f"{name}: test-requirements.txt pins {pin}; pip would not install it")
    if "No broken requirements found" not in venv.pip_check:
        found.append(f"pip check: {venv.pip_check.strip()}")
    if "packaging" in venv.freeze:
        found.append(
            "packaging is installed: stock Odoo has none, so this venv no longer shows that "
            "the manifests' external_dependencies are checked without it"
        )
    return found


def raised_pins(venv: StockVenv) -> list[str]:
    """Odoo's packages requirements.txt changes on purpose, as 'name old -> new'."""
    return [
        f"{name} {version} -> {venv.freeze[name]}"
        for name, version in sorted(venv.odoo_freeze.items())
        if venv.freeze.get(name, version) != version
    ]


def run_check(
    odoo: odoo_tier.OdooInstall, workdir: Path, log_path: Path
) -> tuple[StockVenv, list[str]]:
    """Build (or reuse) the administrator's venv and install the addons with it in a fresh
    database; returns the venv and the problems found."""
    venv = stock_venv(odoo)
    found = venv_problems(venv)
    stock = odoo_tier.OdooInstall(
        venv.python,
        [venv.python, str(Path(odoo.where) / "odoo-bin")],
        odoo.addons_path,
        odoo.version,
        odoo.where,
    )
    dbname = "pipemail_requirements"
    with odoo_tier.private_postgres(workdir) as db:
        args = odoo_tier.odoo_args(stock, db, dbname, workdir)
        found += odoo_tier.install_addons(args, log_path)
        states = odoo_tier.module_states(db, dbname)
    for name in odoo_tier.ADDONS:
        if states.get(name) != "installed":
            found.append(f"{name} is {states.get(name, 'unknown to Odoo')}, not installed")
    return venv, found


def main(odoo: odoo_tier.OdooInstall, log_path: Path) -> int:
    """``python tools/odoo_tier.py requirements``: run the check, print what it found."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pipemail-odoo-") as tmp:
        venv, bad = run_check(odoo, Path(tmp), log_path)
    how = f"built in {venv.build_seconds:.0f} s" if venv.built_now else "reused from the cache"
    print(f"venv {venv.path} ({how}); Odoo's packages changed: {raised_pins(venv) or 'none'}")
    for line in bad:
        print("  " + line)
    verdict = "clean" if not bad else f"{len(bad)} problems"
    print(f"odoo requirements: {verdict} in {time.monotonic() - start:.0f} s; log {log_path}")
    return 1 if bad else 0
