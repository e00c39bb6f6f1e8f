"""AI summary quality: fact recall and citation accuracy on 20 sales threads.

    python tests/bench/eval_ai.py                  # the local llama.cpp server (bundled model)
    PIPEMAIL_AI_BASE_URL=... PIPEMAIL_AI_MODEL=... python tests/bench/eval_ai.py
    python tests/bench/eval_ai.py --limit 5

The threads and their facts are in tests/bench/ai_eval_set.py (6 facts each: request,
budget, meeting, decision, open question, next step with its date). A fact is recalled
when one summary point holds its words; its citation is accurate when that point cites
the message the fact comes from. Citations the engine dropped (naming no message of the
thread) are counted apart. A script, not a test: it prints figures, it does not judge.
"""

from __future__ import annotations

import argparse
import time

from ai_endpoint import configured_endpoint
from ai_eval_set import eval_threads

from pipemail import ai, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N threads")
    parser.add_argument("--max-output", type=int, default=400, help="answer tokens")
    args = parser.parse_args()
    threads = eval_threads()[: args.limit or None]
    facts = recalled = cited = dropped = failures = 0
    started = time.monotonic()
    with configured_endpoint(max_output_tokens=args.max_output) as (endpoint, label):
        print(f"endpoint: {label}; {len(threads)} threads")
        for thread in threads:
            facts += len(thread.facts)
            try:
                result = ai.summarize_thread(list(thread.messages), endpoint)
            except errors.AIError as exc:
                failures += 1
                print(f"  {thread.name:40} FAILED: {exc}")
                continue
            dropped += result.dropped_citations
            hits = []
            for fact in thread.facts:
                points = [p for p in result.points if fact.found_in(p.text)]
                if points:
                    recalled += 1
                    good = any(fact.source in p.message_ids for p in points)
                    cited += good
                    hits.append(fact.name + ("" if good else "(uncited)"))
            print(
                f"  {thread.name:40} {len(hits)}/{len(thread.facts)} facts "
                f"{len(result.points)} points {result.stats.latency_s:5.1f}s "
                f"{' '.join(hits)}"
            )
    elapsed = time.monotonic() - started
    recall = recalled / facts if facts else 0.0
    accuracy = cited / recalled if recalled else 0.0
    print(f"fact recall:       {recall:6.1%} ({recalled}/{facts})")
    print(
        f"citation accuracy: {accuracy:6.1%} ({cited}/{recalled} recalled facts cite their message)"
    )
    print(f"dropped citations: {dropped} (named no message of the thread)")
    print(f"failed summaries:  {failures}/{len(threads)}; {elapsed:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
