"""UTC timestamps, stored and printed the same way on PostgreSQL and SQLite."""

import re
from datetime import UTC, datetime

from markupsafe import Markup, escape


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """Format as ISO 8601 UTC with a `Z`; SQLite hands back naive values, which are UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def aware(value: datetime) -> datetime:
    """The same moment, timezone-aware: SQLite hands back naive values, which are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# A moment written into a message ("import #3 of 2026-12-04 19:24 UTC"), or an ISO 8601 UTC
# value (an audit detail): pages show it in the reader's time zone, as their other times.
STAMP_IN_TEXT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})(?: (?P<minute>\d{2}:\d{2}) UTC\b|T(?P<iso>[\d:.]+)Z)"
)


def local_times(text: str | None) -> Markup:
    """`text` as HTML, each UTC moment in it a `<time datetime="..." data-local>` that the
    pages' script (App.localTimes) shows in the reader's time zone; as written without it."""
    pieces, end = [], 0
    for stamp in STAMP_IN_TEXT.finditer(text or ""):
        moment = f"{stamp['date']}T{stamp['minute'] or stamp['iso']}Z"
        pieces += [
            escape(text[end : stamp.start()]),
            Markup('<time class="nowrap" datetime="{}" data-local>{}</time>').format(
                moment, stamp[0]
            ),
        ]
        end = stamp.end()
    return Markup("").join([*pieces, escape((text or "")[end:])])


def spoken_wait(seconds: float) -> str:
    """A wait as a person says it: 90 s, 45 min, 25 h, 3 days (a Retry-After date may be
    years away)."""
    if seconds < 120:
        return f"{round(seconds)} s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} h"
    if seconds >= 100 * 365 * 86400:  # 400 digits are infinity to float: not "inf days"
        return "over 100 years"
    return f"{seconds / 86400:,.0f} days"
