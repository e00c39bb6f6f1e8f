"""Fault-injection helpers for tests/test_reliability.py (and the benchmark).

Nothing here mocks the engine: the helpers seed a real Dovecot, compare a store with
what ``doveadm fetch`` says the server holds, run a chaos IMAP client in a thread, and
run ``sync_account`` in a child process that the test can SIGKILL at any point.

The child entry point is this file itself: ``python tests/chaos.py`` reads a JSON job
from the ``PIPEMAIL_CHAOS_JOB`` environment variable (see :func:`child_job`), syncs into
a :class:`~pipemail.store.JsonlStore` and prints one ``APPLY <n>`` line per committed
batch, so the parent can kill it between (or during) commits.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TESTS_DIR = Path(__file__).resolve().parent
_REPO = _TESTS_DIR.parent
for _path in (str(_REPO), str(_TESTS_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from pipemail.store import JsonlStore, MemoryStore  # noqa: E402
from pipemail.types import (  # noqa: E402
    AccountConfig,
    PasswordAuth,
    ServerConfig,
    SyncBatch,
    WriteResult,
)
from tools.mailgen import generate  # noqa: E402

SYNC_FOLDERS = ["INBOX", "Sent", "Archive", "Trash"]
JOB_ENV = "PIPEMAIL_CHAOS_JOB"


# ---------------------------------------------------------------- accounts and mail


def account_config(
    dovecot: Any,
    user: Any,
    *,
    key: str | None = None,
    host: str | None = None,
    port: int | None = None,
    security: str = "ssl",
    folders: Sequence[str] | None = None,
    timeout: float = 15.0,
    **options: Any,
) -> AccountConfig:
    """An AccountConfig for a harness user (``port`` lets a TCP proxy sit in between)."""
    if port is None:
        port = dovecot.ssl_port if security == "ssl" else dovecot.port
    return AccountConfig(
        key=key or f"acct-{user.name}",
        imap=ServerConfig(
            host=host or dovecot.host,
            port=port,
            security=security,  # type: ignore[arg-type]
            cafile=dovecot.cafile,
            allow_private_hosts=True,
            timeout=timeout,
        ),
        auth=PasswordAuth(user.name, user.password),
        folders=list(folders) if folders is not None else None,
        **options,
    )


def seed_mailbox(
    dovecot: Any, user: Any, count: int, *, seed: int, attachment_every: int = 20
) -> dict[str, list[int]]:
    """Append ``count`` mailgen conversation messages (INBOX + Sent); UIDs per folder."""
    per_folder: dict[str, list[tuple[bytes, tuple[str, ...], Any]]] = defaultdict(list)
    for msg in generate(count, seed=seed, attachment_every=attachment_every):
        flags = ("\\Seen",) if msg.seen else ()
        per_folder[msg.folder].append((msg.raw, flags, msg.date))
    return {
        folder: dovecot.append_many(user, folder, items) for folder, items in per_folder.items()
    }


def fresh_messages(seed: int) -> Iterator[bytes]:
    """An endless stream of new conversation messages (unique Message-IDs per seed)."""
    for msg in generate(10_000_000, seed=seed, attachment_every=0):
        yield msg.raw


def copy_mailbox(
    dovecot: Any, source: Any, target: Any, folders: Iterable[str] = ("INBOX", "Sent")
) -> None:
    """Server-side copy of another user's folders (``doveadm copy``): seeding a second
    account this way takes a second instead of a minute of APPENDs."""
    for folder in folders:
        dovecot.doveadm(
            "copy", "-u", str(target), folder, "user", str(source), "mailbox", folder, "all"
        )


def big_message(n: int, size: int, *, seed: int) -> bytes:
    """A message of about ``size`` bytes: text part + base64 attachment of random bytes."""
    from email.message import EmailMessage

    rng = random.Random(seed * 1_000_003 + n)
    msg = EmailMessage()
    msg["From"] = "Big Sender <big@example.com>"
    msg["To"] = "owner@pipemail.example"
    msg["Subject"] = f"Large message {n}"
    msg["Message-ID"] = f"<big-{seed}-{n}@chaos.pipemail.example>"
    msg["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    msg.set_content(f"Attachment {n} follows.\n")
    msg.add_attachment(
        rng.randbytes(size * 3 // 4),
        maintype="application",
        subtype="octet-stream",
        filename=f"blob-{n}.bin",
    )
    return bytes(msg)


# ---------------------------------------------------------------- store vs server


@dataclass(frozen=True)
class ServerRow:
    folder: str
    uid: int
    flags: frozenset[str]
    message_id: str


def server_snapshot(
    dovecot: Any, user: Any, folders: Iterable[str] = SYNC_FOLDERS
) -> dict[str, dict[int, ServerRow]]:
    """folder -> uid -> row, straight from ``doveadm fetch`` (not through IMAP)."""
    out: dict[str, dict[int, ServerRow]] = {}
    for folder in folders:
        out[folder] = {
            row["uid"]: ServerRow(
                folder, row["uid"], row["flags"], (row["message_id"] or "").strip().strip("<>")
            )
            for row in dovecot.fetch_state(user, folder)
        }
    return out


def by_message_id(snapshot: Mapping[str, Mapping[int, ServerRow]]) -> dict[str, list[ServerRow]]:
    out: dict[str, list[ServerRow]] = defaultdict(list)
    for rows in snapshot.values():
        for row in rows.values():
            out[row.message_id].append(row)
    return out


@dataclass
class Comparison:
    """Every way a store can differ from the server; ``divergences`` sums them."""

    checked: int = 0
    missing: list[tuple[str, int]] = field(default_factory=list)
    extra: list[tuple[str, int]] = field(default_factory=list)
    wrong_message: list[tuple[str, int, str, str]] = field(default_factory=list)
    flag_mismatch: list[tuple[str, int, frozenset[str], frozenset[str]]] = field(
        default_factory=list
    )
    wrong_uidvalidity: list[tuple[str, int | None, int]] = field(default_factory=list)
    dup_locations: list[tuple[str, int, int]] = field(default_factory=list)
    dup_message_ids: list[str] = field(default_factory=list)
    ghosts: list[str] = field(default_factory=list)
    """Records marked present that have no location at all."""

    @property
    def divergences(self) -> int:
        return (
            len(self.missing)
            + len(self.extra)
            + len(self.wrong_message)
            + len(self.flag_mismatch)
            + len(self.wrong_uidvalidity)
            + len(self.dup_locations)
            + len(self.dup_message_ids)
            + len(self.ghosts)
        )

    @property
    def dups(self) -> int:
        return len(self.dup_locations) + len(self.dup_message_ids)

    def summary(self) -> str:
        parts = [f"checked={self.checked}", f"divergences={self.divergences}"]
        for name in (
            "missing",
            "extra",
            "wrong_message",
            "flag_mismatch",
            "wrong_uidvalidity",
            "dup_locations",
            "dup_message_ids",
            "ghosts",
        ):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}={len(items)} e.g. {items[:3]}")
        return " ".join(parts)


def compare(
    store: MemoryStore,
    account: str,
    dovecot: Any,
    user: Any,
    folders: Iterable[str] = SYNC_FOLDERS,
    *,
    snapshot: Mapping[str, Mapping[int, ServerRow]] | None = None,
    check_flags: bool = True,
) -> Comparison:
    """Store vs ``doveadm fetch``: each (folder, uid) exactly once, same message, same flags."""
    folders = list(folders)
    snap = snapshot if snapshot is not None else server_snapshot(dovecot, user, folders)
    result = Comparison()
    for folder in folders:
        server_rows = snap[folder]
        state = store.load_state(account, folder)
        uidvalidity = dovecot.uidvalidity(user, folder)
        if state is None or state.uidvalidity != uidvalidity:
            if server_rows or state is not None:
                result.wrong_uidvalidity.append(
                    (folder, state.uidvalidity if state else None, uidvalidity)
                )
            continue
        view = store.folder_view(account, folder)
        for uid, row in server_rows.items():
            result.checked += 1
            msg = view.get(uid)
            if msg is None:
                result.missing.append((folder, uid))
                continue
            if msg.message_id != row.message_id:
                result.wrong_message.append((folder, uid, row.message_id, msg.message_id))
            if check_flags:
                stored = next(
                    (
                        flags
                        for loc, flags in msg.locations.items()
                        if loc.folder == folder and loc.uid == uid
                    ),
                    frozenset(),
                )
                if stored != row.flags:
                    result.flag_mismatch.append((folder, uid, row.flags, stored))
        for uid in view:
            if uid not in server_rows:
                result.extra.append((folder, uid))
    return structural(store, account, result)


def structural(store: MemoryStore, account: str, result: Comparison | None = None) -> Comparison:
    """Checks that need no server: one record per location and per Message-ID, and no
    record marked present without any location (all move targets are synced here)."""
    result = result if result is not None else Comparison()
    owners: Counter[tuple[str, int, int]] = Counter()
    live_ids: Counter[str] = Counter()
    for msg in store.messages(account, include_removed=True):
        for loc in msg.locations:
            owners[(loc.folder, loc.uidvalidity, loc.uid)] += 1
        if not msg.removed:
            live_ids[msg.message_id] += 1
            if not msg.locations:
                result.ghosts.append(msg.message_id)
    result.dup_locations = [k for k, n in owners.items() if n > 1]
    result.dup_message_ids = [k for k, n in live_ids.items() if n > 1]
    return result


def cursor_violations(
    store: MemoryStore,
    account: str,
    snapshot: Mapping[str, Mapping[int, ServerRow]],
) -> list[str]:
    """UIDs a folder cursor claims are stored but are not: the cursor ran ahead.

    Everything the server holds in [backfill_low, uidnext) (or below uidnext once the
    backfill is complete) must be in the store, except what was quarantined.
    """
    problems: list[str] = []
    for folder, rows in snapshot.items():
        state = store.load_state(account, folder)
        if state is None:
            continue
        stored = store.stored_uids(account, folder, state.uidvalidity)
        quarantined = {int(u) for u in state.extra.get("quarantine", {})}
        low = state.backfill_low if state.backfill_low is not None else 1
        for uid in rows:
            if low <= uid < state.uidnext and uid not in stored and uid not in quarantined:
                problems.append(
                    f"{folder} uid {uid} not stored but cursor uidnext={state.uidnext} "
                    f"backfill_low={state.backfill_low}"
                )
    return problems


# ---------------------------------------------------------------- memory


class RssSampler:
    """Peak resident set size of this process while the block runs (psutil, 10 ms)."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.start_rss = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start_rss = self.peak_rss = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak_rss - self.start_rss) / 1e6

    @property
    def peak_mb(self) -> float:
        return self.peak_rss / 1e6


# ---------------------------------------------------------------- chaos client


CHAOS_FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Forwarded", "pmchaos"]


class ChaosClient(threading.Thread):
    """Another mail client working on the account: appends, flags, moves, expunges.

    Its own imaplib connection (reconnects when Dovecot drops it), a seeded RNG so a
    failing run can be replayed, and counters of what it did.
    """

    def __init__(
        self,
        dovecot: Any,
        user: Any,
        *,
        seed: int,
        folders: Sequence[str] = ("INBOX", "Archive", "Trash"),
        pause: float = 0.005,
    ) -> None:
        super().__init__(daemon=True, name=f"chaos-{seed}")
        self.dovecot = dovecot
        self.user = user
        self.rng = random.Random(seed)
        self.seed = seed
        self.folders = list(folders)
        self.pause = pause
        self.stop_event = threading.Event()
        self.ops: Counter[str] = Counter()
        self.errors: list[str] = []
        self._messages = generate(1_000_000, seed=seed + 1000, attachment_every=0)
        self._client: Any = None

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self.join(timeout)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self._step()
                except Exception as exc:  # noqa: BLE001 - a chaos client just reconnects
                    self.ops["reconnect"] += 1
                    if len(self.errors) < 20:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    self._drop()
                    time.sleep(0.05)
                if self.pause:
                    time.sleep(self.pause)
        finally:
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection
                pass

    def _imap(self) -> Any:
        if self._client is None:
            self._client = self.dovecot.imap(self.user)
        return self._client

    def _uids(self, client: Any, folder: str) -> list[int]:
        typ, data = client.select(f'"{folder}"')
        if typ != "OK":
            raise RuntimeError(f"select {folder}: {data}")
        typ, data = client.uid("SEARCH", "ALL")
        if typ != "OK":
            raise RuntimeError(f"search {folder}: {data}")
        return [int(x) for x in (data[0] or b"").split()]

    def _pick(self, uids: list[int], most: int) -> list[int]:
        return self.rng.sample(uids, min(len(uids), self.rng.randint(1, most)))

    def _step(self) -> None:
        client = self._imap()
        op = self.rng.choices(
            ["append", "flags", "move", "expunge"], weights=[35, 35, 15, 15], k=1
        )[0]
        folder = self.rng.choice(self.folders)
        if op == "append":
            msg = next(self._messages)
            flags = " ".join(self.rng.sample(CHAOS_FLAGS, self.rng.randint(0, 2)))
            typ, data = client.append(f'"{folder}"', f"({flags})", None, msg.raw)
            if typ != "OK":
                raise RuntimeError(f"append: {data}")
            self.ops["append"] += 1
            return
        uids = self._uids(client, folder)
        if not uids:
            return
        chosen = ",".join(str(u) for u in self._pick(uids, 5))
        if op == "flags":
            how = self.rng.choice(["+FLAGS.SILENT", "-FLAGS.SILENT", "FLAGS.SILENT"])
            flags = " ".join(self.rng.sample(CHAOS_FLAGS, self.rng.randint(1, 3)))
            typ, data = client.uid("STORE", chosen, how, f"({flags})")
            self.ops["flags"] += 1
        elif op == "move":
            target = self.rng.choice([f for f in self.folders if f != folder])
            typ, data = client.uid("MOVE", chosen, f'"{target}"')
            self.ops["move"] += 1
        else:
            chosen = ",".join(str(u) for u in self._pick(uids, 2))
            typ, data = client.uid("STORE", chosen, "+FLAGS.SILENT", "(\\Deleted)")
            if typ == "OK":
                typ, data = client.uid("EXPUNGE", chosen)
            self.ops["expunge"] += 1
        if typ != "OK":
            raise RuntimeError(f"{op}: {data}")


# ---------------------------------------------------------------- child process sync


class WitnessStore(JsonlStore):
    """JsonlStore that tells its parent about each commit, and can die on cue.

    ``die_in_writes_done`` SIGKILLs the process when the engine reports write-back
    results: the server has already acted, the results are not committed.
    """

    def __init__(self, path: str, *, die_in_writes_done: bool = False) -> None:
        super().__init__(path)
        self.applied = 0
        self.die_in_writes_done = die_in_writes_done

    def apply(self, batch: SyncBatch) -> None:
        super().apply(batch)
        self.applied += 1
        sys.stdout.write(f"APPLY {self.applied} {batch.folder} {len(batch.new)}\n")
        sys.stdout.flush()

    def writes_done(self, account: str, results: Sequence[WriteResult]) -> None:
        sys.stdout.write(
            "WRITES " + json.dumps([[r.id, r.status] for r in results], default=str) + "\n"
        )
        sys.stdout.flush()
        if self.die_in_writes_done and any(r.status == "done" for r in results):
            os.kill(os.getpid(), signal.SIGKILL)
        super().writes_done(account, results)


def job_for(
    dovecot: Any,
    user: Any,
    journal: str | os.PathLike[str],
    *,
    key: str,
    folders: Sequence[str] | None = None,
    batch_size: int = 200,
    die_in_writes_done: bool = False,
) -> dict[str, Any]:
    return {
        "host": dovecot.host,
        "port": dovecot.ssl_port,
        "cafile": dovecot.cafile,
        "user": user.name,
        "password": user.password,
        "key": key,
        "journal": str(journal),
        "folders": list(folders) if folders else None,
        "batch_size": batch_size,
        "die_in_writes_done": die_in_writes_done,
    }


def start_child(job: Mapping[str, Any], log: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """Start ``python tests/chaos.py`` on a job; stdout is line-buffered text, stderr
    goes to ``log`` (appended) so a chatty child never blocks on a full pipe."""
    env = dict(os.environ)
    env[JOB_ENV] = json.dumps(job)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(_REPO), str(_TESTS_DIR), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-u", str(Path(__file__).resolve())],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=str(_REPO),
        )


def child_job() -> int:
    """Body of the child: one sync_account run into a WitnessStore."""
    import logging

    from pipemail.sync import sync_account

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    job = json.loads(os.environ[JOB_ENV])
    config = AccountConfig(
        key=job["key"],
        imap=ServerConfig(
            host=job["host"],
            port=job["port"],
            security="ssl",
            cafile=job["cafile"],
            allow_private_hosts=True,
            timeout=20,
        ),
        auth=PasswordAuth(job["user"], job["password"]),
        folders=job.get("folders"),
        batch_size=job.get("batch_size", 200),
    )
    store = WitnessStore(job["journal"], die_in_writes_done=job.get("die_in_writes_done", False))
    sys.stdout.write(f"START torn={store.torn_lines}\n")
    sys.stdout.flush()
    report = sync_account(config, store)
    store.close()
    sys.stdout.write(
        f"DONE new={report.new} flags={report.flag_changes} vanished={report.vanished} "
        f"errors={len(report.errors)} retries={report.retries}\n"
    )
    sys.stdout.flush()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(child_job())
