"""Body search: what a trigram index on the message text buys, and what it costs.

A script, not a test: prints figures measured in one run. It fills a scratch table
with the text bodies of ``tools/mailgen.py`` messages (one order number per message
makes a rare term), then times, with and without a GIN ``gin_trgm_ops`` index (what
``index="trigram"`` makes Odoo create on ``pipemail_message.body_text``):

- inserting the rows (the sync's cost per stored message);
- ``body_text ILIKE '%term%'`` with a count (the Sales Inbox's Body search), for a
  rare term and for a common phrase.

Usage: python tests/bench/bench_body_search.py --dsn "host=127.0.0.1 port=55432
user=odoo dbname=inb_bench" --count 100000
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools import mailgen  # noqa: E402


def bodies(count, seed):
    rng = random.Random(seed)
    for message in mailgen.generate(count, seed=seed, attachment_every=0):
        raw = message.raw.decode("utf-8", "replace")
        text = raw.split("\n\n", 1)[-1][:2000]
        yield f"{text}\nOrder reference PO-{rng.randint(0, 10**9):09d}"


def fill(cur, rows, indexed):
    cur.execute("DROP TABLE IF EXISTS bench_body")
    cur.execute("CREATE TABLE bench_body (id serial PRIMARY KEY, body_text text)")
    if indexed:
        cur.execute("CREATE INDEX bench_body_trgm ON bench_body USING gin (body_text gin_trgm_ops)")
    start = time.perf_counter()
    for i in range(0, len(rows), 500):
        args = ",".join(cur.mogrify("(%s)", (r,)).decode() for r in rows[i : i + 500])
        cur.execute("INSERT INTO bench_body (body_text) VALUES " + args)
    elapsed = time.perf_counter() - start
    cur.execute("ANALYZE bench_body")
    return elapsed


def search(cur, term, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        cur.execute("SELECT count(*) FROM bench_body WHERE body_text ILIKE %s", (f"%{term}%",))
        found = cur.fetchone()[0]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = list(bodies(args.count, args.seed))
    rare = rows[len(rows) // 2].rsplit("PO-", 1)[1]
    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    figures = {}
    for indexed in (False, True):
        insert = fill(cur, rows, indexed)
        figures[indexed] = {
            "insert_s": insert,
            "rare": search(cur, rare),
            "common": search(cur, "budget was approved"),
        }
    cur.execute("SELECT pg_relation_size('bench_body_trgm'), pg_relation_size('bench_body')")
    index_size, table_size = cur.fetchone()
    cur.execute("DROP TABLE bench_body")
    plain, trgm = figures[False], figures[True]
    print(f"{args.count} message bodies (mailgen seed {args.seed})")
    print(
        f"insert: {plain['insert_s']:.2f} s plain, {trgm['insert_s']:.2f} s with trigram "
        f"index (x{trgm['insert_s'] / plain['insert_s']:.2f})"
    )
    print(f"index size {index_size / 2**20:.1f} MB for a {table_size / 2**20:.1f} MB table")
    for key, label in (("rare", "rare term (one order number)"), ("common", "common phrase")):
        (t0, n0), (t1, n1) = plain[key], trgm[key]
        assert n0 == n1, (n0, n1)
        print(
            f"search {label}: {t0:.1f} ms scan, {t1:.1f} ms trigram, {n1} found "
            f"(x{t0 / t1:.1f} faster)"
        )


if __name__ == "__main__":
    main()
