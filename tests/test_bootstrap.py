"""scripts/bootstrap.sh never starts or stops a service it did not start on this run.

The script runs for real, with stand-ins first on PATH for everything that would touch
the machine: ``dpkg`` (which packages are "installed"), ``apt-get`` (records the call,
asks policy-rc.d as invoke-rc.d would, and "starts" the services when the policy lets
it), ``service``/``systemctl``/``invoke-rc.d`` (record every call; a service runs while
its state file exists) and the Python (its import checks pass, a pip install is
recorded and refused). The policy-rc.d it writes goes to a temporary path
(``PIPEMAIL_POLICY_RC_D``), never to /usr/sbin.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dovecot-imapd", "dovecot-core", "postgresql", "openssl")

FAKE_DPKG = """#!/bin/sh
# dpkg -s PKG: installed unless listed in $STATE/missing
grep -qx "$2" "$STATE/missing" 2>/dev/null && exit 1
exit 0
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >>"$STATE/calls"
[ "$1" = install ] || exit 0
[ -e "$STATE/apt-fails" ] && exit 100
# what invoke-rc.d does for each service the packages bring: ask policy-rc.d first
for svc in dovecot postgresql; do
  if [ -x "$PIPEMAIL_POLICY_RC_D" ]; then
    "$PIPEMAIL_POLICY_RC_D" "$svc" start
    answer=$?
  else
    answer=0
  fi
  echo "policy-rc.d $svc start -> $answer" >>"$STATE/calls"
  [ "$answer" = 0 ] && touch "$STATE/running-$svc"
done
exit 0
"""
FAKE_SERVICE = """#!/bin/sh
echo "service $*" >>"$STATE/calls"
case "$2" in
  status) [ -e "$STATE/running-$1" ] ;;
  stop) rm -f "$STATE/running-$1" ;;
  start|restart) touch "$STATE/running-$1" ;;
esac
"""
FAKE_RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >>"$STATE/calls"
"""
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "python $*" >>"$STATE/calls"; exit 1; fi
exit 0
"""
FAKE_ID = """#!/bin/sh
echo 0
"""


@dataclass
class Run:
    returncode: int
    output: str
    calls: list[str]
    running: set[str]


class Bootstrap:
    """Runs scripts/bootstrap.sh among the stand-ins, in a temporary folder of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = tmp_path / "state"
        self.fakebin = tmp_path / "bin"
        self.policy = tmp_path / "policy-rc.d"
        self.state.mkdir()
        self.fakebin.mkdir()
        scripts = {
            "dpkg": FAKE_DPKG,
            "apt-get": FAKE_APT,
            "service": FAKE_SERVICE,
            "systemctl": FAKE_RECORDER,
            "invoke-rc.d": FAKE_RECORDER,
            "python": FAKE_PYTHON,
            "id": FAKE_ID,
        }
        for name, text in scripts.items():
            (self.fakebin / name).write_text(text)
            (self.fakebin / name).chmod(0o755)

    def __call__(self, missing: tuple[str, ...] = (), running: tuple[str, ...] = ()) -> Run:
        (self.state / "missing").write_text("".join(f"{p}\n" for p in missing))
        for svc in running:
            (self.state / f"running-{svc}").touch()
        env = dict(
            os.environ,
            PATH=f"{self.fakebin}:{os.environ['PATH']}",
            STATE=str(self.state),
            PYTHON=str(self.fakebin / "python"),
            PIPEMAIL_POLICY_RC_D=str(self.policy),
        )
        proc = subprocess.run(
            ["bash", "scripts/bootstrap.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        calls_file = self.state / "calls"
        calls = calls_file.read_text().splitlines() if calls_file.exists() else []
        now = {p.name.removeprefix("running-") for p in self.state.glob("running-*")}
        return Run(proc.returncode, proc.stdout + proc.stderr, calls, now)


@pytest.fixture
def bootstrap(tmp_path: Path) -> Bootstrap:
    return Bootstrap(tmp_path)


def service_actions(calls: list[str]) -> list[str]:
    """Every call that could change a service: anything but a status query."""
    return [
        c
        for c in calls
        if c.split()[0] in ("service", "systemctl", "invoke-rc.d") and " status" not in c
    ]


def test_nothing_missing_touches_no_service(bootstrap: Bootstrap) -> None:
    result = bootstrap(running=("dovecot", "postgresql"))
    assert result.returncode == 0, result.output
    assert result.calls == [], "with everything installed bootstrap must call nothing"
    assert result.running == {"dovecot", "postgresql"}


def test_install_starts_no_service(bootstrap: Bootstrap) -> None:
    result = bootstrap(missing=PACKAGES)
    assert result.returncode == 0, result.output
    assert "apt-get install -y -qq dovecot-imapd dovecot-core postgresql openssl" in result.calls
    assert "policy-rc.d dovecot start -> 101" in result.calls
    assert "policy-rc.d postgresql start -> 101" in result.calls
    assert service_actions(result.calls) == []
    assert result.running == set()
    assert not bootstrap.policy.exists(), "the temporary policy-rc.d must be removed"


def test_services_already_running_are_left_alone(bootstrap: Bootstrap) -> None:
    # a machine serving a real Odoo: its PostgreSQL (and a Dovecot) run before bootstrap
    result = bootstrap(missing=("dovecot-imapd", "postgresql"), running=("dovecot", "postgresql"))
    assert result.returncode == 0, result.output
    assert service_actions(result.calls) == []
    assert result.running == {"dovecot", "postgresql"}


def test_existing_policy_kept_and_only_what_the_install_started_is_stopped(
    bootstrap: Bootstrap,
) -> None:
    admin_policy = "#!/bin/sh\n# the administrator's: everything may start\nexit 0\n"
    bootstrap.policy.write_text(admin_policy)
    bootstrap.policy.chmod(0o755)
    result = bootstrap(missing=("dovecot-core", "postgresql"), running=("postgresql",))
    assert result.returncode == 0, result.output
    assert bootstrap.policy.read_text() == admin_policy
    # Dovecot was started by this run's install: stopped again; PostgreSQL ran before: kept
    assert service_actions(result.calls) == ["service dovecot stop"]
    assert result.running == {"postgresql"}


def test_failed_install_still_removes_the_policy(bootstrap: Bootstrap) -> None:
    (bootstrap.state / "apt-fails").touch()
    result = bootstrap(missing=("openssl",))
    assert result.returncode != 0
    assert any(c.startswith("apt-get install") for c in result.calls)
    assert not bootstrap.policy.exists()
    assert service_actions(result.calls) == []
