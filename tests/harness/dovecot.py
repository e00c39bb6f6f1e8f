"""A private Dovecot 2.3 instance on loopback for end-to-end tests.

Every instance has its own temporary directory holding dovecot.conf, base_dir, state_dir,
the passwd-file, Maildirs and the log, so it never touches a system Dovecot and several can
run side by side. Faults are injected the way an operator would: with ``doveadm`` against
the same config (``-c``), or through Dovecot's own ``imap`` binary run pre-authenticated
(``doveadm exec imap -u USER``) when an IMAP answer such as APPENDUID or COPYUID is needed.
"""

from __future__ import annotations

import atexit
import datetime as dt
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._common import LOOPBACK, HarnessError, free_port, tls_material

if TYPE_CHECKING:
    from .oauth_server import OAuthServer

#: Name of the unprivileged system account that owns the mail files when run as root.
MAIL_SYSTEM_USER = "pipemailtest"

#: Folders every user has, with their RFC 6154 SPECIAL-USE attribute.
SPECIAL_FOLDERS: dict[str, str] = {
    "Sent": "\\Sent",
    "Archive": "\\Archive",
    "Trash": "\\Trash",
    "Drafts": "\\Drafts",
    "Junk": "\\Junk",
}

_USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_INSTANCES: weakref.WeakSet[Dovecot] = weakref.WeakSet()


@dataclass(frozen=True)
class User:
    """A mailbox account on a harness Dovecot; ``name`` is the IMAP login."""

    name: str
    password: str

    def __str__(self) -> str:
        return self.name


UserArg = User | str
UidSet = Iterable[int] | str


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/bin", "/usr/local/sbin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _uid_set(uids: UidSet) -> str:
    """Render UIDs as a compact IMAP sequence set ("1:3,7"); strings pass through."""
    if isinstance(uids, str):
        return uids
    values = sorted(set(int(u) for u in uids))
    if not values:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = values[0]
    for value in values[1:]:
        if value == prev + 1:
            prev = value
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = value
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def _expand_uid_set(text: str) -> list[int]:
    """Expand an IMAP sequence set as found in COPYUID, keeping the server's order."""
    out: list[int] = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            step = 1 if b >= a else -1
            out.extend(range(a, b + step, step))
        else:
            out.append(int(part))
    return out


def _imap_utf7(name: str) -> str:
    """Encode a mailbox name in IMAP modified UTF-7 (RFC 3501 5.1.3)."""
    import base64

    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            raw = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def _imap_quote(name: str) -> bytes:
    encoded = _imap_utf7(name)
    return b'"' + encoded.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'


def _imap_date(value: dt.datetime | str) -> str:
    """INTERNALDATE text, built without strftime so the C locale cannot change month names."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    offset = value.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        f"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Create the unprivileged mail owner if missing; safe to race with another process."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = _find_binary("useradd")
    if useradd is None:
        raise HarnessError(f"user {name!r} is missing and useradd is not available")
    for _ in range(20):
        proc = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
        )
        try:
            return pwd.getpwnam(name)
        except KeyError:
            # exit 10 = /etc/passwd locked by a concurrent useradd: try again shortly
            if proc.returncode not in (9, 10):
                raise HarnessError(f"useradd {name} failed: {proc.stderr.strip()}")
            time.sleep(0.2)
    raise HarnessError(f"could not create system user {name!r}")


class Dovecot:
    """A private Dovecot serving IMAP (plain + STARTTLS) and IMAPS on free loopback ports.

    Users live in a passwd-file that Dovecot re-reads when it changes, so ``add_user`` works
    while the server runs. Every user gets INBOX, Sent, Archive, Trash, Drafts and Junk,
    auto-created and subscribed with SPECIAL-USE. Pass ``oauth=`` an :class:`OAuthServer`
    to also accept XOAUTH2/OAUTHBEARER (checked by Dovecot's oauth2 passdb against the
    server's introspection endpoint); passwords keep working for the same users.

    The server starts in the constructor unless ``start=False``. Use it as a context
    manager or call :meth:`close` to stop it and delete its files.
    """

    def __init__(
        self,
        oauth: OAuthServer | None = None,
        *,
        port: int | None = None,
        ssl_port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        auth_debug: bool = False,
        start: bool = True,
        start_timeout: float = 20.0,
    ) -> None:
        self.host = LOOPBACK
        self.oauth = oauth
        self.auth_debug = auth_debug
        self.start_timeout = start_timeout
        self._fixed_ports = port is not None or ssl_port is not None
        self.port = port or free_port()
        self.ssl_port = ssl_port or free_port()
        self._dovecot_bin = _find_binary("dovecot")
        self._doveadm_bin = _find_binary("doveadm")
        if self._dovecot_bin is None or self._doveadm_bin is None:
            raise HarnessError(
                "Dovecot is not installed (dovecot/doveadm not found): "
                "run `apt-get install dovecot-imapd` (Debian/Ubuntu)"
            )
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pipemail-dovecot-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, User] = {}
        self._lock = threading.RLock()
        tls = tls_material()
        self.cafile = str(tls.cafile)
        self._certfile = tls.certfile
        self._keyfile = tls.keyfile
        self._setup_accounts()
        self._write_files()
        _INSTANCES.add(self)
        if start:
            try:
                self.start()
            except BaseException:
                # The HarnessError already quotes the log; leave no temp dir behind.
                if self._owns_workdir:
                    shutil.rmtree(self.workdir, ignore_errors=True)
                raise

    # ------------------------------------------------------------------ paths

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        """Dovecot's log (master, login, imap, auth); quoted in every HarnessError."""
        return self.workdir / "dovecot.log"

    @property
    def passwd_dir(self) -> Path:
        """One passwd-file per user (see ``_write_passwd`` for why)."""
        return self.workdir / "users"

    @property
    def mail_root(self) -> Path:
        return self.workdir / "home"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Dovecot {self.host}:{self.port}/{self.ssl_port} {state} {self.workdir}>"

    # ------------------------------------------------------------------ setup

    def _setup_accounts(self) -> None:
        """Pick the account every Dovecot process runs as.

        As root: one unprivileged system user (created if missing) for the login, internal
        and mail processes, so the files in the temp dir have one owner and Dovecot's
        refusal of UID 0 mail access never triggers. As a normal user: that user for all
        roles (Dovecot's documented rootless mode, without chroots).
        """
        self._as_root = os.geteuid() == 0
        if self._as_root:
            account = _ensure_system_user(MAIL_SYSTEM_USER)
        else:
            account = pwd.getpwuid(os.geteuid())
        self._account = account
        self.workdir.chmod(0o755)
        self.mail_root.mkdir(exist_ok=True)
        if self._as_root:
            for path in (self.workdir, self.mail_root):
                os.chown(path, account.pw_uid, account.pw_gid)

    def _write_files(self) -> None:
        self.passwd_dir.mkdir(exist_ok=True)
        if self._as_root:
            os.chown(self.passwd_dir, 0, self._account.pw_gid)
            self.passwd_dir.chmod(0o750)
        self.config_path.write_text(self._render_config())
        if self.oauth is not None:
            (self.workdir / "oauth2.conf.ext").write_text(self._render_oauth_config())

    def _render_oauth_config(self) -> str:
        assert self.oauth is not None
        return "\n".join(
            [
                f"introspection_url = {self.oauth.introspection_url}",
                "introspection_mode = post",
                "force_introspection = yes",
                "username_attribute = username",
                "active_attribute = active",
                "active_value = true",
                "timeout_msecs = 5000",
                f"debug = {'yes' if self.auth_debug else 'no'}",
                "",
            ]
        )

    def _render_config(self) -> str:
        w = self.workdir
        account = self._account.pw_name
        chroot = "" if self._as_root else "  chroot =\n"
        mechanisms = "plain login"
        oauth_passdb = ""
        if self.oauth is not None:
            mechanisms += " xoauth2 oauthbearer"
            oauth_passdb = (
                "passdb {\n"
                "  driver = oauth2\n"
                "  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {w}/oauth2.conf.ext\n"
                "}\n"
            )
        mailboxes = "  mailbox INBOX {\n    auto = subscribe\n  }\n" + "".join(
            f"  mailbox {name} {{\n    special_use = {use}\n    auto = subscribe\n  }}\n"
            for name, use in SPECIAL_FOLDERS.items()
        )
        debug = "yes" if self.auth_debug else "no"
        return f"""\
# Generated by tests/harness/dovecot.py for one test run; never used by a system Dovecot.
base_dir = {w}/run
state_dir = {w}/state
instance_name = pipemail-test-{self.port}
log_path = {w}/dovecot.log
info_log_path = {w}/dovecot.log
debug_log_path = {w}/dovecot.log
protocols = imap
listen = {self.host}
shutdown_clients = yes

default_internal_user = {account}
default_internal_group = {self._group_name()}
default_login_user = {account}
first_valid_uid = {self._account.pw_uid or 1}
mail_uid = {account}
mail_gid = {self._group_name()}
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 200

ssl = yes
ssl_cert = <{self._certfile}
ssl_key = <{self._keyfile}
ssl_min_protocol = TLSv1.2

# Tests log in without TLS on loopback and fail logins on purpose: no delays (2.3 still
# answers a failed login only on its 500 ms failure-flush timer; that floor remains).
disable_plaintext_auth = no
auth_failure_delay = 0
auth_cache_size = 0
auth_mechanisms = {mechanisms}
auth_verbose = yes
auth_debug = {debug}
auth_username_chars =

{oauth_passdb}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_dir}/%u
  default_fields = home={self.mail_root}/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}

service imap-login {{
{chroot}  process_min_avail = 1
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
service imap {{
  process_limit = 1024
}}
service anvil {{
{chroot}  # Auth penalty would slow the "wrong token/password" tests by up to 15 s.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
"""

    def _group_name(self) -> str:
        import grp

        return grp.getgrgid(self._account.pw_gid).gr_name

    def _write_passwd(self, user: User, present: bool = True) -> None:
        """Write ``users/<name>``, the one-line passwd-file Dovecot reads for that login.

        Dovecot stats a passwd-file at most once per second, so users added to one shared
        file are invisible for up to a second. A per-user path (``args = .../%u``) is a new
        file for a new user and is read on first use. An emptied file means "no such user"
        (a missing file would be an internal error, i.e. a temporary auth failure).
        """
        line = f"{user.name}:{{PLAIN}}{user.password}::::::\n" if present else ""
        path = self.passwd_dir / user.name
        tmp = self.passwd_dir / f".{user.name}.tmp"
        tmp.write_text(line)
        tmp.chmod(0o640)
        if self._as_root:
            os.chown(tmp, 0, self._account.pw_gid)
        os.replace(tmp, path)

    def _wait_for_reload(self) -> None:
        """Cross a second boundary so Dovecot's once-a-second stat sees a changed file."""
        time.sleep(1.05 - (time.time() % 1.0))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Dovecot:
        """Start the server and wait until it accepts IMAP connections."""
        with self._lock:
            if self.running:
                return self
            attempts = 1 if self._fixed_ports else 3
            for attempt in range(attempts):
                try:
                    self._start_once()
                    return self
                except HarnessError as exc:
                    if "Address already in use" not in str(exc) or attempt == attempts - 1:
                        raise
                    self.port, self.ssl_port = free_port(), free_port()
                    self._write_files()
            return self

    def _start_once(self, timeout: float | None = None) -> None:
        timeout = self.start_timeout if timeout is None else timeout
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        stderr_path = self.workdir / "dovecot.stderr"
        argv = [self._dovecot_bin or "dovecot", "-F", "-c", str(self.config_path)]
        setpriv = _find_binary("setpriv")
        if setpriv:
            # Dovecot dies with the test process even on SIGKILL: no stray servers left.
            # KILL, not TERM: a TERMed master waits up to a minute for its log process,
            # while children notice a dead master within ~2 s.
            argv = [setpriv, "--pdeathsig", "KILL", *argv]
        with open(stderr_path, "wb") as err:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self._greets(self.port) and self._greets(self.ssl_port, tls=True):
                return
            time.sleep(0.05)
        rc = self._proc.poll()
        if rc is None:
            self._terminate()
            reason = f"did not accept connections on {self.host}:{self.port} within {timeout}s"
        else:
            reason = f"exited with status {rc}"
        self._proc = None
        raise HarnessError(f"Dovecot {reason}.\n{self._diagnostics(log_offset)}")

    def _greets(self, port: int, tls: bool = False) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1) as sock:
                if not tls:
                    return sock.recv(64).startswith(b"* OK")
                # TCP accept is enough for IMAPS: the listener exists once master bound it.
                return True
        except OSError:
            return False

    def _diagnostics(self, log_offset: int = 0) -> str:
        chunks: list[str] = []
        stderr_path = self.workdir / "dovecot.stderr"
        if stderr_path.exists():
            text = stderr_path.read_text(errors="replace").strip()
            if text:
                chunks.append("dovecot stderr:\n" + text)
        if self.log_path.exists():
            with open(self.log_path, "rb") as fh:
                fh.seek(log_offset)
                lines = fh.read().decode(errors="replace").strip().splitlines()
            if lines:
                chunks.append(f"{self.log_path} (last lines):\n" + "\n".join(lines[-40:]))
        chunks.append(f"config: {self.config_path} (dovecot -c ... -n to check it)")
        return "\n".join(chunks)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children (imap, auth, login) may outlive the master by a few ms; the ports must
        # be free before a restart binds them again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Stop the server, dropping every connection; mail and users are kept."""
        with self._lock:
            self._terminate()
            self._proc = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same ports (clients see their connections drop).

        ``down_for`` keeps the ports closed for that many seconds, to test reconnect backoff.
        """
        with self._lock:
            self.stop()
            if down_for:
                time.sleep(down_for)
            deadline = time.monotonic() + 10
            while True:
                try:
                    self._start_once()
                    return
                except HarnessError as exc:
                    if "Address already in use" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def close(self) -> None:
        """Stop the server and delete its directory (if the harness created it)."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self) -> str:
        proc = subprocess.run(
            [self._dovecot_bin or "dovecot", "--version"], capture_output=True, text=True
        )
        return proc.stdout.strip()

    # ------------------------------------------------------------------ users

    def add_user(self, name: str | None = None, password: str | None = None) -> User:
        """Create a login (random unique name/password when omitted); usable at once."""
        with self._lock:
            name = name or f"u{secrets.token_hex(5)}"
            if not _USERNAME_RE.match(name):
                raise ValueError(f"unsupported user name {name!r}")
            password = password if password is not None else secrets.token_urlsafe(12)
            if any(c in password for c in ":\n\r"):
                raise ValueError("passwords must not contain ':' or line breaks")
            if name in self._users:
                raise ValueError(f"user {name!r} already exists")
            user = User(name, password)
            self._users[name] = user
            self._write_passwd(user)
            return user

    def set_password(self, user: UserArg, password: str) -> User:
        """Change a password; existing sessions stay logged in, as on a real server.

        Takes up to a second: Dovecot re-reads a known user's file at most once a second.
        """
        with self._lock:
            if any(c in password for c in ":\n\r"):
                raise ValueError("passwords must not contain ':' or line breaks")
            new = User(str(user), password)
            self._users[new.name] = new
            self._write_passwd(new)
            self._wait_for_reload()
            return new

    def remove_user(self, user: UserArg) -> None:
        """Remove the login (its mail stays on disk); later logins fail. Takes up to 1 s."""
        with self._lock:
            old = self._users.pop(str(user), None)
            if old is not None:
                self._write_passwd(old, present=False)
                self._wait_for_reload()

    @property
    def users(self) -> list[User]:
        return list(self._users.values())

    # ------------------------------------------------------------------ doveadm

    def doveadm(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c <private config> ARGS``; raise HarnessError when it fails."""
        proc = self._doveadm_bytes(*args, check=check, input=input, timeout=timeout)
        return subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    def _doveadm_bytes(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self._doveadm_bin or "doveadm", "-c", str(self.config_path), *map(str, args)]
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip()
            message = message or proc.stdout.decode("utf-8", "replace").strip()
            raise HarnessError(
                f"doveadm {' '.join(map(str, args))} exited {proc.returncode}: {message}"
            )
        return proc

    def _doveadm_json(self, *args: str) -> list[dict[str, str]]:
        out = self.doveadm("-f", "json", *args).stdout.strip()
        if not out:
            return []
        try:
            data = json.loads(out)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"unparsable doveadm output for {args}: {out[:500]!r}") from exc
        return data if isinstance(data, list) else [data]

    def imap_exec(self, user: UserArg, commands: Sequence[bytes]) -> list[tuple[str, bytes]]:
        """Run IMAP commands in a pre-authenticated ``imap`` process for ``user``.

        Each command is sent with its own tag, pipelined (literals must use LITERAL+
        ``{n+}`` syntax). Returns ``(status, full response text)`` per command, where the
        response text includes the untagged lines that came before the tagged reply.
        Raises HarnessError when any command is not OK.
        """
        tags = [f"H{i:05d}" for i in range(len(commands))]
        script = b"".join(t.encode() + b" " + c + b"\r\n" for t, c in zip(tags, commands))
        script += b"HZZZZZ LOGOUT\r\n"
        proc = self._doveadm_bytes("exec", "imap", "-u", str(user), input=script, check=False)
        if proc.returncode != 0 and b"HZZZZZ OK" not in proc.stdout:
            stderr = proc.stderr.decode(errors="replace")
            raise HarnessError(f"imap for {user} failed ({proc.returncode}): {stderr}")
        results: list[tuple[str, bytes]] = []
        pending: list[bytes] = []
        index = 0
        for line in proc.stdout.split(b"\r\n"):
            pending.append(line)
            tag = tags[index].encode() + b" " if index < len(tags) else None
            if tag and line.startswith(tag):
                status = line[len(tag) :].split(b" ", 1)[0].decode()
                results.append((status, b"\r\n".join(pending)))
                pending = []
                index += 1
        if len(results) != len(tags):
            raise HarnessError(f"imap for {user}: incomplete replies:\n{proc.stdout[-2000:]!r}")
        for cmd, (status, text) in zip(commands, results):
            if status != "OK":
                raise HarnessError(
                    f"imap for {user}: {cmd[:200]!r} -> {text.decode(errors='replace')[-500:]}"
                )
        return results

    # ------------------------------------------------------------------ messages

    def append(
        self,
        user: UserArg,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        internaldate: dt.datetime | str | None = None,
    ) -> int:
        """Store one message (as IMAP APPEND would) and return its UID."""
        return self.append_many(user, folder, [(raw, tuple(flags), internaldate)])[0]

    def append_many(
        self,
        user: UserArg,
        folder: str,
        messages: Iterable[bytes | tuple[bytes, Iterable[str]] | tuple[bytes, Iterable[str], Any]],
        batch_bytes: int = 16 * 1024 * 1024,
    ) -> list[int]:
        """Store many messages in one pipelined session and return their UIDs in order.

        Items are raw bytes or ``(raw, flags)`` / ``(raw, flags, internaldate)``. Thousands
        of messages take seconds, not minutes as one doveadm call per message would.
        """
        uids: list[int] = []
        batch: list[bytes] = []
        size = 0
        mailbox = _imap_quote(folder)
        for item in messages:
            if isinstance(item, (bytes, bytearray, memoryview)):
                raw, flags, date = bytes(item), (), None
            else:
                raw = bytes(item[0])
                flags = tuple(item[1]) if len(item) > 1 else ()
                date = item[2] if len(item) > 2 else None
            cmd = b"APPEND " + mailbox
            if flags:
                cmd += b" (" + " ".join(flags).encode() + b")"
            if date is not None:
                cmd += b' "' + _imap_date(date).encode() + b'"'
            cmd += b" {%d+}\r\n" % len(raw) + raw
            batch.append(cmd)
            size += len(raw)
            if size >= batch_bytes:
                uids.extend(self._append_batch(user, batch))
                batch, size = [], 0
        if batch:
            uids.extend(self._append_batch(user, batch))
        return uids

    def _append_batch(self, user: UserArg, batch: list[bytes]) -> list[int]:
        uids = []
        for _status, text in self.imap_exec(user, batch):
            match = re.search(rb"\[APPENDUID \d+ (\d+)\]", text)
            if not match:
                raise HarnessError(f"APPEND for {user} returned no APPENDUID: {text[-300:]!r}")
            uids.append(int(match.group(1)))
        return uids

    def fetch_state(self, user: UserArg, folder: str) -> list[dict[str, Any]]:
        """Every message of ``folder`` as the server has it, sorted by UID.

        Each dict: ``uid`` (int), ``flags`` (frozenset, without the session-only
        ``\\Recent``), ``guid`` (Dovecot's message GUID), ``message_id`` (str or None),
        ``size`` (RFC822.SIZE as IMAP reports it), ``size_physical``, ``internaldate``
        (naive UTC ``datetime``).
        """
        rows = self._doveadm_json(
            "fetch",
            "-u",
            str(user),
            "uid flags guid hdr.message-id size.virtual size.physical date.received",
            "mailbox",
            folder,
            "all",
        )
        if not rows:
            self.status(user, folder)  # an empty result must not hide a missing mailbox
        state = []
        for row in rows:
            message_id = " ".join(row.get("hdr.message-id", "").split()) or None
            received = row.get("date.received") or ""
            try:
                internaldate = dt.datetime.strptime(received, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                internaldate = None
            state.append(
                {
                    "uid": int(row["uid"]),
                    "flags": frozenset(f for f in row.get("flags", "").split() if f != "\\Recent"),
                    "guid": row.get("guid", ""),
                    "message_id": message_id,
                    "size": int(row.get("size.virtual") or 0),
                    "size_physical": int(row.get("size.physical") or 0),
                    "internaldate": internaldate,
                }
            )
        state.sort(key=lambda r: r["uid"])
        return state

    def fetch_raw(self, user: UserArg, folder: str, uid: int) -> bytes:
        """The message bytes exactly as IMAP ``BODY[]`` returns them (CRLF line ends)."""
        results = self.imap_exec(
            user, [b"EXAMINE " + _imap_quote(folder), b"UID FETCH %d (BODY.PEEK[])" % uid]
        )
        text = results[1][1]
        match = re.search(rb"BODY\[\] \{(\d+)\}\r\n", text)
        if not match:
            raise HarnessError(f"no message with UID {uid} in {folder} for {user}")
        start = match.end()
        return text[start : start + int(match.group(1))]

    def status(self, user: UserArg, folder: str) -> dict[str, int]:
        """``messages``, ``unseen``, ``uidnext``, ``uidvalidity``, ``highestmodseq``."""
        rows = self._doveadm_json(
            "mailbox",
            "status",
            "-u",
            str(user),
            "messages unseen uidnext uidvalidity highestmodseq",
            folder,
        )
        if not rows or "uidvalidity" not in rows[0]:
            raise HarnessError(f"no mailbox {folder!r} for {user}")
        return {k: int(v) for k, v in rows[0].items() if k != "mailbox" and v != ""}

    def uidvalidity(self, user: UserArg, folder: str) -> int:
        return self.status(user, folder)["uidvalidity"]

    def set_uidvalidity(self, user: UserArg, folder: str, value: int) -> None:
        """Change UIDVALIDITY (what a server rebuild does): every cached UID becomes void."""
        self.doveadm("mailbox", "update", "-u", str(user), "--uid-validity", str(value), folder)

    def list_mailboxes(self, user: UserArg) -> list[str]:
        out = self.doveadm("mailbox", "list", "-u", str(user)).stdout
        return [line for line in out.splitlines() if line]

    def create_mailbox(
        self, user: UserArg, name: str, special_use: str | None = None, subscribe: bool = True
    ) -> None:
        args = ["mailbox", "create", "-u", str(user)]
        if subscribe:
            args.append("-s")
        if special_use:
            args += ["--special-use", special_use]
        self.doveadm(*args, name)

    def delete_mailbox(self, user: UserArg, name: str, recursive: bool = False) -> None:
        """Delete a mailbox and its messages (recreating it gets a new UIDVALIDITY)."""
        args = ["mailbox", "delete", "-u", str(user), "-s"]
        if recursive:
            args.append("-r")
        self.doveadm(*args, name)

    def rename_mailbox(self, user: UserArg, old: str, new: str) -> None:
        self.doveadm("mailbox", "rename", "-u", str(user), "-s", old, new)

    def move(self, user: UserArg, src: str, dst: str, uids: UidSet) -> dict[int, int]:
        """Move messages like another IMAP client would; returns {old UID: new UID}."""
        results = self.imap_exec(
            user,
            [
                b"SELECT " + _imap_quote(src),
                b"UID MOVE " + _uid_set(uids).encode() + b" " + _imap_quote(dst),
            ],
        )
        mapping: dict[int, int] = {}
        for match in re.finditer(rb"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]", results[1][1]):
            old = _expand_uid_set(match.group(1).decode())
            new = _expand_uid_set(match.group(2).decode())
            mapping.update(zip(old, new))
        return mapping

    def copy(self, user: UserArg, src: str, dst: str, uids: UidSet) -> dict[int, int]:
        """Copy messages (Gmail-label style duplicates); returns {src UID: new UID}."""
        results = self.imap_exec(
            user,
            [
                b"EXAMINE " + _imap_quote(src),
                b"UID COPY " + _uid_set(uids).encode() + b" " + _imap_quote(dst),
            ],
        )
        match = re.search(rb"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]", results[1][1])
        if not match:
            return {}
        return dict(
            zip(_expand_uid_set(match.group(1).decode()), _expand_uid_set(match.group(2).decode()))
        )

    def expunge(self, user: UserArg, folder: str, uids: UidSet) -> None:
        """Remove messages at once (no \\Deleted step), as another client's EXPUNGE would."""
        self.doveadm("expunge", "-u", str(user), "mailbox", folder, "uid", _uid_set(uids))

    def _flags(
        self, op: str, user: UserArg, folder: str, uids: UidSet, flags: Iterable[str]
    ) -> None:
        self.doveadm(
            "flags", op, "-u", str(user), " ".join(flags), "mailbox", folder, "uid", _uid_set(uids)
        )

    def set_flags(self, user: UserArg, folder: str, uids: UidSet, flags: Iterable[str]) -> None:
        """Replace the flags of the messages (an empty list clears them)."""
        flags = [f for f in flags]
        if flags:
            self._flags("replace", user, folder, uids, flags)
            return
        for row in self.fetch_state(user, folder):
            if row["flags"] and (isinstance(uids, str) or row["uid"] in set(uids)):
                self._flags("remove", user, folder, [row["uid"]], sorted(row["flags"]))

    def add_flags(self, user: UserArg, folder: str, uids: UidSet, flags: Iterable[str]) -> None:
        self._flags("add", user, folder, uids, flags)

    def remove_flags(self, user: UserArg, folder: str, uids: UidSet, flags: Iterable[str]) -> None:
        self._flags("remove", user, folder, uids, flags)

    # ------------------------------------------------------------------ sessions

    def who(self, user: UserArg | None = None) -> int:
        """Number of IMAP connections Dovecot tracks (for ``user`` if given)."""
        args = ["who", "-1"]
        if user is not None:
            args.append(str(user))
        out = self.doveadm(*args, check=False).stdout
        return sum(1 for line in out.splitlines()[1:] if line.strip())

    def kick(self, user: UserArg, wait: float = 5.0) -> None:
        """Disconnect every IMAP session of ``user`` (``doveadm kick``), like an admin would.

        Waits up to ``wait`` seconds for the sessions to be gone so tests are deterministic.
        """
        self.doveadm("kick", str(user), check=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.who(user):
            time.sleep(0.05)

    # ------------------------------------------------------------------ clients

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies this server's certificate against ``cafile``."""
        return ssl.create_default_context(cafile=self.cafile)

    def imap(
        self,
        user: UserArg | None = None,
        mode: Literal["plain", "starttls", "ssl"] = "plain",
        timeout: float = 10,
    ) -> imaplib.IMAP4:
        """An imaplib client (logged in when ``user`` is a User with a password)."""
        if mode == "ssl":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                self.host, self.ssl_port, ssl_context=self.ssl_context(), timeout=timeout
            )
        else:
            client = imaplib.IMAP4(self.host, self.port, timeout=timeout)
            if mode == "starttls":
                client.starttls(ssl_context=self.ssl_context())
        if user is not None:
            password = user.password if isinstance(user, User) else self._users[user].password
            client.login(str(user), password)
        return client


@atexit.register
def _stop_all() -> None:
    for instance in list(_INSTANCES):
        try:
            instance.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
