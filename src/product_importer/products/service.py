"""Products: list with filters and totals, create, change, delete, delete all, export."""

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields, replace
from math import prod

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Select,
    and_,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from .. import database
from ..apiutil import blank_is_none, page_count
from ..errors import Conflict, Invalid, NotFound, PreconditionFailed
from ..webhooks import events
from . import rules, totals
from .models import Product

DEFAULT_SORT = "-updated_at"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 10_000_000
TEXT_FILTERS = ("sku", "name", "description")
SORT_KEYS = {
    # SKU identity ignores case, so does its order (lower(sku) has a unique index); so does
    # the name's (lower(name), id has an index). Each on the products or an alias of them.
    "sku": lambda of: func.lower(of.sku),
    "name": lambda of: func.lower(of.name),
    "updated_at": lambda of: of.updated_at,
}
EXPORT_COLUMNS = ("sku", "name", "description", "active")
READ_ONLY = {"id", "created_at", "updated_at"}
LIKE_ESCAPE = "\\"
# A page of a text filter whose exact total is known, at most SORT_AT_MOST, is found through the
# search index (every match, then sorted) when the page ends past the first 1 / WALK_SHARE of
# the matches: walking the sort order to it would read more than that share of the catalog, a
# row at a time. The planner cannot know this when it overestimates a rare term: a term that is
# one of its histogram's 401 entries is estimated at 1 in 401 products (one whole SKU's page took
# 450 ms at 500K products that way, 8 ms through the index). An earlier page walks the sort
# order, but at most as many products as the index would hand the recheck (the matches, or, in
# the `updated_at` order, the candidates the sample says hold what the index is asked for, if
# more: see `_walk_bound`): a walk that does not find its page costs about what finding and
# sorting the matches does. It is
# tried only where, with the matches spread evenly, it would find the page within 1 / WALK_ROOM
# of that bound. Past SORT_AT_MOST matches the planner chooses, as it estimates a common term
# well, and sorting them all would cost more. A page whose matches are all found and sorted
# reads the two halves of the description index side by side (see `_in_halves`).
WALK_SHARE = 4
WALK_ROOM = 2
SORT_AT_MOST = 20_000
# A word as pg_trgm splits text into words: letters and digits.
WORD = re.compile(r"[^\W_]+")
# A word of a term found in at most RARE_IN_SAMPLE of its column's sampled values (~400) is rare.
RARE_IN_SAMPLE = 1
# A term with no rare word asks the index for a few of its trigrams (`trigram_pattern`) where
# the sampled values holding them are no more than those holding all of them, plus a quarter
# (at least one: each sampled value stands for ~0.25% of the catalog), with at most
# NARROW_PIECES_AT_MOST trigrams...
NARROW_ROOM = 4
NARROW_PIECES_AT_MOST = 6
# ... and only where the index lists it leaves unread hold this many sampled values for each
# sampled candidate (its gain): an unread entry saves a little, a candidate tested twice costs
# more. bench/narrow_bench.py counts phrases of two and three words both ways on the 500K
# catalog: from a gain of 50, narrowed was faster for 96 of 97 description terms (38% less
# time in all), 95 of 97 in `q` (22%) and 119 of 119 names (31%); below it, for 27 of 37.
NARROW_GAIN = 50
# A longer term is not tested against the samples (each trigram of it against each of ~400
# values): it is asked of the index whole, whose trigrams narrow it down well enough.
LONGEST_SAMPLED_TERM = 200
# Kept sample shares and patterns (`_kept`), per process; forgotten all at once past this.
KEPT_AT_MOST = 4096
_KEPT: dict[tuple[str, int, str], object] = {}
# The two halves of a description search are read side by side, whatever the planner expects,
# when at least this share of the sampled descriptions hold every trigram of the term: the
# index hands those rows to the recheck ('a g', 2% of the descriptions: its trigram '  g' is in
# 25% of them; counted at 500K products in 353-498 ms in one process, 153-289 ms in two).
# Below it a count is short and a worker would cost more than it saves.
MANY_CANDIDATES = 0.1
# Nor where that share is fewer rows than this (a small catalog): two processes save ~1.6 us a
# row handed to the recheck ('a g' above: ~200 ms on its ~125,000), and starting the workers
# costs ~10 ms ('quixotic': 3.4 ms in one process, 12-16 ms in two): even from ~6,000 rows,
# clearly from 10,000.
MANY_CANDIDATE_ROWS = 10_000
# A term narrowed to a few of its trigrams (`trigram_pattern`) tests each candidate twice (the
# pattern, then the whole term): 'behavior owner culture' took 67 ms for its 9,000 candidates
# in one process, ~7 us each, so two processes gain from about half as many.
NARROWED_MANY_ROWS = 5_000
# Where a word starts or ends, as pg_trgm pads it: beside a character not a letter or digit.
WORD_EDGE_BEFORE = r"(?<![^\W_])"
WORD_EDGE_AFTER = r"(?![^\W_])"
# A page read while an edit committed is read again with its total carried anew, this many
# times at most: an edit between the total and the page is rare, one after each try rarer.
PAGE_TRIES = 3
APPLYING_MESSAGE = (
    "An import is being applied to the catalog. Delete the products once it has finished."
)


# --- listing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The list filters: text is matched as a case-insensitive substring; empty means any."""

    sku: str = ""
    name: str = ""
    description: str = ""
    q: str = ""
    active: bool | None = None
    # (field, term) -> what to ask the trigram index for instead of the whole term: a rare word
    # of it, or a LIKE pattern of a few of its trigrams (see `narrowed`)
    narrow: Mapping[tuple[str, str], str] = field(default_factory=dict, compare=False)
    # the fields `q` tests each candidate row against, in this order (see `q_in_order`)
    q_fields: tuple[str, ...] = field(default=TEXT_FILTERS, compare=False)

    def __post_init__(self) -> None:
        if sorted(self.q_fields) != sorted(TEXT_FILTERS):  # an order, never fewer fields
            raise ValueError(f"q_fields must order {TEXT_FILTERS}, not {self.q_fields}")

    def searches(self) -> bool:
        """Whether a text filter is set (matched through the trigram indexes on PostgreSQL)."""
        return any(getattr(self, field) for field in (*TEXT_FILTERS, "q"))

    def key(self) -> str:
        """These filters as one string, to file their total under: the fields that compare (how
        a term is asked, not what it matches, is left out)."""
        values = {each.name: getattr(self, each.name) for each in fields(self) if each.compare}
        return json.dumps(values, sort_keys=True, ensure_ascii=False)

    def conditions(self, columns=None, *, half: int | None = None) -> list[ColumnElement[bool]]:
        """Return the WHERE conditions of these filters, on products or on `columns` like them.

        With `half` (0 or 1), for a branch that reads that half (see `_in_halves`): the
        description is matched without the parity, which the branch asks for itself.
        """
        of = Product if columns is None else columns
        narrow = self.narrow if of is Product else {}

        def matches(name: str, term: str) -> ColumnElement[bool]:
            return _matches(of, name, term, half, narrow.get((name, term)))

        found = [matches(name, getattr(self, name)) for name in TEXT_FILTERS if getattr(self, name)]
        if self.q:
            found.append(or_(*(matches(name, self.q) for name in self.q_fields)))
        if self.active is not None:
            # `NOT active` lets PostgreSQL use the partial index of inactive products.
            found.append(of.active if self.active else not_(of.active))
        return found


@dataclass(frozen=True)
class Page:
    """One page of products, with the exact number of products that match."""

    items: list[Product]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """One, empty, for none: as every other list of the API, and as `page=1` is served."""
        return page_count(self.total, self.per_page)

    def to_dict(self) -> dict:
        """Return the list JSON of SPEC."""
        return {
            "items": [product.to_dict() for product in self.items],
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
        }


def narrowed(session: Session, filters: Filters) -> Filters:
    """`filters`, with what to ask the index for of each term of several words: its rare word,
    or else a few of its trigrams (`trigram_pattern`).

    A trigram index reads the list of rows of each trigram of the term, and each word of the
    term gives its own trigrams, those of the word's edges included: a whole SKU like
    'visit-moment-paper-1279867' read the lists of common words for 124 ms at 5M products; its
    rare word '1279867' alone took 4 ms, then the whole SKU is matched on the one candidate.
    """
    terms = [(name, getattr(filters, name)) for name in TEXT_FILTERS if getattr(filters, name)]
    terms += [(name, filters.q) for name in TEXT_FILTERS if filters.q]
    if not any(len(WORD.findall(term)) > 1 for _, term in terms):
        return filters
    samples = database.of(session).samples(session)
    narrow = {}
    for name, term in terms:
        sample = samples.get(name, ())
        pattern = rarest_word(sample, term) or trigram_pattern(sample, term)
        if pattern:
            narrow[(name, term)] = pattern
    return replace(filters, narrow=narrow) if narrow else filters


def q_in_order(session: Session, filters: Filters) -> Filters:
    """`filters`, with `q`'s fields in the order that tests each candidate row fewest times:
    the field whose sampled values hold the term most often first.

    PostgreSQL tests an OR's conditions in their order and stops at the first that holds. A
    word of a third of the descriptions, tested against each candidate's SKU and name first,
    spent a third of its count there (two `ILIKE`s that lower their text; 'church' at 500K
    products: 254-263 ms a half in one process, 170-173 ms with the description first), where
    a SKU's digits tested against every description first cost ~50 ms the other way ('-2':
    170-171 ms, 222 ms). With no samples (SQLite) the order stays SKU, name, description.
    """
    if not filters.q:
        return filters
    samples = database.of(session).samples(session)
    shares = {name: holding_share(samples.get(name, ()), filters.q) for name in TEXT_FILTERS}
    order = tuple(sorted(TEXT_FILTERS, key=lambda name: -shares[name]))  # ties: as they were
    return replace(filters, q_fields=order)


def holding_share(sample: Sequence[str], term: str) -> float:
    """The share of `sample` values (lowercased) that hold `term`, in any case; 0 with no sample."""
    lowered = term.lower()
    return sum(lowered in value for value in sample) / max(len(sample), 1)


def rarest_word(sample: Sequence[str], term: str) -> str | None:
    """The word of `term` (of several) found in fewest `sample` values, if it is rare there.

    The word is returned as the term has it: PostgreSQL lowers it as it lowers the term (Python
    lowers a final Σ to ς, PostgreSQL to σ). Only a word of 3 letters or more gives a trigram
    inside '%word%'; a word with Σ, or a letter whose lower case is longer, is left out: with an
    ICU collation its lower case depends on the letters around it.
    """
    words = WORD.findall(term)
    if len(words) < 2 or not sample or _has_combining_mark(term):
        return None
    usable = [word for word in words if len(word) >= 3 and _lowers_alike(word)]
    scored = sorted(
        (sum(word.lower() in value for value in sample), -len(word), word) for word in usable
    )
    if scored and scored[0][0] <= RARE_IN_SAMPLE:
        return scored[0][2]
    return None


def trigram_pattern(sample: Sequence[str], term: str) -> str | None:
    """`_trigram_pattern`, kept per sample and term (see `_kept`)."""
    return _kept("pattern", sample, term, _trigram_pattern)


def _trigram_pattern(sample: Sequence[str], term: str) -> str | None:
    """`trigram_narrowing`'s pattern where its gain is at least NARROW_GAIN."""
    narrowing = trigram_narrowing(sample, term)
    return narrowing[0] if narrowing and narrowing[1] >= NARROW_GAIN else None


def trigram_narrowing(sample: Sequence[str], term: str) -> tuple[str, float] | None:
    """A few trigrams from inside the words of `term`, as a LIKE pattern in the term's order
    ('beh%own%cul'), held by about as few `sample` values as hold every trigram of '%term%'.

    A trigram index reads the list of rows of each trigram it is asked for: 'behavior owner
    culture' has 20, most of them in a third of the descriptions or more (a word's edges, '  o',
    in nearly all). At 500K products its index scan took 50 ms a half, 'beh%own%cul' 9 ms, and
    both handed the recheck the same 4,513 rows. But the recheck then tests each candidate
    twice (the pattern, then the whole term): with the pattern comes its gain, the sampled
    entries of the lists left unread for each sampled candidate (see NARROW_GAIN). None where
    no sample tells.
    """
    words = list(WORD.finditer(term))
    if not sample or len(words) < 2 or len(term) > LONGEST_SAMPLED_TERM:
        return None
    if _has_combining_mark(term):
        return None
    pieces = {}  # lowered trigram -> (start, trigram as the term has it): the first of each
    for word in words:
        if _lowers_alike(word.group()):
            for start in range(word.start(), word.end() - 2):
                pieces.setdefault(term[start : start + 3].lower(), (start, term[start : start + 3]))
    tests = [_trigram_test(trigram) for trigram in like_trigrams(term)]
    lists = [{n for n, value in enumerate(sample) if test.search(value)} for test in tests]
    goal = len(set.intersection(*lists))
    holding, chosen = set(range(len(sample))), []
    while len(holding) > goal + max(1, goal // NARROW_ROOM):
        if len(chosen) == NARROW_PIECES_AT_MOST or not pieces:
            return None
        lowered = min(pieces, key=lambda piece: sum(piece in sample[n] for n in holding))
        narrower = {n for n in holding if lowered in sample[n]}
        if len(narrower) == len(holding):
            return None  # the best piece left narrows nothing: nor would the others
        chosen.append(pieces.pop(lowered))
        holding = narrower
    if not chosen:
        return None
    segments = _segments(sorted(chosen))
    asked = {segment.lower()[at : at + 3] for segment in segments for at in range(len(segment) - 2)}
    left_unread = sum(map(len, lists)) - sum(t in value for t in asked for value in sample)
    return "%".join(segments), left_unread / max(len(holding), 1)


def _lowers_alike(word: str) -> bool:
    """Whether Python lowers `word` letter for letter as PostgreSQL does (not Σ, not İ)."""
    return not any(char == "Σ" or len(char.lower()) > 1 for char in word)


def _has_combining_mark(term: str) -> bool:
    """Whether `term` has a combining mark (U+0307, say): no piece of it may be asked for alone.

    A word ends before a mark (`WORD`), and an ICU collation may lower a letter by the mark
    after it: in Turkish or Azeri 'I' followed by U+0307 lowers to 'i', 'I' alone to 'ı'. The
    piece 'TAKI' of 'TAKI\u0307M' would then miss every row the whole term matches.
    """
    return any(unicodedata.combining(char) for char in term)


def _segments(pieces: list[tuple[int, str]]) -> list[str]:
    """Pieces of a term (start, text), in order, joined where they overlap or touch."""
    segments: list[tuple[int, str]] = []
    for start, text_ in pieces:
        if segments and start <= segments[-1][0] + len(segments[-1][1]):
            first, joined = segments[-1]
            segments[-1] = (first, joined + text_[first + len(joined) - start :])
        else:
            segments.append((start, text_))
    return [text_ for _, text_ in segments]


def _matches(
    of, field: str, term: str, half: int | None = None, narrow_to: str | None = None
) -> ColumnElement[bool]:
    """The condition of one text filter, on the products (of one `half`) or on rows like them."""
    lowered = getattr(of, "description_lower", None) if field == "description" else None
    if lowered is None:  # the edit log keeps descriptions as they are
        contains = _contains(getattr(of, field), term, narrow_to)
    else:
        contains = _lowered_contains(lowered, term, narrow_to)
    if field != "description" or of is not Product or half is not None:
        return contains
    # The same condition, asked of each half of the catalog (by the parity of the id): the
    # trigram index on descriptions comes in two halves (migration 0006) so that two
    # connections build it side by side after a bulk import, and each is used for its half.
    # Literals, not parameters: a plan must prove each half's index predicate. The parity
    # comes first, so that a row is matched against the term once, not once per half: in an
    # OR with other fields (`q`) PostgreSQL cannot take the common term out, and evaluates in
    # order (a 30% `q` counted at 5M products: 8.1 s with the term first, 5.5 s).
    return or_(*(and_(_parity_is(half), contains) for half in (0, 1)))


def _parity_is(half: int) -> ColumnElement[bool]:
    """The products of one half of the catalog: a literal, so that a plan proves the index's."""
    return Product.id % literal_column("2") == literal_column(str(half))


def _in_halves(filters: Filters, *columns) -> CompoundSelect:
    """The products that match, as a UNION ALL of the matches in each half of the catalog.

    PostgreSQL runs the two branches in two processes (Parallel Append), each through its half
    of the description index, and rechecks each candidate against the term once (an OR of the
    halves, read through one bitmap, rechecks the odd rows twice: PostgreSQL puts the term
    before the parity there). At 500K products, counting 'church' (125K matches) took 270 ms
    instead of 430-520, and the page of 'behavior owner culture' (25 matches among 9,000
    candidates) 142 ms instead of 281-290. Only where each half's index serves the term: a
    branch that scans the table tests every row against the term before its parity (the
    cheaper-looking test first), so two branches would test every row twice. And a page of
    common terms cannot walk the sort order this way ('church' 1.3 to 149 ms): it is used
    where every match is sorted anyway.
    """
    halves = (select(*columns).where(_parity_is(h), *filters.conditions(half=h)) for h in (0, 1))
    return union_all(*halves)


def _halves_apart(session: Session, filters: Filters) -> bool:
    """Whether the matches of `filters` may be found in halves (see `_in_halves`)."""
    terms = [term for term in (filters.description, filters.q) if term]
    return (
        bool(terms)
        and all(has_trigram(term) for term in terms)
        and database.of(session).search_in_halves
    )


def has_trigram(term: str) -> bool:
    """Whether pg_trgm finds a trigram in '%term%', so that a trigram index serves it."""
    return bool(like_trigrams(term))


def like_trigrams(term: str) -> set[str]:
    """The trigrams pg_trgm asks its index for to match '%term%' (lowercased).

    pg_trgm pads a word with two spaces before it and one after it where the pattern shows
    its edge (any character but the wildcards): a word of one letter between spaces has
    trigrams, 'ab' alone has none.
    """
    found = set()
    for word in WORD.finditer(term):
        # lowered letter by letter where that keeps its length, as PostgreSQL lowers 'İ' to 'i'
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in word.group())
        padded = "  " * (word.start() > 0) + lowered + " " * (word.end() < len(term))
        found.update(padded[start : start + 3] for start in range(len(padded) - 2))
    return found


def candidates_share(sample: Sequence[str], term: str) -> float:
    """The share of `sample` values (lowercased) that hold every trigram of '%term%'.

    A trigram index hands about that share of the rows to the recheck; 0 with no sample.
    """
    return _kept("share", sample, term, _candidates_share)


def _candidates_share(sample: Sequence[str], term: str) -> float:
    if not sample or len(term) > LONGEST_SAMPLED_TERM:
        return 0.0  # before compiling a test for each trigram of a long term
    tests = [_trigram_test(trigram) for trigram in like_trigrams(term)]
    if not tests:
        return 0.0
    return sum(all(test.search(value) for test in tests) for value in sample) / len(sample)


def asked_share(sample: Sequence[str], term: str, narrow_to: str | None) -> float:
    """The share of `sample` values that hold what the index is asked for `term`: its
    narrowed pieces (`narrowed`), else every trigram of it."""
    return pieces_share(sample, narrow_to) if narrow_to else candidates_share(sample, term)


def pieces_share(sample: Sequence[str], narrow_to: str) -> float:
    """The share of `sample` values (lowercased) that hold every piece of a narrowed term
    (`narrowed`: a word, or trigrams joined by '%'), as the index is asked for it."""
    return _kept("pieces", sample, narrow_to, _pieces_share)


def _pieces_share(sample: Sequence[str], narrow_to: str) -> float:
    pieces = narrow_to.lower().split("%")
    return sum(all(piece in value for piece in pieces) for value in sample) / max(len(sample), 1)


def _kept(kind: str, sample: Sequence[str], term: str, compute: Callable):
    """`compute(sample, term)`, kept per sample (by its hash) and term.

    A request asks 1-4 ms of this per term and field, and a sample is read again once a minute
    at most (database.STATISTICS_SECONDS). Keyed by the sample's hash, not the sample, so that
    no old sample is held in memory; what is kept for a term is right for that term whatever
    the sample (only how fast it is found depends on the sample).
    """
    key = (kind, hash(tuple(sample)), term)
    if key not in _KEPT:
        if len(_KEPT) >= KEPT_AT_MOST:
            _KEPT.clear()
        _KEPT[key] = compute(sample, term)
    return _KEPT[key]


def _trigram_test(trigram: str) -> re.Pattern:
    """A pattern found in a lowercased text where pg_trgm finds `trigram` among its words."""
    before = WORD_EDGE_BEFORE if trigram.startswith(" ") else ""
    after = WORD_EDGE_AFTER if trigram.endswith(" ") else ""
    return re.compile(before + re.escape(trigram.strip()) + after)


def _rechecks_many(session: Session, filters: Filters) -> bool:
    """Whether the description index hands the recheck many rows for a term of `filters`."""
    seam = database.of(session)
    sample = seam.samples(session).get("description", ())
    products = seam.products_estimated(session) or 0
    for term in (term for term in (filters.description, filters.q) if term):
        narrow = filters.narrow.get(("description", term))
        share = asked_share(sample, term, narrow)
        if narrow is not None:
            # The planner's estimate of a narrowed term (its rare word or a few trigrams, and
            # the whole term) multiplies two patterns' as if apart, and expects a handful of
            # rows whatever the candidates: count them here.
            if share * products >= NARROWED_MANY_ROWS:
                return True
        elif share >= MANY_CANDIDATES and share * products >= MANY_CANDIDATE_ROWS:
            return True
    return False


def _contains(column, term: str, narrow_to: str | None = None) -> ColumnElement[bool]:
    """`column` holds `term`, ignoring case; the index asked for `narrow_to` (see `narrowed`)."""
    term = _like_escaped(term)
    if narrow_to is None:
        return column.ilike(f"%{term}%", escape=LIKE_ESCAPE)
    # ILIKE is lower() of both sides, then LIKE: the same match, in a form no index takes, so
    # that the trigram index is asked for `narrow_to` alone.
    whole = func.lower(column).like(func.lower(literal(f"%{term}%")), escape=LIKE_ESCAPE)
    return and_(column.ilike(f"%{narrow_to}%"), whole)


def _lowered_contains(lowered, term: str, narrow_to: str | None = None) -> ColumnElement[bool]:
    """`_contains` on a column kept lowered (`description_lower`): no row is lowered to test it.

    ILIKE is `lower()` of both sides, then LIKE: the term is lowered by the database too, as
    ILIKE would. The whole term behind `narrow_to` is found with `strpos`, a form no index
    takes: on PostgreSQL, the only database where terms are narrowed.
    """
    if narrow_to is not None:
        whole = func.strpos(lowered, func.lower(literal(term))) > 0
        return and_(lowered.like(func.lower(literal(f"%{narrow_to}%"))), whole)
    return lowered.like(func.lower(literal(f"%{_like_escaped(term)}%")), escape=LIKE_ESCAPE)


def _like_escaped(term: str) -> str:
    """`term` with LIKE's wildcards and escape character matched as themselves."""
    for special in (LIKE_ESCAPE, "%", "_"):
        term = term.replace(special, LIKE_ESCAPE + special)
    return term


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Read the filters from query arguments; raise Invalid naming each bad one."""
    values, problems = {}, {}
    for name in (*TEXT_FILTERS, "q"):
        # in NFC, as the catalog's text is: an accent typed either way finds it
        values[name] = rules.to_nfc(args.get(name) or "").strip(rules.SPACE)
        if rules.DESCRIPTION_CONTROL.search(values[name]):
            where = rules.where_control(values[name], rules.DESCRIPTION_CONTROL)
            problems[name] = f"Must not hold control characters. {where}"
    active = blank_is_none(args.get("active"))
    if active not in (None, "true", "false"):
        problems["active"] = "Must be true or false (or left out for any)."
    if problems:
        raise Invalid("The filters are not valid; see details.", details=problems)
    return Filters(**values, active={"true": True, "false": False}.get(active))


def parse_sort(value: str | None) -> str:
    """Return a valid sort (`sku`, `name`, `updated_at`, `-` first for descending; left out or
    blank: the default)."""
    sort = blank_is_none(value) or DEFAULT_SORT
    if sort.removeprefix("-") not in SORT_KEYS:
        choices = ", ".join(SORT_KEYS)
        raise Invalid(
            f"Unknown sort {sort!r}.",
            details={"sort": f"One of {choices}, with - in front for descending order."},
        )
    return sort


def _order_by(sort: str, *, reverse: bool = False, of=Product, key=None) -> tuple:
    """The ORDER BY of `sort`, on the products or on an alias of them (whose `key` it may be)."""
    descending = sort.startswith("-") != reverse
    key = SORT_KEYS[sort.removeprefix("-")](of) if key is None else key
    # ties broken by id, so pages are stable
    return (key.desc(), of.id.desc()) if descending else (key.asc(), of.id.asc())


def list_products(
    session: Session,
    *,
    filters: Filters,
    sort: str = DEFAULT_SORT,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page:
    """Return one page of the products that match, with their exact total."""
    _check_paging(page, per_page)
    database.of(session).plan_for_lists(session)
    filters = q_in_order(session, narrowed(session, filters))
    offset = (page - 1) * per_page
    exact = exact_total(session, filters)
    if exact.known is None:
        exact.wait_for_other_counts()
    total = exact.known
    sort_matches = False
    if total is None and filters.searches():
        page_query = _page_query(session, filters, sort).offset(offset).limit(per_page)
        if database.of(session).walks(session, page_query):
            # A walk pays off only when the matches are as many as the planner estimates, and a
            # text filter's estimate can be far off (see WALK_SHARE): count them first (kept
            # for the next requests), so that the page is looked up knowing how many there are.
            total = exact.count()
        elif _halves_apart(session, filters):
            sort_matches = True  # the planner sorts every match: so do the halves, side by side
    if total is not None:
        return _page_of_total(session, filters, sort, page, per_page, exact, total)
    items, version = _fetch_with_version(
        session, filters, sort, offset, per_page, sort_matches=sort_matches
    )
    if len(items) < per_page and (items or page == 1):
        total = offset + len(items)  # the last page: no count needed
        if items:  # on the first page, every match: their ids are kept too
            exact.remember(total, version, matches=[p.id for p in items] if page == 1 else None)
        else:  # no row read the version: a term that matches nothing was searched each time
            exact.remember_if_unchanged(total)
    else:
        total = exact.count()
    _check_page_exists(page, per_page, total)
    return Page(items, page, per_page, total)


def _page_of_total(
    session: Session,
    filters: Filters,
    sort: str,
    page: int,
    per_page: int,
    exact: totals.ExactTotal,
    total: int,
) -> Page:
    """The page, once its exact `total` is known: read again, with the total carried anew,
    where the catalog changed between the two (at most PAGE_TRIES times)."""
    offset = (page - 1) * per_page
    for tried in range(PAGE_TRIES):
        _check_page_exists(page, per_page, total)
        if tried:
            # Read again, a product the session holds would keep the values first read, in
            # the place of its new ones: renamed meanwhile, it stood out of its sort order.
            session.expire_all()
        items = _fetch(session, filters, sort, offset, per_page, exact=exact, total=total)
        found = total if exact.known is None else exact.known
        if found != total:  # the ids the page found saw an edit the total carried did not
            _check_page_exists(page, per_page, found)
            session.expire_all()
            items = _page_by_ids(session, filters, sort, exact.matches, offset, per_page)
        if not exact.moved_on():  # the page and its total saw the same catalog
            break
        total = exact.value()
    return Page(items, page, per_page, found)


def exact_total(session: Session, filters: Filters) -> totals.ExactTotal:
    """The exact total of the filters: carried over the edits since one was kept, or not."""
    log_conditions = filters.conditions(totals.EDIT_LOG.c)
    return totals.ExactTotal(
        session, filters.key(), lambda: _counting(session, filters), log_conditions
    )


def _count(ids: ColumnElement) -> ColumnElement:
    """count(*): how many rows, whatever their ids."""
    return func.count()


def _counting(session: Session, filters: Filters, aggregate=_count) -> totals.Counting:
    """The count of the products that match (or another `aggregate` of their ids): in halves
    where each half's index serves it.

    The planner has the last word: a common term may be scanned for (see `_in_halves`). Where
    it reads the halves one after the other though the index hands many rows to the recheck,
    they are read side by side.
    """
    plain = select(aggregate(Product.id)).select_from(Product).where(*filters.conditions())
    if not _halves_apart(session, filters):
        return totals.Counting(plain)
    matches = _in_halves(filters, Product.id).subquery("matches")
    halves = select(aggregate(matches.c.id)).select_from(matches)
    plan = database.of(session).plan_of(session, halves)
    if plan.scans_table:
        return totals.Counting(plain)
    if not plan.in_parallel and _rechecks_many(session, filters):
        return totals.Counting(halves, database.of(session).branches_apart(session))
    return totals.Counting(halves)


def _check_paging(page: int, per_page: int) -> None:
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise Invalid(
            f"per_page must be from 1 to {MAX_PER_PAGE}.",
            details={"per_page": f"From 1 to {MAX_PER_PAGE}."},
        )
    if page < 1:
        raise Invalid("page must be 1 or more.", details={"page": "1 or more."})
    if page > MAX_PAGE:
        raise Invalid(
            f"page must be from 1 to {MAX_PAGE:,}.", details={"page": f"From 1 to {MAX_PAGE:,}."}
        )


def _check_page_exists(page: int, per_page: int, total: int) -> None:
    last = page_count(total, per_page)
    if page > last:
        raise Invalid(
            f"There is no page {page}: the last page is {last}.",
            details={"page": f"From 1 to {last}."},
        )


def _fetch_with_version(
    session: Session,
    filters: Filters,
    sort: str,
    offset: int,
    limit: int,
    *,
    sort_matches: bool,
) -> tuple[list[Product], int | None]:
    """One page and the catalog version it was read at (None if it has no rows)."""
    query = _page_query(session, filters, sort, sort_matches=sort_matches)
    query = query.add_columns(totals.version_now(session)).offset(offset).limit(limit)
    with _planned(session, filters, query, sort_matches=sort_matches):
        rows = session.execute(query).all()
    return [row[0] for row in rows], rows[0][1] if rows else None


def _page_query(
    session: Session,
    filters: Filters,
    sort: str,
    *,
    reverse: bool = False,
    sort_matches: bool = False,
) -> Select:
    """The products that match `filters`, in the order of `sort`.

    With `sort_matches`, the query is shaped to find every match, then sort them: in halves
    where that is faster (see `_in_halves`).
    """
    if not (sort_matches and _halves_apart(session, filters)):
        ordered = _order_by(sort, reverse=reverse)
        return select(Product).where(*filters.conditions()).order_by(*ordered)
    matches = aliased(Product, _in_halves(filters, Product).subquery("matches"))
    return select(matches).order_by(*_order_by(sort, reverse=reverse, of=matches))


@contextmanager
def _planned(
    session: Session, filters: Filters, query: Select, *, sort_matches: bool
) -> Iterator[None]:
    """Plan `query` inside as `sort_matches` says: without walking the sort order, or freely.

    Every match is found and sorted: where the index hands the recheck many rows and the
    planner reads the halves one after the other, they are read side by side (as in
    `_counting`; 'e. t' at 500K products: a page past the first 1,000 matches took 1.07-1.12 s
    in one process, 0.58-0.61 s in two).
    """
    seam = database.of(session)
    with ExitStack() as settings:
        if sort_matches:
            settings.enter_context(seam.without_sort_walk(session))
            if _halves_apart(session, filters) and _rechecks_many(session, filters):
                plan = seam.plan_of(session, query)
                if not (plan.in_parallel or plan.scans_table):
                    settings.enter_context(seam.branches_apart(session))
        yield


def _fetch(
    session: Session,
    filters: Filters,
    sort: str,
    offset: int,
    limit: int,
    *,
    exact: totals.ExactTotal,
    total: int,
) -> list[Product]:
    """One page of the products that match `filters`, whose exact `total` is known.

    A total of 0 is trusted as every kept total is (products/totals.py): no query is made.
    """
    if total == 0:
        return []
    if exact.matches is not None:
        return _page_by_ids(session, filters, sort, exact.matches, offset, limit)
    reverse = offset > total // 2
    if reverse:
        # Walk the sort order from its other end: the last page costs what the first does.
        offset, limit = max(total - offset - limit, 0), min(limit, total - offset)
    items = _page_of(
        session, filters, sort, offset, limit, exact=exact, total=total, reverse=reverse
    )
    return list(reversed(items)) if reverse else list(items)


def _found_ids(
    session: Session, filters: Filters, exact: totals.ExactTotal, total: int
) -> list[int] | None:
    """The ids of every match, found now and kept, for a page that would find every match
    anyway; None where the total is too large to keep them (`totals.MATCHES_AT_MOST`), or was
    just counted: a first request looks its page up as before, and the next one finds them."""
    if not exact.kept or exact.counted or total > totals.MATCHES_AT_MOST:
        return None
    return exact.find_matches(_counting(session, filters, func.array_agg))


def _page_by_ids(
    session: Session,
    filters: Filters,
    sort: str,
    ids: list[int],
    offset: int,
    limit: int,
    *,
    reverse: bool = False,
) -> list[Product]:
    """The page among the products of `ids` that match `filters` (tested again: the ids kept
    may include products changed since)."""
    # OFFSET 0 keeps the filter out of the scan: the primary key alone reads the few products,
    # which a trigram index, ANDed with it, would search for.
    listed = (
        select(Product)
        .where(Product.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger))))
        .offset(0)
        .subquery("listed")
    )
    product = aliased(Product, listed)
    query = select(product).where(*filters.conditions(product))
    ordered = _order_by(sort, reverse=reverse, of=product)
    return list(session.scalars(query.order_by(*ordered).offset(offset).limit(limit)).all())


def _page_of(
    session: Session,
    filters: Filters,
    sort: str,
    offset: int,
    limit: int,
    *,
    exact: totals.ExactTotal,
    total: int,
    reverse: bool,
) -> Sequence[Product]:
    """The rows `offset` to `offset + limit` of the matches, all there (see SORT_AT_MOST)."""
    if filters.searches() and total <= SORT_AT_MOST:
        rows = _walk_bound(session, filters, sort, offset + limit, total)
        if _walk_may_find(session, offset + limit, total, rows):
            walked = _walked(session, filters, sort, offset, limit, reverse=reverse, rows=rows)
            if len(walked) == limit:
                return walked
        # every match is found: keep their ids for the next pages, where they are few
        ids = _found_ids(session, filters, exact, total)
        if ids is not None:
            return _page_by_ids(session, filters, sort, ids, offset, limit, reverse=reverse)
        query = _page_query(session, filters, sort, reverse=reverse, sort_matches=True)
        query = query.offset(offset).limit(limit)
        with _planned(session, filters, query, sort_matches=True):
            return session.scalars(query).all()
    query = _page_query(session, filters, sort, reverse=reverse)
    return session.scalars(query.offset(offset).limit(limit)).all()


def _walk_may_find(session: Session, page_end: int, total: int, rows: int) -> bool:
    """Whether a walk of `rows` products may find the first `page_end` of `total` matches.

    With the matches spread evenly over the catalog it reads page_end * catalog / total products:
    at 500K products a term of 1,111 matches spread so would need 21,000 for its first page.
    """
    if page_end * WALK_SHARE > total:
        return False
    catalog = database.of(session).products_estimated(session)
    return catalog is None or page_end * catalog * WALK_ROOM <= total * rows


def _walk_bound(session: Session, filters: Filters, sort: str, page_end: int, total: int) -> int:
    """How many products a walk of the sort order may read: the matches, or, in the order
    the products are stored (`updated_at`), as many as the index would hand the recheck.

    A term of several common words has far more candidates than matches: 'owner culture'
    (2,003 of 466,693 descriptions) has ~40,000, each read and tested to find the matches; its
    first page needs a walk of ~12,000. A walk by SKU or name reads the products in an order
    of its own, a page of the table each: all 44,000 took 76-98 ms there, against 20-25 ms by
    `updated_at` or by sorting the matches. And inactive products need not be spread evenly.
    """
    if sort.removeprefix("-") != "updated_at" or filters.active is not None:
        return total
    if page_end * WALK_SHARE > total:
        return total  # no walk whatever the bound (`_walk_may_find`)
    return max(total, _candidate_rows(session, filters))


def _candidate_rows(session: Session, filters: Filters) -> int:
    """About how many rows the trigram indexes hand the recheck for the text filters.

    The sampled share that holds what each term asks of its index, times the products: the
    fewest of the filters (all must match), the fields of `q` as one of them (independent
    shares); 0 where no sample tells, or for a term no index serves.
    """
    seam = database.of(session)
    samples, products = seam.samples(session), seam.products_estimated(session) or 0

    def share(field: str, term: str) -> float:
        return asked_share(samples.get(field, ()), term, filters.narrow.get((field, term)))

    shares = [
        share(name, getattr(filters, name)) for name in TEXT_FILTERS if getattr(filters, name)
    ]
    if filters.q:
        shares.append(1 - prod(1 - share(name, filters.q) for name in TEXT_FILTERS))
    return int(min(shares, default=0) * products)


def _walked(
    session: Session,
    filters: Filters,
    sort: str,
    offset: int,
    limit: int,
    *,
    reverse: bool,
    rows: int,
) -> Sequence[Product]:
    """The page among the first `rows` products in the sort order: short if not all there.

    A walk of the sort order stops at the page's last match. It reads few products when the
    matches are spread evenly, as the planner assumes, but all of them when the matches lie at
    the far end: SKUs numbered in the order they were added, the planner's walk to the newest
    page of '-345' (1,111 matches at 500K products) read 64,000 products (50 ms); sorting the
    1,111 took 3 ms.
    """
    key = SORT_KEYS[sort.removeprefix("-")](Product).label("sort_key")
    # The key is a column of the walk, so that PostgreSQL sees the walk's rows come in the
    # page's order and stops at its last match; ordered by lower(walk.name) it sorted them all.
    walk = (
        select(Product, key)
        .order_by(*_order_by(sort, reverse=reverse))
        .limit(rows)
        .subquery("walk")
    )
    first = aliased(Product, walk)
    ordered = _order_by(sort, reverse=reverse, of=first, key=walk.c.sort_key)
    query = select(first).where(*filters.conditions(first)).order_by(*ordered)
    return session.scalars(query.offset(offset).limit(limit)).all()


# --- single products ------------------------------------------------------------------------


def get(session: Session, product_id: int, *, for_edit: bool = False) -> Product:
    """Return the product, or raise NotFound.

    `for_edit`: locked until the edit commits, as it is once locked. Two edits of one product
    at once: the second waits for the first, then changes what the first wrote and announces
    the product as it leaves it, not as it was before the first.
    """
    locked = {"with_for_update": True, "populate_existing": True} if for_edit else {}
    if for_edit:  # SQLite reads no row FOR UPDATE: its writer's lock is taken first instead
        database.of(session).lock_before_reading(session, Product, product_id)
    product = session.get(Product, product_id, **locked)
    if product is None:
        raise NotFound(f"Product {product_id} does not exist.")
    return product


def create(session: Session, *, fields: dict) -> Product:
    """Create a product from API fields; raise Invalid or Conflict (the SKU is taken)."""
    values = clean(fields, partial=False)
    database.of(session).lock_for_edit(session)
    _refuse_taken_sku(session, values["sku"])
    product = Product(**values)
    session.add(product)
    _flush(session, values["sku"])
    events.publish_in_session(session, "product.created", product.to_dict())
    return product


def update(
    session: Session, product_id: int, *, fields: dict, if_match: Container[str] | None = None
) -> tuple[Product, list[str]]:
    """Change the fields given; return the product and the names of the fields whose values
    changed. Raise NotFound, PreconditionFailed (changed since read, when `if_match` holds no
    current version), Invalid or Conflict (another has the SKU)."""
    database.of(session).lock_for_edit(session)
    product = get(session, product_id, for_edit=True)
    values = clean(fields, partial=True)  # a change not valid anyway is 422, stale or not
    _refuse_stale(product, if_match)
    changes = {name: value for name, value in values.items() if getattr(product, name) != value}
    if not changes:
        return product, []  # nothing to write, nothing to announce
    if "sku" in changes:
        _refuse_taken_sku(session, changes["sku"], other_than=product.id)
    for name, value in changes.items():
        setattr(product, name, value)
    _flush(session, changes.get("sku", product.sku))
    events.publish_in_session(session, "product.updated", product.to_dict())
    return product, sorted(changes)


def delete_product(
    session: Session, product_id: int, *, if_match: Container[str] | None = None
) -> dict:
    """Delete one product and return its JSON as it was; raise NotFound or PreconditionFailed."""
    database.of(session).lock_for_edit(session)
    product = get(session, product_id, for_edit=True)
    _refuse_stale(product, if_match)
    data = product.to_dict()
    session.delete(product)
    session.flush()
    events.publish_in_session(session, "product.deleted", data)
    return data


def version(product: Product) -> str:
    """The product's entity tag: it changes whenever any of its values does."""
    data = json.dumps(product.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()[:24]


def _refuse_stale(product: Product, if_match: Container[str] | None) -> None:
    """Raise PreconditionFailed when the caller read a version of the product that is gone."""
    # Checked under the edit lock, so no change can slip in between the check and the write.
    if if_match is None or version(product) in if_match:
        return
    raise PreconditionFailed(
        f"Product {product.id} was changed since you read it: read it again, then send your "
        "change with its new ETag in If-Match.",
        details={"etag": version(product), "product": product.to_dict()},
    )


def _refuse_taken_sku(session: Session, sku: str, *, other_than: int | None = None) -> None:
    query = select(Product.sku).where(func.lower(Product.sku) == func.lower(sku))
    if other_than is not None:
        query = query.where(Product.id != other_than)
    taken = session.scalars(query.limit(1)).first()
    if taken is not None:
        raise _sku_taken(sku, taken)


def _sku_taken(sku: str, taken: str | None = None) -> Conflict:
    # Quoted as spelled, not with repr(): a person reads C:\PARTS\12, not 'C:\\PARTS\\12'.
    spelled = f' (as "{taken}")' if taken and taken != sku else ""
    message = f'A product with SKU "{sku}"{spelled} already exists; SKUs ignore case.'
    return Conflict(message, details={"sku": message})


def _flush(session: Session, sku: str) -> None:
    """Flush in a savepoint: a SKU taken by a concurrent request is a Conflict, not a 500."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _sku_taken(sku) from None


def clean(fields: dict, *, partial: bool) -> dict:
    """Return the trimmed values of the editable fields; raise Invalid naming each problem."""
    # The import's rules, so that every product exports and imports back unchanged.
    values, problems = rules.clean_fields(fields, partial=partial, read_only=READ_ONLY)
    if problems:
        raise Invalid("The product is not valid; see details.", details=problems)
    return values


# --- the whole catalog ----------------------------------------------------------------------


def delete_all(session: Session) -> int:
    """Delete every product; raise Conflict while an import is being applied."""
    seam = database.of(session)
    if seam.applying(session):  # on PostgreSQL this also keeps one from starting
        raise Conflict(APPLYING_MESSAGE)
    if not seam.lock_products(session):
        raise Conflict(
            "The catalog is busy (an export or a long request is reading it). Try again."
        )
    deleted = exact_total(session, Filters()).value()
    seam.empty_products(session)
    events.publish_in_session(session, "products.deleted_all", {"deleted": deleted})
    return deleted


def export_rows(session: Session, *, filters: Filters, sort: str, batch: int = 2000) -> Iterator:
    """Yield `(sku, name, description, active)` of every matching product, in `sort` order."""
    # A server-side cursor read in batches: constant memory, and one consistent snapshot.
    columns = [getattr(Product, name) for name in EXPORT_COLUMNS]
    filters = q_in_order(session, filters)  # each row read is tested against the filter
    query = select(*columns).where(*filters.conditions()).order_by(*_order_by(sort))
    result = session.execute(query, execution_options={"yield_per": batch})
    for rows in result.partitions():
        yield from rows
