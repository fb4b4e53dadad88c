"""The rejected rows as the file had them: each row's cells and the file's header.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02

`GET /api/imports/<id>/rejected.csv` gives back the rejected rows with every column of the
file, so that fixing their cells and importing that file is the whole repair. Both columns are
JSON lists in text (JSON escapes NUL, which PostgreSQL text cannot hold); rows of earlier
imports have none and the file then holds their SKU. `header` keeps the header a job failed
on (missing or repeated columns): the page offers no Retry for it, since the same file fails
the same way (a column mapping can use it).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("import_jobs", sa.Column("source_header", sa.Text(), nullable=True))
    op.add_column("import_jobs", sa.Column("header", sa.JSON(), nullable=True))
    op.add_column("import_rejected_rows", sa.Column("cells", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("import_rejected_rows", "cells")
    op.drop_column("import_jobs", "header")
    op.drop_column("import_jobs", "source_header")
