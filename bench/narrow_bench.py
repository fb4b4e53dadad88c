"""Narrowing benchmark: is a term of common words counted faster asked by a few of its trigrams?

    python bench/narrow_bench.py [--terms N] [--rounds N]

A term of several words and no rare one may be asked of the trigram index by a few of its
trigrams (`service.trigram_narrowing`): the index then reads fewer lists of rows, but each
candidate is tested twice (the pattern, then the whole term). The list narrows a term only
where its gain (the sampled entries left unread for each sampled candidate) is at least
`service.NARROW_GAIN`. This bench checks that line on the catalog `bench/list_bench.py --keep`
leaves (`pi_bench_list`, BENCH_PG_URL): it takes phrases of two and three words from sampled
descriptions and names, and for each one that can be narrowed, counts its matches (the first
request's exact total) as the list would, narrowed and whole, best of --rounds interleaved.
It prints each term by its gain, the two times, and, for each gain, how many terms above it
were counted faster narrowed.
"""

import argparse
import os
import random
import sys
import time
from dataclasses import replace

from sqlalchemy import text

from harness import database_url
from product_importer import create_app, database
from product_importer.extensions import db
from product_importer.products import service

DB_NAME = "pi_bench_list"
SEED = 7  # the same phrases on every run of one catalog
# (filter, the column whose values give its phrases): `q` as the description's terms
FIELDS = (("description", "description"), ("q", "description"), ("name", "name"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", type=int, default=60, help="phrases tried per field")
    parser.add_argument("--rounds", type=int, default=3, help="counts of each, best kept")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = database_url(DB_NAME)
    app = create_app()
    with app.app_context():
        session = db.session
        if not session.execute(text("SELECT EXISTS (SELECT FROM products)")).scalar():
            sys.exit(f"{DB_NAME} holds no products: run bench/list_bench.py --keep first")
        results = []
        for field, source in FIELDS:
            for term in phrases(session, source, args.terms):
                measured = measure(session, field, term, args.rounds)
                if measured:
                    results.append((field, term, *measured))
        report(results)


def phrases(session, column: str, count: int) -> list[str]:
    """Runs of two or three words of sampled values of `column`, as they are written."""
    sampled = f"SELECT {column} FROM products TABLESAMPLE SYSTEM (1) REPEATABLE ({SEED}) LIMIT 2000"
    found = set()
    for value in session.execute(text(sampled)).scalars():
        words = service.WORD.findall(value)
        for length in (2, 3):
            for start in range(len(words) - length + 1):
                found.add(" ".join(words[start : start + length]))
    chosen = sorted(found)
    random.Random(SEED).shuffle(chosen)
    return chosen[: count * 4]  # most cannot be narrowed: try more than asked for


def measure(session, field: str, term: str, rounds: int):
    """(gain, matches, ms whole, ms narrowed) of one term, or None where it is not narrowed.

    `q` is narrowed in its description only: whether that pays, where each candidate is tested
    against three fields (the list narrows each field of `q` by its own gain).
    """
    column = "description" if field == "q" else field
    sample = database.of(session).samples(session).get(column, ())
    if service.rarest_word(sample, term):
        return None  # asked for by its rare word, whatever the gain
    narrowing = service.trigram_narrowing(sample, term)
    if narrowing is None:
        return None
    narrow = {(column, term): narrowing[0]}
    plain = service.q_in_order(session, service.Filters(**{field: term}))  # as the list asks
    best = {"whole": float("inf"), "narrowed": float("inf")}
    matches = None
    for _ in range(rounds):
        for kind, filters in (("whole", plain), ("narrowed", replace(plain, narrow=narrow))):
            database.of(session).plan_for_lists(session)
            counting = service._counting(session, filters)
            started = time.perf_counter()
            with counting.planned:
                found = session.scalar(counting.query)
            best[kind] = min(best[kind], time.perf_counter() - started)
            session.rollback()
            if matches is not None and found != matches:
                sys.exit(f"{field}={term!r}: {found} matches narrowed, {matches} whole")
            matches = found
    return narrowing[1], matches, best["whole"] * 1000, best["narrowed"] * 1000


def report(results: list[tuple]) -> None:
    """Each term by gain, then the share counted faster narrowed above each gain."""
    results.sort(key=lambda row: row[2])
    print(f"{'field':<12} {'gain':>8} {'matches':>8} {'whole':>8} {'narrowed':>9}  term")
    for field, term, gain, matches, whole, narrowed in results:
        print(f"{field:<12} {gain:8.1f} {matches:8,} {whole:8.1f} {narrowed:9.1f}  {term!r}")
    print("\nnarrowed faster, of the terms whose gain is at least (times in ms, summed):")
    for field, _ in FIELDS:
        for line in (0, 25, 50, 75, 100, 150, 200, 300):
            above = [row for row in results if row[0] == field and row[2] >= line]
            if above:
                faster = sum(row[5] < row[4] for row in above)
                whole, narrowed = sum(row[4] for row in above), sum(row[5] for row in above)
                print(
                    f"  {field:<12} gain >= {line:>3}: {faster}/{len(above)} terms; "
                    f"whole {whole:.0f} ms, narrowed {narrowed:.0f} ms"
                )


if __name__ == "__main__":
    main()
