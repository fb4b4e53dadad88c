"""Accounts' emails in Unicode NFC: one account for `jörg@` however its `ö` was written.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07

An email pasted from macOS often writes `ö` as `o` and a combining mark (NFD); typed, it is one
character (NFC). The two were two accounts, and the person could not sign in with the address
as typed. Emails now enter in NFC (new accounts, sign-ins, the audit log's filter); this brings
the accounts already there to NFC, and their entries in the audit log with them (its filter by
actor finds them by the email they have now).

An email whose NFC form is already another account's (both forms were made), or longer than an
email may be, is left as it is, and the upgrade names it: nothing is merged or deleted.
Deactivate the one not used (it cannot sign in any more: the email typed finds the other).

Both databases: in Python, a statement per account changed (accounts are few).
Downgrading changes nothing: an email in NFC reads the same.
"""

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

log = logging.getLogger("product_importer.migrations")

MAX_EMAIL = 254
ACCOUNTS = sa.text("SELECT id, email FROM users ORDER BY id")
# Another account has this email, ignoring case (SQLite's lower() is the app's, as its index's).
TAKEN = sa.text("SELECT id FROM users WHERE lower(email) = lower(:email) AND id <> :id")
WRITE = sa.text("UPDATE users SET email = :email WHERE id = :id")
WRITE_ENTRIES = sa.text("UPDATE audit_log SET actor_email = :email WHERE actor_id = :id")


def upgrade():
    conn = op.get_bind()
    written, left = 0, []
    for account, email in conn.execute(ACCOUNTS).all():
        nfc = unicodedata.normalize("NFC", email)
        if nfc == email:
            continue
        if len(nfc) > MAX_EMAIL:  # NFC writes a few letters longer
            left.append(f"id {account} {email!r} (in NFC, longer than {MAX_EMAIL} characters)")
            continue
        other = conn.execute(TAKEN, {"email": nfc, "id": account}).scalar()
        if other is not None:
            left.append(f"id {account} {email!r} (in NFC, the email of id {other})")
            continue
        conn.execute(WRITE, {"email": nfc, "id": account})
        conn.execute(WRITE_ENTRIES, {"email": nfc, "id": account})
        written += 1
    log.info("Emails in NFC: %d accounts normalised.", written)
    if left:
        log.warning(
            "%d accounts keep their email as it was: %s. They cannot sign in with it as "
            "typed (it finds the other account, or none); deactivate them if they are not "
            "needed, or add the person again: nothing was merged or deleted.",
            len(left),
            "; ".join(left),
        )


def downgrade():
    """Nothing to undo: an email in NFC reads as it did."""
