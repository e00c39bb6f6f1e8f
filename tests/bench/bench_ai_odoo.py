#!/usr/bin/env python3
"""AI helpers through a running Odoo: cache-hit latency, and other users' inbox requests
while AI requests wait for the model. A script, not a test: it prints figures and ratios
measured in one run.

    python tests/bench/bench_ai_odoo.py --url http://127.0.0.1:8170 --db ai_1 \\
        --user sally:sally --other admin:admin --thread 23

``--user`` owns the conversation ``--thread``; ``--other`` is the colleague whose inbox
requests are timed (a list of conversations, as the Sales Inbox asks for it). The Odoo
server's own time per request is in its log (werkzeug's last two columns: SQL and
Python seconds); this script measures wall time over loopback, and reads the server's
own time of the cache hits from that log when ``--log`` gives it.

``python tests/bench/bench_ai.py --odoo`` runs the same measures on an Odoo it installs
and starts itself (``measure`` below).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import requests


def session(url: str, db: str, credentials: str) -> requests.Session:
    login, _, password = credentials.partition(":")
    s = requests.Session()
    r = s.post(
        f"{url}/web/session/authenticate",
        json={"jsonrpc": "2.0", "params": {"db": db, "login": login, "password": password}},
        timeout=60,
    )
    r.raise_for_status()
    if not r.json().get("result"):
        raise SystemExit(f"login failed for {login}")
    return s


def call(s: requests.Session, url: str, model: str, method: str, args, **kwargs):
    r = s.post(
        f"{url}/web/dataset/call_kw/{model}/{method}",
        json={
            "jsonrpc": "2.0",
            "params": {"model": model, "method": method, "args": args, "kwargs": kwargs},
        },
        timeout=600,
    )
    body = r.json()
    if "error" in body:
        return {"error": body["error"]["data"]["message"]}
    return body["result"]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return sorted(out)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


SUMMARIZE_LOG = re.compile(
    r'"POST /web/dataset/call_kw/pipemail\.thread/action_pipemail_ai_summarize HTTP/[\d.]+" '
    r"200 - (\d+) ([\d.]+) ([\d.]+)"
)


def server_ms(log: Path | None, before: int) -> list[float]:
    """Server time (werkzeug's SQL + Python seconds) of the Summarize requests logged
    after the first ``before`` ones, in ms, sorted."""
    if log is None:
        return []
    time.sleep(0.5)  # the request line is logged after the response is written
    found = SUMMARIZE_LOG.findall(log.read_text(errors="replace"))[before:]
    return sorted((float(sql) + float(rest)) * 1000 for _queries, sql, rest in found)


def logged(log: Path | None) -> int:
    return len(SUMMARIZE_LOG.findall(log.read_text(errors="replace"))) if log else 0


def measure(
    url: str,
    db: str,
    user: str,
    other: str,
    thread_id: int,
    n: int = 30,
    parallel: int = 4,
    log: Path | None = None,
) -> dict[str, Any]:
    """Every figure of this script, printed as it comes and returned.

    ``user`` / ``other``: ``login:password`` of the conversation's owner and of the
    colleague whose inbox is timed; ``log``: the server's log file, for its own time of
    the cache hits (werkzeug's columns), when it is at hand.
    """
    url = url.rstrip("/")
    owner = session(url, db, user)
    colleague = session(url, db, other)
    out: dict[str, Any] = {"load": os.getloadavg()[0]}
    print(f"load average {out['load']:.1f}")

    started = time.perf_counter()
    first = call(owner, url, "pipemail.thread", "action_pipemail_ai_summarize", [[thread_id]])
    if "error" in first:
        raise SystemExit(f"summary failed: {first['error']}")
    out.update(model=first["model"], points=len(first["points"]))
    out["first_s"] = time.perf_counter() - started
    print(f"model {first['model']}, {len(first['points'])} points in {out['first_s']:.1f} s")
    thread = [[thread_id]]
    before = logged(log)
    hits = timed(
        lambda: call(owner, url, "pipemail.thread", "action_pipemail_ai_summarize", thread), n
    )
    out["hit_server_ms"] = server_ms(log, before)
    state = timed(lambda: call(owner, url, "pipemail.thread", "pipemail_ai_state", thread), n)
    for key, label, values in (
        ("hit", "cache hit (Summarize)", hits),
        ("state", "reader load (AI state)", state),
    ):
        out[f"{key}_p50"], out[f"{key}_p95"] = pct(values, 0.5), pct(values, 0.95)
        print(f"{label:24} p50 {out[key + '_p50']:6.1f} ms  p95 {out[key + '_p95']:6.1f} ms (wall)")
    if out["hit_server_ms"]:
        server = out["hit_server_ms"]
        out["hit_server_p50"], out["hit_server_p95"] = (
            statistics.median(server),
            server[min(len(server) - 1, int(0.95 * len(server)))],
        )
        print(
            f"{'cache hit, server time':24} p50 {out['hit_server_p50']:6.1f} ms  "
            f"p95 {out['hit_server_p95']:6.1f} ms ({len(server)} requests; target <= 50)"
        )

    def inbox():
        call(
            colleague,
            url,
            "pipemail.thread",
            "web_search_read",
            [],
            domain=[],
            specification={"subject": {}, "last_date": {}, "participants_display": {}},
            limit=80,
        )

    idle = timed(inbox, n)
    busy: list[float] = []
    answers: list[Any] = []

    def ai_request():
        answers.append(
            call(
                owner,
                url,
                "pipemail.thread",
                "action_pipemail_ai_summarize",
                [[thread_id]],
                refresh=True,
            )
        )

    workers = [threading.Thread(target=ai_request) for _ in range(parallel)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # the AI requests are waiting for the model
    while any(w.is_alive() for w in workers) and len(busy) < n:
        busy += timed(inbox, 1)
    for worker in workers:
        worker.join()
    busy.sort()
    out["parallel_s"] = time.perf_counter() - started
    out["failed"] = [a["error"] for a in answers if isinstance(a, dict) and "error" in a]
    out["idle_p50"], out["busy_p50"], out["busy_n"] = pct(idle, 0.5), pct(busy, 0.5), len(busy)
    out["ratio"] = statistics.median(busy) / statistics.median(idle) if busy else float("nan")
    print(
        f"colleague's inbox list idle p50 {out['idle_p50']:6.1f} ms; during {parallel} AI "
        f"requests p50 {out['busy_p50']:6.1f} ms ({len(busy)} samples): "
        f"x{out['ratio']:.2f} (target <= 1.2)"
    )
    print(
        f"the {parallel} AI requests took {out['parallel_s']:.0f} s"
        + (f"; {len(out['failed'])} failed: {out['failed'][0]}" if out["failed"] else "")
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--db", required=True)
    parser.add_argument("--user", required=True, help="login:password of the thread's owner")
    parser.add_argument("--other", required=True, help="login:password of a colleague")
    parser.add_argument("--thread", type=int, required=True)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=4, help="AI requests at once")
    parser.add_argument("--log", type=Path, help="the server's log file (its own times)")
    args = parser.parse_args()
    measure(args.url, args.db, args.user, args.other, args.thread, args.n, args.parallel, args.log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
