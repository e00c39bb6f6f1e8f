"""An open-loop HTTP load generator: requests leave on a fixed schedule, answered or not.

    python tests/bench/openloop.py --port 8069 --rate 200 --duration 60 plan.json

``plan.json`` maps an endpoint name to ``{"good": [paths], "bad": [paths]}``. Request
*i* leaves at ``start + i / rate`` and goes to endpoint ``i % len(plan)`` (so every
endpoint sees the same moments of load), one in ``--bad-every`` carrying a bad path.
Its latency is counted from the moment it was *due*, not from when it was sent: a
stalled server or a stalled generator cannot hide queueing (the "coordinated
omission" wrk and ab suffer from; this is what wrk2 does). A first ``--warmup``
seconds are sent the same way and not counted.

Each request opens its own connection, like Odoo's prefork server wants (it closes
every connection after one answer). Prints one line ``OPENLOOP <json>`` with, per
endpoint, the latencies in ms, the statuses, the errors, and how late the generator
itself was in sending (if that is not near zero, the machine is too busy to measure).

Standard library only; run as its own process so that the server under test and the
load do not share an interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def _one(host: str, port: int, path: str, timeout: float) -> int | str:
    """The HTTP status of one GET on a fresh connection, or the error's name."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {UA}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)  # the rest, until the server closes
        parts = head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else "bad-status-line"
    except (OSError, asyncio.TimeoutError) as exc:
        return type(exc).__name__
    finally:
        if writer is not None:
            writer.close()


async def run(
    host: str,
    port: int,
    plan: dict[str, dict[str, list[str]]],
    rate: float,
    duration: float,
    warmup: float,
    bad_every: int,
    timeout: float,
) -> dict:
    kinds = list(plan)
    loop = asyncio.get_running_loop()
    results: dict[str, dict] = {
        kind: {"latency_ms": [], "status": {}, "late_ms": []} for kind in kinds
    }
    counters = {kind: 0 for kind in kinds}
    tasks = []
    total = int((warmup + duration) * rate)
    start = loop.time() + 0.2
    counted_from = int(warmup * rate)

    async def fire(index: int, due: float, kind: str, path: str) -> None:
        late = loop.time() - due
        status = await _one(host, port, path, timeout)
        if index < counted_from:
            return
        row = results[kind]
        row["latency_ms"].append((loop.time() - due) * 1000)
        row["late_ms"].append(late * 1000)
        row["status"][str(status)] = row["status"].get(str(status), 0) + 1

    for index in range(total):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind = kinds[index % len(kinds)]
        counters[kind] += 1
        n = counters[kind]
        if n % bad_every == 0:
            bad = plan[kind]["bad"]
            path = bad[(n // bad_every) % len(bad)]
        else:
            good = plan[kind]["good"]
            path = good[n % len(good)]
        tasks.append(asyncio.create_task(fire(index, due, kind, path)))
    await asyncio.gather(*tasks)
    return {
        kind: {
            "requests": len(row["latency_ms"]),
            "latency_ms": row["latency_ms"],
            "status": row["status"],
            "late_p99_ms": percentile(row["late_ms"], 99),
        }
        for kind, row in results.items()
    } | {"_rate": rate, "_duration": duration}


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(pct * 10) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", help="JSON file: {endpoint: {good: [paths], bad: [paths]}}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds not counted")
    parser.add_argument("--bad-every", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=10.0)
    opts = parser.parse_args()
    with open(opts.plan, encoding="utf-8") as handle:
        plan = json.load(handle)
    began = time.monotonic()
    out = asyncio.run(
        run(
            opts.host,
            opts.port,
            plan,
            opts.rate,
            opts.duration,
            opts.warmup,
            opts.bad_every,
            opts.timeout,
        )
    )
    out["_wall_s"] = time.monotonic() - began
    sys.stdout.write("OPENLOOP " + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
