"""AI helpers, engine side: tokens sent and latency per helper, threads of 2, 10 and 40.

    python tests/bench/bench_ai.py                 # local llama.cpp server, 3 rounds
    python tests/bench/bench_ai.py --repeat 5 --sizes 2 10
    PIPEMAIL_AI_BASE_URL=... PIPEMAIL_AI_MODEL=... python tests/bench/bench_ai.py
    python tests/bench/bench_ai.py --odoo --sizes 2 --repeat 1   # + the Odoo part
    python tests/bench/bench_ai.py --odoo --no-engine             # the Odoo part only

For each thread size and helper (summary, three replies, reply draft) the script calls
the endpoint ``--repeat`` times (the same thread each round: temperature 0) and prints
tokens in/out (the server's count, ``~`` when the server gave none and the engine
estimated) and latency p50/p95 (wall clock, retries included). The threads come from
tests/ai_threads.py.

With ``--odoo``, the Odoo side on the same endpoint (``measure_odoo``): the addons
installed into a private PostgreSQL (bench_odoo.py's ``bench_run``), the demo
salesperson's mailbox on the harness Dovecot synced, AI turned on for the company and
pointed at this endpoint, a threaded Odoo server started; then bench_ai_odoo.py's
measures over JSON-RPC: a cached summary's latency (the server's own time from its log,
target <= 50 ms) and a colleague's inbox list idle and while ``--parallel`` AI requests
wait for the model (target within 1.2x). A script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
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


AI_SETUP_CODE = r"""
Users = env["res.users"].with_context(no_reset_password=True)
company = env["res.company"].browse(P["company_id"])
company.pipemail_ai_enabled = True
ICP = env["ir.config_parameter"]
ICP.set_param("pipemail_ai.base_url", P["base_url"])
ICP.set_param("pipemail_ai.model", P["model"])
ICP.set_param("pipemail_ai.context_tokens", str(P["context"]))
ICP.set_param("pipemail_ai.daily_cap", "0")
if P["api_key"]:
    env["res.config.settings"].create({"pipemail_ai_api_key": P["api_key"]}).execute()
colleague = Users.search([("login", "=", "colleague")])
if not colleague:
    colleague = Users.create({
        "name": "Colleague", "login": "colleague", "password": "colleague",
        "company_id": company.id, "company_ids": [(6, 0, company.ids)],
        "groups_id": [(4, env.ref("sales_team.group_sale_salesman_all_leads").id)],
    })
threads = env["pipemail.thread"].search(
    [("account_id", "=", P["account_id"]), ("message_count", ">=", 2)])
if not threads:
    raise SystemExit("no conversation of 2 messages or more in the synced mailbox")
thread = min(threads, key=lambda t: (abs(t.message_count - P["messages"]), t.id))
env.cr.commit()
print("BENCH_RESULT " + json.dumps({
    "thread_id": thread.id, "messages": thread.message_count,
    "colleague_threads": env["pipemail.thread"].with_user(colleague).search_count([]),
}))
"""


def measure_odoo(endpoint: ai.Endpoint, args: argparse.Namespace) -> int:
    """The addon's part on ``endpoint``: an Odoo installed and started here (see the
    module docstring), then bench_ai_odoo.py's measures. 0, or 2 when a step failed."""
    import bench_ai_odoo
    import bench_odoo
    import odoo_tier

    started = time.monotonic()
    try:
        with bench_odoo.bench_run("pipemail-bench-ai-", args.keep) as (odoo, dovecot):
            dbname = "bench_ai"
            setup = bench_odoo.demo_database(odoo, dovecot, dbname, args.mailbox)
            if setup["state"] != "connected":
                raise bench_odoo.Step(f"the mailbox is {setup['state']}: {setup['error']}")
            sync = odoo.shell(
                "sync",
                dbname,
                bench_odoo.SYNC_CODE,
                {"account_id": setup["account_id"], "profile": False},
            )
            chosen = odoo.shell(
                "ai_setup",
                dbname,
                AI_SETUP_CODE,
                {
                    "company_id": setup["company_id"],
                    "account_id": setup["account_id"],
                    "base_url": endpoint.base_url,
                    "model": endpoint.model,
                    "api_key": endpoint.api_key,
                    "context": endpoint.context_tokens,
                    "messages": args.thread_messages,
                },
            )
            print(
                f"Odoo: installed and {sync['messages']} messages synced in "
                f"{time.monotonic() - started:.0f} s; conversation {chosen['thread_id']} of "
                f"{chosen['messages']} messages; the colleague's inbox holds "
                f"{chosen['colleague_threads']} conversations ({bench_odoo.load()})"
            )
            port = odoo_tier.free_port()
            # the model may take minutes with 4 requests queued on 2 cores: Odoo must not
            # kill the request first (the addon's deadline stays 15 s inside this limit)
            limit = f"--limit-time-real={args.limit_time_real}"
            with bench_odoo.odoo_server(odoo, dbname, port, limit) as log:
                bench_ai_odoo.measure(
                    f"http://127.0.0.1:{port}",
                    dbname,
                    "demo:demo",
                    "colleague:colleague",
                    chosen["thread_id"],
                    n=args.odoo_n,
                    parallel=args.parallel,
                    log=log,
                )
            print(f"Odoo part: {time.monotonic() - started:.0f} s, {bench_odoo.load()}")
            return 0
    except bench_odoo.Step as exc:
        print(f"FAILED: {exc}")
        return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 10, 40])
    parser.add_argument("--max-output", type=int, default=300, help="answer tokens")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine part")
    odoo = parser.add_argument_group("the Odoo part")
    odoo.add_argument("--odoo", action="store_true", help="install, start and measure an Odoo")
    odoo.add_argument("--mailbox", type=int, default=40, help="messages in the synced mailbox")
    odoo.add_argument(
        "--thread-messages", type=int, default=3, help="size of the summarized conversation"
    )
    odoo.add_argument("--odoo-n", type=int, default=30, help="samples per Odoo measure")
    odoo.add_argument("--parallel", type=int, default=4, help="AI requests at once")
    odoo.add_argument("--limit-time-real", type=int, default=600, help="the Odoo server's")
    odoo.add_argument("--keep", action="store_true", help="keep the Odoo work directory")
    args = parser.parse_args()
    with configured_endpoint(max_output_tokens=args.max_output, stream=False) as (endpoint, label):
        print(f"endpoint: {label}; context {endpoint.context_tokens} tokens, {args.repeat} rounds")
        if not args.no_engine:
            head = ("helper", "msgs", "tok in", "tok out", "p50 s", "p95 s")
            print("{:12} {:>4} {:>8} {:>7} {:>8} {:>8}".format(*head))
            measure_engine(endpoint, args.sizes, args.repeat)
        if args.odoo:
            return measure_odoo(endpoint, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
