"""A webhook's URL as those below admin may read it: without what may be a credential in it."""

import re
from urllib.parse import unquote

HIDDEN = "***"
SECRET_PIECE = re.compile(r"[A-Za-z0-9+/_-]{16,}")  # base64's `+` and `/` too
NOT_IN_A_PIECE = re.compile(r"[^A-Za-z0-9_-]+")
AUTHORITY_ENDS = re.compile(r"[/?#]")


def _looks_generated(piece: str) -> bool:
    """Whether a run of letters, digits, `-`, `_` (and base64's `+`, `/`) looks like a generated
    secret (Slack's, Discord's, a UUID, a JWT's parts): 16 or more, mixing at least two of lower
    case, upper case and digits. An id of digits alone, or words, stay."""
    if not SECRET_PIECE.fullmatch(piece):
        return False
    kinds = (str.islower, str.isupper, str.isdigit)
    return sum(any(kind(c) for c in piece) for kind in kinds) >= 2


def _segment_shown(segment: str) -> str:
    """A path segment, or `***` when any run in it (decoded) looks generated: a Telegram
    bot's `bot123:AAH...`, a token with a suffix (`...Bv3.json`) or in base64 (`+`, `/`, `=`)."""
    decoded = unquote(segment)
    pieces = [*NOT_IN_A_PIECE.split(decoded), decoded.rstrip("=")]
    return HIDDEN if any(_looks_generated(piece) for piece in pieces) else segment


def url_without_secrets(url: str) -> str:
    """`url` as a reader below admin may see it: the user and password in it, the values of
    its query (a bare `?token` whole), its fragment and the path segments that look like
    generated secrets are shown as `***`.

    Read by hand, not by a URL parser: a URL saved as valid (a `[` in a password, say) must
    not make the webhooks list fail for everyone but admins."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return HIDDEN
    ends = AUTHORITY_ENDS.search(rest)
    authority, rest = (rest[: ends.start()], rest[ends.start() :]) if ends else (rest, "")
    if "@" in authority:
        authority = f"{HIDDEN}@{authority.rpartition('@')[2]}"
    rest, hash_mark, _fragment = rest.partition("#")
    path, question_mark, query = rest.partition("?")
    shown = f"{scheme}://{authority}" + "/".join(_segment_shown(s) for s in path.split("/"))
    if question_mark:
        items = query.split("&")
        shown += "?" + "&".join(
            f"{item.partition('=')[0]}={HIDDEN}" if "=" in item else (HIDDEN if item else "")
            for item in items
        )
    return shown + (f"#{HIDDEN}" if hash_mark else "")
