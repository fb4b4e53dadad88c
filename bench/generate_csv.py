"""Write a deterministic product CSV shaped like the assignment's sample file.

Header `name,sku,description`, CRLF line ends, quoted descriptions of which some hold line
breaks, and about 6.7% of rows repeating an earlier SKU in another letter case (500,000 rows:
33,307 repeats, 466,693 distinct SKUs, about 87 MB).

    python3 bench/generate_csv.py OUT.csv [--rows N] [--changed] [--seed S]

`--changed` writes the same SKUs with every second product's name changed, for the
"half the rows change" benchmark.
"""

import argparse
import csv
import random

WORDS = [
    "art",
    "community",
    "floor",
    "adult",
    "your",
    "single",
    "type",
    "per",
    "back",
    "former",
    "stock",
    "thing",
    "whole",
    "moment",
    "deal",
    "remember",
    "economy",
    "bring",
    "evidence",
    "wait",
    "method",
    "close",
    "office",
    "visit",
    "green",
    "probably",
    "laugh",
    "source",
    "despite",
    "lead",
    "partner",
    "arm",
    "science",
    "stuff",
    "sell",
    "decade",
    "ability",
    "image",
    "light",
    "against",
    "church",
    "almost",
    "plant",
    "bill",
    "blue",
    "near",
    "watch",
    "mission",
    "standard",
    "every",
    "owner",
    "system",
    "paper",
    "recognize",
    "quite",
    "culture",
    "mean",
    "agreement",
    "rise",
    "sport",
    "fill",
    "behavior",
    "road",
    "treatment",
]
FIRST = [
    "Bryce",
    "Amy",
    "Jose",
    "Lisa",
    "Mark",
    "Nina",
    "Omar",
    "Paula",
    "Quinn",
    "Rita",
    "Sam",
    "Tina",
    "Uma",
    "Victor",
    "Wendy",
]
LAST = [
    "Jones",
    "Smith",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Lopez",
    "Wilson",
    "Moore",
    "Taylor",
    "Clark",
    "Lewis",
]
REPEAT_EVERY = 15.0116  # 500,000 / 33,307: one row in this many repeats an earlier SKU


def sku_for(index: int, rng: random.Random) -> str:
    """A slug like the sample's (`lay-raise-best-end`), made unique by the index."""
    return "-".join(rng.choice(WORDS) for _ in range(3)) + f"-{index}"


def description(rng: random.Random) -> str:
    """Two or three sentences; about one in eight holds a line break."""
    sentences = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10))).capitalize() + "."
        for _ in range(rng.randint(2, 3))
    ]
    separator = "\r\n" if rng.random() < 0.125 else " "
    return separator.join(sentences)


def rows(count: int, *, changed: bool, seed: int):
    """Yield `(name, sku, description)` rows; repeats re-use an earlier SKU in upper case."""
    rng = random.Random(seed)
    skus: list[str] = []
    repeats_due = 0.0
    for row_number in range(count):
        repeats_due += 1.0
        if skus and repeats_due >= REPEAT_EVERY:
            repeats_due -= REPEAT_EVERY
            sku = rng.choice(skus).upper()
        else:
            sku = sku_for(len(skus), rng)
            skus.append(sku)
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        text = description(rng)
        if changed and row_number % 2 == 0:
            name += " (new)"
        yield name, sku, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the CSV file to write")
    parser.add_argument("--rows", type=int, default=500_000, help="data rows (default 500000)")
    parser.add_argument(
        "--changed",
        action="store_true",
        help="the same SKUs, every second product's name changed (the file of an update)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="the same seed writes the same file (default 42)"
    )
    args = parser.parse_args()
    with open(args.out, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["name", "sku", "description"])
        writer.writerows(rows(args.rows, changed=args.changed, seed=args.seed))


if __name__ == "__main__":
    main()
