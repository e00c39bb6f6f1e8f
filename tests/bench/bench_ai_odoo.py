#!/usr/bin/env python3
"""AI helpers through a running Odoo: cache-hit latency, and other users' inbox requests
while AI requests wait for the model. A script, not a test: it prints figures and ratios
measured in one run.

    python tests/bench/bench_ai_odoo.py --url http://127.0.0.1:8170 --db ai_1 \\
        --user sally:sally --other admin:admin --thread 23

``--user`` owns the conversation ``--thread``; ``--other`` is the colleague whose inbox
requests are timed (a list of conversations, as the Sales Inbox asks for it). The Odoo
server's own time per request is in its log (werkzeug's last two columns: SQL and
Python seconds); this script measures wall time over loopback.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--db", required=True)
    parser.add_argument("--user", required=True, help="login:password of the thread's owner")
    parser.add_argument("--other", required=True, help="login:password of a colleague")
    parser.add_argument("--thread", type=int, required=True)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=4, help="AI requests at once")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    owner = session(url, args.db, args.user)
    other = session(url, args.db, args.other)
    print(f"load average {os.getloadavg()[0]:.1f}")

    first = call(owner, url, "pipemail.thread", "action_pipemail_ai_summarize", [[args.thread]])
    if "error" in first:
        raise SystemExit(f"summary failed: {first['error']}")
    print(f"model {first['model']}, {len(first['points'])} points")
    thread = [[args.thread]]
    hits = timed(
        lambda: call(owner, url, "pipemail.thread", "action_pipemail_ai_summarize", thread), args.n
    )
    state = timed(lambda: call(owner, url, "pipemail.thread", "pipemail_ai_state", thread), args.n)
    for label, values in (("cache hit (Summarize)", hits), ("reader load (AI state)", state)):
        print(f"{label:24} p50 {pct(values, 0.5):6.1f} ms  p95 {pct(values, 0.95):6.1f} ms")

    def inbox():
        call(
            other,
            url,
            "pipemail.thread",
            "web_search_read",
            [],
            domain=[],
            specification={"subject": {}, "last_date": {}, "participants_display": {}},
            limit=80,
        )

    idle = timed(inbox, args.n)
    busy: list[float] = []

    def ai_request():
        call(
            owner,
            url,
            "pipemail.thread",
            "action_pipemail_ai_summarize",
            [[args.thread]],
            refresh=True,
        )

    workers = [threading.Thread(target=ai_request) for _ in range(args.parallel)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # the AI requests are waiting for the model
    while any(w.is_alive() for w in workers) and len(busy) < args.n:
        busy += timed(inbox, 1)
    for worker in workers:
        worker.join()
    busy.sort()
    ratio = statistics.median(busy) / statistics.median(idle)
    print(
        f"colleague's inbox list idle p50 {pct(idle, 0.5):6.1f} ms; during {args.parallel} AI "
        f"requests p50 {pct(busy, 0.5):6.1f} ms ({len(busy)} samples): x{ratio:.2f} (target <= 1.2)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
