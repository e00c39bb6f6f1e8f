"""Sync speed benchmark: pipemail against a raw imaplib baseline, in one run.

    python tests/bench/bench_sync.py                # 20,000 messages (about 3-4 minutes)
    python tests/bench/bench_sync.py --count 2000   # quick look
    python tests/bench/bench_sync.py --profile      # + cProfile of the pipemail sync

Starts the harness Dovecot, fills INBOX and Sent with a deterministic mailbox from
tools/mailgen.py (conversations, HTML + text, attachments), then measures on the same
connection type (TLS by default):

1. raw batch ``UID FETCH a:b (BODY.PEEK[])`` with imaplib, windows of 500 UIDs;
2. the same plus ``email.message_from_bytes(raw, policy=default)`` per message;
3. pipemail's initial sync into a MemoryStore, in a fresh child process so its peak
   RSS growth is its own;
4. in that child, an incremental sync after 100 new messages and 500 flag changes.

It prints a table with the targets of issue 3 and PASS/MISS. A script, not a pytest
test: timings on a shared machine are figures to read, not assertions.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import imaplib
import json
import os
import random
import resource
import ssl
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent.parent
for _path in (str(_REPO), str(_REPO / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

WINDOW = 500
TARGET_RATIO = 0.8
TARGET_INCREMENTAL_S = 1.0
TARGET_RSS_MB = 150.0


@dataclass
class Server:
    host: str
    port: int
    security: str
    cafile: str
    user: str
    password: str


# ---------------------------------------------------------------- baseline


def _connect(server: Server) -> imaplib.IMAP4:
    if server.security == "ssl":
        ctx = ssl.create_default_context(cafile=server.cafile)
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=ctx)
    else:
        client = imaplib.IMAP4(server.host, server.port)
    client.login(server.user, server.password)
    return client


def _raw_messages(client: imaplib.IMAP4, folder: str) -> Iterator[bytes]:
    """Every message body of ``folder``, fetched in UID windows of WINDOW."""
    typ, data = client.select(folder, readonly=True)
    if typ != "OK":
        raise RuntimeError(f"select {folder}: {data}")
    uidnext = int(client.untagged_responses["UIDNEXT"][0])
    for low in range(1, uidnext, WINDOW):
        high = min(uidnext - 1, low + WINDOW - 1)
        typ, data = client.uid("FETCH", f"{low}:{high}", "(BODY.PEEK[])")
        if typ != "OK":
            raise RuntimeError(f"fetch {low}:{high}: {data}")
        for item in data:
            if isinstance(item, tuple):
                yield item[1]


def baseline(server: Server, folders: list[str], parse: Callable[[bytes], Any] | None) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    client = _connect(server)
    count = size = 0
    for folder in folders:
        for raw in _raw_messages(client, folder):
            count += 1
            size += len(raw)
            if parse is not None:
                parse(raw)
    client.logout()
    elapsed = time.perf_counter() - started
    return {"count": count, "bytes": size, "seconds": elapsed, "cpu": time.process_time() - cpu}


def stdlib_parse(raw: bytes) -> Any:
    return email.message_from_bytes(raw, policy=email.policy.default)


def stdlib_parse_content(raw: bytes) -> Any:
    """Parse and read what a CRM needs: headers, text/HTML bodies, attachment payloads."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("from", "to", "cc", "subject", "date", "message-id", "references"):
        msg.get(name)
    for part in msg.walk():
        if part.is_multipart():
            continue
        part.get_content()
    return msg


# ---------------------------------------------------------------- children


def _rss_now() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _emit(tag: str, data: dict) -> None:
    print(f"{tag} " + json.dumps(data), flush=True)


def child(args: argparse.Namespace) -> int:
    """One measurement in a fresh process, so none inherits another's heap or caches.

    ``pipemail`` also waits for ``GO`` on stdin (the parent then has changed the
    mailbox) and measures the incremental sync on the store it just filled.
    """
    server = Server(**json.loads(os.environ["PIPEMAIL_BENCH_SERVER"]))
    folders = ["INBOX", "Sent"]
    if args.child != "pipemail":
        parse = {"raw": None, "parse": stdlib_parse, "content": stdlib_parse_content}
        _emit("RESULT", baseline(server, folders, parse[args.child]))
        return 0

    from pipemail.store import MemoryStore
    from pipemail.sync import sync_account
    from pipemail.types import AccountConfig, PasswordAuth, ServerConfig

    config = AccountConfig(
        key="bench",
        imap=ServerConfig(
            host=server.host,
            port=server.port,
            security=server.security,  # type: ignore[arg-type]
            cafile=server.cafile,
            allow_private_hosts=True,
        ),
        auth=PasswordAuth(server.user, server.password),
        folders=folders,
    )
    store = MemoryStore()
    rss_before = _rss_now()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu = time.perf_counter(), time.process_time()
    report = sync_account(config, store)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile_out)
    _emit(
        "RESULT",
        {
            "count": report.new,
            "bytes": report.bytes_fetched,
            "seconds": elapsed,
            "cpu": cpu,
            "errors": len(report.errors),
            "rss_before": rss_before,
            "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "stored": len(store.messages("bench")),
        },
    )
    if sys.stdin.readline().strip() != "GO":
        return 0
    started = time.perf_counter()
    report = sync_account(config, store)
    _emit(
        "INCREMENTAL",
        {
            "seconds": time.perf_counter() - started,
            "new": report.new,
            "flag_changes": report.flag_changes,
            "errors": len(report.errors),
            "stored": len(store.messages("bench")),
        },
    )
    return 0


def spawn(mode: str, server: Server, args: argparse.Namespace) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PIPEMAIL_BENCH_SERVER"] = json.dumps(server.__dict__)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode]
    if args.profile and mode == "pipemail":
        command += ["--profile", "--profile-out", args.profile_out]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def read_line(proc: subprocess.Popen[str], tag: str) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(tag + " "):
        proc.kill()
        raise SystemExit(f"benchmark child failed (expected {tag}): {line!r}")
    return json.loads(line.split(" ", 1)[1])


def measure(mode: str, server: Server, args: argparse.Namespace) -> dict:
    proc = spawn(mode, server, args)
    result = read_line(proc, "RESULT")
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait(timeout=60)
    return result


# ---------------------------------------------------------------- orchestration


def populate(dovecot: Any, user: Any, count: int, seed: int) -> dict[str, int]:
    from concurrent.futures import ThreadPoolExecutor

    from tools.mailgen import generate

    per_folder: dict[str, list[tuple[bytes, tuple[str, ...], Any]]] = defaultdict(list)
    for msg in generate(count, seed=seed):
        per_folder[msg.folder].append((msg.raw, ("\\Seen",) if msg.seen else (), msg.date))
    with ThreadPoolExecutor(len(per_folder)) as pool:
        # Small batches: one doveadm call per ~2 MB stays far from the harness's 60 s timeout.
        list(
            pool.map(
                lambda kv: dovecot.append_many(user, kv[0], kv[1], batch_bytes=2 << 20),
                per_folder.items(),
            )
        )
    return {folder: len(items) for folder, items in per_folder.items()}


def mailbox(dovecot: Any, args: argparse.Namespace) -> tuple[Any, str]:
    """The benchmark user, filled (or found filled in a reused ``--workdir``)."""
    marker = Path(dovecot.workdir) / f"bench-{args.count}-{args.seed}.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        user = dovecot.add_user(saved["user"], saved["password"])
        have = sum(dovecot.status(user, f)["messages"] for f in ("INBOX", "Sent"))
        if have == args.count:
            return user, f"reused from {dovecot.workdir}"
        raise SystemExit(f"{marker}: the mailbox holds {have} messages, not {args.count}")
    user = dovecot.add_user()
    started = time.perf_counter()
    sizes = populate(dovecot, user, args.count, args.seed)
    marker.write_text(json.dumps({"user": user.name, "password": user.password}))
    return user, f"{sizes} generated and appended in {time.perf_counter() - started:.0f} s"


def _rate(result: dict) -> float:
    return result["count"] / result["seconds"] if result["seconds"] else 0.0


def _cpu_rate(result: dict) -> float:
    return result["count"] / result["cpu"] if result["cpu"] else 0.0


def _best(results: list[dict]) -> dict:
    return max(results, key=_rate)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages (default 20000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--security", choices=["ssl", "none"], default="ssl")
    parser.add_argument("--new", type=int, default=100, help="new messages for the incremental")
    parser.add_argument("--flags", type=int, default=500, help="flag changes for the incremental")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each measure; the best is shown"
    )
    parser.add_argument(
        "--content", action="store_true", help="also time stdlib parse + reading every part"
    )
    parser.add_argument(
        "--workdir",
        help="keep Dovecot's files here and reuse a mailbox already generated there "
        "(saves the minutes of APPENDs on the next run)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the pipemail sync")
    parser.add_argument("--profile-out", default="/tmp/pipemail-bench.prof")
    parser.add_argument(
        "--child", choices=["raw", "parse", "content", "pipemail"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        return child(args)

    from harness import Dovecot

    from tools.mailgen import generate

    folders = ["INBOX", "Sent"]
    with Dovecot(workdir=args.workdir) as dovecot:
        user, origin = mailbox(dovecot, args)
        print(f"mailbox: {args.count} messages, {origin}; transport {args.security}", flush=True)
        server = Server(
            host=dovecot.host,
            port=dovecot.ssl_port if args.security == "ssl" else dovecot.port,
            security=args.security,
            cafile=dovecot.cafile,
            user=user.name,
            password=user.password,
        )
        modes = ["raw", "parse", *(["content"] if args.content else []), "pipemail"]
        runs: dict[str, list[dict]] = defaultdict(list)
        for _ in range(max(1, args.repeat) - 1):
            for mode in modes:
                runs[mode].append(measure(mode, server, args))
                print(f"  {mode}: {_rate(runs[mode][-1]):,.0f} msg/s", flush=True)
        for mode in modes[:-1]:
            runs[mode].append(measure(mode, server, args))
            print(f"  {mode}: {_rate(runs[mode][-1]):,.0f} msg/s", flush=True)

        # The last pipemail run keeps its store for the incremental sync.
        proc = spawn("pipemail", server, args)
        runs["pipemail"].append(read_line(proc, "RESULT"))
        print(f"  pipemail: {_rate(runs['pipemail'][-1]):,.0f} msg/s", flush=True)
        rng = random.Random(args.seed)
        before = [row["uid"] for row in dovecot.fetch_state(user, "INBOX")]
        fresh = generate(args.new, seed=args.seed + 99, attachment_every=0)
        new_uids = dovecot.append_many(user, "INBOX", [m.raw for m in fresh])
        flagged = rng.sample(before, min(args.flags, len(before)))
        dovecot.add_flags(user, "INBOX", flagged, ["\\Flagged"])
        assert proc.stdin is not None
        proc.stdin.write("GO\n")
        proc.stdin.flush()
        incremental = read_line(proc, "INCREMENTAL")
        proc.wait(timeout=60)
        server_count = sum(len(dovecot.fetch_state(user, f)) for f in folders)
        if args.workdir:  # leave the kept mailbox as it was generated
            dovecot.expunge(user, "INBOX", new_uids)
            dovecot.remove_flags(user, "INBOX", flagged, ["\\Flagged"])

    raw, parsed, initial = _best(runs["raw"]), _best(runs["parse"]), _best(runs["pipemail"])
    ratio = _rate(initial) / _rate(parsed)
    growth = max((r["rss_peak"] - r["rss_before"]) / 1e6 for r in runs["pipemail"])
    cpu_ratio = _cpu_rate(initial) / _cpu_rate(parsed)

    def speed(result: dict) -> str:
        return f"{_rate(result):,.0f} msg/s"

    def cpu(result: dict) -> str:
        return f"{_cpu_rate(result):,.0f}"

    rows = [
        ("raw batch UID FETCH (imaplib, 500/window)", speed(raw), "", "", cpu(raw)),
        ("  data rate", f"{raw['bytes'] / raw['seconds'] / 1e6:,.1f} MB/s", "", "", ""),
        ("raw FETCH + email.message_from_bytes", speed(parsed), "", "", cpu(parsed)),
    ]
    if args.content:
        content = _best(runs["content"])
        rows.append(("raw FETCH + parse + read every part", speed(content), "", "", cpu(content)))
    rows += [
        ("pipemail initial sync -> MemoryStore", speed(initial), "", "", cpu(initial)),
        (
            "ratio pipemail / (raw FETCH + parse)",
            f"{ratio:.2f}",
            f">= {TARGET_RATIO}",
            _verdict(ratio >= TARGET_RATIO),
            f"{cpu_ratio:.2f}",
        ),
        (
            f"incremental: {args.new} new + {len(flagged)} flag changes",
            f"{incremental['seconds']:.2f} s",
            f"<= {TARGET_INCREMENTAL_S:g} s",
            _verdict(incremental["seconds"] <= TARGET_INCREMENTAL_S),
            "",
        ),
        (
            "peak RSS growth during pipemail sync",
            f"{growth:.0f} MB",
            f"<= {TARGET_RSS_MB:g} MB",
            _verdict(growth <= TARGET_RSS_MB),
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure':<{width}}  {'value':>14}  {'target':>10}  {'result':<6}  client CPU msg/s")
    print("-" * (width + 56))
    for name, value, target, verdict, cpu_value in rows:
        print(f"{name:<{width}}  {value:>14}  {target:>10}  {verdict:<6}  {cpu_value:>10}")
    print()
    load = os.getloadavg()[0]
    print(
        f"checks: raw fetched {raw['count']}, pipemail stored {initial['stored']} "
        f"(errors {initial['errors']}); incremental new={incremental['new']} "
        f"flag_changes={incremental['flag_changes']} errors={incremental['errors']}; "
        f"store {incremental['stored']} vs server {server_count}; RSS "
        f"{initial['rss_before'] / 1e6:.0f} MB before sync, "
        f"peak {initial['rss_peak'] / 1e6:.0f} MB; "
        f"best of {max(1, args.repeat)}; load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    if args.profile:
        import pstats

        print(f"\ncProfile of the pipemail sync ({args.profile_out}), by own time:")
        pstats.Stats(args.profile_out).sort_stats("tottime").print_stats(20)
    consistent = (
        initial["stored"] == raw["count"] == server_count - args.new
        and incremental["new"] == args.new
        and incremental["flag_changes"] == len(flagged)
        and incremental["stored"] == server_count
    )
    if not consistent:
        print("INCONSISTENT: the counts above do not add up")
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
