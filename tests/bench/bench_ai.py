"""AI helpers, engine side: tokens sent and latency per helper, threads of 2, 10 and 40.

    python tests/bench/bench_ai.py                 # local llama.cpp server, 3 rounds
    python tests/bench/bench_ai.py --repeat 5 --sizes 2 10
    PIPEMAIL_AI_BASE_URL=... PIPEMAIL_AI_MODEL=... python tests/bench/bench_ai.py

For each thread size and helper (summary, three replies, reply draft) the script calls
the endpoint ``--repeat`` times (the same thread each round: temperature 0) and prints
tokens in/out (the server's count, ``~`` when the server gave none and the engine
estimated) and latency p50/p95 (wall clock, retries included). The threads come from
tests/ai_threads.py.

Engine only. The Odoo-side figures (a cached summary's latency, other users' requests
while a model call runs) belong to a second part that the addon adds: see
``measure_odoo`` below, which stays empty until then. A script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from ai_endpoint import configured_endpoint
from ai_threads import sales_thread

from pipemail import ai, errors

HELPERS: dict[str, Callable[[list[ai.ThreadMessage], ai.Endpoint], ai.CallStats]] = {
    "summary": lambda t, e: ai.summarize_thread(t, e).stats,
    "replies": lambda t, e: ai.suggest_replies(t, e, sender_name="Bob Martin").stats,
    "reply draft": lambda t, e: (
        ai.compose(
            ai.ComposeRequest(
                action="reply",
                thread=t,
                instruction="confirm and propose a call next Tuesday, friendly",
                sender_name="Bob Martin",
            ),
            e,
        ).stats
    ),
}


@dataclass
class Row:
    helper: str
    size: int
    stats: list[ai.CallStats]
    failures: list[str]

    def line(self) -> str:
        if not self.stats:
            return f"{self.helper:12} {self.size:4}   all failed: {self.failures[0]}"
        latencies = sorted(s.latency_s for s in self.stats)
        p50 = statistics.median(latencies)
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        est = "~" if any(s.usage_estimated for s in self.stats) else " "
        tin = statistics.median(s.tokens_in for s in self.stats)
        tout = statistics.median(s.tokens_out for s in self.stats)
        failed = f"  ({len(self.failures)} failed)" if self.failures else ""
        return (
            f"{self.helper:12} {self.size:4} {est}{tin:7.0f} {est}{tout:6.0f} "
            f"{p50:8.1f} {p95:8.1f}{failed}"
        )


def measure_engine(endpoint: ai.Endpoint, sizes: list[int], repeat: int) -> list[Row]:
    rows = []
    for size in sizes:
        thread = sales_thread(size)
        for name, helper in HELPERS.items():
            row = Row(name, size, [], [])
            for _ in range(repeat):
                try:
                    row.stats.append(helper(thread, endpoint))
                except errors.AIError as exc:
                    row.failures.append(str(exc))
            print(row.line(), flush=True)
            rows.append(row)
    return rows


def measure_odoo(endpoint: ai.Endpoint) -> None:
    """The addon's part (cache hits, other users' requests during a call): to be added."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 10, 40])
    parser.add_argument("--max-output", type=int, default=300, help="answer tokens")
    args = parser.parse_args()
    with configured_endpoint(max_output_tokens=args.max_output, stream=False) as (endpoint, label):
        print(f"endpoint: {label}; context {endpoint.context_tokens} tokens, {args.repeat} rounds")
        print(f"{'helper':12} {'msgs':>4} {'tok in':>8} {'tok out':>7} {'p50 s':>8} {'p95 s':>8}")
        measure_engine(endpoint, args.sizes, args.repeat)
        measure_odoo(endpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
