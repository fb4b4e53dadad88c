"""The three roles and what each may do. Pure: no database, no Flask."""

import enum


class Role(enum.StrEnum):
    VIEWER = "viewer"  # reads products, imports and webhooks (never a secret)
    EDITOR = "editor"  # also imports and edits single products
    ADMIN = "admin"  # also deletes all, manages webhooks, accounts, tokens; reads the audit log


RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}
ROLES = tuple(role.value for role in Role)  # "viewer", "editor", "admin"


def at_least(role: str, needed: str) -> bool:
    """Whether `role` has every right of `needed`."""
    return RANK[Role(role)] >= RANK[Role(needed)]


def lower_of(first: str, second: str) -> Role:
    """The lesser of two roles: a token never has more rights than its owner."""
    return min(Role(first), Role(second), key=RANK.__getitem__)
