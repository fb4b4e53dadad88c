"""The audit log: who did what, when, from which address, to what.

An entry is written in the transaction of the change it records, so a change that rolls back
leaves no entry, and one that commits always has one.
"""

import json
import re
from dataclasses import dataclass

from flask import has_request_context, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..apiutil import page_count
from ..errors import Invalid
from . import service
from .auth import current_actor
from .models import AuditEntry

PER_PAGE = 50
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_PAGE = 100_000
MAX_TARGET = AuditEntry.target.type.length


def record(session: Session, action: str, target: str | None = None, **details) -> None:
    """Add an entry for `action` on `target` by the account making this request.

    A target longer than the column (a webhook's URL may have 2048 characters) is cut short
    with "…": the change it records must not fail for it.
    """
    actor = current_actor() or {}
    if target is not None and len(target) > MAX_TARGET:
        target = target[: MAX_TARGET - 1] + "…"
    session.add(
        AuditEntry(
            actor_id=actor.get("id"),
            actor_email=actor.get("email"),
            client_address=request.remote_addr if has_request_context() else None,
            action=action,
            target=target,
            details=details or None,
        )
    )


def readable_detail(value) -> str:
    """A detail's value as a person reads it: text as is, a list of words joined, else JSON.

    Python's own spellings (False, None, ['a']) mean nothing to the admin reading the log.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages the entries fill (one, when there are none)."""
        return page_count(self.total, PER_PAGE)

    def to_dict(self) -> dict:
        """The audit page JSON: newest first."""
        return {
            "items": [entry.to_dict() for entry in self.items],
            "page": self.page,
            "per_page": PER_PAGE,
            "total": self.total,
            "pages": self.pages,
        }


def list_entries(
    session: Session, *, actor: str = "", action: str = "", page: int = 1
) -> AuditPage:
    """Entries newest first, by actor email and action (exact, or a prefix ending in a dot)."""
    if page < 1:  # said as the products API says it
        raise Invalid("page must be 1 or more.", details={"page": "1 or more."})
    if page > MAX_PAGE:
        raise Invalid(
            f"page must be from 1 to {MAX_PAGE:,}.", details={"page": f"From 1 to {MAX_PAGE:,}."}
        )
    if CONTROL.search(actor + action):
        raise Invalid("The filters must not hold control characters.")
    actor, action = actor.strip(), action.strip()  # blank is no filter, as the products' are
    query = select(AuditEntry)
    if actor:
        actor = service.normal_email(actor)  # as accounts keep their emails
        query = query.where(func.lower(AuditEntry.actor_email) == func.lower(actor))
    if action:
        query = query.where(
            AuditEntry.action.startswith(action, autoescape=True)  # % and _ are no patterns
            if action.endswith(".")
            else AuditEntry.action == action
        )
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(
        query.order_by(AuditEntry.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    return AuditPage(list(items), page, total)
