"""Where a database's time goes: sample its busy backends, by kind of query and what they wait on.

    python bench/activity_sample.py [--database pi_bench_load] [--seconds 330]

Run it beside bench/load_bench.py. Every 0.25 s it reads `pg_stat_activity` (no extension
needed) and the newest import job's state; at the end it prints, per kind of query (a list's
page, a count, the import's statements...) and wait ("CPU" when it waits on nothing), the
average number of backends busy with it, then when the import changed state.
"""

import argparse
import collections
import time

import psycopg

from harness import database_url

ACTIVE = (
    "SELECT query, wait_event_type FROM pg_stat_activity "
    "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
)
IMPORT_STATE = "SELECT status, phase, search_index FROM import_jobs ORDER BY id DESC LIMIT 1"
IMPORT_WORDS = ("import_", "products_build", "create index", "copy ", "analyze")


def kind(query: str) -> str:
    """A short name for what a statement does."""
    query = query.lower()
    if any(word in query for word in IMPORT_WORDS):
        return "import: " + query.split()[0]
    if "count(*)" in query and "from products" in query:
        return "count"
    if "from products" in query and "limit" in query:
        return "page"
    return query[:40] or "?"


def sample(conn, seconds: float) -> tuple[int, collections.Counter, list]:
    busy: collections.Counter = collections.Counter()
    states, taken, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            rows = conn.execute(ACTIVE).fetchall()
            state = conn.execute(IMPORT_STATE).fetchone()
        except psycopg.Error:  # the bench recreates the database at its start
            time.sleep(0.5)
            continue
        taken += 1
        for query, waiting in rows:
            busy[(kind(query or ""), waiting or "CPU")] += 1
        if not states or states[-1][1] != state:
            states.append((time.strftime("%H:%M:%S"), state))
        time.sleep(0.25)
    return taken, busy, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="pi_bench_load")
    parser.add_argument("--seconds", type=float, default=330)
    args = parser.parse_args()
    with psycopg.connect(database_url(args.database), autocommit=True) as conn:
        taken, busy, states = sample(conn, args.seconds)
    print(f"{taken} samples; busy backends on average, by kind of query and wait:")
    for (what, waiting), count in busy.most_common(20):
        print(f"{count / max(taken, 1):6.2f}  {what}  ({waiting})")
    for at, state in states:
        print(at, state)


if __name__ == "__main__":
    main()
